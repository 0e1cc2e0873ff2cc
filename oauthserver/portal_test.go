package oauthserver_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webauthnkey"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
)

// A sign-in for the dashboard runs on the host's sign-in page and ends there: the person is
// sent back with a ticket that names them, works once and only with the binder of the browser
// that began; no browser session of the host starts, nothing can be consented with its
// request, and sign-up is not offered.
func TestSignInForTheDashboard(t *testing.T) {
	e := newEnvWith(t, envOptions{keys: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: true})
	ctx := t.Context()
	// On another origin, so that the test's browser stops there.
	back := "http://dashboard.test/dashboard/sign-in/done?next=%2Fdashboard%2Fme"
	begin := func() (string, string) {
		t.Helper()
		signInURL, binder, err := e.server.BeginSignIn(ctx, "acme", back, "192.0.2.1")
		if err != nil || binder == "" || !strings.HasPrefix(signInURL, e.path("acme", "/login?state_ref=")) {
			t.Fatalf("BeginSignIn = %q %q %v", signInURL, binder, err)
		}
		return signInURL, binder
	}
	if _, _, err := e.server.BeginSignIn(ctx, "nohost", back, "192.0.2.1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("BeginSignIn on an unknown host: %v", err)
	}

	signInURL, binder := begin()
	b := e.browser()
	page := b.Get(signInURL)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "Sign in to the dashboard") || strings.Contains(page.Body, "/signup?") {
		t.Fatalf("the sign-in page of a dashboard sign-in: %d %s", page.Status, page.Body)
	}
	ref := hiddenValue(t, stateRefRE, page.Body)
	// Nothing to consent to with this request.
	if p := postForm(b, e.path("acme", "/consent"), url.Values{"csrf_token": {hiddenValue(t, csrfRE, page.Body)}, "state_ref": {ref}, "trust_level": {"high"}, "decision": {"allow"}}); p.Status != http.StatusBadRequest {
		t.Fatalf("a consent with a dashboard sign-in's request: %d %s", p.Status, p.Body)
	}
	// A wrong password stays on the page.
	if p := b.Submit(page, map[string]string{"email": email, "password": "not the password"}); p.Status != http.StatusUnauthorized || p.Loc != nil {
		t.Fatalf("a wrong password: %d %v", p.Status, p.Loc)
	}
	page = b.Submit(page, map[string]string{"email": email, "password": password})
	if page.Loc == nil || page.Loc.Path != "/dashboard/sign-in/done" || page.Loc.Query().Get("next") != "/dashboard/me" {
		t.Fatalf("after the password: %d %v %s", page.Status, page.Loc, page.Body)
	}
	ticket := page.Loc.Query().Get("ticket")
	wantAccountSignIn(t, "after a dashboard sign-in (no session of the host's pages)", b.Get(e.path("acme", "/account")))
	if _, err := e.server.FinishSignIn(ctx, ticket, "another browser's binder"); !errors.Is(err, oauthserver.ErrSignInTicket) {
		t.Fatalf("a ticket with another binder: %v", err)
	}
	if _, err := e.server.FinishSignIn(ctx, ticket, binder); !errors.Is(err, oauthserver.ErrSignInTicket) {
		t.Fatalf("a ticket refused once works after: %v", err)
	}

	// The right browser, once.
	signInURL, binder = begin()
	b = e.browser()
	page = b.Submit(b.Get(signInURL), map[string]string{"email": email, "password": password})
	ticket = page.Loc.Query().Get("ticket")
	who, err := e.server.FinishSignIn(ctx, ticket, binder)
	if err != nil || who.Host != "acme" || who.UserID != e.user().ID || who.Method != store.AuthPassword {
		t.Fatalf("FinishSignIn = %+v %v", who, err)
	}
	if _, err := e.server.FinishSignIn(ctx, ticket, binder); !errors.Is(err, oauthserver.ErrSignInTicket) {
		t.Fatalf("a used ticket: %v", err)
	}
	// The request is used: its page is gone.
	if p := b.Get(signInURL); p.Status != http.StatusBadRequest {
		t.Fatalf("the sign-in page of a used request: %d", p.Status)
	}
	found := false
	for _, en := range e.identityEntries(0) {
		found = found || en.Action == "dashboard.signin" && en.Method == store.AuthPassword && en.UserID == e.user().ID
	}
	if !found {
		t.Error("no dashboard.signin entry in the audit log")
	}
}

