// Package mcpserver runs real MCP servers (the official Go SDK over Streamable HTTP) for tests:
// an issue tracker whose tools span the three trust levels and whose definitions a test can
// change, as an upstream would.
package mcpserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// IssueInput is the input of the issue tools.
type IssueInput struct {
	Title string `json:"title,omitempty" jsonschema:"the issue's title"`
	ID    string `json:"id,omitempty" jsonschema:"the issue's id"`
}

// Upstream is a running MCP server.
type Upstream struct {
	Server *mcp.Server
	URL    string // the Streamable HTTP endpoint

	mu    sync.Mutex
	calls []string // tools called, in order
}

// Calls lists the tools called so far, in order (what reached the upstream).
func (u *Upstream) Calls() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.calls...)
}

func (u *Upstream) record(tool string) {
	u.mu.Lock()
	u.calls = append(u.calls, tool)
	u.mu.Unlock()
}

// Tools of the issue tracker, one per level by the name rule.
var Tools = []string{"list_issues", "create_issue", "delete_issue"}

// Start serves an issue tracker. When bearer is set, requests without
// "Authorization: Bearer <bearer>" get 401.
func Start(t testing.TB, bearer string) *Upstream {
	t.Helper()
	return start(t, bearer, nil)
}

// StartWithoutListChanged serves the issue tracker with a tools capability that does not
// declare listChanged, as a server whose tools never change does.
func StartWithoutListChanged(t testing.TB, bearer string) *Upstream {
	t.Helper()
	return start(t, bearer, &mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}})
}

func start(t testing.TB, bearer string, opts *mcp.ServerOptions) *Upstream {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "Issue Tracker", Version: "1.0.0"}, opts)
	u := &Upstream{Server: srv}
	for _, name := range Tools {
		u.SetTool(name, "Tool "+name+" of the issue tracker.")
	}
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	if bearer != "" {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+bearer {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	u.URL = ts.URL + "/mcp"
	return u
}

// SetTool adds a tool, or replaces its definition (as an upstream changing a tool does).
func (u *Upstream) SetTool(name, description string) {
	mcp.AddTool(u.Server, &mcp.Tool{Name: name, Description: description}, func(_ context.Context, _ *mcp.CallToolRequest, in IssueInput) (*mcp.CallToolResult, any, error) {
		u.record(name)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " called: " + in.Title + in.ID}}}, nil, nil
	})
}

// SetToolSchema adds a tool, or replaces its definition, with its own input schema (a JSON
// Schema object): an upstream changing what a tool asks for. A call answers with its arguments.
func (u *Upstream) SetToolSchema(name, description string, inputSchema map[string]any) {
	u.Server.AddTool(&mcp.Tool{Name: name, Description: description, InputSchema: inputSchema}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		u.record(name)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " called with " + string(req.Params.Arguments)}}}, nil
	})
}

// RemoveTool removes a tool.
func (u *Upstream) RemoveTool(name string) { u.Server.RemoveTools(name) }

// PurgeTool is added by AddOutputSchemaTool: a tool that declares an outputSchema (an object
// with one required integer, purged, and nothing else) and answers with structuredContent that
// matches it. High by the name rule.
const PurgeTool = "purge_issues"

// PurgeOutput is PurgeTool's structured result.
type PurgeOutput struct {
	Purged int `json:"purged" jsonschema:"how many issues were purged"`
}

// AddOutputSchemaTool adds PurgeTool.
func (u *Upstream) AddOutputSchemaTool() {
	mcp.AddTool(u.Server, &mcp.Tool{Name: PurgeTool, Description: "Purge closed issues."}, func(_ context.Context, _ *mcp.CallToolRequest, _ IssueInput) (*mcp.CallToolResult, PurgeOutput, error) {
		u.record(PurgeTool)
		return nil, PurgeOutput{Purged: 3}, nil
	})
}

// ElicitTool is added by AddElicitationTool: listed only to clients that declare the
// elicitation capability (as some servers do, server-everything among them), it asks the
// client to elicit a title and answers with what the client returned. Low by the name rule.
const ElicitTool = "ask_issue_title"

