package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/githubstandin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/oidcprovider"
	"github.com/trustgate/trustgate/internal/testkit/samlidp"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
)

// The account takeover test of issue 11: an admin pre-authorized alice on a host with every
// sign-in method enabled. An attacker without access to alice's mailbox (or her accounts at
// the providers) cannot claim her account or obtain any token by any method; alice can, by
// each method, ending with a token the official TypeScript SDK client calls a tool with.
//
// Each method is a row of takeoverMethods: its attacks run first (all of them, so that alice's
// account is still unclaimed for each), then alice signs in by each method. Wrong codes the
// attacks try count against alice's address (store.EmailCodeMaxAddressFailures per hour; the
// attacks stay below it so that alice can still use codes): a new row with code guesses must
// keep the total under that limit.

const (
	victim   = "alice@acme.test"
	attacker = "mallory@acme.test" // a human of the host too: the attacker reads this mailbox
)

// takeoverEnv is the gateway and the providers of the test.
type takeoverEnv struct {
	p        *process
	token    string
	issuer   string
	resource string
	smtp     *smtpserver.Server
	mb       *mailbox
	op       *oidcprovider.Provider
	gh       *githubstandin.Server
	idp      *samlidp.IdP
	acs      string
}

// takeoverMethod is one sign-in method of the test.
type takeoverMethod struct {
	name string
	// attacks tries to get into alice's account by the method without her mailbox or her
	// provider accounts; each attempt must end without a session.
	attacks func(t *testing.T, e *takeoverEnv)
	// alice signs in by the method; the TypeScript SDK client calls a tool with the token.
	alice func(t *testing.T, e *takeoverEnv)
}

