package tests

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestToolsListedOnlyToCapableClients: an upstream (Go SDK) lists a tool only to clients that
// declare elicitation. `admin server import` discovers it and says that it depends on the
// client; through the gateway an agent whose client declares elicitation sees it and, calling
// it, answers the upstream's elicitation request passed through by the gateway; an agent whose
// client declares nothing does not see it.
func TestToolsListedOnlyToCapableClients(t *testing.T) {
	s := setupTrackerWith(t, func(up *mcpserver.Upstream) { up.AddElicitationTool() })
	out := cli(t, s.p, s.admin, "server", "sync", "tracker", "--host", "acme")
	if !strings.Contains(out, "Note:") || !strings.Contains(out, mcpserver.ElicitTool) || !strings.Contains(out, "elicitation") {
		t.Fatalf("server sync does not say the tool list depends on the client:\n%s", out)
	}
	cli(t, s.p, s.admin, "tool", "update", "tracker", mcpserver.ElicitTool, "--enable", "--host", "acme")
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "medium")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	asked := make(chan string, 1)
	capable := mcp.NewClient(&mcp.Implementation{Name: "e2e-capable", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			asked <- req.Params.Message
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"title": "from the human"}}, nil
		},
	})
	session, err := capable.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.resource,
		HTTPClient: &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	if names := toolNames(t, session); !slices.Contains(names, mcpserver.ElicitTool) {
		t.Fatalf("a client declaring elicitation sees %v through the gateway, want %s", names, mcpserver.ElicitTool)
	}
	text, ok := callText(t, session, mcpserver.ElicitTool, nil)
	if !ok || !strings.Contains(text, "accept from the human") {
		t.Fatalf("call with elicitation through the gateway: %s", text)
	}
	select {
	case msg := <-asked:
		if !strings.Contains(msg, "Title") {
			t.Errorf("elicitation message %q", msg)
		}
	default:
		t.Fatal("the upstream's elicitation request did not reach the agent")
	}

	plain := mcpSession(t, s.resource, token)
	if names := toolNames(t, plain); slices.Contains(names, mcpserver.ElicitTool) || len(names) == 0 {
		t.Fatalf("a client declaring no elicitation sees %v", names)
	}
}

func toolNames(t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}
