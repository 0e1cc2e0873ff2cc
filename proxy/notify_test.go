package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// rawSession speaks Streamable HTTP to the gateway by hand, to see the wire.
type rawSession struct {
	t        *testing.T
	endpoint string
	token    string
	id       string // Mcp-Session-Id
}

func (s *rawSession) do(method, body string) *http.Response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.endpoint, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

// answer is the JSON-RPC answer of a POST (a JSON body, or the first event of an SSE one).
func (s *rawSession) answer(body string) []byte {
	s.t.Helper()
	resp := s.do(http.MethodPost, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("POST %s: %d %s", body, resp.StatusCode, b)
	}
	if s.id == "" {
		s.id = resp.Header.Get("Mcp-Session-Id")
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		ev, err := sse.NewReader(resp.Body, 1<<20).Next()
		if err != nil {
			s.t.Fatalf("POST %s: %v", body, err)
		}
		return ev.Data
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// stream opens the session's GET stream and returns a function that waits (10 s at most) for
// notifications/tools/list_changed on it.
func (s *rawSession) stream() func(after string) {
	s.t.Helper()
	get := s.do(http.MethodGet, "")
	if mt, _, _ := mime.ParseMediaType(get.Header.Get("Content-Type")); get.StatusCode != http.StatusOK || mt != "text/event-stream" {
		s.t.Fatalf("GET stream: %d %s", get.StatusCode, get.Header.Get("Content-Type"))
	}
	s.t.Cleanup(func() { _ = get.Body.Close() })
	events := make(chan string, 16)
	go func() {
		defer close(events)
		r := sse.NewReader(get.Body, 1<<20)
		for {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if len(bytes.TrimSpace(ev.Data)) > 0 {
				events <- string(ev.Data)
			}
		}
	}()
	return func(after string) {
		s.t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					s.t.Fatalf("%s: the GET stream ended", after)
				}
				if strings.Contains(ev, `"notifications/tools/list_changed"`) {
					return
				}
			case <-deadline:
				s.t.Fatalf("%s: no notifications/tools/list_changed within 10 s", after)
			}
		}
	}
}

// runNotifier runs the proxy's watcher until the test ends.
func runNotifier(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); e.proxy.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stopped })
}