var takeoverMethods = []takeoverMethod{
	{name: "password", attacks: passwordAttacks, alice: func(t *testing.T, e *takeoverEnv) {
		runCodeScript(t, e.mb, e.resource, victim, "alice's own password 1", "claim")
	}},
	{name: "email_otp", attacks: otpAttacks, alice: func(t *testing.T, e *takeoverEnv) {
		runCodeScript(t, e.mb, e.resource, victim, "unused", "otp")
	}},
	{name: "oidc", attacks: oidcAttacks, alice: func(t *testing.T, e *takeoverEnv) { runSSOScript(t, e, "oidc") }},
	{name: "github", attacks: githubAttacks, alice: func(t *testing.T, e *takeoverEnv) {
		e.gh.SetAccount(githubstandin.Account{ID: 1001, Login: "alice-gh", Emails: []githubstandin.Email{{Email: victim, Primary: true, Verified: true}}})
		runSSOScript(t, e, "github")
	}},
	{name: "saml", attacks: samlAttacks, alice: func(t *testing.T, e *takeoverEnv) {
		out := runNode(t, "saml.mjs", "MCP_URL="+e.resource, "EMAIL="+victim, "PASSWORD=not used", "IDP_USER=alice", "IDP_PASSWORD=alice at the idp")
		var res struct {
			OK           bool   `json:"ok"`
			SAMLSignedIn bool   `json:"saml_signed_in"`
			Consented    bool   `json:"consented"`
			Allowed      string `json:"allowed"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK || !res.SAMLSignedIn || !res.Consented || !strings.Contains(res.Allowed, "create_issue called") {
			t.Fatalf("saml.mjs: %v %s", err, out)
		}
	}},
}

func TestAccountTakeover(t *testing.T) {
	e := startTakeoverEnv(t)
	for _, m := range takeoverMethods {
		t.Run("attacker/"+m.name, func(t *testing.T) { m.attacks(t, e) })
	}
	// Nothing came of it: no agent, no successful sign-in, no claim for alice.
	var agents []admin.Agent
	cliJSON(t, e.p, e.token, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 0 {
		t.Fatalf("the attacker got agents: %+v", agents)
	}
	for _, en := range e.audit(t) {
		if en.UserEmail == victim && (en.Action == "signin.success" || en.Action == "account.claim" || strings.HasPrefix(en.Action, "password.")) {
			t.Fatalf("the attacker's attempts left %s for alice: %+v", en.Action, en)
		}
	}
	if t.Failed() {
		return
	}
	for _, m := range takeoverMethods {
		t.Run("alice/"+m.name, func(t *testing.T) { m.alice(t, e) })
	}
	cliJSON(t, e.p, e.token, &agents, "agent", "list", "--host", "acme")
	if len(agents) != len(takeoverMethods) {
		t.Errorf("alice has %d agents after signing in by %d methods", len(agents), len(takeoverMethods))
	}
	var humans []admin.Human
	cliJSON(t, e.p, e.token, &humans, "human", "list", "--host", "acme")
	for _, a := range agents {
		for _, h := range humans {
			if h.ID == a.HumanID && h.Email != victim {
				t.Errorf("agent %s acts for %s, want alice", a.ID, h.Email)
			}
		}
	}
}

func startTakeoverEnv(t *testing.T) *takeoverEnv {
	t.Helper()
	e := &takeoverEnv{smtp: smtpserver.Start(t, smtpserver.Options{})}
	dir := t.TempDir()
	e.p = start(t, "--data-dir", dir, "--upstream-allow-cidr", "127.0.0.0/8",
		"--smtp-url", e.smtp.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	e.mb = startMailbox(t, e.smtp)
	up := mcpserver.Start(t, "")
	e.token = bootstrapToken(t, "e2e", "--data-dir", dir)
	e.issuer, e.resource = e.p.url+"/h/acme", e.p.url+"/h/acme/mcp/tracker"
	cli(t, e.p, e.token, "host", "create", "acme", "--exact")
	cli(t, e.p, e.token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	for _, who := range []string{victim, attacker} {
		cli(t, e.p, e.token, "human", "add", who, "--host", "acme")
		cli(t, e.p, e.token, "human", "grant", who, "tracker", "--level", "high", "--host", "acme")
	}

	cli(t, e.p, e.token, "host", "auth", "set", "acme", "email_otp", "--enable")
	e.op = oidcprovider.Start(t, oidcprovider.Options{
		Users: []oidcprovider.User{
			{ID: "op-alice", Username: "alice", Password: "alice at the provider", Email: victim, EmailVerified: true},
			// The attacker's own account at the provider, claiming alice's address unverified.
			{ID: "op-mallory", Username: "mallory", Password: "mallory at the provider", Email: victim, EmailVerified: false},
		},
		Clients: []oidcprovider.Client{{ID: "trustgate", Secret: "oidc client secret", RedirectURIs: []string{e.issuer + "/auth/oidc/callback"}}},
	})
	putAuthMethod(t, e.p, e.token, "acme", "oidc", map[string]any{
		"enabled": true, "config": map[string]string{"issuer": e.op.Issuer, "client_id": "trustgate"}, "secret": "oidc client secret"})
	e.gh = githubstandin.Start(t, "Iv1.trustgate", "github client secret", githubstandin.Account{ID: 666, Login: "mallory-gh",
		Emails: []githubstandin.Email{{Email: victim, Primary: true, Verified: false}, {Email: attacker, Verified: true}}})
	putAuthMethod(t, e.p, e.token, "acme", "github", map[string]any{
		"enabled": true, "secret": "github client secret",
		"config": map[string]string{"client_id": "Iv1.trustgate", "auth_url": e.gh.URL + "/login/oauth/authorize", "token_url": e.gh.URL + "/login/oauth/access_token", "api_url": e.gh.URL}})
	e.idp = samlidp.Start(t)
	e.idp.AddUser("alice", "alice at the idp", victim)
	cfg, _ := json.Marshal(map[string]any{"idp_metadata_xml": e.idp.Metadata(), "email_verified": true})
	file := filepath.Join(t.TempDir(), "saml.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, e.p, e.token, "host", "auth", "set", "acme", "saml", "--enable", "--config", "@"+file)
	e.acs = e.issuer + "/auth/saml/acs"
	return e
}

func (e *takeoverEnv) audit(t *testing.T) []admin.AuditEntry {
	t.Helper()
	var entries []admin.AuditEntry
	cliJSON(t, e.p, e.token, &entries, "audit", "list", "--host", "acme", "--all")
	return entries
}

// signInPage opens the sign-in page of a new authorization request in a new browser.
func (e *takeoverEnv) signInPage(t *testing.T) (*webclient.Browser, webclient.Page) {
	t.Helper()
	conf := registerClient(t, e.issuer, "attacker's agent")
	b := webclient.New(t, e.p.url)
	p := b.Get(conf.AuthCodeURL("attack-state-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource)))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="state_ref"`) {
		t.Fatalf("sign-in page: %d %s", p.Status, p.Body)
	}
	return b, p
}

var stateRefRE = regexp.MustCompile(`name="state_ref" value="([^"]*)"`)

// askCode asks, in a new browser, for a code of purpose sent to who; it returns the browser
// and the code entry page.
func (e *takeoverEnv) askCode(t *testing.T, purpose, who string) (*webclient.Browser, webclient.Page) {
	t.Helper()
	b, p := e.signInPage(t)
	p = b.Get(e.issuer + "/email-code?purpose=" + purpose + "&state_ref=" + url.QueryEscape(html.UnescapeString(stateRefRE.FindStringSubmatch(p.Body)[1])))
	p = b.Submit(p, map[string]string{"email": who})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="code"`) {
		t.Fatalf("code page for %s: %d %s", who, p.Status, p.Body)
	}
	return b, p
}

func noSession(t *testing.T, what string, p webclient.Page, status int, text string) {
	t.Helper()
	if p.Status != status || !strings.Contains(p.Body, text) || strings.Contains(p.Body, `name="trust_level"`) || p.Loc != nil && p.Loc.Query().Get("code") != "" {
		t.Fatalf("%s: %d (want %d with %q) %v\n%s", what, p.Status, status, text, p.Loc, p.Body)
	}
}

// wrongCode is a 6-digit code that is not code.
func wrongCode(code string, i int) string {
	var n int
	fmt.Sscanf(code, "%d", &n)
	return fmt.Sprintf("%06d", (n+1+i)%1_000_000)
}

// Password: guessed passwords never sign in to an account without one, and a claim by code
// needs the code (guesses refused, the account keeps no password).
func passwordAttacks(t *testing.T, e *takeoverEnv) {
	for _, guess := range []string{"alice's password?", "correct horse battery staple"} {
		b, p := e.signInPage(t)
		p = b.Submit(p, map[string]string{"email": victim, "password": guess})
		noSession(t, "guessed password", p, http.StatusUnauthorized, "Email or password is incorrect.")
	}
	b, entry := e.askCode(t, "password", victim)
	code, err := e.mb.next(victim) // in alice's mailbox, not the attacker's
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		noSession(t, "guessed claim code", b.Submit(entry, map[string]string{"code": wrongCode(code, i)}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	}
	// A code of the attacker's own address, entered for alice's: refused (and counted).
	mb, mentry := e.askCode(t, "password", attacker)
	own, err := e.mb.next(attacker)
	if err != nil {
		t.Fatal(err)
	}
	noSession(t, "the attacker's code for alice's", b.Submit(entry, map[string]string{"code": own}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	// The attacker's code with his own code id and alice's address in the form: it proves his
	// address, never alice's.
	p := mb.Submit(mentry, map[string]string{"code": own, "email": victim})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, attacker) || strings.Contains(p.Body, victim) {
		t.Fatalf("the attacker's own code with alice's address: %d %s", p.Status, p.Body)
	}
}

// Email OTP: the code goes to alice's mailbox; guessing ends at the code's limit, after which
// even the right code is refused; a used code does not work again.
func otpAttacks(t *testing.T, e *takeoverEnv) {
	b, entry := e.askCode(t, "signin", victim)
	code, err := e.mb.next(victim)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		noSession(t, "guessed sign-in code", b.Submit(entry, map[string]string{"code": wrongCode(code, i)}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	}
	noSession(t, "the right code after the attempt limit", b.Submit(entry, map[string]string{"code": code}), http.StatusTooManyRequests, oauthserver.MsgCodeTooManyTries)
	// Replay: the attacker's own sign-in code, used once, then again (and in another request).
	mb, mentry := e.askCode(t, "signin", attacker)
	own, err := e.mb.next(attacker)
	if err != nil {
		t.Fatal(err)
	}
	if p := mb.Submit(mentry, map[string]string{"code": own}); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("the attacker's own sign-in: %d %s", p.Status, p.Body)
	}
	noSession(t, "a replayed code", mb.Submit(mentry, map[string]string{"code": own}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
}

// OIDC: an account at the provider that claims alice's address without verifying it is
// refused.
func oidcAttacks(t *testing.T, e *takeoverEnv) {
	b, p := e.signInPage(t)
	start := ssoButtonURL(t, p.Body, "oidc")
	p = b.Get(start)
	if p.Loc == nil {
		t.Fatalf("the oidc button did not go to the provider: %d %s", p.Status, p.Body)
	}
	back := e.op.SignIn(t, &http.Client{}, p.Loc.String(), "mallory", "mallory at the provider")
	noSession(t, "unverified provider email", b.Get(back.String()), http.StatusForbidden, "did not confirm")
}

// GitHub: an account whose primary address is alice's but not verified is refused.
func githubAttacks(t *testing.T, e *takeoverEnv) {
	b, p := e.signInPage(t)
	p = b.Get(ssoButtonURL(t, p.Body, "github"))
	if p.Loc == nil {
		t.Fatalf("the github button did not go to the provider: %d %s", p.Status, p.Body)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(p.Loc.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back := resp.Header.Get("Location")
	noSession(t, "unverified GitHub email", b.Get(back), http.StatusForbidden, "did not confirm")
}

// SAML: a response the IdP did not sign is refused.
func samlAttacks(t *testing.T, e *takeoverEnv) {
	forged := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">` +
		`<saml:Assertion><saml:Subject><saml:NameID>alice</saml:NameID></saml:Subject><saml:AttributeStatement><saml:Attribute Name="mail">` +
		`<saml:AttributeValue>` + victim + `</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>`
	resp, err := http.PostForm(e.acs, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(forged))}})
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); resp.StatusCode != http.StatusForbidden || strings.Contains(page, `name="trust_level"`) {
		t.Fatalf("forged SAML response: %d %s", resp.StatusCode, page)
	}
}

