package oauthserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The signed-in session cookie is "<host>|<user id>|<expiry unix>" and its HMAC-SHA256,
// base64url: it names the human and the host, and expires after SessionTTL. Path is the host's
// base path, so hosts served under /h/{host} keep separate sessions.

// sessionCookiePrefix + host is the name of a host's signed-in session cookie.
const sessionCookiePrefix = "tg_session_"

func (s *Server) sessionMAC(payload string) []byte {
	m := hmac.New(sha256.New, s.session)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (s *Server) setSession(w http.ResponseWriter, host, userID string) {
	exp := s.now().Add(SessionTTL)
	payload := host + "|" + userID + "|" + strconv.FormatInt(exp.Unix(), 10)
	value := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(payload))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookiePrefix + host, Value: value, Path: s.cookiePath(host),
		Expires: exp, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
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
		if len(parts) != 3 || parts[0] != host || parts[1] == "" {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || !s.now().Before(time.Unix(exp, 0)) {
			continue
		}
		if _, err := s.cfg.Store.GetUser(r.Context(), host, parts[1]); err != nil {
			continue // deleted since
		}
		return parts[1], true
	}
	return "", false
}
