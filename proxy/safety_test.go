package proxy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
)

// setSettings changes the host's settings.
func (e *env) setSettings(change func(*store.HostSettings)) {
	e.t.Helper()
	h, err := e.st.GetHost(context.Background(), host)
	if err != nil {
		e.t.Fatal(err)
	}
	change(&h.Settings)
	if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
		e.t.Fatal(err)
	}
}

// setInputSchema stores a tool's approved input schema.
func (e *env) setInputSchema(tool, schema string) {
	e.t.Helper()
	t, err := e.st.GetTool(context.Background(), host, serverKey, tool)
	if err != nil {
		e.t.Fatal(err)
	}
	t.InputSchema = schema
	if _, err := e.st.PutTool(context.Background(), t); err != nil {
		e.t.Fatal(err)
	}
}

// deniedAudit is the host's audit entry of a denied tools/call of tool (the audit log writes
// in batches: waited for, up to 5 s).
func (e *env) deniedAudit(tool string) audit.Entry {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		es, err := e.st.ListAudit(context.Background(), audit.Filter{Host: host, Tool: tool, Decision: audit.Denied}, 0, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(es) > 0 {
			return es[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no audit entry of a denied call of %s", tool)
		}
	}
}

// Arguments that do not fit the tool's approved input schema never reach the upstream: the
// agent gets the validation error as the tool's result (or as -32602 on a host that wants
// JSON-RPC errors), and the audit entry names the reason without the values.
func TestArgumentValidation(t *testing.T) {
	e := newEnv(t)
	e.setInputSchema("create_issue", `{"type":"object","properties":{"title":{"type":"string","minLength":3}},"required":["title"],"additionalProperties":false}`)
	cs := connect(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil))

	if got, err := callText(t, cs, "create_issue", map[string]any{"title": "bug in login"}); err != nil || got != "create_issue called: bug in login" {
		t.Fatalf("fitting arguments: %q, %v", got, err)
	}
	before := e.upCalls.Load()
	_, err := callText(t, cs, "create_issue", map[string]any{"title": "x-secret-9"[:1], "labels": []string{"urgent"}})
	if err == nil {
		t.Fatal("arguments that do not fit were forwarded")
	}
	for _, s := range []string{`trustgate refused the tool "create_issue" on tracker`, "do not fit the tool's input schema", "at /title", "labels", "Fix the arguments"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q lacks %q", err, s)
		}
	}
	if e.upCalls.Load() != before {
		t.Fatal("a call with invalid arguments reached the upstream")
	}
	entry := e.deniedAudit("create_issue")
	if entry.Decision != audit.Denied || !strings.HasPrefix(entry.Reason, "invalid_arguments: ") || !strings.Contains(entry.Reason, "at /title: minLength") {
		t.Errorf("audit entry %q %q", entry.Decision, entry.Reason)
	}

	// The JSON-RPC form: -32602 with the reason and the error in data.
	e.setSettings(func(s *store.HostSettings) { s.DenialFormat = store.DenialJSONRPCError })
	_, body := e.post(e.token(e.endpoint(""), nil), "", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"create_issue","arguments":{"title":5}}}`, 200)
	var resp struct {
		Error struct {
			Code    int            `json:"code"`
			Message string         `json:"message"`
			Data    map[string]any `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Error.Code != -32602 || resp.Error.Data["reason"] != string(proxy.ReasonInvalidArguments) || !strings.Contains(resp.Error.Data["error"].(string), "at /title") {
		t.Errorf("JSON-RPC form: %s", body)
	}

	// Off: the host's switch lets the same call through to the upstream.
	e.setSettings(func(s *store.HostSettings) { s.ArgumentValidation = store.ArgumentValidationOff; s.DenialFormat = "" })
	if _, err := callText(t, cs, "create_issue", map[string]any{"title": "ab"}); err != nil {
		t.Fatalf("validation off: %v", err)
	}
	if e.upCalls.Load() == before {
		t.Fatal("with validation off the call did not reach the upstream")
	}
}
