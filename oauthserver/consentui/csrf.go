package consentui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CSRFField is the name of the form field carrying the CSRF token.
const CSRFField = "csrf_token"

// DefaultCSRFTTL is how long a CSRF token stays valid.
const DefaultCSRFTTL = time.Hour

// CSRFMessage is the sentence a page shows when CSRF.Verify fails.
const CSRFMessage = "The form expired or was opened in another browser. Please try again."

// CSRFError is a form submission refused by CSRF.Verify. Its Error is meant for the person
// (see also CSRFMessage); Reason says what was wrong, for logs only.
type CSRFError struct {
	Reason string
}

func (e *CSRFError) Error() string {
	return "the form expired or was opened in another browser; please try again"
}

// Is makes errors.Is(err, ErrCSRF) true for every *CSRFError.
func (e *CSRFError) Is(target error) bool {
	_, ok := target.(*CSRFError)
	return ok
}

// ErrCSRF matches, with errors.Is, every error CSRF.Verify returns.
var ErrCSRF error = &CSRFError{}

const (
	csrfIDLen     = 32
	csrfTokenLen  = 8 + sha256.Size // expiry (Unix seconds, big-endian) + MAC
	csrfMaxTries  = 4               // same-named cookies examined by Verify
	csrfMACDomain = "trustgate/consentui/csrf/v1\x00"
)

var b64url = base64.RawURLEncoding.Strict()

// CSRF issues and checks CSRF tokens for the consent forms. Each browser gets a cookie holding a
// random id; a token is HMAC-SHA256(secret, id, expiry) with its expiry, so a token is valid
// only with the cookie of the browser it was issued to, only until it expires, and cannot be
// made without the secret. It is safe for concurrent use; set TTL before first use.
type CSRF struct {
	// TTL is how long a token stays valid (DefaultCSRFTTL).
	TTL time.Duration

	secret []byte
	name   string
	secure bool
	now    func() time.Time
}

// NewCSRF returns a CSRF using secret (at least 32 bytes; keep it stable across restarts and
// the same on every gateway behind a load balancer, or forms open during a restart or served by
// another gateway fail once) and the cookie cookieName. With secure set the cookie is always
// Secure (set it when the public URL is https, also behind a TLS-terminating proxy); otherwise
// it is Secure on requests that arrived over TLS. A name starting with "__Host-" (recommended
// with https: no subdomain can then plant the cookie) requires secure.
func NewCSRF(secret []byte, cookieName string, secure bool) (*CSRF, error) {
	if len(secret) < 32 {
		return nil, errors.New("consentui: CSRF secret must be at least 32 bytes")
	}
	if err := (&http.Cookie{Name: cookieName, Value: "x"}).Valid(); err != nil || cookieName == "" {
		return nil, fmt.Errorf("consentui: invalid CSRF cookie name %q", cookieName)
	}
	if !secure && (strings.HasPrefix(cookieName, "__Host-") || strings.HasPrefix(cookieName, "__Secure-")) {
		return nil, fmt.Errorf("consentui: cookie name %q needs a Secure cookie (https)", cookieName)
	}
	return &CSRF{
		TTL:    DefaultCSRFTTL,
		secret: append([]byte(nil), secret...),
		name:   cookieName,
		secure: secure,
		now:    time.Now,
	}, nil
}

// Token returns a token for a form in the response to r. When r carries no valid cookie, Token
// generates an id, sets the cookie on w (HttpOnly, SameSite=Lax, Path=/, a session cookie) and
// adds it to r, so further calls for the same request use the same id. Call it before writing
// the response body.
func (c *CSRF) Token(w http.ResponseWriter, r *http.Request) string {
	ids, ok := c.cookieIDs(r)
	if !ok {
		id := make([]byte, csrfIDLen)
		rand.Read(id) // never fails (crypto/rand crashes the program instead)
		ck := &http.Cookie{
			Name:     c.name,
			Value:    b64url.EncodeToString(id),
			Path:     "/",
			HttpOnly: true,
			Secure:   c.secure || r.TLS != nil,
			SameSite: http.SameSiteLaxMode,
		}
		http.SetCookie(w, ck)
		r.AddCookie(ck)
		return c.token(id, c.now().Add(c.TTL))
	}
	return c.token(ids[0], c.now().Add(c.TTL))
}

func (c *CSRF) token(id []byte, exp time.Time) string {
	var buf [csrfTokenLen]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(exp.Unix()))
	copy(buf[8:], c.mac(id, buf[:8]))
	return b64url.EncodeToString(buf[:])
}

func (c *CSRF) mac(id, exp []byte) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(csrfMACDomain))
	m.Write(id)
	m.Write(exp)
	return m.Sum(nil)
}

// cookieIDs returns the ids of r's well-formed cookies named c.name (a browser may send several
// with one name, e.g. one planted for a parent domain), first the one the browser sent first.
func (c *CSRF) cookieIDs(r *http.Request) ([][]byte, bool) {
	var ids [][]byte
	for _, ck := range r.CookiesNamed(c.name) {
		if len(ids) == csrfMaxTries {
			break
		}
		if id, err := b64url.DecodeString(ck.Value); err == nil && len(id) == csrfIDLen {
			ids = append(ids, id)
		}
	}
	return ids, len(ids) > 0
}

// Verify checks the csrf_token field of r's POST body (never the query string) against r's
// cookie: it must have been issued for this cookie by this secret and not be expired. It parses
// the form (r.ParseForm), so bound the body first with http.MaxBytesReader. Every error it
// returns is a *CSRFError matching ErrCSRF.
func (c *CSRF) Verify(r *http.Request) error {
	ids, ok := c.cookieIDs(r)
	if !ok {
		return &CSRFError{Reason: "no CSRF cookie"}
	}
	raw := r.PostFormValue(CSRFField)
	if raw == "" {
		return &CSRFError{Reason: "no CSRF token in the form"}
	}
	tok, err := b64url.DecodeString(raw)
	if err != nil || len(tok) != csrfTokenLen {
		return &CSRFError{Reason: "malformed CSRF token"}
	}
	matched := false
	for _, id := range ids {
		if hmac.Equal(c.mac(id, tok[:8]), tok[8:]) {
			matched = true
		}
	}
	if !matched {
		return &CSRFError{Reason: "CSRF token does not match the cookie"}
	}
	exp := int64(binary.BigEndian.Uint64(tok[:8]))
	if c.now().Unix() >= exp {
		return &CSRFError{Reason: "CSRF token expired"}
	}
	return nil
}
