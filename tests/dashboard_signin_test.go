package tests

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/githubstandin"
	"github.com/trustgate/trustgate/internal/testkit/oidcprovider"
	"github.com/trustgate/trustgate/internal/testkit/samlidp"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

var dashboardCSRFRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// dashboardHostSignIn opens the dashboard's sign-in in a new browser, names host and follows it
// to the host's sign-in page, which it returns with its state_ref.
func dashboardHostSignIn(t *testing.T, p *process, host string) (*webclient.Browser, webclient.Page, string) {
	t.Helper()
	return dashboardHostSignInIn(t, webclient.New(t, p.url), p, host)
}

// dashboardHostSignInIn is dashboardHostSignIn in b.
func dashboardHostSignInIn(t *testing.T, b *webclient.Browser, p *process, host string) (*webclient.Browser, webclient.Page, string) {
	t.Helper()
	page := b.Get(p.url + "/dashboard/sign-in")
	if page.Status != http.StatusOK {
		t.Fatalf("dashboard sign-in page = %d %s", page.Status, page.Body)
	}
	csrf := hiddenField(t, dashboardCSRFRE, page.Body)
	page = postFields(b, p.url+"/dashboard/sign-in", url.Values{"csrf_token": {csrf}, "host": {host}})
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "Sign in to the dashboard") || !strings.Contains(page.Body, `name="state_ref"`) {
		t.Fatalf("the dashboard's sign-in did not open the host's sign-in page: %d %s", page.Status, page.Body)
	}
	return b, page, hiddenField(t, stateRefRE, page.Body)
}

// signedInToDashboard checks that b holds a dashboard session of who.
func signedInToDashboard(t *testing.T, p *process, b *webclient.Browser, who string) {
	t.Helper()
	page := b.Get(p.url + "/dashboard/me")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, who) || !strings.Contains(page.Body, "/dashboard/sign-out") {
		t.Fatalf("the dashboard after %s's sign-in: %d %s", who, page.Status, page.Body)
	}
}

