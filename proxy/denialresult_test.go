package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// deniedAnswer is a JSON-RPC response to a denied message: a tool result or an error.
type deniedAnswer struct {
	ID     json.RawMessage `json:"id"`
	Result *struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent map[string]any            `json:"structuredContent"`
		IsError           bool                      `json:"isError"`
		Meta              map[string]map[string]any `json:"_meta"`
	} `json:"result"`
	Error *struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Data    map[string]string `json:"data"`
	} `json:"error"`
}

// postAccept posts body to endpoint with the agent's token and Accept header; it returns the
// status, the Content-Type and the body.
func (e *env) postAccept(endpoint, accept, body string) (int, string, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(endpoint, nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// decodeAnswer reads a JSON-RPC response from a JSON body or from the one event of an SSE body.
func decodeAnswer(t *testing.T, contentType string, body []byte) deniedAnswer {
	t.Helper()
	data := body
	if strings.HasPrefix(contentType, "text/event-stream") {
		ev, err := sse.NewReader(bytes.NewReader(body), 1<<20).Next()
		if err != nil {
			t.Fatalf("SSE body %q: %v", body, err)
		}
		data = ev.Data
	}
	var a deniedAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("answer %q: %v", data, err)
	}
	return a
}

// TestDeniedCallIsAToolResult: by default a denied tools/call is answered (HTTP 200, same id)
// with a CallToolResult with isError, the text the model reads and the denial's stable fields,
// as JSON or, when the client accepts only an event stream, as an SSE event; a host set to
// jsonrpc_error gets the -31001 error instead; a denial of anything else stays a JSON-RPC
// error; the audit entry is the same in both formats; nothing reaches the upstream.
func TestDeniedCallIsAToolResult(t *testing.T) {
	e := newEnv(t)
	before := e.upCalls.Load()
	call := `{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"delete_issue","arguments":{"id":"1"}}}`
	wantText := `trustgate denied the tool "delete_issue" on tracker: it needs trust level high; this agent has medium. ` +
		"Ask the person who connected it to reconnect and grant high, or ask an administrator."
	wantFields := map[string]any{"reason": "level_too_low", "required_level": "high", "agent_level": "medium", "ceiling": "high"}

	for _, c := range []struct{ accept, contentType string }{
		{"application/json, text/event-stream", "application/json"},
		{"text/event-stream", "text/event-stream"},
	} {
		status, ct, body := e.postAccept(e.endpoint(""), c.accept, call)
		if status != http.StatusOK || !strings.HasPrefix(ct, c.contentType) {
			t.Fatalf("Accept %s: %d %s, want 200 %s: %s", c.accept, status, ct, c.contentType, body)
		}
		a := decodeAnswer(t, ct, body)
		if string(a.ID) != `"call-1"` || a.Error != nil || a.Result == nil || !a.Result.IsError {
			t.Fatalf("Accept %s: %s, want a result with isError for id call-1", c.accept, body)
		}
		if len(a.Result.Content) != 1 || a.Result.Content[0].Type != "text" || a.Result.Content[0].Text != wantText {
			t.Errorf("Accept %s: content %+v, want one text %q", c.accept, a.Result.Content, wantText)
		}
		if !maps.Equal(a.Result.StructuredContent, wantFields) {
			t.Errorf("Accept %s: structuredContent %v, want %v", c.accept, a.Result.StructuredContent, wantFields)
		}
		if !maps.Equal(a.Result.Meta["trustgate/denial"], wantFields) {
			t.Errorf("Accept %s: _meta %v, want the fields %v under trustgate/denial", c.accept, a.Result.Meta, wantFields)
		}
	}

	// A denial of another message stays a JSON-RPC error.
	status, ct, body := e.postAccept(e.endpoint("nope"), "application/json, text/event-stream", `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)
	if a := decodeAnswer(t, ct, body); status != http.StatusOK || a.Result != nil || a.Error == nil || a.Error.Code != proxy.ErrCodeDenied || a.Error.Data["reason"] != "unknown_server" {
		t.Errorf("tools/list on an unknown server: %d %s, want a -31001 error", status, body)
	}

	// The host wants JSON-RPC errors: the same call gets today's error.
	e.setDenialFormat(store.DenialJSONRPCError)
	status, ct, body = e.postAccept(e.endpoint(""), "application/json, text/event-stream", call)
	a := decodeAnswer(t, ct, body)
	if status != http.StatusOK || string(a.ID) != `"call-1"` || a.Result != nil || a.Error == nil || a.Error.Code != proxy.ErrCodeDenied ||
		a.Error.Data["reason"] != "level_too_low" || !strings.Contains(a.Error.Message, "Reconnect the client and choose trust level high") {
		t.Errorf("jsonrpc_error host: %d %s, want the -31001 error", status, body)
	}

	// Three denials of the call (two results, one error): their audit entries are the same.
	denied := e.entries(audit.Filter{Tool: "delete_issue", Decision: audit.Denied}, 3)
	if len(denied) != 3 {
		t.Fatalf("%d denied entries for delete_issue, want 3", len(denied))
	}
	comparable := func(x audit.Entry) audit.Entry {
		x.Seq, x.Time, x.RequestID, x.TraceID, x.PrevHash, x.Hash = 0, time.Time{}, "", "", "", ""
		return x
	}
	for _, d := range denied[1:] {
		if !reflect.DeepEqual(comparable(d), comparable(denied[0])) {
			t.Errorf("audit entries differ between the formats:\n%+v\n%+v", denied[0], d)
		}
	}
	if denied[0].Reason == "" || !strings.HasPrefix(denied[0].Reason, "level_too_low: ") || denied[0].RequiredLevel != "high" {
		t.Errorf("denied entry %+v", denied[0])
	}
	if e.upCalls.Load() != before {
		t.Error("a denied call reached the upstream")
	}
}

// TestDeniedCallOfAToolWithAnOutputSchema: clients check structuredContent against the tool's
// outputSchema even in an isError result, so the denial of a tool that declares one carries
// its fields in _meta only; a tool the store does not know has no schema known and gets
// structuredContent as any other.
func TestDeniedCallOfAToolWithAnOutputSchema(t *testing.T) {
	e := newEnv(t)
	if _, err := e.st.PutTool(context.Background(), store.Tool{Host: host, Server: serverKey, Name: "purge_issues", Level: schema.High, Enabled: true,
		OutputSchema: `{"type":"object","properties":{"purged":{"type":"integer"}},"required":["purged"],"additionalProperties":false}`}); err != nil {
		t.Fatal(err)
	}
	e.sync()
	for _, c := range []struct {
		tool       string
		fields     map[string]any
		structured bool
	}{
		{"purge_issues", map[string]any{"reason": "level_too_low", "required_level": "high", "agent_level": "medium", "ceiling": "high"}, false},
		{"no_such_tool", map[string]any{"reason": "unknown_tool", "agent_level": "medium", "ceiling": "high"}, true},
	} {
		status, ct, body := e.postAccept(e.endpoint(""), "application/json, text/event-stream",
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+c.tool+`","arguments":{}}}`)
		a := decodeAnswer(t, ct, body)
		if status != http.StatusOK || a.Result == nil || !a.Result.IsError || len(a.Result.Content) != 1 ||
			!strings.Contains(a.Result.Content[0].Text, c.tool) {
			t.Fatalf("%s: %d %s, want a result with isError and text", c.tool, status, body)
		}
		if got := bytes.Contains(body, []byte(`"structuredContent"`)); got != c.structured {
			t.Errorf("%s: structuredContent present %v, want %v: %s", c.tool, got, c.structured, body)
		}
		if c.structured && !maps.Equal(a.Result.StructuredContent, c.fields) {
			t.Errorf("%s: structuredContent %v, want %v", c.tool, a.Result.StructuredContent, c.fields)
		}
		if !maps.Equal(a.Result.Meta["trustgate/denial"], c.fields) {
			t.Errorf("%s: _meta %v, want the fields %v under trustgate/denial", c.tool, a.Result.Meta, c.fields)
		}
	}
}

// TestDeniedCallKeepsTheSessionUsable: the Go SDK client reads the denial as a tool result (no
// error), with the text and the structured fields, and goes on in the same session.
func TestDeniedCallKeepsTheSessionUsable(t *testing.T) {
	e := newEnv(t)
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	ctx := context.Background()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "delete_issue", Arguments: map[string]any{"id": "1"}})
	if err != nil || !res.IsError || len(res.Content) != 1 {
		t.Fatalf("denied call: %+v %v, want a result with isError", res, err)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(text, "needs trust level high; this agent has medium") {
		t.Errorf("denied call's text %q", text)
	}
	if fields, ok := res.StructuredContent.(map[string]any); !ok || fields["reason"] != "level_too_low" {
		t.Errorf("denied call's structuredContent %#v", res.StructuredContent)
	}
	if text, err := callText(t, cs, "create_issue", map[string]any{"title": "after"}); err != nil || text != "create_issue called: after" {
		t.Fatalf("allowed call after the denial: %q %v", text, err)
	}
}
