package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// deniedEntry is what a denied tools/call's audit entry says.
type deniedEntry struct {
	Decision      string `json:"decision"`
	Reason        string `json:"reason"`
	Server        string `json:"server"`
	Tool          string `json:"tool"`
	Method        string `json:"method"`
	AgentID       string `json:"agent_id"`
	UserID        string `json:"user_id"`
	ClientID      string `json:"client_id"`
	RequiredLevel string `json:"required_level"`
	AgentLevel    string `json:"agent_level"`
	Ceiling       string `json:"ceiling"`
}

// TestDeniedCallReachesTheModel: through the real binary, with the official Go SDK client, a
// denied tools/call is by default a tool result with isError (no error): the text tells the
// model what is needed and who can provide it, structuredContent carries the stable fields,
// and the session goes on (a following allowed call succeeds); a client that accepts only an
// event stream gets the same result as an SSE event. With the host set to jsonrpc_error
// (admin host update --denial-format) the -31001 error arrives instead. Denials of anything
// but a tools/call stay JSON-RPC errors, and the audit entry is the same in both formats.
func TestDeniedCallReachesTheModel(t *testing.T) {
	s := setupTracker(t)
	token := connectAgent(t, s.p.url, s.p.url+"/h/acme", s.resource, s.email, s.password, "medium")
	session := mcpSession(t, s.resource, token)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "delete_issue", Arguments: map[string]any{"id": "1"}})
	if err != nil || !res.IsError || len(res.Content) != 1 {
		t.Fatalf("denied call = %+v, %v; want a tool result with isError", res, err)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if want := `trustgate denied the tool "delete_issue" on tracker: it needs trust level high; this agent has medium. ` +
		"Ask the person who connected it to reconnect and grant high, or ask an administrator."; text != want {
		t.Errorf("denied call's text\n got %q\nwant %q", text, want)
	}
	wantFields := map[string]any{"reason": "level_too_low", "required_level": "high", "agent_level": "medium", "ceiling": "high"}
	if fields, _ := res.StructuredContent.(map[string]any); !maps.Equal(fields, wantFields) {
		t.Errorf("denied call's structuredContent %#v, want %v", res.StructuredContent, wantFields)
	}
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "after"}); !ok || !strings.Contains(text, "create_issue called: after") {
		t.Fatalf("allowed call in the same session after the denial: %q", text)
	}

	// A client that accepts only an event stream gets the result as an SSE event, same id.
	req, _ := http.NewRequest(http.MethodPost, s.resource, strings.NewReader(toolCall("delete_issue")))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session.ID())
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	ev, err := sse.NewReader(strings.NewReader(body), 1<<20).Next()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || err != nil ||
		!bytes.HasPrefix(ev.Data, []byte(`{"jsonrpc":"2.0","id":7,"result":{`)) || !bytes.Contains(ev.Data, []byte(`"isError":true`)) {
		t.Errorf("denied call, event stream only: %d %s %q (%v)", resp.StatusCode, resp.Header.Get("Content-Type"), body, err)
	}

	// The host wants JSON-RPC errors: the old -31001 error arrives, and the session goes on.
	cli(t, s.p, s.admin, "host", "update", "acme", "--denial-format", "jsonrpc_error")
	var h admin.Host
	cliJSON(t, s.p, s.admin, &h, "host", "show", "acme")
	if h.Settings.DenialFormat != "jsonrpc_error" {
		t.Fatalf("host after update: %+v", h.Settings)
	}
	_, err = session.CallTool(ctx, &mcp.CallToolParams{Name: "delete_issue", Arguments: map[string]any{"id": "1"}})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != -31001 || !strings.Contains(rpcErr.Message, "Reconnect the client and choose trust level high") {
		t.Fatalf("denied call on a jsonrpc_error host = %v, want the -31001 error", err)
	}
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "again"}); !ok || !strings.Contains(text, "create_issue called: again") {
		t.Fatalf("allowed call after the error: %q", text)
	}

	// Back to results; the human's access revoked: tools/list (not a tools/call) is still a
	// JSON-RPC error, the call a result.
	cli(t, s.p, s.admin, "host", "update", "acme", "--denial-format", "tool_result")
	cli(t, s.p, s.admin, "human", "revoke", s.email, "tracker", "--host", "acme")
	wantDenial(t, s, token, session.ID(), `{"jsonrpc":"2.0","id":8,"method":"tools/list"}`, "no_access", []string{"you have no access to tracker"}, nil)
	wantDenial(t, s, token, session.ID(), `{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":"triage"}}`, "no_access", nil, nil)
	status, text := rawPost(t, s.resource, token, session.ID(), toolCall("list_issues"))
	if status != http.StatusOK || !strings.Contains(text, `"isError":true`) || !strings.Contains(text, `"reason":"no_access"`) ||
		!strings.Contains(text, "the person who connected this agent has no access to tracker") {
		t.Errorf("tools/call without access: %d %s, want a tool result saying so", status, text)
	}

	// The audit entries of the result and of the error are the same.
	var entries []deniedEntry
	cliJSON(t, s.p, s.admin, &entries, "audit", "list", "--host", "acme", "--all")
	var calls []deniedEntry
	for _, e := range entries {
		if e.Decision == "denied" && e.Tool == "delete_issue" {
			calls = append(calls, e)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d denied delete_issue entries, want 3 (two results, one error): %+v", len(calls), entries)
	}
	for _, e := range calls[1:] {
		if e != calls[0] {
			t.Errorf("audit entries differ between the formats:\n%+v\n%+v", calls[0], e)
		}
	}
	if !strings.HasPrefix(calls[0].Reason, "level_too_low: ") || calls[0].RequiredLevel != "high" || calls[0].AgentLevel != "medium" {
		t.Errorf("denied entry %+v", calls[0])
	}
	if calls := s.up.Calls(); len(calls) != 2 {
		t.Errorf("the upstream got %v, want only the two allowed calls", calls)
	}
}

