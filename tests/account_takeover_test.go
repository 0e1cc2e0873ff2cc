package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
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
	"github.com/trustgate/trustgate/internal/testkit/webauthnkey"
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
	// public is the gateway's public URL: http://localhost:<port>, a name WebAuthn accepts as
	// relying party ID (the listener is on 127.0.0.1).
	public string
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
	{name: "passkey", attacks: passkeyAttacks, alice: alicePasskey},
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
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	e.public = "http://localhost:" + port
	e.p = waitReady(t, launchEnv(t, addr, nil, "serve", "--listen", addr, "--data-dir", dir, "--public-url", e.public,
		"--upstream-allow-cidr", "127.0.0.0/8", "--smtp-url", e.smtp.URL(), "--smtp-from", "trustgate <gateway@example.com>"))
	e.mb = startMailbox(t, e.smtp)
	up := mcpserver.Start(t, "")
	e.token = bootstrapToken(t, "e2e", "--data-dir", dir)
	e.issuer, e.resource = e.public+"/h/acme", e.public+"/h/acme/mcp/tracker"
	cli(t, e.p, e.token, "host", "create", "acme", "--exact")
	cli(t, e.p, e.token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	for _, who := range []string{victim, attacker} {
		cli(t, e.p, e.token, "human", "add", who, "--host", "acme")
		cli(t, e.p, e.token, "human", "grant", who, "tracker", "--level", "high", "--host", "acme")
	}

	cli(t, e.p, e.token, "host", "auth", "set", "acme", "email_otp", "--enable")
	cli(t, e.p, e.token, "host", "auth", "set", "acme", "passkey", "--enable")
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
	b := webclient.New(t, e.public)
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
	noSession(t, "unverified GitHub email", b.Get(e.gh.SignIn(t, p.Loc.String())), http.StatusForbidden, "did not confirm")
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

var csrfTokenRE = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// hiddenField is the unescaped value a page's hidden field matched by re holds.
func hiddenField(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s on the page: %s", re, body)
	}
	return html.UnescapeString(m[1])
}

// postFields posts form to u in b, as the passkey script of the pages does.
func postFields(b *webclient.Browser, u string, form url.Values) webclient.Page {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// humanID is the id of the host's human who.
func (e *takeoverEnv) humanID(t *testing.T, who string) string {
	t.Helper()
	var humans []admin.Human
	cliJSON(t, e.p, e.token, &humans, "human", "list", "--host", "acme")
	for _, h := range humans {
		if h.Email == who {
			return h.ID
		}
	}
	t.Fatalf("no human %s in %+v", who, humans)
	return ""
}

// addPasskey registers key on the account of the human signed in to b, as the account page's
// script does; edit, when set, changes the relying party's options before the authenticator
// sees them. It returns the page the gateway answers the new passkey with.
func (e *takeoverEnv) addPasskey(t *testing.T, b *webclient.Browser, key *webauthnkey.Authenticator, edit func(map[string]any)) webclient.Page {
	t.Helper()
	account := b.Get(e.issuer + "/account")
	if account.Status != http.StatusOK || !strings.Contains(account.Body, "Add a passkey") {
		t.Fatalf("account page without a way to add a passkey: %d %s", account.Status, account.Body)
	}
	csrf := hiddenField(t, csrfTokenRE, account.Body)
	opts := postFields(b, e.issuer+"/account/passkeys/options", url.Values{"csrf_token": {csrf}})
	if opts.Status != http.StatusOK {
		t.Fatalf("registration options: %d %s", opts.Status, opts.Body)
	}
	options := []byte(opts.Body)
	if edit != nil {
		var o map[string]any
		if err := json.Unmarshal(options, &o); err != nil {
			t.Fatal(err)
		}
		edit(o)
		options, _ = json.Marshal(o)
	}
	answer, err := key.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	return postFields(b, e.issuer+"/account/passkeys", url.Values{"csrf_token": {csrf}, "credential": {string(answer)}, "name": {"a passkey"}})
}

// passkeySignIn opens a new authorization request of conf (with verifier) in b and answers
// the sign-in page's passkey prompt with key alone.
func (e *takeoverEnv) passkeySignIn(t *testing.T, b *webclient.Browser, conf *oauth2.Config, verifier string, key *webauthnkey.Authenticator) webclient.Page {
	t.Helper()
	p := b.Get(conf.AuthCodeURL("passkey-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", e.resource)))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in with a passkey") {
		t.Fatalf("sign-in page without a passkey button: %d %s", p.Status, p.Body)
	}
	csrf, ref := hiddenField(t, csrfTokenRE, p.Body), hiddenField(t, stateRefRE, p.Body)
	opts := postFields(b, e.issuer+"/auth/passkey/options", url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	if opts.Status != http.StatusOK {
		t.Fatalf("passkey sign-in options: %d %s", opts.Status, opts.Body)
	}
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		t.Fatal(err)
	}
	return postFields(b, e.issuer+"/auth/passkey", url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}})
}

