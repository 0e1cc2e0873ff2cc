package oauthserver_test

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// provider is an external sign-in method as the SSO packages build one, reduced to the hook:
// its start sends the browser to its callback, which vouches for the identity the test chose.
// (The protocols themselves are tested in their packages, against real providers.)
type provider struct {
	mu       sync.Mutex
	vouch    oauthserver.ExternalIdentity
	starts   int
	lastRef  string
	lastHint string
}

func (p *provider) set(id oauthserver.ExternalIdentity) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vouch = id
}

func (p *provider) routes(s *oauthserver.Server) func(r *mux.Router) {
	return func(r *mux.Router) {
		r.Path("/start").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			p.starts++
			p.lastRef, p.lastHint = oauthserver.PendingRef(r), r.URL.Query().Get("login_hint")
			p.mu.Unlock()
			http.Redirect(w, r, "callback", http.StatusFound)
		})
		r.Path("/callback").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			id := p.vouch
			p.mu.Unlock()
			s.CompleteExternalSignIn(w, r, tenant.FromContext(r.Context()), id)
		})
	}
}

func newSSOEnv(t *testing.T) (*env, *provider) {
	t.Helper()
	p := &provider{}
	e := newEnvWith(t, envOptions{setup: func(s *oauthserver.Server) { s.HandleAuthMethod(store.AuthOIDC, p.routes(s)) }})
	return e, p
}

func (e *env) putMethod(m store.AuthMethod) {
	e.t.Helper()
	m.Host = "acme"
	if err := e.st.PutAuthMethod(context.Background(), m); err != nil {
		e.t.Fatal(err)
	}
}

var ssoButtonRE = regexp.MustCompile(`href="([^"]*/auth/oidc/start\?[^"]*)"`)

// ssoButton returns the URL of the sign-in page's single sign-on button.
func ssoButton(t *testing.T, body string) string {
	t.Helper()
	m := ssoButtonRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no single sign-on button on the page: %s", body)
	}
	return html.UnescapeString(m[1])
}

// identityEntries are the host's audit entries of sign-ins and account changes, once there
// are at least min of them (failures are written asynchronously) or 5 s passed.
func (e *env) identityEntries(min int) []audit.Entry {
	e.t.Helper()
	var out []audit.Entry
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := e.st.ListAudit(context.Background(), audit.Filter{Host: "acme", Decision: audit.Identity}, 0, 500)
		if err != nil {
			e.t.Fatal(err)
		}
		out = all
		if len(out) >= min || time.Now().After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExternalSignInCompletesTheFlow(t *testing.T) {
	e, p := newSSOEnv(t)
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: true})
	conf := e.register("acme")
	b := e.browser()
	page, verifier := e.open(b, conf, e.resource())
	if !strings.Contains(page.Body, `name="password"`) || !strings.Contains(page.Body, "Sign in with single sign-on") {
		t.Fatalf("sign-in page lacks the password form or the SSO button: %s", page.Body)
	}
	p.set(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "sub-ada", Email: "ADA@example.com", EmailVerified: true})
	page = b.Get(ssoButton(t, page.Body))
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("after single sign-on: %d %s", page.Status, page.Body)
	}
	if p.lastRef == "" {
		t.Fatal("the provider's start did not see the pending request")
	}
	page = b.Submit(page, map[string]string{"trust_level": "low", "decision": "allow"})
	if page.Loc == nil {
		t.Fatalf("consent: %d %s", page.Status, page.Body)
	}
	tok := e.exchange(conf, page.Loc, verifier)
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	// The same human as the password's (the provider vouched for the same address).
	agents, err := e.st.ListAgents(context.Background(), "acme", e.user().ID)
	if err != nil || len(agents) != 1 {
		t.Fatalf("agents of ada: %v, %v", agents, err)
	}
	entries := e.identityEntries(1)
	var found bool
	for _, en := range entries {
		if en.Action == "signin.success" && en.Method == store.AuthOIDC && en.UserID == e.user().ID {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit entry of the sign-in: %+v", entries)
	}
}

