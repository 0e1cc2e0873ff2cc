package oauthserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/store"
)

// The signed-in session cookie is "<host>|<user id>|<expiry unix>|<session id>" and its
// HMAC-SHA256, base64url: it names the human and the host, and expires after SessionTTL. The
// session id is random; the store keeps its SHA-256 (store.BrowserSession) and the cookie is
// accepted only while that record exists, so signing out or changing the password ends the
// session even where the cookie was copied. Path is the host's base path, so hosts served under
// /h/{host} keep separate sessions.

// sessionCookiePrefix + host is the name of a host's signed-in session cookie.
const sessionCookiePrefix = "tg_session_"

func (s *Server) sessionMAC(payload string) []byte { return s.mac(macBrowserSession, payload) }

// sessionIDHash is what the store keeps of a session id.
func sessionIDHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// setSession starts a session of userID in this browser: a record in the store, then the
// cookie. method is how the human proved who they are.
func (s *Server) setSession(ctx context.Context, w http.ResponseWriter, host, userID, method string) error {
	exp := s.now().Add(SessionTTL)
	id := randomToken()
	if err := s.cfg.Store.CreateBrowserSession(ctx, store.BrowserSession{Host: host, UserID: userID, IDHash: sessionIDHash(id), Method: method, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("start a browser session: %w", err)
	}
	payload := host + "|" + userID + "|" + strconv.FormatInt(exp.Unix(), 10) + "|" + id
	value := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(payload))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookiePrefix + host, Value: value, Path: s.cookiePath(host),
		Expires: exp, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// clearSession removes the session cookie from the browser.
func (s *Server) clearSession(w http.ResponseWriter, host string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookiePrefix + host, Value: "", Path: s.cookiePath(host), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

func (s *Server) cookiePath(host string) string {
	u, err := url.Parse(s.issuer(host))
	if err != nil || u.Path == "" {
		return "/"
	}
	return strings.TrimSuffix(u.Path, "/") + "/"
}

// sessionUser returns the human signed in to host in r's browser.
func (s *Server) sessionUser(r *http.Request, host string) (string, bool) {
	uid, _, ok := s.browserSession(r, host)
	return uid, ok
}

// browserSession returns the human signed in to host in r's browser and the hash of the
// session's id.
func (s *Server) browserSession(r *http.Request, host string) (userID, idHash string, ok bool) {
	for _, c := range r.CookiesNamed(sessionCookiePrefix + host) {
		p64, m64, ok := strings.Cut(c.Value, ".")
		if !ok {
			continue
		}
		payload, err1 := base64.RawURLEncoding.DecodeString(p64)
		mac, err2 := base64.RawURLEncoding.DecodeString(m64)
		if err1 != nil || err2 != nil || !hmac.Equal(mac, s.sessionMAC(string(payload))) {
			continue
		}
		parts := strings.Split(string(payload), "|")
		if len(parts) != 4 || parts[0] != host || parts[1] == "" || parts[3] == "" {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || !s.now().Before(time.Unix(exp, 0)) {
			continue
		}
		hash := sessionIDHash(parts[3])
		bs, err := s.cfg.Store.GetBrowserSession(r.Context(), host, hash, s.now())
		if err != nil || bs.UserID != parts[1] {
			continue // signed out, ended by a password change, or expired
		}
		if _, err := s.cfg.Store.GetUser(r.Context(), host, parts[1]); err != nil {
			continue // deleted since
		}
		return parts[1], hash, true
	}
	return "", "", false
}
