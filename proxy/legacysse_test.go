package proxy_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestLegacyUpstream: an upstream that speaks only the 2024-11-05 HTTP+SSE transport (the
// go-sdk's SSE handler) is reached through the documented fallback, while the client keeps
// speaking Streamable HTTP to the gateway, with the same enforcement.
func TestLegacyUpstream(t *testing.T) {
	e := newEnv(t)
	up := e.addServer("legacy", mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return e.up.Server }, nil), nil)
	cs := connect(t, e.endpoint("legacy"), e.token(e.endpoint("legacy"), nil))
	if v := cs.InitializeResult().ProtocolVersion; v >= "2026-07-28" {
		t.Errorf("negotiated %q with a legacy server", v)
	}

	list, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list through a legacy upstream: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"create_issue", "list_issues"}) {
		t.Errorf("tools/list = %v, want create_issue, list_issues", names)
	}
	if got, err := callText(t, cs, "create_issue", map[string]any{"title": "old"}); err != nil || got != "create_issue called: old" {
		t.Errorf("allowed call: %q %v", got, err)
	}
	before := up.calls.Load()
	if _, err := callText(t, cs, "delete_issue", nil); err == nil || !strings.Contains(err.Error(), "needs trust level high") {
		t.Errorf("denied call: %v", err)
	}
	if up.calls.Load() != before {
		t.Error("a denied call reached the legacy upstream")
	}

	// A second session (the server is known to be legacy now) works the same way, and the
	// server's notifications reach the client on its GET stream.
	changed := make(chan struct{}, 1)
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	tr := &mcp.StreamableClientTransport{Endpoint: e.endpoint("legacy"), MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{e.token(e.endpoint("legacy"), nil), http.DefaultTransport}}}
	cs2, err := client.Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("second session: %v", err)
	}
	defer cs2.Close()
	if got, err := callText(t, cs2, "list_issues", nil); err != nil || got != "list_issues called: " {
		t.Errorf("second session: %q %v", got, err)
	}
	e.up.SetTool("new_tool", "A tool added while connected.")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Error("notifications/tools/list_changed from the legacy server did not reach the client")
	}
}

// TestLegacyServerUpgraded: a server remembered as HTTP+SSE that now speaks Streamable HTTP is
// probed again at the next initialize and reached directly.
func TestLegacyServerUpgraded(t *testing.T) {
	e := newEnv(t)
	var upgraded atomic.Bool
	sse := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return e.up.Server }, nil)
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.up.Server }, nil)
	e.addServer("moving", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if upgraded.Load() {
			streamable.ServeHTTP(w, r)
			return
		}
		sse.ServeHTTP(w, r)
	}), nil)
	cs := connect(t, e.endpoint("moving"), e.token(e.endpoint("moving"), nil))
	if _, err := callText(t, cs, "list_issues", nil); err != nil {
		t.Fatalf("as a legacy server: %v", err)
	}
	upgraded.Store(true)
	cs2 := connect(t, e.endpoint("moving"), e.token(e.endpoint("moving"), nil))
	if got, err := callText(t, cs2, "create_issue", map[string]any{"title": "new"}); err != nil || got != "create_issue called: new" {
		t.Fatalf("after the upgrade: %q %v", got, err)
	}
}
