package oauthserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// The authorization server end to end: a real store, embedded SpiceDB and relationship writer,
// the server behind a host router like the gateway's, golang.org/x/oauth2 as the client, and
// the test as the browser (cookie jar, HTML forms).

const (
	redirectURI = "http://localhost:7777/callback"
	email       = "ada@example.com"
	password    = "correct horse battery staple"
)

type env struct {
	t       *testing.T
	st      store.Store
	backend authzserver.Backend
	ks      *accesstoken.KeySet
	srv     *httptest.Server
	urls    tenant.URLs
	origin  string // the public URL browsers use
	clock   *clock
	server  *oauthserver.Server // the first replica
	audit   *audit.Log
	// served counts the requests each replica served.
	served []atomic.Int64
}

// clock is a test clock: real time plus an offset that tests advance, or, once frozen, a fixed
// instant that only advance moves (for tests whose assertions must not depend on how long the
// machine takes between two requests, such as rate limits with a one-second refill).
type clock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

// freeze stops the clock at the current instant; advance still moves it.
func (c *clock) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = time.Now()
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// envOptions vary the environment: the store's engine, how many replicas (Servers over the
// one store, each with its own key set, served in turn behind one URL as a load balancer
// would), and the HTTP client of Client ID Metadata Document fetches.
type envOptions struct {
	postgres   bool
	replicas   int
	httpClient *http.Client
	// trustedProxies are the server's TrustedProxies.
	trustedProxies []netip.Prefix
	// setup runs on every replica's server before its routes are mounted (HandleAuthMethod).
	setup func(*oauthserver.Server)
	// keys gives the servers the master keyring: the single sign-on methods (ssomethods.go).
	keys bool
	// mail, when set, is the SMTP server the servers send email codes through.
	mail *smtpserver.Server
	// localhost makes the public URL http://localhost:port (WebAuthn refuses IP addresses).
	localhost bool
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	var (
		st store.Store
		b  authzserver.Backend
		w  *authzserver.Writer
	)
	if o.postgres {
		var err error
		st, err = store.Open(ctx, store.Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		sdb, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sdb.Close() })
		if err := sdb.WriteSchema(ctx, schema.Text); err != nil {
			t.Fatal(err)
		}
		b, w = sdb, authzserver.NewWriter(st, sdb, nil)
	} else {
		cp := controlplane.New(t)
		st, b, w = cp.Store, cp.Backend, cp.Writer
	}
	if o.replicas < 1 {
		o.replicas = 1
	}
	ring, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var keys *secrets.Keyring
	if o.keys {
		keys = ring
	}
	e := &env{t: t, st: st, backend: b, clock: &clock{}, served: make([]atomic.Int64, o.replicas)}
	e.audit = audit.NewLog(st, audit.Options{})
	t.Cleanup(func() { _ = e.audit.Close(context.Background()) })
	handlers := make([]http.Handler, o.replicas)
	var next atomic.Int64
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(next.Add(1)-1) % len(handlers)
		e.served[i].Add(1)
		handlers[i].ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.origin = e.srv.URL
	if o.localhost {
		e.origin = strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)
	}
	e.urls, _ = tenant.NewURLs(e.origin, false)
	var mailer oauthserver.Mailer
	if o.mail != nil {
		sender, err := mail.New(mail.Settings{URL: o.mail.URL(), From: "trustgate <gw@example.com>"})
		if err != nil {
			t.Fatal(err)
		}
		mailer = sender
	}
	for i := range handlers {
		ks, err := accesstoken.Open(ctx, st, ring, accesstoken.Options{Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			e.ks = ks
		}
		s, err := oauthserver.NewServer(oauthserver.ServerConfig{
			Store: st, URLs: e.urls, KeySet: ks, Syncer: w,
			CookieSecret: bytes.Repeat([]byte{1}, 32), GlobalSecret: bytes.Repeat([]byte{2}, 32),
			HTTPClient: o.httpClient, Now: e.clock.Now, TrustedProxies: o.trustedProxies, Audit: e.audit, Keys: keys,
			Mail: mailer,
		})
		if err != nil {
			t.Fatal(err)
		}
		if o.setup != nil {
			o.setup(s)
		}
		if i == 0 {
			e.server = s
		}
		// The gateway's route table, without its own routes and host checks.
		router := route.NewRouter()
		e.urls.Mount(router, nil, s.Routes)
		handlers[i] = route.CleanPaths(router)
	}

	for _, h := range []string{"acme", "other"} {
		if _, err := st.CreateHost(ctx, store.Host{Key: h}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateServer(ctx, store.Server{Host: h, Key: "linear", Name: "Linear", URL: "https://mcp.linear.app/mcp"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium, "delete_issue": schema.High} {
		if _, err := st.PutTool(ctx, store.Tool{Host: "acme", Server: "linear", Name: name, Level: level, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: email})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: u.ID, Ceiling: schema.High}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e.claimInvitation(e.invite(u), password) // as the admin's invitation link would
	return e
}

func (e *env) base(host string) string { return e.urls.Base(host) }
func (e *env) resource() string        { return e.urls.MCP("acme") + "/linear" }
func (e *env) user() store.User {
	u, _ := e.st.GetUserByEmail(context.Background(), "acme", email)
	return u
}
func (e *env) path(host, p string) string { return e.base(host) + p }

// register registers a public client with DCR and returns its oauth2 configuration.
func (e *env) register(host string, redirects ...string) *oauth2.Config {
	e.t.Helper()
	if len(redirects) == 0 {
		redirects = []string{redirectURI}
	}
	body, _ := json.Marshal(map[string]any{
		"redirect_uris": redirects, "client_name": "Cursor", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "agent_type": "chat",
	})
	resp, err := http.Post(e.path(host, "/register"), "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated || out["client_id"] == "" {
		e.t.Fatalf("register: %d %v", resp.StatusCode, out)
	}
	if _, has := out["client_secret"]; has {
		e.t.Fatalf("public client got a secret: %v", out)
	}
	return &oauth2.Config{
		ClientID:    out["client_id"].(string),
		RedirectURL: redirects[0],
		Endpoint: oauth2.Endpoint{
			AuthURL: e.path(host, "/authorize"), TokenURL: e.path(host, "/token"), AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// browser plays the browser, staying on the gateway.
type browser = webclient.Browser

func (e *env) browser() *browser { return webclient.New(e.t, e.origin) }

// flow runs the authorization request through sign-in and consent at level; it returns the
// final redirect to the client.
func (e *env) flow(b *browser, conf *oauth2.Config, state, verifier, level string) *url.URL {
	e.t.Helper()
	p := b.Get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", e.resource())))
	if p.Status == http.StatusOK && strings.Contains(p.Body, `name="password"`) {
		p = b.Submit(p, map[string]string{"email": email, "password": password})
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		e.t.Fatalf("expected the trust level page, got %d (%v): %s", p.Status, p.Loc, p.Body)
	}
	p = b.Submit(p, map[string]string{"trust_level": level, "decision": "allow"})
	if p.Loc == nil {
		e.t.Fatalf("consent: no redirect, %d: %s", p.Status, p.Body)
	}
	return p.Loc
}

func (e *env) exchange(conf *oauth2.Config, loc *url.URL, verifier string) *oauth2.Token {
	e.t.Helper()
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

func (e *env) check(agentID, tool string) bool {
	e.t.Helper()
	ok, err := e.backend.Check(context.Background(), authzserver.CheckRequest{
		Resource: schema.Tool("acme", "linear", tool), Permission: "call",
		Subject: schema.SubjectRef{Object: schema.Agent("acme", agentID)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func TestMetadataDocuments(t *testing.T) {
	e := newEnv(t)
	get := func(p string) (int, map[string]any) {
		resp, err := http.Get(e.path("acme", p))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		code, m := get(p)
		if code != 200 || m["issuer"] != e.base("acme") || m["token_endpoint"] != e.base("acme")+"/token" {
			t.Fatalf("%s: %d %v", p, code, m)
		}
	}
	for p, want := range map[string]string{
		"/.well-known/oauth-protected-resource":            e.urls.MCP("acme"),
		"/.well-known/oauth-protected-resource/mcp":        e.urls.MCP("acme"),
		"/.well-known/oauth-protected-resource/mcp/linear": e.resource(),
	} {
		code, m := get(p)
		if code != 200 || m["resource"] != want {
			t.Fatalf("%s: %d %v, want resource %s", p, code, m, want)
		}
		if as, _ := m["authorization_servers"].([]any); len(as) != 1 || as[0] != e.base("acme") {
			t.Fatalf("%s: authorization_servers %v", p, m["authorization_servers"])
		}
	}
	if code, _ := get("/.well-known/oauth-protected-resource/mcp/nope"); code != 404 {
		t.Fatalf("unknown server: %d", code)
	}
	code, m := get("/.well-known/jwks.json")
	if keys, _ := m["keys"].([]any); code != 200 || len(keys) == 0 {
		t.Fatalf("jwks: %d %v", code, m)
	}
}

func TestRegistration(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	c, err := e.st.GetOAuthClient(context.Background(), "acme", conf.ClientID)
	if err != nil || c.Kind != store.OAuthClientDCR || c.SecretHash != "" || c.Name != "Cursor" {
		t.Fatalf("stored client %+v, %v", c, err)
	}
	// A confidential client gets a secret, stored hashed.
	resp, err := http.Post(e.path("acme", "/register"), "application/json", strings.NewReader(`{"redirect_uris":["https://app.example.com/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	secret, _ := out["client_secret"].(string)
	if resp.StatusCode != 201 || secret == "" {
		t.Fatalf("confidential: %d %v", resp.StatusCode, out)
	}
	c, _ = e.st.GetOAuthClient(context.Background(), "acme", out["client_id"].(string))
	if c.SecretHash != oauthserver.HashClientSecret(secret) {
		t.Fatalf("secret hash %q", c.SecretHash)
	}
	// Invalid metadata.
	resp, _ = http.Post(e.path("acme", "/register"), "application/json", strings.NewReader(`{"redirect_uris":["javascript:alert(1)"]}`))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad redirect: %d", resp.StatusCode)
	}
}

func TestFullFlow(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b := e.browser()
	verifier := oauth2.GenerateVerifier()
	loc := e.flow(b, conf, "state-0123456789", verifier, "medium")
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), redirectURI) || q.Get("state") != "state-0123456789" || q.Get("iss") != e.base("acme") {
		t.Fatalf("redirect %s", loc)
	}
	tok := e.exchange(conf, loc, verifier)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	claims, err := e.ks.Verify(tok.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: e.resource()})
	if err != nil {
		t.Fatalf("verify access token: %v", err)
	}
	u := e.user()
	agentID := claims.AgentID
	if claims.Subject != u.ID || claims.ClientID != conf.ClientID || claims.Host != "acme" || agentID == "" || claims.Scope != oauthserver.MCPScope {
		t.Fatalf("claims %+v", claims)
	}
	if _, err := e.ks.Verify(tok.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: e.urls.MCP("other")}); !errors.Is(err, accesstoken.ErrWrongAudience) {
		t.Fatalf("other audience: %v", err)
	}
	a, err := e.st.GetAgent(context.Background(), "acme", agentID)
	if err != nil || a.ClientID != conf.ClientID || a.UserID != u.ID || a.Type != "chat" || a.Name != "Cursor" {
		t.Fatalf("agent %+v, %v", a, err)
	}
	c, err := e.st.GetConsent(context.Background(), "acme", agentID, "linear")
	if err != nil || c.Level != schema.Medium {
		t.Fatalf("consent %+v, %v", c, err)
	}
	if !e.check(agentID, "create_issue") || !e.check(agentID, "list_issues") {
		t.Fatal("medium tool denied")
	}
	if e.check(agentID, "delete_issue") {
		t.Fatal("high tool allowed")
	}

	// A second authorization in the same browser skips sign-in and reuses the agent.
	verifier2 := oauth2.GenerateVerifier()
	loc2 := e.flow(b, conf, "state-abcdefghij", verifier2, "low")
	tok2 := e.exchange(conf, loc2, verifier2)
	claims2, err := e.ks.Verify(tok2.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: e.resource()})
	if err != nil || claims2.AgentID != agentID {
		t.Fatalf("second flow: %+v %v", claims2, err)
	}

	// Refresh rotates, and the new access token is a JWT too.
	ts := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken})
	tok3, err := ts.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok3.RefreshToken == "" || tok3.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh token not rotated")
	}
	if _, err := e.ks.Verify(tok3.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: e.resource()}); err != nil {
		t.Fatalf("refreshed access token: %v", err)
	}

	// Revocation makes the access token inactive at introspection (which needs a
	// confidential client).
	resp, _ := http.Post(e.path("acme", "/register"), "application/json", strings.NewReader(`{"redirect_uris":["https://rs.example.com/cb"]}`))
	var rs map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&rs)
	resp.Body.Close()
	introspect := func(token string) map[string]any {
		req, _ := http.NewRequest("POST", e.path("acme", "/introspect"), strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rs["client_id"].(string), rs["client_secret"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	if m := introspect(tok3.AccessToken); m["active"] != true || m["sub"] != u.ID {
		t.Fatalf("introspect: %v", m)
	}
	resp, _ = http.PostForm(e.path("acme", "/revoke"), url.Values{"token": {tok3.AccessToken}, "client_id": {conf.ClientID}})
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if m := introspect(tok3.AccessToken); m["active"] != false {
		t.Fatalf("introspect after revoke: %v", m)
	}
	// Without client authentication introspection is refused.
	resp, _ = http.PostForm(e.path("acme", "/introspect"), url.Values{"token": {tok2.AccessToken}})
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous introspection: %d", resp.StatusCode)
	}
}

func TestNoStateCompletes(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	verifier := oauth2.GenerateVerifier()
	loc := e.flow(e.browser(), conf, "", verifier, "low")
	if _, has := loc.Query()["state"]; has {
		t.Fatalf("redirect has a state: %s", loc)
	}
	e.exchange(conf, loc, verifier)
	// A state that is sent must still be long enough.
	p := e.browser().Get(conf.AuthCodeURL("short", oauth2.S256ChallengeOption(verifier)))
	if p.Loc == nil || p.Loc.Query().Get("error") != "invalid_state" {
		t.Fatalf("short state: %d %v", p.Status, p.Loc)
	}
}

func TestPKCERequired(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"missing": nil,
		"plain":   {oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
	} {
		p := e.browser().Get(conf.AuthCodeURL("state-0123456789", opts...))
		if p.Status != 400 || p.Loc != nil || !strings.Contains(p.Body, "S256") {
			t.Fatalf("%s: %d %v", name, p.Status, p.Loc)
		}
	}
}

func TestRedirectURIMatching(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme", "http://localhost/callback")
	v := oauth2.GenerateVerifier()
	// Another port on localhost matches (RFC 8252 §7.3).
	c2 := *conf
	c2.RedirectURL = "http://localhost:51234/callback"
	loc := e.flow(e.browser(), &c2, "state-0123456789", v, "low")
	if !strings.HasPrefix(loc.String(), c2.RedirectURL) {
		t.Fatalf("redirected to %s", loc)
	}
	e.exchange(&c2, loc, v)
	// Another path does not, and the browser is not redirected there.
	c3 := *conf
	c3.RedirectURL = "http://localhost:51234/evil"
	p := e.browser().Get(c3.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(v)))
	if p.Status != 400 || p.Loc != nil {
		t.Fatalf("mismatch: %d %v", p.Status, p.Loc)
	}
}

func TestWrongPasswordAndRateLimit(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	// Claim the account first.
	e.flow(b, conf, "state-0123456789", v, "low")

	// The budget refills one attempt per second: on a loaded machine the attempts below can
	// take longer than that, so time stands still unless the test moves it.
	e.clock.freeze()
	b2 := e.browser()
	signIn := b2.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", e.resource())))
	p := b2.Submit(signIn, map[string]string{"email": email, "password": "wrong password 123"})
	if p.Status != 401 || !strings.Contains(p.Body, "Email or password is incorrect.") {
		t.Fatalf("wrong password: %d", p.Status)
	}
	p2 := b2.Submit(signIn, map[string]string{"email": "nobody@example.com", "password": "wrong password 123"})
	if p2.Status != 401 || !strings.Contains(p2.Body, "Email or password is incorrect.") {
		t.Fatalf("unknown email: %d", p2.Status)
	}
	// Five failures cost nothing, and the sixth starts a wait: a guess right after it is
	// refused, with how long to wait.
	for i := range 5 {
		p = b2.Submit(signIn, map[string]string{"email": email, "password": "wrong password 123"})
		if p.Status != 401 {
			t.Fatalf("failure %d: %d", i+2, p.Status)
		}
	}
	p = b2.Submit(signIn, map[string]string{"email": email, "password": "wrong password 123"})
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many sign-in attempts. Try again in a second.") {
		t.Fatalf("after 6 failures: %d %s", p.Status, p.Body)
	}
	// Even the right password is refused while waiting.
	p = b2.Submit(signIn, map[string]string{"email": email, "password": password})
	if p.Status != http.StatusTooManyRequests {
		t.Fatalf("right password while limited: %d", p.Status)
	}
	// A delay, not a lockout: once the wait is over the owner signs in.
	e.clock.advance(time.Second)
	p = b2.Submit(signIn, map[string]string{"email": email, "password": password})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("right password after the wait: %d %s", p.Status, p.Body)
	}
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b := e.browser()
	signIn := b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	p := b.Submit(signIn, map[string]string{"email": email, "password": password, "csrf_token": ""})
	if p.Status != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", p.Status)
	}
	if p.Loc != nil || strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatal("signed in without a CSRF token")
	}
}

func TestDeny(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	b := e.browser()
	p := b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource())))
	p = b.Submit(p, map[string]string{"email": email, "password": password})
	p = b.Submit(p, map[string]string{"decision": "deny"})
	if p.Loc == nil || p.Loc.Query().Get("error") != "access_denied" || p.Loc.Query().Get("iss") != e.base("acme") || p.Loc.Query().Get("state") != "state-0123456789" {
		t.Fatalf("deny: %d %v", p.Status, p.Loc)
	}
	if agents, _ := e.st.ListAgents(context.Background(), "acme", e.user().ID); len(agents) != 0 {
		t.Fatalf("agents after deny: %v", agents)
	}
}

func TestResourceOfAnotherHost(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	for _, res := range []string{e.urls.MCP("other"), e.urls.MCP("other") + "/linear", e.urls.MCP("acme") + "/nope"} {
		p := e.browser().Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", res)))
		if p.Loc == nil || p.Loc.Query().Get("error") != "invalid_target" {
			t.Fatalf("resource %s: %d %v", res, p.Status, p.Loc)
		}
	}
}