// TestTypeScriptSDKDeniedCall: the official TypeScript SDK client gets a denied tools/call as a
// result with isError (it does not throw), with the model-facing text and structuredContent,
// and its session goes on; after the host is set to jsonrpc_error the SDK throws the -31001
// error, and the session still goes on. The SDK side lives in tests/ts/denial.mjs.
func TestTypeScriptSDKDeniedCall(t *testing.T) {
	s := setupTracker(t)
	stdout := runNode(t, "denial.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD="+s.password,
		"API_URL="+s.p.url, "ADMIN_TOKEN="+s.admin, "HOST=acme")
	var res struct {
		OK                 bool           `json:"ok"`
		ResultText         string         `json:"result_text"`
		Structured         map[string]any `json:"structured"`
		AllowedAfterResult string         `json:"allowed_after_result"`
		ErrorCode          int            `json:"error_code"`
		ErrorMessage       string         `json:"error_message"`
		ErrorReason        string         `json:"error_reason"`
		AllowedAfterError  string         `json:"allowed_after_error"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("denial.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK {
		t.Fatalf("denial.mjs result: %+v", res)
	}
	if !strings.Contains(res.ResultText, "it needs trust level high; this agent has medium. Ask the person who connected it to reconnect and grant high") {
		t.Errorf("the model-facing text: %q", res.ResultText)
	}
	if want := map[string]any{"reason": "level_too_low", "required_level": "high", "agent_level": "medium", "ceiling": "high"}; !maps.Equal(res.Structured, want) {
		t.Errorf("structuredContent %v, want %v", res.Structured, want)
	}
	if !strings.Contains(res.AllowedAfterResult, "create_issue called: after a denial") || !strings.Contains(res.AllowedAfterError, "create_issue called: after an error") {
		t.Errorf("allowed calls after the denials: %q, %q", res.AllowedAfterResult, res.AllowedAfterError)
	}
	if res.ErrorCode != -31001 || res.ErrorReason != "level_too_low" || !strings.Contains(res.ErrorMessage, "delete_issue") {
		t.Errorf("on a jsonrpc_error host: code %d reason %q message %q, want the -31001 error", res.ErrorCode, res.ErrorReason, res.ErrorMessage)
	}
}

// TestTypeScriptSDKDeniedCallOfAToolWithAnOutputSchema: the official TypeScript SDK client
// checks a result's structuredContent against the outputSchema the tool was listed with, even
// when isError is set, and throws on a mismatch. A tool that declares an output schema (stored
// by the import, shown by the admin API) is listed to an agent that may not call it (the host
// shows every enabled tool); its denied call reaches the client as a result with isError, the
// text, and the denial's fields in _meta and not in structuredContent; the session goes on.
// The SDK side lives in tests/ts/denial_output_schema.mjs.
func TestTypeScriptSDKDeniedCallOfAToolWithAnOutputSchema(t *testing.T) {
	s := setupTrackerWith(t, func(up *mcpserver.Upstream) { up.AddOutputSchemaTool() })
	var tools []admin.Tool
	cliJSON(t, s.p, s.admin, &tools, "tool", "list", "tracker", "--host", "acme")
	i := slices.IndexFunc(tools, func(tl admin.Tool) bool { return tl.Name == mcpserver.PurgeTool })
	if i < 0 || !strings.Contains(string(tools[i].OutputSchema), `"purged"`) || tools[i].Level != "high" || !tools[i].Enabled {
		t.Fatalf("imported tools %+v: want %s enabled at high with its output schema", tools, mcpserver.PurgeTool)
	}
	cli(t, s.p, s.admin, "host", "update", "acme", "--tool-visibility", "all")

	stdout := runNode(t, "denial_output_schema.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD="+s.password,
		"TOOL="+mcpserver.PurgeTool)
	var res struct {
		OK           bool           `json:"ok"`
		OutputSchema map[string]any `json:"output_schema"`
		Threw        *string        `json:"threw"`
		ResultText   string         `json:"result_text"`
		Structured   map[string]any `json:"structured"`
		Meta         map[string]any `json:"meta"`
		AllowedAfter string         `json:"allowed_after"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("denial_output_schema.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK || res.Threw != nil || res.OutputSchema == nil {
		t.Fatalf("denial_output_schema.mjs result: %+v", res)
	}
	if !strings.Contains(res.ResultText, `trustgate denied the tool "purge_issues" on tracker: it needs trust level high; this agent has medium.`) {
		t.Errorf("the model-facing text: %q", res.ResultText)
	}
	if res.Structured != nil {
		t.Errorf("structuredContent %v, want none (the client checks it against the tool's output schema)", res.Structured)
	}
	if want := map[string]any{"reason": "level_too_low", "required_level": "high", "agent_level": "medium", "ceiling": "high"}; !maps.Equal(res.Meta, want) {
		t.Errorf("_meta trustgate/denial %v, want %v", res.Meta, want)
	}
	if !strings.Contains(res.AllowedAfter, "create_issue called: after a denial") {
		t.Errorf("allowed call after the denial: %q", res.AllowedAfter)
	}
	if calls := s.up.Calls(); slices.Contains(calls, mcpserver.PurgeTool) {
		t.Errorf("the denied call reached the upstream: %v", calls)
	}
}
