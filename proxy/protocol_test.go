package proxy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// upstream is an extra upstream server of a test, with what reached it.
type upstream struct {
	key   string
	calls atomic.Int64
	mu    sync.Mutex
	seen  []http.Header // headers of every request that reached it
}

func (u *upstream) headers() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.seen...)
}

// addServer registers another server (no credentials) served by h, with the issue tracker's
// tools at their levels and the agent consented at medium; modify adjusts the server.
func (e *env) addServer(key string, h http.Handler, modify func(*store.Server)) *upstream {
	e.t.Helper()
	ctx := context.Background()
	u := &upstream{key: key}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	e.t.Cleanup(ts.Close)
	srv := store.Server{Host: host, Key: key, Name: "Server " + key, URL: ts.URL + "/mcp"}
	if modify != nil {
		modify(&srv)
	}
	if _, err := e.st.CreateServer(ctx, srv); err != nil {
		e.t.Fatal(err)
	}
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium, "delete_issue": schema.High} {
		if _, err := e.st.PutTool(ctx, store.Tool{Host: host, Server: key, Name: name, Level: level, Enabled: true}); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: host, Server: key, UserID: e.userID, Ceiling: schema.High}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.SetConsent(ctx, store.Consent{Host: host, AgentID: e.agentID, Server: key, Level: schema.Medium}); err != nil {
		e.t.Fatal(err)
	}
	e.sync()
	return u
}

// do sends a raw request to /mcp/{server} with the agent's token.
func (e *env) do(method, server string, header map[string]string, body string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.endpoint(server), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(e.endpoint(server), nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, server, err)
	}
	return resp, out
}

// statelessUpstream serves the issue tracker as a 2026-07-28 (stateless) go-sdk server.
func (e *env) statelessUpstream() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.up.Server }, &mcp.StreamableHTTPOptions{Stateless: true})
}

func modernCall(id int, tool string) string {
	return `{"jsonrpc":"2.0","id":` + string(rune('0'+id)) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"title":"t"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
}

