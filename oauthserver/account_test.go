package oauthserver_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webauthnkey"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
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
		wantAccountSignIn(t, name+" after sign-out", br.Get(e.path("acme", "/account")))
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
	wantAccountSignIn(t, "the other browser after the change", other.Get(e.path("acme", "/account")))
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

// wantAccountSignIn checks that p, the account page asked for by a browser without a session,
// is the host's sign-in page for the account, with nothing of an account on it.
func wantAccountSignIn(t *testing.T, what string, p webclient.Page) {
	t.Helper()
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in to your account") || !strings.Contains(p.Body, `name="state_ref"`) ||
		strings.Contains(p.Body, "/logout") || strings.Contains(p.Body, "current_password") || strings.Contains(p.Body, "Add a passkey") {
		t.Fatalf("%s: the account page is not the sign-in: %d %s", what, p.Status, p.Body)
	}
}

// The account page in a browser without a session is the host's sign-in page, which comes
// back to the account page signed in, by a password or a passkey; it offers no sign-up, its
// request cannot be taken to the consent, a return address in the query is ignored, and a
// request once used does not sign in again.
func TestAccountPageSignsIn(t *testing.T) {
	e, _ := mailEnv(t, envOptions{keys: true, localhost: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPasskey, Enabled: true})
	conf := e.register("acme")
	setDomains(t, e.st, "acme", "example.com") // sign-up open: an agent's sign-in offers it
	if p, _ := e.open(e.browser(), conf, e.resource()); !signUpLinkRE.MatchString(p.Body) {
		t.Fatalf("an agent's sign-in page offers no sign-up: %s", p.Body)
	}
	b := e.browser()
	p := b.Get(e.path("acme", "/account?next="+url.QueryEscape("https://evil.test/")+"&return="+url.QueryEscape("https://evil.test/")))
	wantAccountSignIn(t, "a new browser", p)
	if strings.Contains(p.Body, "/signup") || strings.Contains(p.Body, "evil.test") || !strings.Contains(p.Body, "Sign in with a passkey") {
		t.Fatalf("the account's sign-in page: %s", p.Body)
	}
	ref := hiddenValue(t, stateRefRE, p.Body)
	for _, path := range []string{"/consent/server?state_ref=", "/consent?state_ref="} {
		if c := b.Get(e.path("acme", path+url.QueryEscape(ref))); strings.Contains(c.Body, `name="trust_level"`) || strings.Contains(c.Body, `name="decision"`) {
			t.Fatalf("the account's sign-in request reached %s: %s", path, c.Body)
		}
	}
	if bad := b.Submit(p, map[string]string{"email": email, "password": "not the password"}); bad.Status != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d %s", bad.Status, bad.Body)
	}
	in := b.Submit(p, map[string]string{"email": email, "password": password})
	if in.Status != http.StatusOK || !strings.Contains(in.Body, email) || !strings.Contains(in.Body, "current_password") || !strings.Contains(in.Body, "Add a passkey") {
		t.Fatalf("after the password the browser shows %d %s", in.Status, in.Body)
	}
	if again := b.Submit(p, map[string]string{"email": email, "password": password}); strings.Contains(again.Body, `name="trust_level"`) || again.Status == http.StatusOK && !strings.Contains(again.Body, "current_password") {
		t.Fatalf("the used request again: %d %s", again.Status, again.Body)
	}
	key := webauthnkey.New(e.origin)
	if added := e.addPasskey(b, key, "Work laptop"); added.Status != http.StatusOK || !strings.Contains(added.Body, oauthserver.MsgPasskeyAdded) {
		t.Fatalf("add passkey: %d %s", added.Status, added.Body)
	}

	// Another browser signs in to the account with the passkey alone.
	fresh := e.browser()
	p = fresh.Get(e.path("acme", "/account"))
	wantAccountSignIn(t, "another browser", p)
	csrf, ref := hiddenValue(t, csrfRE, p.Body), hiddenValue(t, stateRefRE, p.Body)
	opts := postForm(fresh, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		t.Fatalf("passkey options %d %s: %v", opts.Status, opts.Body, err)
	}
	in = postForm(fresh, e.path("acme", "/auth/passkey"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}})
	if in.Status != http.StatusOK || !strings.Contains(in.Body, email) || !strings.Contains(in.Body, "<strong>Work laptop</strong>") {
		t.Fatalf("after the passkey the browser shows %d %s", in.Status, in.Body)
	}
	// The session is the host's: the consent of an agent needs no other sign-in.
	if c, _ := e.open(fresh, conf, e.resource()); !strings.Contains(c.Body, `name="trust_level"`) {
		t.Fatalf("an agent's authorization after the account's sign-in: %s", c.Body)
	}
}
