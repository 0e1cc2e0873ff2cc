// Package testmcp runs real MCP servers (the official Go SDK over Streamable HTTP) for tests:
// an issue tracker whose tools span the three trust levels and whose definitions a test can
// change, as an upstream would.
package testmcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
}

// Tools of the issue tracker, one per level by the name rule.
var Tools = []string{"list_issues", "create_issue", "delete_issue"}

// Start serves an issue tracker. When bearer is set, requests without
// "Authorization: Bearer <bearer>" get 401.
func Start(t testing.TB, bearer string) *Upstream {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "Issue Tracker", Version: "1.0.0"}, nil)
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
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " called: " + in.Title + in.ID}}}, nil, nil
	})
}

// RemoveTool removes a tool.
func (u *Upstream) RemoveTool(name string) { u.Server.RemoveTools(name) }