// AddElicitationTool adds ElicitTool, hidden from the tools/list of a session whose client did
// not declare elicitation.
func (u *Upstream) AddElicitationTool() {
	mcp.AddTool(u.Server, &mcp.Tool{Name: ElicitTool, Description: "Ask the user for an issue title."}, func(ctx context.Context, req *mcp.CallToolRequest, _ IssueInput) (*mcp.CallToolResult, any, error) {
		u.record(ElicitTool)
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "Title of the new issue?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, fmt.Errorf("elicitation: %w", err)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s: %s %v", ElicitTool, res.Action, res.Content["title"])}}}, nil, nil
	})
	u.Server.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			list, ok := res.(*mcp.ListToolsResult)
			if method != "tools/list" || err != nil || !ok {
				return res, err
			}
			ss, _ := req.GetSession().(*mcp.ServerSession)
			if ss != nil && ss.InitializeParams() != nil && ss.InitializeParams().Capabilities != nil && ss.InitializeParams().Capabilities.Elicitation != nil {
				return res, nil
			}
			shown := *list
			shown.Tools = nil
			for _, t := range list.Tools {
				if t.Name != ElicitTool {
					shown.Tools = append(shown.Tools, t)
				}
			}
			return &shown, nil
		}
	})
}

// Streaming tools added by AddStreamingTools (both low by the name rule).
const (
	// WatchTool sends WatchSteps progress notifications, WatchInterval apart, before answering.
	WatchTool = "watch_issue"
	// SlowTool answers after the duration in its input's title (Go syntax, e.g. "1500ms").
	SlowTool = "slow_search"
)

// Progress of WatchTool.
const (
	WatchSteps    = 4
	WatchInterval = 400 * time.Millisecond
)

// AddStreamingTools adds WatchTool and SlowTool: a tool that streams progress notifications
// while it works (to the progress token of the call, when the client sent one) and a tool
// that takes its time.
func (u *Upstream) AddStreamingTools() {
	mcp.AddTool(u.Server, &mcp.Tool{Name: WatchTool, Description: "Watch an issue, reporting progress."}, func(ctx context.Context, req *mcp.CallToolRequest, in IssueInput) (*mcp.CallToolResult, any, error) {
		token := req.Params.GetProgressToken()
		for i := range WatchSteps {
			if token != nil {
				err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
					ProgressToken: token, Progress: float64(i + 1), Total: WatchSteps,
					Message: fmt.Sprintf("step %d of %d", i+1, WatchSteps),
				})
				if err != nil {
					return nil, nil, err
				}
			}
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(WatchInterval):
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: WatchTool + " done: " + in.ID}}}, nil, nil
	})
	mcp.AddTool(u.Server, &mcp.Tool{Name: SlowTool, Description: "Search slowly."}, func(ctx context.Context, _ *mcp.CallToolRequest, in IssueInput) (*mcp.CallToolResult, any, error) {
		d, err := time.ParseDuration(in.Title)
		if err != nil || d < 0 || d > time.Minute {
			return nil, nil, fmt.Errorf("title must be a duration up to 1m, got %q", in.Title)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(d):
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s done after %s", SlowTool, d)}}}, nil, nil
	})
}

// PlantedTool is added by AddPlantedTool: a tool whose result carries a planted secret and
// planted personal data, as a careless upstream's might (low by the name rule).
const PlantedTool = "list_customers"

// The values PlantedTool's result carries: an AWS access key id (AWS's documented example)
// and a test card number that passes the Luhn check.
const (
	PlantedAWSKey = "AKIAIOSFODNN7EXAMPLE"
	PlantedCard   = "4111 1111 1111 1111"
)

// AddPlantedTool adds PlantedTool.
func (u *Upstream) AddPlantedTool() {
	mcp.AddTool(u.Server, &mcp.Tool{Name: PlantedTool, Description: "List the customers of an account."}, func(_ context.Context, _ *mcp.CallToolRequest, _ IssueInput) (*mcp.CallToolResult, any, error) {
		u.record(PlantedTool)
		text := fmt.Sprintf(`[{"name":"Jane Roe","card":%q,"note":"billing export uses key %s"}]`, PlantedCard, PlantedAWSKey)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
}
