package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
)

const (
	host           = tenant.DefaultHost
	serverKey      = "tracker"
	upstreamSecret = "upstream-secret"
)

type env struct {
	t       testing.TB
	st      store.Store
	backend *authzserver.SpiceDB
	writer  *authzserver.Writer
	ks      *accesstoken.KeySet
	urls    tenant.URLs
	gw      *httptest.Server
	proxy   *proxy.Proxy
	up      *mcpserver.Upstream
	// upCalls counts requests that reached the upstream through the gateway.
	upCalls atomic.Int64
	// upLeak is set when the upstream saw the gateway's token.
	upLeak atomic.Bool
	// upHeader is the header of the last request that reached the upstream.
	upHeader atomic.Pointer[http.Header]
	userID   string
	agentID  string
	// onUpstream, when set, sees every request that reaches the upstream.
	onUpstream atomic.Pointer[func(*http.Request)]
	// auditDown makes the audit log's store fail.
	auditDown atomic.Bool
}

// auditStore is the store's audit log, made to fail while auditDown is set.
type auditStore struct{ e *env }

func (a auditStore) AppendAudit(ctx context.Context, es []audit.Entry) error {
	if a.e.auditDown.Load() {
		return errors.New("audit store unavailable")
	}
	return a.e.st.AppendAudit(ctx, es)
}

