package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

// registerClient registers a public MCP client at the host's authorization server (issuer)
// by RFC 7591 and returns its OAuth configuration (redirect to a loopback callback).
func registerClient(t *testing.T, issuer, name string) *oauth2.Config {
	t.Helper()
	redirect := "http://127.0.0.1:33418/callback"
	reg, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	if body := readAll(resp); resp.StatusCode != 201 || json.Unmarshal([]byte(body), &client) != nil {
		t.Fatalf("register = %d %s", resp.StatusCode, body)
	}
	return &oauth2.Config{ClientID: client.ClientID, RedirectURL: redirect, Scopes: []string{"mcp"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// connectAgent registers a new public client at the host's authorization server (issuer), plays
// the human through sign-in and consent at level on the gateway at browserURL, exchanges the
// code and returns the access token for resource.
func connectAgent(t *testing.T, browserURL, issuer, resource, email, password, level string) string {
	t.Helper()
	_, tok := connectAgentTokens(t, browserURL, issuer, resource, email, password, level)
	return tok.AccessToken
}

// connectAgentTokens is connectAgent returning the client and all its tokens (the refresh
// token too).
func connectAgentTokens(t *testing.T, browserURL, issuer, resource, email, password, level string) (*oauth2.Config, *oauth2.Token) {
	t.Helper()
	conf := registerClient(t, issuer, "e2e agent")
	verifier := oauth2.GenerateVerifier()
	b := webclient.New(t, browserURL)
	page := b.Get(conf.AuthCodeURL("e2e-state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	page = b.Submit(page, map[string]string{"email": email, "password": password})
	if !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("after sign-in: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"trust_level": level, "decision": "allow"})
	if page.Loc == nil || page.Loc.Query().Get("code") == "" || page.Loc.Query().Get("iss") != issuer || page.Loc.Query().Get("state") != "e2e-state-1" {
		t.Fatalf("consent redirect = %v (%d %s), want code, state and iss=%s", page.Loc, page.Status, page.Body, issuer)
	}
	tok, err := conf.Exchange(context.Background(), page.Loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	return conf, tok
}

// mcpSession connects the official Go SDK client to endpoint with token; opts adjust its
// transport.
func mcpSession(t *testing.T, endpoint, token string, opts ...func(*mcp.StreamableClientTransport)) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil)
	transport := &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}}
	for _, opt := range opts {
		opt(transport)
	}
	session, err := mc.Connect(ctx, transport, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

// callText calls a tool and returns its text, or the error's text (a JSON-RPC error, or a
// tool result with isError).
func callText(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return err.Error(), false
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	return strings.Join(text, " "), !res.IsError
}
