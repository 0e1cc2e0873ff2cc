package discovery

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/ssrf"
)

// startMCP serves srv over Streamable HTTP on a test server, with wrap (if set) in front, and
// returns the endpoint URL.
func startMCP(t *testing.T, srv *mcp.Server, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// startHTTP serves h on a test server and returns its URL with path /mcp.
func startHTTP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

func newServer(opts *mcp.ServerOptions) *mcp.Server {
	return mcp.NewServer(&mcp.Implementation{Name: "test-server", Version: "0.0.1"}, opts)
}

// addTool registers a tool whose input is In; the handler is never called by discovery.
func addTool[In any](srv *mcp.Server, tool *mcp.Tool) {
	mcp.AddTool(srv, tool, func(context.Context, *mcp.CallToolRequest, In) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	})
}

type noInput struct{}

// countToolsList counts the tools/list requests that pass through it.
func countToolsList(n *atomic.Int32) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				body, _ := io.ReadAll(r.Body)
				if strings.Contains(string(body), `"method":"tools/list"`) {
					n.Add(1)
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			next.ServeHTTP(w, r)
		})
	}
}

// testOptions returns Options with a short timeout for tests.
func testOptions() Options { return Options{Timeout: 5 * time.Second, Policy: ssrf.AllowAll()} }

func ptr[T any](v T) *T { return &v }