func TestExternalSignInRefusals(t *testing.T) {
	e, p := newSSOEnv(t)
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: true, AllowedDomains: []string{"example.com", "newco.example"}})
	conf := e.register("acme")
	attempt := func(id oauthserver.ExternalIdentity) (*browser, testbrowserPage) {
		t.Helper()
		b := e.browser()
		page, _ := e.open(b, conf, e.resource())
		p.set(id)
		return b, b.Get(ssoButton(t, page.Body))
	}
	signedIn := func(b *browser) bool {
		page, _ := e.open(b, conf, e.resource())
		return strings.Contains(page.Body, `name="trust_level"`)
	}
	for name, tc := range map[string]struct {
		id     oauthserver.ExternalIdentity
		status int
		text   string
	}{
		"unverified email of an existing human": {oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "x", Email: email}, 403, oauthserver.MsgEmailNotVerified},
		"no subject":                            {oauthserver.ExternalIdentity{Method: store.AuthOIDC, Email: email, EmailVerified: true}, 403, oauthserver.MsgEmailNotVerified},
		"unknown human, sign-up closed":         {oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "x", Email: "eve@example.com", EmailVerified: true}, 403, oauthserver.MsgNoAccount},
		"domain the method does not allow":      {oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "x", Email: "ada@evil.example", EmailVerified: true}, 403, "not available for addresses at evil.example"},
		"lookalike subdomain":                   {oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "x", Email: "ada@example.com.evil.example", EmailVerified: true}, 403, "not available for addresses at"},
		"another method's identity (the pending request is bound to the method started)": {oauthserver.ExternalIdentity{Method: store.AuthGoogle, Subject: "x", Email: email, EmailVerified: true}, 400, "This sign-in has expired"},
	} {
		t.Run(name, func(t *testing.T) {
			b, page := attempt(tc.id)
			if page.Status != tc.status || !strings.Contains(html.UnescapeString(page.Body), tc.text) {
				t.Fatalf("got %d, want %d with %q: %s", page.Status, tc.status, tc.text, page.Body)
			}
			if signedIn(b) {
				t.Fatal("the refused browser is signed in")
			}
		})
	}
	if u, err := e.st.GetUserByEmail(context.Background(), "acme", "eve@example.com"); err == nil {
		t.Fatalf("a refused sign-in created %+v", u)
	}
	var failures int
	for _, en := range e.identityEntries(6) {
		if en.Action == "signin.failure" && en.Method != "" {
			failures++
		}
	}
	if failures < 5 {
		t.Fatalf("%d failure entries, want one per refusal", failures)
	}

	// Sign-up open to newco.example: a verified address there creates the human; an
	// unverified one does not.
	setDomains(t, e.st, "acme", "newco.example")
	_, page := attempt(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "y", Email: "bob@newco.example"})
	if page.Status != 403 {
		t.Fatalf("unverified sign-up: %d", page.Status)
	}
	if _, err := e.st.GetUserByEmail(context.Background(), "acme", "bob@newco.example"); err == nil {
		t.Fatal("an unverified email created an account")
	}
	_, page = attempt(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "y", Email: "bob@newco.example", EmailVerified: true})
	if !strings.Contains(page.Body, "Your administrator has not given you access to Linear.") {
		t.Fatalf("verified sign-up (signed in, no grant yet): %d %s", page.Status, page.Body)
	}
	if _, err := e.st.GetUserByEmail(context.Background(), "acme", "bob@newco.example"); err != nil {
		t.Fatalf("sign-up created no human: %v", err)
	}

	// A callback without a pending request (another browser, no cookie) signs nobody in.
	p.set(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "x", Email: email, EmailVerified: true})
	fresh := e.browser()
	page = fresh.Get(e.path("acme", "/auth/oidc/callback"))
	if page.Status != http.StatusBadRequest || signedIn(fresh) {
		t.Fatalf("callback without a pending request: %d", page.Status)
	}
	// A start with a made-up state_ref is refused before the provider runs.
	starts := p.starts
	page = fresh.Get(e.path("acme", "/auth/oidc/start?state_ref=made-up"))
	if page.Status != http.StatusBadRequest || p.starts != starts {
		t.Fatalf("start with an unknown state_ref: %d (provider ran: %v)", page.Status, p.starts != starts)
	}
}

