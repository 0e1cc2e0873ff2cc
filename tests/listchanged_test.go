package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestTypeScriptSDKToolListFollowsThePolicy: the official TypeScript SDK client, with its
// listChanged option, connected through the binary to an upstream that does not declare
// tools.listChanged: trustgate declares it, and the client is notified, and fetches the new
// policy's list, after `admin agent set-level` and after `admin tool update … --disable`.
func TestTypeScriptSDKToolListFollowsThePolicy(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--metrics-listen", "")
	up := mcpserver.StartWithoutListChanged(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, token, up.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := nodeCommand(ctx, t, "listchanged.mjs", "MCP_URL="+p.url+"/h/acme/mcp/tracker",
		"EMAIL=alice@acme.test", "PASSWORD=correct horse battery staple", "TRUST_LEVEL=high", "CHANGES=2")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	type step struct {
		Step     string   `json:"step"`
		Declared bool     `json:"declared"`
		Tools    []string `json:"tools"`
		OK       bool     `json:"ok"`
	}
	lines := bufio.NewScanner(stdout)
	next := func(want string) step {
		t.Helper()
		for lines.Scan() {
			var s step
			if json.Unmarshal(lines.Bytes(), &s) == nil && s.Step != "" {
				t.Logf("listchanged.mjs: %s", lines.Text())
				if s.Step != want {
					t.Fatalf("listchanged.mjs step %q, want %q", s.Step, want)
				}
				return s
			}
		}
		_ = cmd.Wait()
		t.Fatalf("listchanged.mjs ended before step %q\nstderr:\n%s", want, stderr.String())
		return step{}
	}

	ready := next("ready")
	if !ready.Declared {
		t.Fatal("the client did not see tools.listChanged declared")
	}
	if got := strings.Join(ready.Tools, ","); got != "create_issue,delete_issue,list_issues" {
		t.Fatalf("tools at high: %s", got)
	}
	var agents []admin.Agent
	cliJSON(t, p, token, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 1 {
		t.Fatalf("agents: %+v", agents)
	}

	changedAt := time.Now()
	cli(t, p, token, "agent", "set-level", agents[0].ID, "tracker", "medium", "--host", "acme")
	if got := strings.Join(next("changed").Tools, ","); got != "create_issue,list_issues" {
		t.Fatalf("the list the client fetched after set-level medium: %s", got)
	}
	t.Logf("set-level: the client had the new list %v after the CLI started", time.Since(changedAt).Round(time.Millisecond))

	changedAt = time.Now()
	cli(t, p, token, "tool", "update", "tracker", "create_issue", "--disable", "--host", "acme")
	if got := strings.Join(next("changed").Tools, ","); got != "list_issues" {
		t.Fatalf("the list the client fetched after disabling create_issue: %s", got)
	}
	t.Logf("tool update --disable: the client had the new list %v after the CLI started", time.Since(changedAt).Round(time.Millisecond))
	if !next("done").OK {
		t.Fatal("listchanged.mjs did not finish")
	}
}

// TestToolListChangeReachesEveryReplica: the agent holds its GET stream on replica p2; its
// level is changed through the admin API of replica p1; p2 sends the notification (it sees
// the change through the shared database's control-plane generation), and the next tools/list
// on p2 is the new policy's.
func TestToolListChangeReachesEveryReplica(t *testing.T) {
	rp := startReplicaPair(t)
	issuer := rp.lb.URL + "/h/acme"
	conf, code, verifier := authorizeCode(t, rp.lb.URL, issuer, issuer+"/mcp/tracker", "alice@acme.test", "correct horse battery staple")
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}

	s := &wireSession{t: t, endpoint: rp.p2.url + "/h/acme/mcp/tracker", token: tok.AccessToken}
	s.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"replica","version":"1"}}}`)
	s.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if got := s.toolNames(); !slices.Equal(got, []string{"create_issue", "list_issues"}) {
		t.Fatalf("tools at medium on p2: %v", got)
	}
	events := s.stream()

	var agents []admin.Agent
	cliJSON(t, rp.p1, rp.admin, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 1 {
		t.Fatalf("agents: %+v", agents)
	}
	cli(t, rp.p1, rp.admin, "agent", "set-level", agents[0].ID, "tracker", "low", "--host", "acme")
	deadline := time.After(20 * time.Second)
	for notified := false; !notified; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("p2 ended the GET stream")
			}
			notified = strings.Contains(ev, `"notifications/tools/list_changed"`)
		case <-deadline:
			t.Fatal("p2 sent no notifications/tools/list_changed within 20 s of the change on p1")
		}
	}
	if got := s.toolNames(); !slices.Equal(got, []string{"list_issues"}) {
		t.Fatalf("tools on p2 after set-level low on p1: %v", got)
	}
}

// wireSession speaks Streamable HTTP (2025-06-18) to one endpoint by hand.
type wireSession struct {
	t        *testing.T
	endpoint string
	token    string
	id       string // Mcp-Session-Id
}

func (s *wireSession) request(method, body string) *http.Response {
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
	req.Header.Set("Content-Type", "application/json")
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

// post sends one message and returns its JSON-RPC answer (nil for a notification).
func (s *wireSession) post(body string) []byte {
	s.t.Helper()
	resp := s.request(http.MethodPost, body)
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("POST %s: %d %s", body, resp.StatusCode, readAll(resp))
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

func (s *wireSession) toolNames() []string {
	s.t.Helper()
	var res struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	data := s.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
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

// stream opens the session's GET stream and returns the data of its events; the channel is
// closed when the stream ends. The stream is closed when the test ends.
func (s *wireSession) stream() <-chan string {
	s.t.Helper()
	resp := s.request(http.MethodGet, "")
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET stream: %d %s", resp.StatusCode, readAll(resp))
	}
	s.t.Cleanup(func() { _ = resp.Body.Close() })
	events := make(chan string, 16)
	go func() {
		defer close(events)
		r := sse.NewReader(resp.Body, 1<<20)
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
	return events
}