// newEnv builds the environment; opts adjust the proxy's configuration.
func newEnv(t testing.TB, opts ...func(*proxy.Config)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t}
	cp := controlplane.New(t)
	e.st, e.backend, e.writer = cp.Store, cp.Backend, cp.Writer
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.ks, err = accesstoken.Open(ctx, e.st, keys, accesstoken.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// The upstream: the test MCP server, requiring its own bearer, behind a counting handler.
	e.up = mcpserver.Start(t, upstreamSecret)
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.up.Server }, nil)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upCalls.Add(1)
		if f := e.onUpstream.Load(); f != nil {
			(*f)(r)
		}
		h := r.Header.Clone()
		e.upHeader.Store(&h)
		if r.Header.Get("Authorization") != "Bearer "+upstreamSecret || r.Header.Get("Cookie") != "" {
			e.upLeak.Store(true)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(upstream.Close)

	// The gateway: its route table, without its own routes and host checks.
	e.gw = httptest.NewUnstartedServer(nil)
	e.urls, err = tenant.NewURLs("http://"+e.gw.Listener.Addr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	auditLog := audit.NewLog(auditStore{e}, audit.Options{})
	t.Cleanup(func() { _ = auditLog.Close(context.Background()) })
	// Hosts' servers may reach loopback, where the test upstreams listen (the operator's
	// --upstream-allow-cidr 127.0.0.0/8); an option may change that.
	cfg := proxy.Config{Store: e.st, Backend: e.backend, KeySet: e.ks, URLs: e.urls, Keys: keys, Audit: auditLog,
		HostNetworks: ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8")),
		Approvals:    e.st, ApprovalKeepAlive: 100 * time.Millisecond, Activity: e.st}
	for _, opt := range opts {
		opt(&cfg)
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.proxy = p
	router := route.NewRouter()
	e.urls.Mount(router, nil, p.Routes) // the bare URL is the default host
	e.gw.Config.Handler = router
	e.gw.Start()
	t.Cleanup(e.gw.Close)
	t.Cleanup(p.Close)

	// Control plane: a server with three tools, a human with a high ceiling, an agent
	// consented at medium.
	if _, err := e.st.EnsureHost(ctx, store.Host{Key: host}); err != nil {
		t.Fatal(err)
	}
	u, err := e.st.CreateUser(ctx, store.User{Host: host, Email: "ann@example.com", Name: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	e.userID = u.ID
	kind, sealed, err := upstreamauth.SealCredentials(keys, host, serverKey, upstreamauth.Credentials{Header: &upstreamauth.CredentialHeader{Name: "Authorization", Value: "Bearer " + upstreamSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateServer(ctx, store.Server{
		Host: host, Key: serverKey, Name: "Issue Tracker", URL: upstream.URL + "/mcp",
		CredentialKind: kind, Credentials: sealed,
	}); err != nil {
		t.Fatal(err)
	}
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium, "delete_issue": schema.High} {
		if _, err := e.st.PutTool(ctx, store.Tool{Host: host, Server: serverKey, Name: name, Level: level, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: host, Server: serverKey, UserID: u.ID, Ceiling: schema.High}); err != nil {
		t.Fatal(err)
	}
	a, err := e.st.CreateAgent(ctx, store.Agent{Host: host, UserID: u.ID, ClientID: "client-1", Name: "Cursor"})
	if err != nil {
		t.Fatal(err)
	}
	e.agentID = a.ID
	if _, err := e.st.SetConsent(ctx, store.Consent{Host: host, AgentID: a.ID, Server: serverKey, Level: schema.Medium}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	return e
}

func (e *env) sync() {
	e.t.Helper()
	if _, err := e.writer.Sync(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// endpoint is the gateway URL of an MCP resource: "" → /mcp, "tracker" → /mcp/tracker.
func (e *env) endpoint(server string) string {
	if server == "" {
		return e.urls.MCP(host)
	}
	return e.urls.MCP(host) + "/" + server
}

// token mints an access token for the agent; modify adjusts the claims.
func (e *env) token(resource string, modify func(*accesstoken.AccessClaims)) string {
	e.t.Helper()
	c := accesstoken.AccessClaims{
		Issuer: e.urls.Base(host), Subject: e.userID, Audience: []string{resource}, ClientID: "client-1",
		Expiry: time.Now().Add(time.Hour), Host: host, AgentID: e.agentID,
	}
	if modify != nil {
		modify(&c)
	}
	tok, err := e.ks.Mint(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	r.Header.Set("Cookie", "gateway_session=secret")
	return b.next.RoundTrip(r)
}

// connect opens an MCP session through the gateway, exactly as a client would.
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

func callText(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) (string, error) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return "", err
	}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	if res.IsError { // a tool error, such as a denial
		return "", toolError(strings.Join(texts, "\n"))
	}
	return strings.Join(texts, "\n"), nil
}

// toolError is a tool result with isError, as callText returns it.
type toolError string

func (e toolError) Error() string { return string(e) }

func TestToolCalls(t *testing.T) {
	e := newEnv(t)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))

	got, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"})
	if err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	direct := connect(t, e.up.URL, upstreamSecret)
	want, err := callText(t, direct, "create_issue", map[string]any{"title": "bug"})
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got != "create_issue called: bug" {
		t.Fatalf("through the gateway %q, direct %q", got, want)
	}

	_, err = callText(t, cs, "delete_issue", map[string]any{"id": "1"})
	if err == nil {
		t.Fatal("delete_issue above the agent's level was allowed")
	}
	for _, s := range []string{`trustgate denied the tool "delete_issue" on tracker`, "needs trust level high", "this agent has medium",
		"Ask the person who connected it to reconnect and grant high, or ask an administrator."} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("denial %q lacks %q", err, s)
		}
	}

	_, err = callText(t, cs, "no_such_tool", nil)
	if err == nil || !strings.Contains(err.Error(), `tracker has no tool "no_such_tool"`) || strings.Contains(err.Error(), "Reconnect") {
		t.Errorf("unknown tool: %v", err)
	}

	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"create_issue", "list_issues"}) {
		t.Errorf("tools/list = %v, want create_issue, list_issues", names)
	}
	if e.upLeak.Load() {
		t.Error("the upstream saw the gateway's token or cookie, or missed its credential")
	}
}

// setDenialFormat sets the host's denial format (store.DenialToolResult or DenialJSONRPCError).
func (e *env) setDenialFormat(format string) {
	e.t.Helper()
	h, err := e.st.GetHost(context.Background(), host)
	if err != nil {
		e.t.Fatal(err)
	}
	h.Settings.DenialFormat = format
	if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
		e.t.Fatal(err)
	}
}

// TestDenyDataAndInvalidParams: on a host that wants JSON-RPC errors, a denied tools/call is
// -31001 with its data; a tools/call without a name is invalid params on every host.
func TestDenyDataAndInvalidParams(t *testing.T) {
	e := newEnv(t)
	e.setDenialFormat(store.DenialJSONRPCError)
	tok := e.token(e.endpoint(""), nil)
	before := e.upCalls.Load()
	_, body := e.post(tok, "", `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"delete_issue"}}`, 200)
	var resp struct {
		ID    string `json:"id"`
		Error struct {
			Code int               `json:"code"`
			Data map[string]string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tool": "delete_issue", "server": serverKey, "required_level": "high", "agent_level": "medium", "ceiling": "high",
		"reason": "level_too_low", "action": "Reconnect the client and choose trust level high."}
	if resp.ID != "x" || resp.Error.Code != proxy.ErrCodeDenied || !mapsEqual(resp.Error.Data, want) {
		t.Errorf("denial = %s", body)
	}
	_, body = e.post(tok, "", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{}}`, 200)
	if code := rpcCode(t, body); code != -32602 {
		t.Errorf("tools/call without name: %s", body)
	}
	if e.upCalls.Load() != before {
		t.Error("a denied or invalid call reached the upstream")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// post sends a raw JSON-RPC POST and checks the status (0: any).
func (e *env) post(token, origin, body string, want int) (http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.endpoint(""), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if want != 0 && resp.StatusCode != want {
		e.t.Fatalf("POST %s = %d, want %d: %s", body, resp.StatusCode, want, out)
	}
	return resp.Header, out
}

func rpcCode(t *testing.T, body []byte) int {
	t.Helper()
	var resp struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Error == nil {
		t.Fatalf("not a JSON-RPC error: %s", body)
	}
	return resp.Error.Code
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	metadata := `resource_metadata="` + e.urls.Base(host) + `/.well-known/oauth-protected-resource/mcp"`

	h, _ := e.post("", "", ping, http.StatusUnauthorized)
	if got := h.Get("WWW-Authenticate"); !strings.Contains(got, metadata) || strings.Contains(got, "error=") {
		t.Errorf("no token: WWW-Authenticate %q, want %s and no error", got, metadata)
	}
	expired := e.token(e.endpoint(""), func(c *accesstoken.AccessClaims) {
		c.IssuedAt, c.Expiry = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	})
	otherResource := e.token(e.endpoint(serverKey), nil)
	otherHost := e.token(e.endpoint(""), func(c *accesstoken.AccessClaims) { c.Host = "acme" })
	for name, tok := range map[string]string{"expired": expired, "other resource": otherResource, "other host": otherHost, "garbage": "abc.def.ghi"} {
		h, _ := e.post(tok, "", ping, http.StatusUnauthorized)
		if got := h.Get("WWW-Authenticate"); !strings.Contains(got, metadata) || !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("%s: WWW-Authenticate %q", name, got)
		}
	}

	tok := e.token(e.endpoint(""), nil)
	e.post(tok, "https://evil.example", ping, http.StatusForbidden)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	e.post(tok, e.urls.Base(host), init, http.StatusOK)
}

func TestKillAgentDeniesNextCall(t *testing.T) {
	e := newEnv(t)
	cs := connect(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil))
	if _, err := callText(t, cs, "list_issues", nil); err != nil {
		t.Fatalf("before kill: %v", err)
	}
	if _, err := e.st.KillAgent(context.Background(), host, e.agentID); err != nil {
		t.Fatal(err)
	}
	e.sync()
	// The kill switch ends the agent's tokens: the next call is refused at authentication.
	before := e.upCalls.Load()
	_, err := callText(t, cs, "list_issues", nil)
	if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("after kill: %v", err)
	}
	if e.upCalls.Load() != before {
		t.Fatal("a killed agent's call reached the upstream")
	}
}

func TestBackendDownFailsClosed(t *testing.T) {
	e := newEnv(t)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	if err := e.backend.Close(); err != nil {
		t.Fatal(err)
	}
	before := e.upCalls.Load()
	_, err := callText(t, cs, "list_issues", nil)
	if err == nil || !strings.Contains(err.Error(), "could not reach its authorization backend") {
		t.Fatalf("backend down: %v", err)
	}
	if e.upCalls.Load() != before {
		t.Error("a call reached the upstream while the backend was down")
	}
	if got := e.entries(audit.Filter{Decision: audit.Error}, 1); len(got) != 1 || got[0].Tool != "list_issues" ||
		!strings.Contains(got[0].Reason, "authorization backend failed") {
		t.Errorf("audit entries of the failed call: %+v", got)
	}
}

func TestMalformedMessages(t *testing.T) {
	e := newEnv(t)
	tok := e.token(e.endpoint(""), nil)
	before := e.upCalls.Load()
	_, body := e.post(tok, "", `{"jsonrpc":"2.0","id":1,`, http.StatusBadRequest)
	if code := rpcCode(t, body); code != proxy.ErrCodeParse {
		t.Errorf("malformed JSON: %s", body)
	}
	_, body = e.post(tok, "", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, http.StatusBadRequest)
	if code := rpcCode(t, body); code != proxy.ErrCodeInvalidRequest {
		t.Errorf("batch: %s", body)
	}
	_, body = e.post(tok, "", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, http.StatusBadRequest)
	if code := rpcCode(t, body); code != proxy.ErrCodeInvalidRequest {
		t.Errorf("jsonrpc 1.0: %s", body)
	}
	_, body = e.post(tok, "", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_issue","Name":"list_issues"}}`, http.StatusBadRequest)
	if code := rpcCode(t, body); code != proxy.ErrCodeInvalidRequest || !strings.Contains(string(body), `\"Name\"`) {
		t.Errorf("fold-twin keys: %s", body)
	}
	if e.upCalls.Load() != before {
		t.Error("a malformed message reached the upstream")
	}
	got := e.entries(audit.Filter{Decision: audit.Denied}, 4)
	if len(got) != 4 {
		t.Fatalf("%d denied audit entries for 4 refused messages: %+v", len(got), got)
	}
	for _, en := range got {
		if en.AgentID != e.agentID || en.Tool != "" || !strings.Contains(en.Reason, "parse error") && !strings.Contains(en.Reason, "invalid request") {
			t.Errorf("audit entry of a refused message: %+v", en)
		}
	}
}

// TestSessionIsBoundToItsAgent: the session id a client sees is not the upstream's, and another
// agent presenting it gets 404 (a new session), never the first agent's session.
func TestSessionIsBoundToItsAgent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other, err := e.st.CreateAgent(ctx, store.Agent{Host: host, UserID: e.userID, ClientID: "client-2", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetConsent(ctx, store.Consent{Host: host, AgentID: other.ID, Server: serverKey, Level: schema.High}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	resource := e.endpoint(serverKey)
	post := func(token, session, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", resource, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	mine := e.token(resource, nil)
	theirs := e.token(resource, func(c *accesstoken.AccessClaims) { c.AgentID = other.ID })
	resp := post(mine, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || !strings.HasPrefix(session, "tg1.") {
		t.Fatalf("initialize = %d, session %q", resp.StatusCode, session)
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	post(mine, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp := post(mine, session, list); resp.StatusCode != 200 {
		t.Fatalf("the session's own agent: %d", resp.StatusCode)
	}
	if resp := post(theirs, session, list); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another agent presenting the session: %d, want 404", resp.StatusCode)
	}
}