func TestExternalMethodOffIsNotFound(t *testing.T) {
	e, p := newSSOEnv(t)
	conf := e.register("acme")
	b := e.browser()
	page, _ := e.open(b, conf, e.resource())
	if strings.Contains(page.Body, "/auth/oidc/") {
		t.Fatalf("a host without the method shows its button: %s", page.Body)
	}
	for _, path := range []string{"/auth/oidc/start", "/auth/oidc/callback"} {
		if page := b.Get(e.path("acme", path)); page.Status != http.StatusNotFound || !strings.Contains(page.Body, "not available") {
			t.Fatalf("%s while off: %d", path, page.Status)
		}
	}
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: false})
	if page := b.Get(e.path("acme", "/auth/oidc/start")); page.Status != http.StatusNotFound {
		t.Fatalf("disabled method: %d", page.Status)
	}
	if p.starts != 0 {
		t.Fatal("the provider ran for a method that is off")
	}
}

// An address of a domain forced to single sign-on never gets the password form: the first
// step asks for the email alone and sends the browser to the provider; other addresses then
// get the password field.
func TestForceRedirectDomain(t *testing.T) {
	e, p := newSSOEnv(t)
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: true, ForceRedirectDomains: []string{"example.com"}})
	conf := e.register("acme")
	b := e.browser()
	page, _ := e.open(b, conf, e.resource())
	if strings.Contains(page.Body, `name="password"`) || !strings.Contains(page.Body, "Continue") {
		t.Fatalf("the first step shows a password field: %s", page.Body)
	}
	next := b.Submit(page, map[string]string{"email": "Ada@Example.com"})
	m := regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`).FindStringSubmatch(next.Body)
	if next.Status != http.StatusOK || m == nil || strings.Contains(next.Body, `name="password"`) {
		t.Fatalf("forced domain: %d %s", next.Status, next.Body)
	}
	start := html.UnescapeString(m[1])
	if !strings.Contains(start, "/auth/oidc/start?") || !strings.Contains(start, "login_hint=Ada%40Example.com") {
		t.Fatalf("continue URL %s", start)
	}
	p.set(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "s", Email: email, EmailVerified: true})
	if done := b.Get(start); !strings.Contains(done.Body, `name="trust_level"`) || p.lastHint != "Ada@Example.com" {
		t.Fatalf("after the provider: %d (hint %q) %s", done.Status, p.lastHint, done.Body)
	}
	// A posted password for a forced address is never checked: the answer is the provider.
	b2 := e.browser()
	page, _ = e.open(b2, conf, e.resource())
	next = b2.Submit(page, map[string]string{"email": email, "password": "wrong password 123"})
	if next.Status != http.StatusOK || !strings.Contains(next.Body, "/auth/oidc/start?") {
		t.Fatalf("forced address with a password: %d %s", next.Status, next.Body)
	}
	// Another domain gets the password step.
	b3 := e.browser()
	page, _ = e.open(b3, conf, e.resource())
	next = b3.Submit(page, map[string]string{"email": "zed@other.example"})
	if next.Status != http.StatusOK || !strings.Contains(next.Body, `name="password"`) || !strings.Contains(next.Body, "zed@other.example") {
		t.Fatalf("unforced address: %d %s", next.Status, next.Body)
	}
}

// The host's global list applies to passwords too, with a message a person understands; a host
// whose only method is single sign-on sends the browser straight to the provider.
func TestSignInDomainsAndSSOOnly(t *testing.T) {
	e, p := newSSOEnv(t)
	h, err := e.st.GetHost(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	h.Settings.SignInDomains = []string{"corp.example"}
	if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	conf := e.register("acme")
	b := e.browser()
	page, _ := e.open(b, conf, e.resource())
	next := b.Submit(page, map[string]string{"email": email, "password": password})
	if next.Status != http.StatusForbidden || !strings.Contains(next.Body, "People with an address at example.com cannot sign in here.") {
		t.Fatalf("password of a domain outside the host's list: %d %s", next.Status, next.Body)
	}
	h.Settings.SignInDomains = nil
	if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}

	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: false})
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: true})
	p.set(oauthserver.ExternalIdentity{Method: store.AuthOIDC, Subject: "s", Email: email, EmailVerified: true})
	b = e.browser()
	page, _ = e.open(b, conf, e.resource()) // the browser follows the redirects on the gateway
	if p.starts != 1 || !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("SSO-only host: provider started %d times; %d %s", p.starts, page.Status, page.Body)
	}
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: false})
	page, _ = e.open(e.browser(), conf, e.resource())
	if page.Status != http.StatusServiceUnavailable || !strings.Contains(page.Body, "no way to sign in") {
		t.Fatalf("host without any method: %d %s", page.Status, page.Body)
	}
}
