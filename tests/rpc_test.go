package tests

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// rawPost sends one JSON-RPC body to the MCP endpoint within the agent's session, as a client
// that writes its own JSON would, and returns the status and the body.
func rawPost(t *testing.T, endpoint, token, session, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readAll(resp)
}

// TestSmuggledToolCallIsRefused: a low agent disguises a call of the high tool delete_issue as
// the low list_issues, with keys that Go's encoding/json reads case-insensitively (with Unicode
// folding, last match winning) and the upstream (the official Go SDK) reads exactly. Every
// variant is refused with -32600, never reaches the upstream, and is audited as denied; the
// same raw request written plainly goes through.
func TestSmuggledToolCallIsRefused(t *testing.T) {
	s := setupTracker(t)
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "low")
	session := mcpSession(t, s.resource, token, func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true })

	// The control: the raw request, written plainly, reaches the upstream in this session.
	status, body := rawPost(t, s.resource, token, session.ID(),
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_issues","arguments":{"title":"plain"}}}`)
	if status != http.StatusOK || !strings.Contains(body, "list_issues called: plain") {
		t.Fatalf("plain list_issues = %d %s", status, body)
	}

	variants := map[string]string{
		"Name after name":      `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_issue","Name":"list_issues","arguments":{"id":"1"}}}`,
		"METHOD ping":          `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}},"METHOD":"ping"}`,
		"a second PARAMS":      `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}},"PARAMS":{"name":"list_issues"}}`,
		"paramſ (long s)":      `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}},"paramſ":{"name":"list_issues"}}`,
		"escaped long s":       `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}},"param\u017f":{"name":"list_issues"}}`,
		"duplicate name":       `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"},"name":"list_issues"}}`,
		"escaped duplicate":    `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"},"\u006eame":"list_issues"}}`,
		"duplicate method":     `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}},"method":"ping"}`,
		"fractional id":        `{"jsonrpc":"2.0","id":10.5,"method":"tools/call","params":{"name":"list_issues"}}`,
		"duplicate id":         `{"jsonrpc":"2.0","id":11,"id":"eleven","method":"tools/call","params":{"name":"list_issues"}}`,
		"fold twin in nesting": `{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"list_issues","arguments":{"title":"a","TITLE":"b"}}}`,
	}
	for name, v := range variants {
		status, body := rawPost(t, s.resource, token, session.ID(), v)
		var resp struct {
			ID    any `json:"id"`
			Error struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil || status != http.StatusBadRequest || resp.Error.Code != -32600 || resp.ID != nil {
			t.Errorf("%s: %d %s, want 400 with a -32600 error without id", name, status, body)
		}
	}
	if calls := s.up.Calls(); slices.Contains(calls, "delete_issue") || len(calls) != 1 {
		t.Errorf("the upstream ran %v; want the one plain list_issues only", calls)
	}

	var entries []struct {
		Decision string `json:"decision"`
		Tool     string `json:"tool"`
		Reason   string `json:"reason"`
	}
	cliJSON(t, s.p, s.admin, &entries, "audit", "list", "--host", "acme", "--all")
	refused := 0
	for _, e := range entries {
		if e.Decision == "allowed" && e.Tool == "delete_issue" {
			t.Errorf("delete_issue audited as allowed: %+v", e)
		}
		if e.Decision == "denied" && strings.HasPrefix(e.Reason, "invalid request") {
			refused++
		}
	}
	if refused != len(variants) {
		t.Errorf("%d refusals audited for %d smuggled messages: %+v", refused, len(variants), entries)
	}
}

// TestDenialIsAnOrdinaryErrorForTheGoSDK: on a host that answers denials with JSON-RPC errors,
// the official Go SDK client gets a denied tools/call as an ordinary JSON-RPC error with
// trustgate's code -31001, not as a closed connection (the SDK reserves -32003/-32004 for
// that), and the same session goes on with an allowed call.
func TestDenialIsAnOrdinaryErrorForTheGoSDK(t *testing.T) {
	s := setupTracker(t)
	cli(t, s.p, s.admin, "host", "update", "acme", "--denial-format", "jsonrpc_error")
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "medium")
	session := mcpSession(t, s.resource, token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "delete_issue", Arguments: map[string]any{"id": "1"}})
	if err == nil {
		t.Fatal("delete_issue (high) was allowed to a medium agent")
	}
	if errors.Is(err, mcp.ErrConnectionClosed) {
		t.Fatalf("the denial reads as a closed connection: %v", err)
	}
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != -31001 || !strings.Contains(rpcErr.Message, "delete_issue") {
		t.Fatalf("denial = %#v (%v), want a JSON-RPC error with code -31001 naming the tool", rpcErr, err)
	}

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "after"}})
	if err != nil || res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "create_issue called: after") {
		t.Fatalf("allowed call in the same session after the denial: %+v %v", res, err)
	}
	if _, err := session.ListTools(ctx, nil); err != nil {
		t.Fatalf("the session after the denial: %v", err)
	}
}