// TestDashboardSignInWithTheHostsMethods: the dashboard signs people in on their host's own
// sign-in page, through the binary: a host admin with a sign-in code sent by email (a real
// SMTP server), with an OpenID provider and a SAML IdP started by the test, and with GitHub's
// stand-in, each landing on the dashboard signed in; an address the host's domain rules refuse gets the refusal and no session; a
// ticket taken to another browser does not sign it in; each dashboard sign-in is audited with
// its method.
func TestDashboardSignInWithTheHostsMethods(t *testing.T) {
	smtp := smtpserver.Start(t, smtpserver.Options{})
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--upstream-allow-cidr", "127.0.0.0/8", "--smtp-url", smtp.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	mb := startMailbox(t, smtp)
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	issuer := p.url + "/h/acme"
	cli(t, p, token, "host", "create", "acme", "--exact")
	cli(t, p, token, "human", "add", "boss@acme.test", "--host", "acme", "--admin")
	cli(t, p, token, "human", "add", "visitor@elsewhere.test", "--host", "acme")
	cli(t, p, token, "host", "auth", "set", "acme", "email_otp", "--enable", "--allowed-domains", "acme.test")
	op := oidcprovider.Start(t, oidcprovider.Options{
		Users:   []oidcprovider.User{{ID: "op-boss", Username: "boss", Password: "boss at the provider", Email: "boss@acme.test", EmailVerified: true}},
		Clients: []oidcprovider.Client{{ID: "trustgate", Secret: "oidc client secret", RedirectURIs: []string{issuer + "/auth/oidc/callback"}}},
	})
	putAuthMethod(t, p, token, "acme", "oidc", map[string]any{
		"enabled": true, "config": map[string]string{"issuer": op.Issuer, "client_id": "trustgate"}, "secret": "oidc client secret"})
	gh := githubstandin.Start(t, "Iv1.trustgate", "github client secret", githubstandin.Account{ID: 4242, Login: "boss-gh",
		Emails: []githubstandin.Email{{Email: "boss@acme.test", Primary: true, Verified: true}}})
	putAuthMethod(t, p, token, "acme", "github", map[string]any{
		"enabled": true, "secret": "github client secret",
		"config": map[string]string{"client_id": "Iv1.trustgate", "auth_url": gh.URL + "/login/oauth/authorize", "token_url": gh.URL + "/login/oauth/access_token", "api_url": gh.URL}})
	idp := samlidp.Start(t)
	idp.AddUser("boss", "boss at the idp", "boss@acme.test")
	samlConfig, _ := json.Marshal(map[string]any{"idp_metadata_xml": idp.Metadata(), "email_verified": true})
	samlFile := filepath.Join(t.TempDir(), "saml.json")
	if err := os.WriteFile(samlFile, samlConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, p, token, "host", "auth", "set", "acme", "saml", "--enable", "--config", "@"+samlFile)

	// Email OTP: a code from the mailbox signs the host admin in to the dashboard.
	t.Run("email_otp", func(t *testing.T) {
		b, _, ref := dashboardHostSignIn(t, p, "acme")
		page := b.Get(issuer + "/email-code?purpose=signin&state_ref=" + url.QueryEscape(ref))
		page = b.Submit(page, map[string]string{"email": "boss@acme.test"})
		if page.Status != http.StatusOK || !strings.Contains(page.Body, `name="code"`) {
			t.Fatalf("code page: %d %s", page.Status, page.Body)
		}
		code, err := mb.next("boss@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		page = b.Submit(page, map[string]string{"code": code})
		if page.Status != http.StatusOK || !strings.Contains(page.Body, "Hosts") {
			t.Fatalf("after the code the dashboard shows %d %s", page.Status, page.Body)
		}
		signedInToDashboard(t, p, b, "boss@acme.test")
	})

	// OIDC: the provider's sign-in signs the host admin in to the dashboard.
	t.Run("oidc", func(t *testing.T) {
		b, page, _ := dashboardHostSignIn(t, p, "acme")
		page = b.Get(ssoButtonURL(t, page.Body, "oidc"))
		if page.Loc == nil {
			t.Fatalf("the oidc button did not go to the provider: %d %s", page.Status, page.Body)
		}
		back := op.SignIn(t, &http.Client{}, page.Loc.String(), "boss", "boss at the provider")
		if page = b.Get(back.String()); page.Status != http.StatusOK || !strings.Contains(page.Body, "Hosts") {
			t.Fatalf("after the provider the dashboard shows %d %s", page.Status, page.Body)
		}
		signedInToDashboard(t, p, b, "boss@acme.test")
	})

	// GitHub: the account's verified primary address signs the host admin in to the dashboard.
	t.Run("github", func(t *testing.T) {
		b, page, _ := dashboardHostSignIn(t, p, "acme")
		page = b.Get(ssoButtonURL(t, page.Body, "github"))
		if page.Loc == nil {
			t.Fatalf("the github button did not go to GitHub: %d %s", page.Status, page.Body)
		}
		if page = b.Get(gh.SignIn(t, page.Loc.String())); page.Status != http.StatusOK || !strings.Contains(page.Body, "Hosts") {
			t.Fatalf("after GitHub the dashboard shows %d %s", page.Status, page.Body)
		}
		signedInToDashboard(t, p, b, "boss@acme.test")
	})

	// SAML: the IdP's signed response, posted by the browser, signs the host admin in to the
	// dashboard.
	t.Run("saml", func(t *testing.T) {
		b, page, _ := dashboardHostSignIn(t, p, "acme")
		page = b.Get(ssoButtonURL(t, page.Body, "saml"))
		if page.Loc == nil {
			t.Fatalf("the saml button did not go to the IdP: %d %s", page.Status, page.Body)
		}
		jar, _ := cookiejar.New(nil)
		posted := idp.SignIn(t, &http.Client{Jar: jar}, page.Loc.String(), "boss", "boss at the idp")
		page = postFields(b, posted.Action, url.Values{"SAMLResponse": {posted.SAMLResponse}, "RelayState": {posted.RelayState}})
		if page.Status != http.StatusOK || !strings.Contains(page.Body, "Hosts") {
			t.Fatalf("after the IdP the dashboard shows %d %s", page.Status, page.Body)
		}
		signedInToDashboard(t, p, b, "boss@acme.test")
	})

	// The host's domain rules: an address of another domain is refused a code, in words, and
	// the browser has no dashboard session.
	t.Run("domain refused", func(t *testing.T) {
		b, _, ref := dashboardHostSignIn(t, p, "acme")
		page := b.Get(issuer + "/email-code?purpose=signin&state_ref=" + url.QueryEscape(ref))
		page = b.Submit(page, map[string]string{"email": "visitor@elsewhere.test"})
		if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "elsewhere.test") || strings.Contains(page.Body, `name="code"`) {
			t.Fatalf("a refused domain: %d %s", page.Status, page.Body)
		}
		if page := b.Get(p.url + "/dashboard/me"); page.Status == http.StatusOK && strings.Contains(page.Body, "/dashboard/sign-out") {
			t.Fatalf("a refused address has a dashboard session: %s", page.Body)
		}
	})

	// A ticket is good in the browser that began the sign-in only.
	t.Run("ticket elsewhere", func(t *testing.T) {
		b, _, ref := dashboardHostSignInIn(t, webclient.New(t, issuer), p, "acme")
		page := b.Get(issuer + "/email-code?purpose=signin&state_ref=" + url.QueryEscape(ref))
		page = b.Submit(page, map[string]string{"email": "boss@acme.test"})
		code, err := mb.next("boss@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		// A browser that stays on the host's pages: the redirect back to the dashboard is
		// not followed, and another browser gets the ticket.
		back := b.Submit(page, map[string]string{"code": code}).Loc
		if back == nil || back.Path != "/dashboard/sign-in/done" || back.Query().Get("ticket") == "" {
			t.Fatalf("the code did not send the browser back to the dashboard: %v", back)
		}
		other := webclient.New(t, p.url)
		if page := other.Get(back.String()); page.Status != http.StatusBadRequest || strings.Contains(page.Body, "/dashboard/sign-out") {
			t.Fatalf("a ticket in another browser: %d %s", page.Status, page.Body)
		}
		// Spent by the other browser, it does not work in the right one either.
		if page := b.Get(back.String()); page.Status != http.StatusBadRequest {
			t.Fatalf("a used ticket: %d %s", page.Status, page.Body)
		}
	})

	var entries []admin.AuditEntry
	cliJSON(t, p, token, &entries, "audit", "list", "--host", "acme", "--decision", "identity", "--all")
	methods := map[string]int{}
	for _, e := range entries {
		if e.Action == "dashboard.signin" && e.UserEmail == "boss@acme.test" {
			methods[e.Method]++
		}
	}
	if methods["email_otp"] < 1 || methods["oidc"] != 1 || methods["github"] != 1 || methods["saml"] != 1 {
		t.Errorf("dashboard sign-ins in the audit log by method: %v", methods)
	}
}
