package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// framedUpstream is the issue tracker behind a front that, when told to, answers the next
// tools/list requests in one framing of its answer (everything else reaches the tracker).
type framedUpstream struct {
	tools map[string]json.RawMessage // the tracker's tool definitions, by name

	mu      sync.Mutex
	framing string
}

// answer writes the tools/list answer to id in the framing, or reports false (not framed).
func (f *framedUpstream) answer(w http.ResponseWriter, id json.RawMessage) bool {
	f.mu.Lock()
	framing := f.framing
	f.mu.Unlock()
	if framing == "" {
		return false
	}
	var entries []string
	for _, name := range mcpserver.Tools {
		entries = append(entries, string(f.tools[name]))
	}
	// An entry a case-insensitive reader takes for list_issues; clients read delete_issue.
	twin := strings.Replace(string(f.tools["delete_issue"]), `"name":"delete_issue"`, `"name":"delete_issue","NAME":"list_issues"`, 1)
	msg := func(entries ...string) string {
		return `{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"tools":[` + strings.Join(entries, ",") + `]}}`
	}
	all := msg(entries...)
	sseAnswer := func(body string) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
	}
	switch framing {
	case "sse-cr":
		sseAnswer("event: message\rdata: " + all + "\r\r")
	case "sse-crlf":
		sseAnswer("event: message\r\ndata: " + all + "\r\n\r\n")
	case "sse-lf":
		sseAnswer("event: message\ndata: " + all + "\n\n")
	case "batch-json":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "["+all+"]")
	case "batch-sse":
		sseAnswer("event: message\ndata: [" + all + "]\n\n")
	case "decoy-event":
		sseAnswer("event: ignored\ndata: " + msg(string(f.tools["list_issues"])) + "\n\nevent: message\ndata: " + all + "\n\n")
	case "twin-key":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, msg(string(f.tools["list_issues"]), twin))
	case "text-500":
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	default:
		http.Error(w, "unknown framing "+framing, http.StatusTeapot)
	}
	return true
}

// startFramedUpstream starts the tracker and its front; the control endpoint is
// <front>/control?framing=NAME.
func startFramedUpstream(t *testing.T) (*framedUpstream, string) {
	t.Helper()
	up := mcpserver.Start(t, "")
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "framings", Version: "1"}, nil).Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: up.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := cs.ListTools(context.Background(), nil)
	_ = cs.Close()
	if err != nil {
		t.Fatal(err)
	}
	f := &framedUpstream{tools: map[string]json.RawMessage{}}
	for _, tool := range list.Tools {
		if f.tools[tool.Name], err = json.Marshal(tool); err != nil {
			t.Fatal(err)
		}
	}
	target, _ := url.Parse(up.URL)
	target.Path = ""
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/control" {
			f.mu.Lock()
			f.framing = r.URL.Query().Get("framing")
			f.mu.Unlock()
			return
		}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(body, &m) == nil && m.Method == "tools/list" && f.answer(w, m.ID) {
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return f, front.URL
}

// TestUpstreamAnswerFramings: an upstream answers tools/list in every framing a client
// accepts — SSE with bare CR, CRLF and LF line ends, a one-element batch as JSON and as SSE
// data, a decoy event clients ignore before the real one, a tool entry with a case-twin key —
// and with a text/plain 500. Through the gateway, the official TypeScript SDK client of a
// low-trust agent never lists a tool above its level, and gets -31003 for the 500; a reader
// following the SSE standard (internal/sse) agrees for the bare-CR stream.
func TestUpstreamAnswerFramings(t *testing.T) {
	_, frontURL := startFramedUpstream(t)
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, frontURL+"/mcp")

	framings := []string{"sse-cr", "sse-crlf", "sse-lf", "batch-json", "batch-sse", "decoy-event", "twin-key", "text-500"}
	stdout := runNode(t, "framings.mjs", "MCP_URL="+p.url+"/h/acme/mcp/tracker", "EMAIL=alice@acme.test", "PASSWORD=correct horse battery staple",
		"TRUST_LEVEL=low", "CONTROL_URL="+frontURL+"/control", "FRAMINGS="+strings.Join(framings, ","))
	var res struct {
		OK    bool `json:"ok"`
		Lists map[string]struct {
			Tools []string `json:"tools"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"lists"`
		Session  string `json:"session"`
		Protocol string `json:"protocol"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || !res.OK {
		t.Fatalf("framings.mjs: %v %s", err, stdout)
	}
	for _, framing := range framings {
		got, ok := res.Lists[framing]
		switch {
		case !ok:
			t.Errorf("%s: no result", framing)
		case framing == "text-500":
			if got.Error == nil || got.Error.Code != -31003 || !strings.Contains(got.Error.Message, "tracker") && !strings.Contains(got.Error.Message, "Issue Tracker") {
				t.Errorf("%s: the client got %+v, want -31003 naming the server", framing, got)
			}
		case framing == "batch-sse" && got.Error != nil && got.Error.Code == -32001:
			// The SDK client does not read a batch in an event's data (it times out); another
			// client may: the raw read below checks what the gateway sent.
		case got.Error != nil:
			t.Errorf("%s: the client got error %+v, want the filtered list", framing, got.Error)
		case !slices.Equal(got.Tools, []string{"list_issues"}):
			t.Errorf("%s: the low agent lists %v, want [list_issues]", framing, got.Tools)
		}
	}

	// The bare-CR stream and the batch in an event, read by a reader that follows the
	// standard, every event and every batch element: the same filtered list.
	for _, framing := range []string{"sse-cr", "batch-sse"} {
		if names := rawList(t, p.url+"/h/acme/mcp/tracker", frontURL, framing, res.Token, res.Session, res.Protocol); !slices.Equal(names, []string{"list_issues"}) {
			t.Errorf("%s read by the standard's rules: %v, want [list_issues]", framing, names)
		}
	}
}

// rawList makes the upstream answer tools/list in framing and lists the tools of the
// gateway's SSE answer as read by internal/sse, from every event and batch element.
func rawList(t *testing.T, endpoint, frontURL, framing, token, session, protocol string) []string {
	t.Helper()
	ctl, _ := http.NewRequest(http.MethodPost, frontURL+"/control?framing="+framing, nil)
	if resp, err := http.DefaultClient.Do(ctl); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":77,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", protocol)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: tools/list: %d %s %s", framing, resp.StatusCode, ct, body)
	}
	r := sse.NewReader(resp.Body, 1<<24)
	var names []string
	for {
		ev, err := r.Next()
		if err != nil {
			return names
		}
		var msgs []json.RawMessage
		if json.Unmarshal(ev.Data, &msgs) != nil {
			msgs = []json.RawMessage{ev.Data}
		}
		for _, data := range msgs {
			var m struct {
				Result struct {
					Tools []struct {
						Name string `json:"name"`
					} `json:"tools"`
				} `json:"result"`
			}
			if json.Unmarshal(data, &m) == nil {
				for _, tool := range m.Result.Tools {
					names = append(names, tool.Name)
				}
			}
		}
	}
}
