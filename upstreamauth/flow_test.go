package upstreamauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/protectedmcp"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
)

// The gateway as an OAuth client of an upstream MCP server, end to end: a real control plane
// (store, embedded SpiceDB, writer), trustgate's OAuth server and proxy behind host routing, an
// MCP client that connects through them, and an upstream MCP server (official Go SDK) protected
// by a real fosite authorization server (internal/testkit/protectedmcp). The test plays the human's browser.

const (
	host     = "acme"
	email    = "ada@example.com"
	password = "correct horse battery staple"
	redirect = "http://localhost:7777/callback"
)

// clock is the gateway's adjustable clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type env struct {
	t      *testing.T
	st     store.Store
	cp     *controlplane.ControlPlane
	keys   *secrets.Keyring
	urls   tenant.URLs
	gw     *httptest.Server
	clock  *clock
	userID string
}

// newEnv starts the gateway; allowPrivate is the SSRF override (tests reach loopback).
func newEnv(t *testing.T, allowPrivate bool) *env {
	t.Helper()
	ctx := context.Background()
	cp := controlplane.New(t)
	e := &env{t: t, st: cp.Store, cp: cp, clock: &clock{}}
	var err error
	if e.keys, err = secrets.NewKeyring(bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	ks, err := accesstoken.Open(ctx, e.st, e.keys, accesstoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fetch := ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: allowPrivate})
	up, err := upstreamauth.NewClient(upstreamauth.Config{Store: e.st, Keys: e.keys, HTTPClient: fetch, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	e.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(e.gw.Close)
	e.urls, _ = tenant.NewURLs(e.gw.URL, false)
	oauth, err := oauthserver.NewServer(oauthserver.ServerConfig{
		Store: e.st, URLs: e.urls, KeySet: ks, Syncer: cp.Writer, Upstream: up, HTTPClient: fetch,
		CookieSecret: bytes.Repeat([]byte{1}, 32), GlobalSecret: bytes.Repeat([]byte{2}, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	pcfg := proxy.Config{Store: e.st, Backend: cp.Backend, KeySet: ks, URLs: e.urls, Keys: e.keys, Upstream: up}
	if allowPrivate {
		// Hosts' servers may be on loopback, as the test upstreams are (the operator's
		// --upstream-allow-cidr 127.0.0.0/8).
		pcfg.HostNetworks = ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"))
	}
	px, err := proxy.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.CloseIdleConnections)
	// The gateway's route table, without its own routes and host checks.
	router := route.NewRouter()
	e.urls.Mount(router, nil, px.Routes, oauth.Routes)
	handler = route.CleanPaths(router)

	if _, err := e.st.CreateHost(ctx, store.Host{Key: host, Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(ctx, store.User{Host: host, Email: email})
	if err != nil {
		t.Fatal(err)
	}
	// The human has claimed the account (through an invitation): sign-in never claims one.
	phc, err := consentui.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetUserPassword(ctx, host, u.ID, phc); err != nil {
		t.Fatal(err)
	}
	e.userID = u.ID
	return e
}

func (e *env) callback() string { return e.urls.Base(host) + oauthserver.UpstreamCallbackPath }

// addServer imports the upstream as an admin would, granted to the human at high; with
// credentials of an OAuth client it has no tools yet (the upstream demands a sign-in first).
func (e *env) addServer(key, rawURL string, creds upstreamauth.Credentials) {
	e.t.Helper()
	ctx := context.Background()
	kind, sealed, err := upstreamauth.SealCredentials(e.keys, host, key, creds)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateServer(ctx, store.Server{Host: host, Key: key, Name: "Issue Tracker", URL: rawURL, CredentialKind: kind, Credentials: sealed}); err != nil {
		e.t.Fatal(err)
	}
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium, "delete_issue": schema.High} {
		if creds.OAuthClient != nil {
			break
		}
		if _, err := e.st.PutTool(ctx, store.Tool{Host: host, Server: key, Name: name, Level: level, Enabled: true}); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: host, Server: key, UserID: e.userID, Ceiling: schema.High}); err != nil {
		e.t.Fatal(err)
	}
	e.cp.Sync(e.t)
}

// client registers an MCP client at the gateway.
func (e *env) client() *oauth2.Config {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"redirect_uris": []string{redirect}, "client_name": "Cursor", "token_endpoint_auth_method": "none"})
	resp, err := http.Post(e.urls.Base(host)+"/register", "application/json", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ClientID == "" {
		e.t.Fatalf("register: %d %v", resp.StatusCode, err)
	}
	return &oauth2.Config{ClientID: out.ClientID, RedirectURL: redirect, Endpoint: oauth2.Endpoint{
		AuthURL: e.urls.Base(host) + "/authorize", TokenURL: e.urls.Base(host) + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// startFlow runs /authorize and sign-in for resource; it returns the browser and the page
// the gateway answered with after sign-in.
func (e *env) startFlow(conf *oauth2.Config, resource, verifier string) (*webclient.Browser, webclient.Page) {
	e.t.Helper()
	b := webclient.New(e.t, e.gw.URL)
	p := b.Get(conf.AuthCodeURL("client-state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	if !strings.Contains(p.Body, `name="password"`) {
		e.t.Fatalf("expected the sign-in page, got %d: %s", p.Status, p.Body)
	}
	return b, b.Submit(p, map[string]string{"email": email, "password": password})
}

// consent accepts the trust-level page and exchanges the code for the gateway's token.
func (e *env) consent(b *webclient.Browser, p webclient.Page, conf *oauth2.Config, verifier, level string) string {
	e.t.Helper()
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		e.t.Fatalf("expected the trust-level page, got %d (%v): %s", p.Status, p.Loc, p.Body)
	}
	p = b.Submit(p, map[string]string{"trust_level": level, "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("code") == "" {
		e.t.Fatalf("consent: no code, %d: %s", p.Status, p.Body)
	}
	tok, err := conf.Exchange(context.Background(), p.Loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

// toUpstream checks that p sends the browser to the upstream's authorization server, and
// follows it there and back to the gateway.
func toUpstream(t *testing.T, b *webclient.Browser, p webclient.Page, as *protectedmcp.AS) webclient.Page {
	t.Helper()
	if p.Loc == nil || !strings.HasPrefix(p.Loc.String(), as.URL+"/authorize?") {
		t.Fatalf("expected a redirect to the upstream's authorization endpoint, got %d (%v): %s", p.Status, p.Loc, p.Body)
	}
	q := p.Loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		t.Errorf("upstream authorization request lacks PKCE S256 or state: %v", q)
	}
	if q.Get("redirect_uri") == "" || !strings.HasSuffix(q.Get("redirect_uri"), oauthserver.UpstreamCallbackPath) {
		t.Errorf("redirect_uri = %q", q.Get("redirect_uri"))
	}
	return b.Get(p.Loc.String())
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func connect(t *testing.T, endpoint, token string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func call(cs *mcp.ClientSession, tool string) (string, error) {
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"title": "x"}})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) == 0 {
		return "", errors.New("tool error")
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

func TestUpstreamOAuthWithDynamicRegistration(t *testing.T) {
	as := protectedmcp.Start(t, protectedmcp.Options{DCR: true})
	e := newEnv(t, true)
	e.addServer("tracker", as.MCPURL, upstreamauth.Credentials{})
	ctx := context.Background()
	resource := e.urls.MCP(host) + "/tracker"

	conf := e.client()
	verifier := oauth2.GenerateVerifier()
	b, p := e.startFlow(conf, resource, verifier)
	p = toUpstream(t, b, p, as)
	if got := as.Resources(); len(got) != 1 || got[0] != as.MCPURL {
		t.Errorf("RFC 8707 resource sent upstream = %v, want [%s]", got, as.MCPURL)
	}
	if n := as.Registrations.Load(); n != 1 {
		t.Errorf("registrations at the upstream = %d, want 1 (DCR when no client is stored)", n)
	}
	gwToken := e.consent(b, p, conf, verifier, "high")

	// The tokens are stored sealed: nothing in the row reads as the token the upstream issued.
	row, err := e.st.GetUpstreamToken(ctx, host, e.userID, "tracker")
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, resource, gwToken)
	if out, err := call(cs, "create_issue"); err != nil || !strings.Contains(out, "create_issue called") {
		t.Fatalf("call through the gateway: %q %v", out, err)
	}
	toks := as.MCPTokens()
	if len(toks) != 1 {
		t.Fatalf("the upstream saw tokens %d, want 1 (the human's)", len(toks))
	}
	upTok := toks[0]
	if !as.Valid(ctx, upTok) {
		t.Error("the upstream saw a token its authorization server did not issue")
	}
	if bytes.Contains(row.Sealed, []byte(upTok)) || strings.Contains(base64.StdEncoding.EncodeToString(row.Sealed), upTok) {
		t.Error("the stored upstream token is in plaintext")
	}
	if upTok == gwToken {
		t.Error("the gateway's token reached the upstream")
	}

	// Reconnecting: the human holds a token, so no second trip upstream and no new registration.
	conf2 := e.client()
	v2 := oauth2.GenerateVerifier()
	b2, p2 := e.startFlow(conf2, resource, v2)
	e.consent(b2, p2, conf2, v2, "low")
	if n := as.Registrations.Load(); n != 1 {
		t.Errorf("registrations = %d after a second consent, want 1", n)
	}

	// The upstream revokes the human's token: the call asks them to reconnect, and
	// reconnecting sends them to sign in upstream again, after which calls work.
	as.Revoke(upTok)
	_, err = call(cs, "list_issues")
	var rpcErr *jsonrpcError
	if !asRPC(err, &rpcErr) || rpcErr.code != proxy.ErrCodeReconsent {
		t.Fatalf("call with a revoked upstream token: %v, want JSON-RPC error %d", err, proxy.ErrCodeReconsent)
	}
	conf3 := e.client()
	v3 := oauth2.GenerateVerifier()
	b3, p3 := e.startFlow(conf3, resource, v3)
	p3 = toUpstream(t, b3, p3, as)
	e.consent(b3, p3, conf3, v3, "low")
	if _, err := call(cs, "list_issues"); err != nil {
		t.Fatalf("call after signing in upstream again: %v", err)
	}
	row, err = e.st.GetUpstreamToken(ctx, host, e.userID, "tracker")
	if err != nil {
		t.Fatal(err)
	}
	tokensBefore := len(as.MCPTokens())

	// Expiry: 20 concurrent calls share exactly one refresh, and carry the new token.
	e.clock.advance(2 * time.Hour)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := call(cs, "list_issues"); err != nil {
				failures.Add(1)
				t.Log(err)
			}
		}()
	}
	wg.Wait()
	if n := as.Refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d for 20 concurrent calls, want exactly 1", n)
	}
	if n := failures.Load(); n != 0 {
		t.Errorf("%d calls failed around the refresh", n)
	}
	if len(as.MCPTokens()) != tokensBefore+1 {
		t.Errorf("the upstream saw %d tokens, want %d (one more: the refreshed one)", len(as.MCPTokens()), tokensBefore+1)
	}
	row2, err := e.st.GetUpstreamToken(ctx, host, e.userID, "tracker")
	if err != nil || bytes.Equal(row2.Sealed, row.Sealed) || !row2.ExpiresAt.After(e.clock.now()) {
		t.Errorf("the refreshed token was not stored: %v", err)
	}

	// A refresh the upstream refuses: the human is told to reconnect.
	as.FailRefresh.Store(true)
	e.clock.advance(2 * time.Hour)
	_, err = call(cs, "list_issues")
	if !asRPC(err, &rpcErr) || rpcErr.code != proxy.ErrCodeReconsent || !strings.Contains(rpcErr.msg, "reconnect") {
		t.Fatalf("after a refused refresh: %v, want JSON-RPC error %d asking to reconnect", err, proxy.ErrCodeReconsent)
	}
	// And so is every later call (the refused token is gone; the upstream's 401 says the same).
	_, err = call(cs, "list_issues")
	if !asRPC(err, &rpcErr) || rpcErr.code != proxy.ErrCodeReconsent {
		t.Fatalf("second call after a refused refresh: %v", err)
	}

	// Deleting the human deletes their upstream tokens.
	if err := e.st.DeleteUser(ctx, host, e.userID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.GetUpstreamToken(ctx, host, e.userID, "tracker"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("upstream token after the human's deletion: %v", err)
	}
}

// jsonrpcError is the code and message of a JSON-RPC error the client received.
type jsonrpcError struct {
	code int64
	msg  string
}

func asRPC(err error, out **jsonrpcError) bool {
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		return false
	}
	*out = &jsonrpcError{code: we.Code, msg: we.Message}
	return true
}

func TestUpstreamOAuthWithStoredClient(t *testing.T) {
	as := protectedmcp.Start(t, protectedmcp.Options{DCR: false})
	e := newEnv(t, true)
	ctx := context.Background()
	h, _ := e.st.GetHost(ctx, host)
	h.Settings.AutoEnableNewTools = true
	if _, err := e.st.UpdateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	as.AddClient("trustgate-static", "s3cret-value", e.callback())
	e.addServer("tracker", as.MCPURL, upstreamauth.Credentials{OAuthClient: &upstreamauth.OAuthClient{ClientID: "trustgate-static", ClientSecret: "s3cret-value"}})
	resource := e.urls.MCP(host) + "/tracker"

	conf := e.client()
	verifier := oauth2.GenerateVerifier()
	b, p := e.startFlow(conf, resource, verifier)
	q := p.Loc.Query()
	if q.Get("client_id") != "trustgate-static" {
		t.Errorf("client_id at the upstream = %q, want the stored one", q.Get("client_id"))
	}
	p = toUpstream(t, b, p, as)
	// The server was imported without tools: they are discovered with the human's token.
	if !strings.Contains(p.Body, "create_issue") {
		t.Errorf("the trust-level page lists no discovered tools: %s", p.Body)
	}
	gwToken := e.consent(b, p, conf, verifier, "medium")
	if as.Registrations.Load() != 0 {
		t.Error("registered at the upstream although a client was stored")
	}
	if got := as.TokenClients(); !slices.Equal(got, []string{"trustgate-static"}) {
		t.Errorf("token endpoint clients = %v", got)
	}
	cs := connect(t, resource, gwToken)
	if _, err := call(cs, "create_issue"); err != nil {
		t.Fatalf("call: %v", err)
	}

	// Without the human's token (gone), the proxy does not call the upstream anonymously: the
	// human is asked to reconnect.
	if err := e.st.DeleteUpstreamToken(ctx, host, e.userID, "tracker"); err != nil {
		t.Fatal(err)
	}
	_, err := call(cs, "create_issue")
	var rpcErr *jsonrpcError
	if !asRPC(err, &rpcErr) || rpcErr.code != proxy.ErrCodeReconsent {
		t.Fatalf("call without the human's token: %v, want JSON-RPC error %d", err, proxy.ErrCodeReconsent)
	}
	if as.MCPRequests("") != 1 { // the consent probe only
		t.Errorf("the upstream got %d requests without a token, want 1 (the probe)", as.MCPRequests(""))
	}
}

func TestUpstreamOAuthErrors(t *testing.T) {
	as := protectedmcp.Start(t, protectedmcp.Options{DCR: false})
	e := newEnv(t, true)
	e.addServer("tracker", as.MCPURL, upstreamauth.Credentials{})
	resource := e.urls.MCP(host) + "/tracker"

	// No DCR at the upstream and no stored client: a clear error page.
	conf := e.client()
	_, p := e.startFlow(conf, resource, oauth2.GenerateVerifier())
	if p.Status != http.StatusBadGateway || !strings.Contains(p.Body, "must store an OAuth client id") {
		t.Errorf("without a client: %d %s", p.Status, p.Body)
	}

	// An unknown state at the callback.
	bb, _ := e.startFlow(conf, resource, oauth2.GenerateVerifier())
	p = bb.Get(e.callback() + "?" + url.Values{"state": {"forged"}, "code": {"x"}}.Encode())
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "no longer valid") {
		t.Errorf("unknown state: %d %s", p.Status, p.Body)
	}

	// With a registration endpoint: the human denies at the upstream; a code the upstream
	// never issued; a state used twice; a state of another human's browser.
	dcr := protectedmcp.Start(t, protectedmcp.Options{DCR: true})
	e.addServer("tracker2", dcr.MCPURL, upstreamauth.Credentials{})
	resource = e.urls.MCP(host) + "/tracker2"
	upstreamState := func() (*webclient.Browser, string) {
		b, p := e.startFlow(conf, resource, oauth2.GenerateVerifier())
		if p.Loc == nil || p.Loc.Query().Get("state") == "" {
			t.Fatalf("no upstream redirect: %d %s", p.Status, p.Body)
		}
		return b, p.Loc.Query().Get("state")
	}
	b, state := upstreamState()
	p = b.Get(e.callback() + "?" + url.Values{"state": {state}, "error": {"access_denied"}}.Encode())
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "declined") {
		t.Errorf("denied upstream: %d %s", p.Status, p.Body)
	}
	p = b.Get(e.callback() + "?" + url.Values{"state": {state}, "code": {"x"}}.Encode())
	if p.Status != http.StatusBadRequest {
		t.Errorf("state used twice: %d %s", p.Status, p.Body)
	}
	b, state = upstreamState()
	p = b.Get(e.callback() + "?" + url.Values{"state": {state}, "code": {"not-a-code"}}.Encode())
	if p.Status != http.StatusBadGateway || !strings.Contains(p.Body, "could not obtain a token") {
		t.Errorf("bad code: %d %s", p.Status, p.Body)
	}
	_, state = upstreamState()
	stranger := webclient.New(t, e.gw.URL)
	p = stranger.Get(e.callback() + "?" + url.Values{"state": {state}, "code": {"x"}}.Encode())
	if p.Status != http.StatusBadRequest {
		t.Errorf("callback in a browser not signed in: %d %s", p.Status, p.Body)
	}
	if _, err := e.st.GetUpstreamToken(context.Background(), host, e.userID, "tracker2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a token was stored after failed callbacks: %v", err)
	}
}

func TestDynamicMCPs(t *testing.T) {
	ctx := context.Background()
	plain := mcpserver.Start(t, "")

	// With the SSRF guard on (production), a private address is refused.
	e := newEnv(t, false)
	h, _ := e.st.GetHost(ctx, host)
	h.Settings.DynamicMCPs = true
	if _, err := e.st.UpdateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	conf := e.client()
	bb, p := e.startFlow(conf, e.urls.MCP(host), oauth2.GenerateVerifier())
	if !strings.Contains(p.Body, `name="server_url"`) {
		t.Fatalf("choose-server page without server_url: %s", p.Body)
	}
	p2 := bb.Submit(p, map[string]string{"server_url": plain.URL})
	if p2.Status != http.StatusBadRequest || !strings.Contains(p2.Body, "trustgate could not reach an MCP server at this URL") {
		t.Errorf("private address with the guard on: %d %s", p2.Status, p2.Body)
	}
	if servers, _ := e.st.ListServers(ctx, host); len(servers) != 0 {
		t.Errorf("a refused URL was saved: %v", servers)
	}

	// With the override (tests only): an open server, then one behind the upstream's OAuth.
	e = newEnv(t, true)
	h, _ = e.st.GetHost(ctx, host)
	h.Settings.DynamicMCPs = true
	if _, err := e.st.UpdateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	conf = e.client()
	verifier := oauth2.GenerateVerifier()
	bb, p = e.startFlow(conf, e.urls.MCP(host), verifier)
	p = bb.Submit(p, map[string]string{"server_url": plain.URL})
	gwToken := e.consent(bb, p, conf, verifier, "low")
	servers, _ := e.st.ListServers(ctx, host)
	if len(servers) != 1 || servers[0].URL != plain.URL || !strings.Contains(servers[0].Description, email) {
		t.Fatalf("dynamic server not saved for admins to see: %+v", servers)
	}
	key := servers[0].Key
	g, err := e.st.GetGrant(ctx, host, key, e.userID)
	if err != nil || g.Ceiling != oauthserver.DynamicCeiling {
		t.Errorf("grant on the dynamic server = %+v %v, want ceiling %s", g, err, oauthserver.DynamicCeiling)
	}
	tools, _ := e.st.ListTools(ctx, host, key)
	if len(tools) != len(mcpserver.Tools) {
		t.Errorf("tools discovered = %d, want %d", len(tools), len(mcpserver.Tools))
	}
	for _, tl := range tools {
		if tl.Enabled {
			t.Errorf("tool %s enabled although the host does not auto-enable new tools", tl.Name)
		}
	}
	// The human's agent may call nothing yet: the tools wait for an administrator's review.
	cs := connect(t, e.urls.MCP(host), gwToken)
	if _, err := call(cs, "list_issues"); err == nil {
		t.Error("a tool of a dynamic server was callable before review")
	}

	// A server behind its own OAuth: the human signs in to it first, then its tools are
	// discovered with the human's token.
	as := protectedmcp.Start(t, protectedmcp.Options{DCR: true})
	conf = e.client()
	verifier = oauth2.GenerateVerifier()
	bb, p = e.startFlow(conf, e.urls.MCP(host), verifier)
	p = bb.Submit(p, map[string]string{"server_url": as.MCPURL})
	p = toUpstream(t, bb, p, as)
	e.consent(bb, p, conf, verifier, "low")
	servers, _ = e.st.ListServers(ctx, host)
	var protected store.Server
	for _, sv := range servers {
		if sv.URL == as.MCPURL {
			protected = sv
		}
	}
	if protected.Key == "" {
		t.Fatalf("the protected dynamic server was not saved: %+v", servers)
	}
	if tools, _ := e.st.ListTools(ctx, host, protected.Key); len(tools) != len(mcpserver.Tools) {
		t.Errorf("tools of the protected dynamic server = %d, want %d", len(tools), len(mcpserver.Tools))
	}
	if _, err := e.st.GetUpstreamToken(ctx, host, e.userID, protected.Key); err != nil {
		t.Errorf("no upstream token for the protected dynamic server: %v", err)
	}
}