// A passkey signs in to the dashboard too: the dashboard's sign-in page offers it when the
// host enables passkeys, and the ticket names the passkey's owner with method passkey.
func TestSignInForTheDashboardWithAPasskey(t *testing.T) {
	e, conf := newPasskeyEnv(t)
	b := e.browser()
	e.flow(b, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	key := webauthnkey.New(e.origin)
	if p := e.addPasskey(b, key, "laptop"); p.Status != http.StatusOK {
		t.Fatalf("add passkey: %d %s", p.Status, p.Body)
	}
	signInURL, binder, err := e.server.BeginSignIn(t.Context(), "acme", "http://dashboard.test/dashboard/sign-in/done", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.browser()
	page := fresh.Get(signInURL)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "Sign in with a passkey") || !strings.Contains(page.Body, "Sign in to the dashboard") {
		t.Fatalf("the dashboard's sign-in page without a passkey button: %d %s", page.Status, page.Body)
	}
	csrf, ref := hiddenValue(t, csrfRE, page.Body), hiddenValue(t, stateRefRE, page.Body)
	opts := postForm(fresh, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		t.Fatalf("%v (options %d %s)", err, opts.Status, opts.Body)
	}
	page = postForm(fresh, e.path("acme", "/auth/passkey"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}})
	if page.Loc == nil || page.Loc.Host != "dashboard.test" {
		t.Fatalf("after the passkey: %d %v %s", page.Status, page.Loc, page.Body)
	}
	who, err := e.server.FinishSignIn(t.Context(), page.Loc.Query().Get("ticket"), binder)
	if err != nil || who.UserID != e.user().ID || who.Method != store.AuthPasskey {
		t.Fatalf("FinishSignIn = %+v %v", who, err)
	}
}

// A sign-in for the dashboard or the account page never makes an account, even on a host whose
// sign-up switch admits the address: an address without an account that asks for a code gets
// the notice without a code (the page is the one anybody gets), the sign-up page refuses the
// request, and no human is created. An app's authorization request on the same host still
// signs the address up.
func TestPortalSignInsMakeNoAccounts(t *testing.T) {
	e, m := mailEnv(t, envOptions{keys: true})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	setDomains(t, e.st, "acme", "example.org")
	ctx := t.Context()
	const newcomer = "newcomer@example.org"
	for _, portal := range []struct{ name, back string }{
		{"dashboard", "http://dashboard.test/dashboard/sign-in/done?next=%2Fdashboard%2Fme"},
		{"account", ""},
	} {
		t.Run(portal.name, func(t *testing.T) {
			b := e.browser()
			// The account page without a session is its sign-in page.
			signInURL := e.path("acme", "/account")
			if portal.back != "" {
				u, _, err := e.server.BeginSignIn(ctx, "acme", portal.back, "192.0.2.1")
				if err != nil {
					t.Fatal(err)
				}
				signInURL = u
			}
			page := b.Get(signInURL)
			if page.Status != http.StatusOK || !strings.Contains(page.Body, `name="state_ref"`) || strings.Contains(page.Body, "/signup?") {
				t.Fatalf("the %s sign-in page: %d %s", portal.name, page.Status, page.Body)
			}
			ref := hiddenValue(t, stateRefRE, page.Body)
			if p := b.Get(e.path("acme", "/signup?state_ref="+url.QueryEscape(ref))); p.Status != http.StatusForbidden || !strings.Contains(p.Body, oauthserver.MsgSignUpNotHere) {
				t.Fatalf("the sign-up page with a %s sign-in's request: %d %s", portal.name, p.Status, p.Body)
			}
			before := messagesTo(m, newcomer)
			p := b.Get(e.path("acme", "/email-code?purpose=signin&state_ref="+url.QueryEscape(ref)))
			p = b.Submit(p, map[string]string{"email": newcomer})
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="code"`) {
				t.Fatalf("asking a code for an address without an account: %d %s", p.Status, p.Body)
			}
			msg := m.WaitFor(t, newcomer, before+1)
			if codeRE.MatchString(msg.Body) || !strings.Contains(msg.Body, "no account") {
				t.Fatalf("a %s sign-in sent %s: %s", portal.name, newcomer, msg.Body)
			}
			if _, err := e.st.GetUserByEmail(ctx, "acme", newcomer); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a %s sign-in made an account: %v", portal.name, err)
			}
		})
	}
	// An app's request: the same address gets a code.
	conf := e.register("acme")
	_, entry := e.askCode(conf, "signin", newcomer)
	if !strings.Contains(entry.Body, `name="code"`) {
		t.Fatalf("code page: %s", entry.Body)
	}
	codeOf(t, m, newcomer, messagesTo(m, newcomer))
}