var ssoStartRE = regexp.MustCompile(`href="([^"]*/auth/([a-z]+)/start\?[^"]*)"`)

// ssoButtonURL is the absolute URL of the sign-in page's button for method.
func ssoButtonURL(t *testing.T, body, method string) string {
	t.Helper()
	for _, m := range ssoStartRE.FindAllStringSubmatch(body, -1) {
		if m[2] == method {
			return html.UnescapeString(m[1])
		}
	}
	t.Fatalf("no %s button on the sign-in page: %s", method, body)
	return ""
}

// runSSOScript signs alice in with method through tests/ts/sso.mjs.
func runSSOScript(t *testing.T, e *takeoverEnv, method string) {
	t.Helper()
	out := runNode(t, "sso.mjs", "MCP_URL="+e.resource, "EMAIL="+victim, "PASSWORD=unused",
		"SSO_METHOD="+method, "SSO_USERNAME=alice", "SSO_PASSWORD=alice at the provider")
	var res struct {
		OK        bool   `json:"ok"`
		SignedIn  bool   `json:"signed_in"`
		Consented bool   `json:"consented"`
		Allowed   string `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK || !res.SignedIn || !res.Consented || !strings.Contains(res.Allowed, "create_issue called") {
		t.Fatalf("sso.mjs %s: %v %s", method, err, out)
	}
}
