package tests

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds the access token to every request, as an MCP client does after OAuth.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// connectSDK connects the official Go SDK client to resource with token (the session is
// closed when the test ends).
func connectSDK(ctx context.Context, t *testing.T, resource, token string) *mcp.ClientSession {
	t.Helper()
	mc := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	session, err := mc.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource,
		HTTPClient: &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

// toolNamesOf lists the session's tools, sorted by name.
func toolNamesOf(ctx context.Context, t *testing.T, session *mcp.ClientSession) []string {
	t.Helper()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// TestMCPClientThroughOAuthAndProxy is the whole product through the real binary: an admin
// imports a server and grants a human; an MCP client registers, the human signs in and
// consents at medium, the client gets a token and calls tools through the gateway — allowed,
// denied, filtered — and the kill switch stops the very next call.
func TestMCPClientThroughOAuthAndProxy(t *testing.T) {
	s := setupTracker(t)
	p, admin := s.p, s.admin
	issuer := p.url + "/h/acme"
	resource := s.resource

	// Without a token the MCP endpoint tells the client where to authenticate.
	resp, err := http.Post(resource, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+p.url+"/.well-known/oauth-protected-resource/h/acme/mcp/tracker") {
		t.Fatalf("unauthenticated MCP request = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// Dynamic client registration, sign-in (claiming the pre-authorized account) and consent
	// at medium, token.
	accessToken := connectAgent(t, p.url, issuer, resource, s.email, s.password, "medium")

	// The MCP client, with its token, through the gateway.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	session := connectSDK(ctx, t, resource, accessToken)
	if names := toolNamesOf(ctx, t, session); !slices.Equal(names, []string{"create_issue", "list_issues"}) {
		t.Fatalf("tools/list through the gateway = %v, want the medium and low tools only", names)
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "hello"}})
	if err != nil || res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "create_issue called: hello") {
		t.Fatalf("allowed call: %+v %v", res, err)
	}
	if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok || !strings.Contains(text, "delete_issue") || !strings.Contains(text, "high") {
		t.Fatalf("denied call: ok=%v %q", ok, text)
	}

	// The decisions and the authorization checks behind them are in the metrics.
	_, metrics := getJSON(t, s.metrics)
	for _, want := range []string{
		`trustgate_decisions_total{decision="allowed",host="acme",method="tools/call"`,
		`trustgate_decisions_total{decision="denied",host="acme",method="tools/call"`,
		`trustgate_authz_duration_seconds_count{operation="check",outcome="ok"`,
		`trustgate_authz_duration_seconds_count{operation="lookup",outcome="ok"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	// Kill switch: the very next call is denied.
	var agents []struct {
		ID string `json:"id"`
	}
	cliJSON(t, p, admin, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 1 {
		t.Fatalf("agents after consent: %+v", agents)
	}
	cli(t, p, admin, "agent", "kill", agents[0].ID, "--yes", "--host", "acme")
	if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "list_issues"}); err == nil {
		t.Fatal("a killed agent's next call went through")
	}
}