// userHandleOptions are creation options naming the human id as the user, as an attacker
// would forge them for an authenticator of his own.
func userHandleOptions(id string) []byte {
	return []byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"` + base64.RawURLEncoding.EncodeToString([]byte(id)) + `"}}}`)
}

// Passkeys: without a session nothing can be added to alice's account; a passkey the attacker
// adds to his own account (even one made for alice's user handle) stays his; an answer naming
// alice's user handle, from his passkey or from a passkey the gateway never registered, is
// refused, and his own passkey signs in as him, never as alice.
func passkeyAttacks(t *testing.T, e *takeoverEnv) {
	aliceID := e.humanID(t, victim)
	forged := webauthnkey.New(e.public)
	if _, err := forged.Create(userHandleOptions(aliceID)); err != nil {
		t.Fatal(err)
	}

	// No session: the account page, the registration prompt and the registration refuse.
	b, p := e.signInPage(t)
	csrf := hiddenField(t, csrfTokenRE, p.Body)
	if p := b.Get(e.issuer + "/account"); !strings.Contains(p.Body, "Sign in to your account") || strings.Contains(p.Body, "Add a passkey") {
		t.Fatalf("the account page without a session is not the sign-in: %d %s", p.Status, p.Body)
	}
	if p := postFields(b, e.issuer+"/account/passkeys/options", url.Values{"csrf_token": {csrf}}); p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "challenge") {
		t.Fatalf("registration options without a session: %d %s", p.Status, p.Body)
	}
	answer, err := forged.Create(userHandleOptions(aliceID))
	if err != nil {
		t.Fatal(err)
	}
	if p := postFields(b, e.issuer+"/account/passkeys", url.Values{"csrf_token": {csrf}, "credential": {string(answer)}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("a registration without a session: %d %s", p.Status, p.Body)
	}

	// The attacker signs in to his own account (his code, from his mailbox).
	mb, entry := e.askCode(t, "signin", attacker)
	own, err := e.mb.next(attacker)
	if err != nil {
		t.Fatal(err)
	}
	if p := mb.Submit(entry, map[string]string{"code": own}); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("the attacker's own sign-in: %d %s", p.Status, p.Body)
	}
	// A registration he began, answered by an authenticator told it is alice's: the passkey
	// is his (the ceremony belongs to his session), and its answers naming alice are refused.
	aliasKey := webauthnkey.New(e.public)
	if p := e.addPasskey(t, mb, aliasKey, func(o map[string]any) {
		o["publicKey"].(map[string]any)["user"].(map[string]any)["id"] = base64.RawURLEncoding.EncodeToString([]byte(aliceID))
	}); p.Status != http.StatusOK || !strings.Contains(p.Body, oauthserver.MsgPasskeyAdded) {
		t.Fatalf("the attacker's passkey made for alice's handle: %d %s", p.Status, p.Body)
	}
	conf := registerClient(t, e.issuer, "attacker's passkey agent")
	verifier := oauth2.GenerateVerifier()
	refused := func(what string, key *webauthnkey.Authenticator) {
		t.Helper()
		noSession(t, what, e.passkeySignIn(t, webclient.New(t, e.public), conf, verifier, key), http.StatusUnauthorized, oauthserver.MsgPasskeyRefused)
	}
	refused("the attacker's passkey made for alice's handle", aliasKey)
	// His regular passkey, its answer carrying alice's user handle.
	key := webauthnkey.New(e.public)
	if p := e.addPasskey(t, mb, key, nil); p.Status != http.StatusOK || !strings.Contains(p.Body, oauthserver.MsgPasskeyAdded) {
		t.Fatalf("the attacker adds a passkey to his account: %d %s", p.Status, p.Body)
	}
	key.UserHandle = []byte(aliceID)
	refused("the attacker's passkey answering with alice's user handle", key)
	refused("a passkey the gateway never registered, for alice's user handle", forged)
	// His passkey as it is signs him in, as himself.
	key.UserHandle = nil
	pb := webclient.New(t, e.public)
	if p := e.passkeySignIn(t, pb, conf, verifier, key); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("the attacker's own passkey: %d %s", p.Status, p.Body)
	}
	if p := pb.Get(e.issuer + "/account"); p.Status != http.StatusOK || !strings.Contains(p.Body, attacker) || strings.Contains(p.Body, victim) {
		t.Fatalf("the attacker's passkey signed in as someone else: %d %s", p.Status, p.Body)
	}
	for _, en := range e.audit(t) {
		if en.UserEmail == victim && strings.HasPrefix(en.Action, "passkey.") {
			t.Fatalf("a passkey action on alice's account: %+v", en)
		}
	}
}

// alicePasskey: alice signs in with her password, adds a passkey, then in another browser
// signs in with the passkey alone, consents, and calls a tool with the token.
func alicePasskey(t *testing.T, e *takeoverEnv) {
	conf := registerClient(t, e.issuer, "alice's passkey agent")
	b := webclient.New(t, e.public)
	p := b.Get(conf.AuthCodeURL("first-sign-in", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource)))
	if p = b.Submit(p, map[string]string{"email": victim, "password": "alice's own password 1"}); !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("alice's password sign-in: %d %s", p.Status, p.Body)
	}
	key := webauthnkey.New(e.public)
	if p := e.addPasskey(t, b, key, nil); p.Status != http.StatusOK || !strings.Contains(p.Body, oauthserver.MsgPasskeyAdded) {
		t.Fatalf("alice adds a passkey: %d %s", p.Status, p.Body)
	}

	verifier := oauth2.GenerateVerifier()
	pb := webclient.New(t, e.public)
	p = e.passkeySignIn(t, pb, conf, verifier, key)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("alice's passkey sign-in: %d %s", p.Status, p.Body)
	}
	p = pb.Submit(p, map[string]string{"trust_level": "high", "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("code") == "" || p.Loc.Query().Get("state") != "passkey-state" {
		t.Fatalf("consent after the passkey sign-in = %v (%d %s)", p.Loc, p.Status, p.Body)
	}
	tok, err := conf.Exchange(t.Context(), p.Loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if text, ok := callText(t, mcpSession(t, e.resource, tok.AccessToken), "create_issue", map[string]any{"title": "passkey"}); !ok || !strings.Contains(text, "create_issue called: passkey") {
		t.Fatalf("a tool call with the passkey sign-in's token: %q", text)
	}
	found := false
	for _, en := range e.audit(t) {
		found = found || en.UserEmail == victim && en.Action == "signin.success" && en.Method == "passkey"
	}
	if !found {
		t.Error("no audit entry of alice's passkey sign-in")
	}
}
