package oauthserver_test

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
)

// Signing out ends the browser's session on the server: the cookie replayed afterwards signs
// nobody in; the agent's tokens keep working.
func TestSignOutEndsTheSessionNotTheAgentsTokens(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b := e.browser()
	verifier := oauth2.GenerateVerifier()
	tok := e.exchange(conf, e.flow(b, conf, "state-0123456789", verifier, "low"), verifier)

	// A copy of the browser's cookies, taken while signed in.
	thief := e.browser()
	copyCookies(t, b, thief, e.path("acme", "/"))
	if p := thief.Get(e.path("acme", "/account")); p.Status != http.StatusOK || !strings.Contains(p.Body, email) {
		t.Fatalf("account page with the copied cookie before sign-out: %d", p.Status)
	}

	account := b.Get(e.path("acme", "/account"))
	if account.Status != http.StatusOK || !strings.Contains(account.Body, "Sign out") {
		t.Fatalf("account page: %d %s", account.Status, account.Body)
	}
	i := strings.Index(account.Body, `<form method="post" action="`+e.path("acme", "/logout"))
	if i < 0 {
		t.Fatalf("no sign-out form: %s", account.Body)
	}
	out := b.Submit(webclient.Page{Status: account.Status, Body: account.Body[i:]}, nil)
	if out.Status != http.StatusOK || !strings.Contains(out.Body, oauthserver.MsgSignedOut) {
		t.Fatalf("sign out: %d %s", out.Status, out.Body)
	}
	for name, br := range map[string]*browser{"signed-out browser": b, "copied cookie": thief} {
		if p := br.Get(e.path("acme", "/account")); p.Status != http.StatusUnauthorized {
			t.Fatalf("%s after sign-out: %d", name, p.Status)
		}
		if p, _ := e.open(br, conf, e.resource()); !strings.Contains(p.Body, `name="password"`) {
			t.Fatalf("%s after sign-out is not asked to sign in: %s", name, p.Body)
		}
	}
	// The agent's refresh token still works.
	if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("the agent's refresh after sign-out: %v", err)
	}
}

// A password change needs the current password and ends the other browsers' sessions.
func TestPasswordChange(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b, other := e.browser(), e.browser()
	for _, br := range []*browser{b, other} {
		e.flow(br, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	}
	account := b.Get(e.path("acme", "/account"))
	const newPassword = "a brand new passphrase 42"
	bad := b.Submit(account, map[string]string{"current_password": "not my password", "password": newPassword, "password_confirm": newPassword})
	if bad.Status != http.StatusUnauthorized || !strings.Contains(bad.Body, oauthserver.MsgWrongPassword) {
		t.Fatalf("wrong current password: %d %s", bad.Status, bad.Body)
	}
	short := b.Submit(account, map[string]string{"current_password": password, "password": "short", "password_confirm": "short"})
	if short.Status != http.StatusBadRequest {
		t.Fatalf("short new password: %d", short.Status)
	}
	ok := b.Submit(account, map[string]string{"current_password": password, "password": newPassword, "password_confirm": newPassword})
	if ok.Status != http.StatusOK || !strings.Contains(ok.Body, oauthserver.MsgPasswordChanged) {
		t.Fatalf("change: %d %s", ok.Status, ok.Body)
	}
	if p := b.Get(e.path("acme", "/account")); p.Status != http.StatusOK {
		t.Fatalf("the changing browser was signed out: %d", p.Status)
	}
	if p := other.Get(e.path("acme", "/account")); p.Status != http.StatusUnauthorized {
		t.Fatalf("the other browser is still signed in: %d", p.Status)
	}
	// The old password no longer signs in; the new one does.
	fresh := e.browser()
	p, _ := e.open(fresh, conf, e.resource())
	if p = fresh.Submit(p, map[string]string{"email": email, "password": password}); p.Status != http.StatusUnauthorized {
		t.Fatalf("old password: %d", p.Status)
	}
	p, _ = e.open(fresh, conf, e.resource())
	if p = fresh.Submit(p, map[string]string{"email": email, "password": newPassword}); !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("new password: %d %s", p.Status, p.Body)
	}
	var actions []string
	for _, en := range e.identityEntries(6) {
		actions = append(actions, en.Action)
	}
	got := strings.Join(actions, " ")
	if !strings.Contains(got, "password.change.failure") || !strings.Contains(got, "password.change ") && !strings.HasSuffix(got, "password.change") {
		t.Fatalf("audit actions: %s", got)
	}
}

func copyCookies(t *testing.T, from, to *browser, rawURL string) {
	t.Helper()
	from.CopyCookiesTo(to, rawURL)
}