func (s *rawSession) toolNames() []string {
	s.t.Helper()
	var res struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	data := s.answer(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	if err := json.Unmarshal(data, &res); err != nil {
		s.t.Fatalf("tools/list answer %s: %v", data, err)
	}
	var names []string
	for _, tool := range res.Result.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// TestAgentStreamFollowsThePolicy: on the wire, the initialize answer declares
// tools.listChanged; the agent's GET stream carries notifications/tools/list_changed when its
// level changes and when a tool it may call is disabled (each change made as the admin API
// makes it: the store, then SpiceDB); its next tools/list is the new policy's; and the
// upstream's own list_changed passes through.
func TestAgentStreamFollowsThePolicy(t *testing.T) {
	e := newEnv(t)
	runNotifier(t, e)

	s := &rawSession{t: t, endpoint: e.endpoint(serverKey)}
	s.token = e.token(s.endpoint, nil)
	init := s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if !bytes.Contains(init, []byte(`"tools":{"listChanged":true}`)) {
		t.Fatalf("initialize answer does not declare tools.listChanged: %s", init)
	}
	if resp := s.do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	if got := s.toolNames(); !slices.Equal(got, []string{"create_issue", "list_issues"}) {
		t.Fatalf("tools/list at medium: %v", got)
	}

	waitListChanged := s.stream()

	// The level lowered to low.
	if _, err := e.st.SetConsent(context.Background(), store.Consent{Host: host, AgentID: e.agentID, Server: serverKey, Level: schema.Low}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	waitListChanged("after the level was lowered")
	if got := s.toolNames(); !slices.Equal(got, []string{"list_issues"}) {
		t.Fatalf("tools/list after lowering to low: %v", got)
	}

	// The one tool left is disabled.
	if _, err := e.st.PutTool(context.Background(), store.Tool{Host: host, Server: serverKey, Name: "list_issues", Level: schema.Low, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	waitListChanged("after the tool was disabled")
	if got := s.toolNames(); len(got) != 0 {
		t.Fatalf("tools/list after disabling list_issues: %v", got)
	}

	// The upstream's own notification (it adds a tool; the policy does not change).
	e.up.SetTool("archive_issue", "Archive an issue.")
	waitListChanged("after the upstream added a tool")
}

// An upstream without a server-to-client stream (it answers the GET 405, as stateless
// servers do): the agent's GET gets the gateway's own stream, which carries the notification.
func TestGatewayStreamForUpstreamsWithoutOne(t *testing.T) {
	e := newEnv(t)
	runNotifier(t, e)
	ctx := context.Background()
	stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.up.Server }, &mcp.StreamableHTTPOptions{Stateless: true})
	e.addServer("archive", stateless, nil)

	s := &rawSession{t: t, endpoint: e.endpoint("archive")}
	s.token = e.token(s.endpoint, nil)
	s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if got := s.toolNames(); !slices.Equal(got, []string{"create_issue", "list_issues"}) {
		t.Fatalf("tools/list at medium: %v", got)
	}
	direct := httptest.NewRecorder()
	stateless.ServeHTTP(direct, httptest.NewRequest(http.MethodGet, "/mcp", nil))
	if direct.Code != http.StatusMethodNotAllowed {
		t.Fatalf("the upstream answers GET %d, want 405 (the case under test)", direct.Code)
	}
	waitListChanged := s.stream() // 200 text/event-stream: the gateway's own

	if _, err := e.st.SetConsent(ctx, store.Consent{Host: host, AgentID: e.agentID, Server: "archive", Level: schema.Low}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	waitListChanged("after the level on archive was lowered")
	if got := s.toolNames(); !slices.Equal(got, []string{"list_issues"}) {
		t.Fatalf("tools/list after lowering to low: %v", got)
	}
}

// An HTTP+SSE upstream: the agent's GET stream is the gateway's own (legacysse.go), and it
// carries trustgate's notification too.
func TestLegacySessionStreamFollowsThePolicy(t *testing.T) {
	e := newEnv(t)
	runNotifier(t, e)
	e.addServer("legacy", mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return e.up.Server }, nil), nil)

	s := &rawSession{t: t, endpoint: e.endpoint("legacy")}
	s.token = e.token(s.endpoint, nil)
	init := s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if !bytes.Contains(init, []byte(`"listChanged":true`)) || s.id == "" {
		t.Fatalf("initialize through a legacy upstream: session %q, answer %s", s.id, init)
	}
	// Ending the session ends the gateway's connection to the upstream, which can then stop.
	t.Cleanup(func() { _ = s.do(http.MethodDelete, "").Body.Close() })
	if resp := s.do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	waitListChanged := s.stream()
	if _, err := e.st.SetConsent(context.Background(), store.Consent{Host: host, AgentID: e.agentID, Server: "legacy", Level: schema.Low}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	waitListChanged("after the level on the legacy server was lowered")
	if got := s.toolNames(); !slices.Equal(got, []string{"list_issues"}) {
		t.Fatalf("tools/list after lowering to low: %v", got)
	}
}

// streamEnd opens the session's GET stream and returns a channel that receives how the stream
// ended (nil: cleanly, as when the upstream closes it), after which it is closed.
func (s *rawSession) streamEnd() <-chan error {
	s.t.Helper()
	get := s.do(http.MethodGet, "")
	if get.StatusCode != http.StatusOK {
		s.t.Fatalf("GET stream: %d", get.StatusCode)
	}
	s.t.Cleanup(func() { _ = get.Body.Close() })
	ended := make(chan error, 1)
	go func() {
		defer close(ended)
		_, err := io.Copy(io.Discard, get.Body)
		ended <- err
	}()
	return ended
}

func waitStreamEnd(t *testing.T, ended <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("%s: the stream broke instead of ending cleanly: %v", what, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: the GET stream is still open", what)
	}
}

// A GET stream carries the upstream's server-to-client messages for as long as it is open: it
// ends (cleanly, so that the client reconnects and is checked again) when the agent is disabled,
// and when the access token it was opened with expires.
func TestAgentStreamEndsWhenItsTokenNoLongerStands(t *testing.T) {
	t.Run("agent disabled", func(t *testing.T) {
		e := newEnv(t)
		runNotifier(t, e)
		s := &rawSession{t: t, endpoint: e.endpoint(serverKey)}
		s.token = e.token(s.endpoint, nil)
		s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		ended := s.streamEnd()
		if _, err := e.st.KillAgent(context.Background(), host, e.agentID); err != nil {
			t.Fatal(err)
		}
		e.sync()
		waitStreamEnd(t, ended, "after the agent was disabled")
		if resp := s.do(http.MethodGet, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a new GET stream of the disabled agent: %d, want 401", resp.StatusCode)
		}
	})
	t.Run("token expired", func(t *testing.T) {
		e := newEnv(t)
		runNotifier(t, e)
		s := &rawSession{t: t, endpoint: e.endpoint(serverKey)}
		s.token = e.token(s.endpoint, func(c *accesstoken.AccessClaims) { c.Expiry = time.Now().Add(3 * time.Second) })
		s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
		ended := s.streamEnd()
		waitStreamEnd(t, ended, "after the token expired")
	})
}
