package proxy_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/audit"
)

// peekToolCall reports whether an upstream request is a tools/call, leaving its body readable.
func peekToolCall(r *http.Request) bool {
	if r.Body == nil {
		return false
	}
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return bytes.Contains(b, []byte(`"tools/call"`))
}

// entries lists the host's audit entries matching f, waiting up to 5s for at least n of them
// (results are written without waiting).
func (e *env) entries(f audit.Filter, n int) []audit.Entry {
	e.t.Helper()
	f.Host = host
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := e.st.ListAudit(context.Background(), f, 0, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuditEveryDecision: an allowed call's entry is durable before the upstream sees the
// call, its result follows with the upstream status, and a denial records the levels.
func TestAuditEveryDecision(t *testing.T) {
	e := newEnv(t)
	var seenBeforeForward, toolCalls atomic.Int64
	hook := func(r *http.Request) {
		if !peekToolCall(r) {
			return
		}
		toolCalls.Add(1)
		got, err := e.st.ListAudit(context.Background(), audit.Filter{Host: host, Tool: "create_issue", Decision: audit.Allowed}, 0, 0)
		if err == nil && len(got) == 1 {
			seenBeforeForward.Add(1)
		}
	}
	e.onUpstream.Store(&hook)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	// The upstream refuses the extra argument with a tool error: the call is forwarded all the same.
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "bug", "api_key": "k-123"}}); err != nil {
		t.Fatal(err)
	}
	if toolCalls.Load() != 1 || seenBeforeForward.Load() != 1 {
		t.Fatalf("the upstream got %d tools/call, %d of them with the allowed entry already in the store", toolCalls.Load(), seenBeforeForward.Load())
	}
	allowed := e.entries(audit.Filter{Tool: "create_issue", Decision: audit.Allowed}, 1)[0]
	if allowed.AgentID != e.agentID || allowed.UserID != e.userID || allowed.UserEmail != "ann@example.com" ||
		allowed.ClientID != "client-1" || allowed.ClientName != "Cursor" || allowed.Server != serverKey || allowed.Method != "tools/call" || allowed.RequestID == "" {
		t.Fatalf("allowed entry %+v", allowed)
	}
	if allowed.Arguments != "" {
		t.Fatalf("arguments stored with audit_arguments off: %s", allowed.Arguments)
	}
	results := e.entries(audit.Filter{Tool: "create_issue", Decision: audit.Result}, 1)
	if len(results) != 1 || results[0].UpstreamStatus != http.StatusOK || results[0].RequestID != allowed.RequestID {
		t.Fatalf("result entries %+v; want one with status 200 and request id %s", results, allowed.RequestID)
	}

	if _, err := callText(t, cs, "delete_issue", map[string]any{"id": "1"}); err == nil {
		t.Fatal("delete_issue allowed")
	}
	denied := e.entries(audit.Filter{Decision: audit.Denied}, 1)
	if len(denied) != 1 || denied[0].Tool != "delete_issue" || denied[0].RequiredLevel != "high" || denied[0].AgentLevel != "medium" || denied[0].Ceiling != "high" {
		t.Fatalf("denied entries %+v", denied)
	}
	if toolCalls.Load() != 1 {
		t.Fatal("the denied call reached the upstream")
	}

	// With audit_arguments on, arguments are stored, redacted.
	h, err := e.st.GetHost(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	h.Settings.AuditArguments = true
	if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_issues", Arguments: map[string]any{"title": "x", "password": "hunter2"}}); err != nil {
		t.Fatal(err)
	}
	got := e.entries(audit.Filter{Tool: "list_issues", Decision: audit.Allowed}, 1)
	if len(got) != 1 || !strings.Contains(got[0].Arguments, `"title":"x"`) || strings.Contains(got[0].Arguments, "hunter2") {
		t.Fatalf("arguments with audit_arguments on: %+v", got)
	}

	// A request to a server that does not exist is a denial too.
	code, _ := e.postRaw(e.endpoint("nope"), `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	if code != http.StatusOK {
		t.Fatalf("tools/list on an unknown server: HTTP %d", code)
	}
	if got := e.entries(audit.Filter{Server: "nope", Decision: audit.Denied}, 1); len(got) != 1 || got[0].Method != "tools/list" || got[0].Reason != `unknown_server: trustgate denied tools/list on nope: there is no MCP server "nope" on this host. Check the server in the URL, or ask an administrator which servers exist.` {
		t.Fatalf("entries of the unknown server: %+v", got)
	}

	// The whole log verifies.
	heads, err := e.st.AuditHeads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(context.Background(), e.st, host, &heads[0]); err != nil {
		t.Fatal(err)
	}
}

// TestAuditDownForwardsNothing: when the audit entry cannot be written, the call is answered
// with an error and never reaches the upstream.
func TestAuditDownForwardsNothing(t *testing.T) {
	e := newEnv(t)
	var toolCalls atomic.Int64
	hook := func(r *http.Request) {
		if peekToolCall(r) {
			toolCalls.Add(1)
		}
	}
	e.onUpstream.Store(&hook)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	e.auditDown.Store(true)
	_, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"})
	if err == nil || !strings.Contains(err.Error(), "could not write its audit log") {
		t.Fatalf("call with the audit log down: %v", err)
	}
	if toolCalls.Load() != 0 {
		t.Fatal("a call was forwarded without its audit entry")
	}
	// Service resumes when the audit store returns.
	e.auditDown.Store(false)
	if _, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"}); err != nil {
		t.Fatalf("after the audit store returned: %v", err)
	}
	if toolCalls.Load() != 1 {
		t.Fatalf("%d calls forwarded, want 1", toolCalls.Load())
	}
}

// postRaw posts one JSON-RPC message to endpoint with a token for it and returns the status and body.
func (e *env) postRaw(endpoint, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(endpoint, nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
