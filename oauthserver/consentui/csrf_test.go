package consentui

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testSecret = bytes.Repeat([]byte{0x42}, 32)

func newTestCSRF(t *testing.T) *CSRF {
	t.Helper()
	c, err := NewCSRF(testSecret, "tg_csrf", false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issue renders a form page in a fresh browser: it returns the token and the cookie set.
func issue(t *testing.T, c *CSRF) (string, *http.Cookie) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/oauth/login", nil)
	tok := c.Token(w, r)
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Token set %d cookies, want 1", len(cookies))
	}
	return tok, cookies[0]
}

func post(tok string, cookies ...*http.Cookie) *http.Request {
	form := url.Values{"email": {"alice@acme.com"}}
	if tok != "" {
		form.Set(CSRFField, tok)
	}
	r := httptest.NewRequest("POST", "/oauth/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range cookies {
		r.AddCookie(ck)
	}
	return r
}

func wantCSRFError(t *testing.T, err error, reason string) {
	t.Helper()
	var ce *CSRFError
	if !errors.Is(err, ErrCSRF) || !errors.As(err, &ce) {
		t.Fatalf("Verify = %v, want a *CSRFError", err)
	}
	if !strings.Contains(ce.Reason, reason) {
		t.Errorf("reason %q, want it to mention %q", ce.Reason, reason)
	}
	if err.Error() != "the form expired or was opened in another browser; please try again" {
		t.Errorf("message %q", err.Error())
	}
}

func TestCSRFValid(t *testing.T) {
	c := newTestCSRF(t)
	tok, ck := issue(t, c)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
		t.Errorf("cookie attributes: %+v", ck)
	}
	if err := c.Verify(post(tok, ck)); err != nil {
		t.Fatalf("Verify(valid) = %v", err)
	}
	// A later page in the same browser reuses the cookie and issues another valid token.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/oauth/consent", nil)
	r.AddCookie(ck)
	tok2 := c.Token(w, r)
	if len(w.Result().Cookies()) != 0 {
		t.Error("Token replaced an existing valid cookie")
	}
	if err := c.Verify(post(tok2, ck)); err != nil {
		t.Fatalf("Verify(second token) = %v", err)
	}
	// Calling Token twice in one request sets one cookie, and both tokens verify with it.
	w = httptest.NewRecorder()
	r = httptest.NewRequest("GET", "/oauth/login", nil)
	a, b := c.Token(w, r), c.Token(w, r)
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("two Token calls set %d cookies", len(cookies))
	}
	for _, tk := range []string{a, b} {
		if err := c.Verify(post(tk, cookies[0])); err != nil {
			t.Errorf("Verify = %v", err)
		}
	}
}

func TestCSRFRefusals(t *testing.T) {
	c := newTestCSRF(t)
	tok, ck := issue(t, c)
	otherTok, otherCk := issue(t, c)

	t.Run("missing cookie", func(t *testing.T) {
		wantCSRFError(t, c.Verify(post(tok)), "no CSRF cookie")
	})
	t.Run("missing token", func(t *testing.T) {
		wantCSRFError(t, c.Verify(post("", ck)), "no CSRF token")
	})
	t.Run("other browser's cookie", func(t *testing.T) {
		wantCSRFError(t, c.Verify(post(tok, otherCk)), "does not match")
		wantCSRFError(t, c.Verify(post(otherTok, ck)), "does not match")
	})
	t.Run("tampered token", func(t *testing.T) {
		raw, _ := b64url.DecodeString(tok)
		for i := range raw {
			bad := bytes.Clone(raw)
			bad[i] ^= 1
			if err := c.Verify(post(b64url.EncodeToString(bad), ck)); !errors.Is(err, ErrCSRF) {
				t.Fatalf("byte %d flipped: Verify = %v", i, err)
			}
		}
		wantCSRFError(t, c.Verify(post(tok[:len(tok)-2], ck)), "malformed")
		wantCSRFError(t, c.Verify(post(tok+"AA", ck)), "malformed")
		wantCSRFError(t, c.Verify(post("not base64!", ck)), "malformed")
	})
	t.Run("tampered cookie", func(t *testing.T) {
		bad := *ck
		bad.Value = strings.Repeat("A", len(ck.Value))
		wantCSRFError(t, c.Verify(post(tok, &bad)), "does not match")
		bad.Value = "short"
		wantCSRFError(t, c.Verify(post(tok, &bad)), "no CSRF cookie")
	})
	t.Run("other secret", func(t *testing.T) {
		c2, _ := NewCSRF(bytes.Repeat([]byte{7}, 32), "tg_csrf", false)
		wantCSRFError(t, c2.Verify(post(tok, ck)), "does not match")
	})
	t.Run("token in the query string", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/oauth/login?csrf_token="+url.QueryEscape(tok), nil)
		r.AddCookie(ck)
		wantCSRFError(t, c.Verify(r), "no CSRF token")
	})
	t.Run("expired", func(t *testing.T) {
		c.now = func() time.Time { return time.Now().Add(DefaultCSRFTTL + time.Second) }
		defer func() { c.now = time.Now }()
		wantCSRFError(t, c.Verify(post(tok, ck)), "expired")
	})
	t.Run("not yet expired", func(t *testing.T) {
		c.now = func() time.Time { return time.Now().Add(DefaultCSRFTTL - time.Minute) }
		defer func() { c.now = time.Now }()
		if err := c.Verify(post(tok, ck)); err != nil {
			t.Fatalf("Verify before expiry = %v", err)
		}
	})
}

func TestCSRFPlantedCookie(t *testing.T) {
	// A cookie planted for a parent domain arrives alongside the browser's own: the form still
	// works, and the planted one alone does not.
	c := newTestCSRF(t)
	tok, ck := issue(t, c)
	_, planted := issue(t, c)
	if err := c.Verify(post(tok, planted, ck)); err != nil {
		t.Fatalf("Verify with a planted cookie first = %v", err)
	}
}

func TestCSRFSecureCookie(t *testing.T) {
	c, err := NewCSRF(testSecret, "__Host-tg_csrf", true)
	if err != nil {
		t.Fatal(err)
	}
	_, ck := issue(t, c)
	if !ck.Secure || ck.Name != "__Host-tg_csrf" {
		t.Errorf("cookie %+v: want Secure", ck)
	}
	// Without secure, a request over TLS still gets a Secure cookie.
	c = newTestCSRF(t)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "https://gw.example/oauth/login", nil)
	r.TLS = &tls.ConnectionState{}
	c.Token(w, r)
	if cks := w.Result().Cookies(); len(cks) != 1 || !cks[0].Secure {
		t.Errorf("cookie over TLS: %+v", cks)
	}
}

func TestNewCSRFRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		cookie string
		secure bool
	}{
		{"short secret", make([]byte, 16), "tg_csrf", false},
		{"empty name", testSecret, "", false},
		{"bad name", testSecret, "tg csrf;", false},
		{"__Host- without secure", testSecret, "__Host-tg_csrf", false},
	} {
		if _, err := NewCSRF(tc.secret, tc.cookie, tc.secure); err == nil {
			t.Errorf("%s: NewCSRF succeeded", tc.name)
		}
	}
}
