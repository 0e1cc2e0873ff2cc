package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tools of the upstream server.
const (
	// ToolEcho answers its text (level low: allowed for the benchmark's agent).
	ToolEcho = "echo"
	// ToolLarge answers about LargeBytes of text (level low).
	ToolLarge = "read_large"
	// ToolDenied is level high, above the agent's consent: every call is denied.
	ToolDenied = "delete_everything"
	// LargeBytes is the size of ToolLarge's answer.
	LargeBytes = 64 << 10
)

// EchoInput is the input of the upstream's tools.
type EchoInput struct {
	Text string `json:"text,omitempty" jsonschema:"text to echo"`
}

// Upstream is an MCP server (the official Go SDK over Streamable HTTP, JSON or SSE responses)
// on a loopback port.
type Upstream struct {
	URL string // the MCP endpoint
	srv *http.Server
}

// StartUpstream serves UpstreamHandler(extra, sse) on a loopback port.
func StartUpstream(extra int, sse bool) (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	u := &Upstream{URL: "http://" + ln.Addr().String() + "/mcp", srv: &http.Server{Handler: UpstreamHandler(extra, sse), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = u.srv.Serve(ln) }() // a failure shows in the benchmark's calls
	return u, nil
}

// UpstreamHandler is the upstream MCP server: echo, read_large and delete_everything, and extra
// tools more (half of them high, so that a tools/list through the gateway filters them out) to
// make a large tools/list. It answers each POST with application/json, or with sse a
// text/event-stream of one event (as the official SDKs do by default).
func UpstreamHandler(extra int, sse bool) http.Handler {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench upstream", Version: "1.0.0"}, nil)
	large := strings.Repeat("0123456789abcdef", LargeBytes/16)
	add := func(name, desc string, answer func(EchoInput) string) {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: desc}, func(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: answer(in)}}}, nil, nil
		})
	}
	add(ToolEcho, "Echoes its text.", func(in EchoInput) string { return in.Text })
	add(ToolLarge, "Reads a large document.", func(EchoInput) string { return large })
	add(ToolDenied, "Deletes everything.", func(EchoInput) string { return "deleted" })
	for i := range extra {
		name := fmt.Sprintf("lookup_%03d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("delete_%03d", i)
		}
		add(name, "Tool "+name+" of the benchmark, with a description of realistic length for a tools/list answer.", func(in EchoInput) string { return in.Text })
	}
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: !sse})
}

// Close stops the server.
func (u *Upstream) Close() error { return u.srv.Close() }