func TestUnknownProtocolVersionIsRefused(t *testing.T) {
	e := newEnv(t)
	resp, body := e.do("POST", serverKey, map[string]string{"MCP-Protocol-Version": "2099-01-01"}, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if resp.StatusCode != http.StatusBadRequest || rpcCode(t, body) != proxy.ErrCodeUnsupportedVersion || !strings.Contains(string(body), `"supported":["2026-07-28"`) {
		t.Fatalf("unknown version: %d %s", resp.StatusCode, body)
	}
	if n := e.upCalls.Load(); n != 0 {
		t.Errorf("the upstream saw %d requests of an unknown protocol version", n)
	}
	// A known version and a missing header (the default revision) are forwarded.
	for _, h := range []map[string]string{{"MCP-Protocol-Version": "2025-06-18"}, nil} {
		resp, body := e.do("POST", serverKey, h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion":"2025-06-18"`) {
			t.Errorf("version %v: %d %s", h, resp.StatusCode, body)
		}
	}
}

// TestModernHeadersMustMatchTheBody: on 2026-07-28, Mcp-Method and Mcp-Name are what
// intermediaries route and authorize on; a request whose headers disagree with its body is
// refused and never reaches the upstream.
func TestModernHeadersMustMatchTheBody(t *testing.T) {
	e := newEnv(t)
	up := e.addServer("modern", e.statelessUpstream(), nil)
	modern := func(method, name string) map[string]string {
		h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
		if name != "" {
			h["Mcp-Name"] = name
		}
		return h
	}
	for what, c := range map[string]struct {
		header map[string]string
		body   string
	}{
		"Mcp-Name names another tool":  {modern("tools/call", "list_issues"), modernCall(1, "create_issue")},
		"Mcp-Method names another":     {modern("tools/list", "create_issue"), modernCall(1, "create_issue")},
		"Mcp-Method missing":           {map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Name": "create_issue"}, modernCall(1, "create_issue")},
		"Mcp-Name missing":             {modern("tools/call", ""), modernCall(1, "create_issue")},
		"Base64 Mcp-Name of another":   {modern("tools/call", "=?base64?"+base64.StdEncoding.EncodeToString([]byte("list_issues"))+"?="), modernCall(1, "create_issue")},
		"header version ≠ _meta":       {map[string]string{"MCP-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/call", "Mcp-Name": "create_issue"}, modernCall(1, "create_issue")},
		"legacy request, mismatch too": {map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "list_issues"}, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_issue"}}`},
	} {
		resp, body := e.do("POST", "modern", c.header, c.body)
		if resp.StatusCode != http.StatusBadRequest || rpcCode(t, body) != proxy.ErrCodeHeaderMismatch {
			t.Errorf("%s: %d %s, want 400 with %d", what, resp.StatusCode, body, proxy.ErrCodeHeaderMismatch)
		}
	}
	if n := up.calls.Load(); n != 0 {
		t.Fatalf("the upstream saw %d requests whose headers did not match the body", n)
	}

	// Matching headers are forwarded as they came.
	resp, body := e.do("POST", "modern", modern("tools/call", "create_issue"), modernCall(2, "create_issue"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "create_issue called: t") {
		t.Errorf("matching headers: %d %s", resp.StatusCode, body)
	}
	// A Base64-encoded Mcp-Name that decodes to the body's name is forwarded still encoded
	// (the go-sdk v1.8.0 server itself does not decode it, so only the forwarding is checked).
	encoded := "=?base64?" + base64.StdEncoding.EncodeToString([]byte("create_issue")) + "?="
	e.do("POST", "modern", modern("tools/call", encoded), modernCall(3, "create_issue"))
	seen := up.headers()
	if len(seen) != 2 || seen[0].Get("Mcp-Method") != "tools/call" || seen[0].Get("Mcp-Name") != "create_issue" || seen[1].Get("Mcp-Name") != encoded {
		t.Errorf("the upstream saw %v, want the two calls with their Mcp-Method and Mcp-Name", seen)
	}

	// The go-sdk client speaks 2026-07-28 end to end through the gateway.
	cs := connect(t, e.endpoint("modern"), e.token(e.endpoint("modern"), nil))
	if got := cs.InitializeResult().ProtocolVersion; got != "2026-07-28" {
		t.Errorf("negotiated %q through the gateway, want 2026-07-28", got)
	}
	if got, err := callText(t, cs, "create_issue", map[string]any{"title": "x"}); err != nil || got != "create_issue called: x" {
		t.Errorf("modern tools/call: %q %v", got, err)
	}
	if _, err := callText(t, cs, "delete_issue", nil); err == nil || !strings.Contains(err.Error(), "needs trust level high") {
		t.Errorf("modern denied call: %v", err)
	}
}

// TestModernHasNoStreamsOrSessions: 2026-07-28 GET and DELETE are 405 with Allow: POST, and
// session ids are neither forwarded nor handed out.
func TestModernHasNoStreamsOrSessions(t *testing.T) {
	e := newEnv(t)
	up := e.addServer("modern", e.statelessUpstream(), nil)
	for _, method := range []string{"GET", "DELETE"} {
		resp, _ := e.do(method, "modern", map[string]string{"MCP-Protocol-Version": "2026-07-28", "Accept": "text/event-stream"}, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s: %d, Allow %q; want 405, Allow: POST", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("GET/DELETE reached the upstream %d times", n)
	}
	h := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "list_issues", "Mcp-Session-Id": "someone-elses", "Last-Event-ID": "7"}
	resp, body := e.do("POST", "modern", h, modernCall(3, "list_issues"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("modern call with a session id: %d %q %s", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), body)
	}
	if seen := up.headers(); len(seen) != 1 || seen[0].Get("Mcp-Session-Id") != "" || seen[0].Get("Last-Event-Id") != "" {
		t.Errorf("the upstream saw %v", seen)
	}
}

// TestDiscoverRejectionPassesThrough: a legacy upstream's 400 to server/discover reaches the
// client byte for byte, so that the client falls back to initialize.
func TestDiscoverRejectionPassesThrough(t *testing.T) {
	e := newEnv(t)
	const answer = "Bad Request: unknown method server/discover (this server speaks 2025-06-18)\n"
	e.addServer("old", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Upstream", "old")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, answer)
	}), nil)
	discover := `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	resp, body := e.do("POST", "old", map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}, discover)
	if resp.StatusCode != http.StatusBadRequest || string(body) != answer || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("X-Upstream") != "old" {
		t.Fatalf("server/discover rejection: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	e := newEnv(t)
	e.addServer("hangs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // (then the server notices the gateway hanging up)
		<-r.Context().Done()               // never answers
	}), func(s *store.Server) { s.FirstByteTimeout = 300 * time.Millisecond })
	start := time.Now()
	resp, body := e.do("POST", "hangs", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the first-byte timeout took %s", d)
	}
	if resp.StatusCode != http.StatusOK || rpcCode(t, body) != proxy.ErrCodeUpstream ||
		!strings.Contains(string(body), "the MCP server Server hangs did not answer in time (first-byte timeout after 300ms)") {
		t.Fatalf("hanging upstream: %d %s", resp.StatusCode, body)
	}
}

func TestIdleStreamIsEnded(t *testing.T) {
	e := newEnv(t)
	e.addServer("stalls", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then falls silent
	}), func(s *store.Server) { s.IdleTimeout = 300 * time.Millisecond })
	start := time.Now()
	resp, body := e.do("POST", "stalls", nil, `{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"list_issues"}}`)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the idle timeout took %s", d)
	}
	events := bytes.Split(bytes.TrimSpace(body), []byte("\n\n"))
	last := events[len(events)-1]
	data, ok := bytes.CutPrefix(last, []byte("event: message\ndata: "))
	var msg struct {
		ID    string `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("notifications/progress")) || !ok || json.Unmarshal(data, &msg) != nil ||
		msg.ID != "call-1" || msg.Error.Code != proxy.ErrCodeUpstream || !strings.Contains(msg.Error.Message, "Server stalls sent nothing for 300ms") {
		t.Fatalf("idle stream: %d %q", resp.StatusCode, body)
	}
}
