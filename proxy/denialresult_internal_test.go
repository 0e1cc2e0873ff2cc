package proxy

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/schema"
)

// TestDeniedCallOf: the result form of every denial of a tools/call: text addressed to the
// agent that says what is needed and who can provide it (never advice meant for another
// cause), and exactly the structured fields that apply.
func TestDeniedCallOf(t *testing.T) {
	granted := denialFacts{Method: "tools/call", Tool: "delete_issue", Server: "tracker", ServerFound: true, AgentFound: true,
		HasGrant: true, Ceiling: schema.Medium, HasConsent: true, Level: schema.Low}
	tool := func(enabled, flagged bool, level schema.Level) denialFacts {
		f := granted
		f.ToolFound, f.ToolEnabled, f.ToolFlagged, f.ToolLevel = true, enabled, flagged, level
		return f
	}
	with := func(f denialFacts, change func(*denialFacts)) denialFacts { change(&f); return f }
	levels := func(extra map[string]any) map[string]any {
		m := map[string]any{"agent_level": "low", "ceiling": "medium"}
		maps.Copy(m, extra)
		return m
	}

	for _, c := range []struct {
		name   string
		facts  denialFacts
		reason Reason
		want   []string
		never  []string
		fields map[string]any // besides reason
	}{
		{"agent removed", denialFacts{Method: "tools/call", Tool: "x", Server: "tracker"}, ReasonAgentRemoved,
			[]string{"an administrator removed this agent", "Ask the person using it to reconnect"}, nil, map[string]any{}},
		{"agent disabled", denialFacts{Method: "tools/call", Tool: "x", Server: "tracker", AgentFound: true, AgentDisabled: true}, ReasonAgentDisabled,
			[]string{"an administrator disabled this agent", "only an administrator can enable it again"}, []string{"Ask the person"}, map[string]any{}},
		{"no access", with(tool(true, false, schema.Low), func(f *denialFacts) { f.HasGrant, f.Ceiling, f.HasConsent, f.Level = false, 0, false, 0 }), ReasonNoAccess,
			[]string{"the person who connected this agent has no access to tracker", "from an administrator"}, []string{"trust level"},
			map[string]any{"required_level": "low"}},
		{"not consented", with(granted, func(f *denialFacts) { f.HasConsent, f.Level = false, 0 }), ReasonNotConsented,
			[]string{"this agent has no trust level on tracker", "Ask the person who connected it to reconnect and choose a trust level for tracker (they may grant up to medium)"}, nil,
			map[string]any{"ceiling": "medium"}},
		{"unknown tool", granted, ReasonUnknownTool,
			[]string{`tracker has no tool "delete_issue"`, "Call tools/list"}, []string{"reconnect"}, levels(nil)},
		{"tool disabled", tool(false, false, schema.Low), ReasonToolDisabled,
			[]string{"an administrator disabled this tool", "Retrying will not help", "ask an administrator to enable it"}, []string{"reconnect"}, levels(nil)},
		{"tool pending review", tool(false, true, schema.Low), ReasonToolPendingReview,
			[]string{"awaits an administrator's review", "until an administrator approves it"}, []string{"reconnect"}, levels(nil)},
		{"ceiling too low", tool(true, false, schema.High), ReasonCeilingTooLow,
			[]string{"it needs trust level high; this agent has low, and the person who connected it may grant at most medium on tracker",
				"Only an administrator can raise that ceiling to high; reconnecting will not help"}, []string{"Ask the person who connected it to reconnect"},
			levels(map[string]any{"required_level": "high"})},
		{"level too low", with(tool(true, false, schema.High), func(f *denialFacts) { f.Ceiling, f.Level = schema.High, schema.Medium }), ReasonLevelTooLow,
			[]string{`trustgate denied the tool "delete_issue" on tracker: it needs trust level high; this agent has medium. Ask the person who connected it to reconnect and grant high, or ask an administrator.`},
			nil, map[string]any{"required_level": "high", "agent_level": "medium", "ceiling": "high"}},
		{"pending change", tool(true, false, schema.Low), ReasonPendingChange,
			[]string{"still being applied", "Try again in 5 seconds"}, []string{"reconnect"},
			levels(map[string]any{"required_level": "low", "retry_after": pendingChangeRetryAfter})},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := explainDenial(c.facts)
			if d.Reason != c.reason {
				t.Fatalf("reason %q, want %q", d.Reason, c.reason)
			}
			call := deniedCallOf(c.facts, d)
			if !strings.HasPrefix(call.text, `trustgate denied the tool "`+c.facts.Tool+`" on tracker: `) {
				t.Errorf("text %q does not name the tool and the server first", call.text)
			}
			for _, s := range c.want {
				if !strings.Contains(call.text, s) {
					t.Errorf("text %q lacks %q", call.text, s)
				}
			}
			for _, s := range c.never {
				if strings.Contains(call.text, s) {
					t.Errorf("text %q has %q, which does not fit the case", call.text, s)
				}
			}
			want := map[string]any{"reason": string(c.reason)}
			maps.Copy(want, c.fields)
			if !maps.Equal(call.fields, want) {
				t.Errorf("fields %v, want %v", call.fields, want)
			}
			if !call.structured {
				t.Error("a tool without an output schema gets no structuredContent")
			}
			// The same denial of a tool that declares an outputSchema: the fields, not structured.
			withSchema := c.facts
			withSchema.ToolHasOutputSchema = true
			if call := deniedCallOf(withSchema, d); call.structured || !maps.Equal(call.fields, want) {
				t.Errorf("a tool with an output schema: structured %v, fields %v; want fields %v only in _meta", call.structured, call.fields, want)
			}
		})
	}

	// A reason without advice of its own (a later stage's) gets the human's.
	d := denial{Reason: "rate_limited", Cause: "too many calls", Action: "Wait a minute."}
	if call := deniedCallOf(granted, d); !strings.HasSuffix(call.text, ": too many calls. Wait a minute.") || call.fields["reason"] != "rate_limited" {
		t.Errorf("reason without agent advice: %+v", call)
	}
}

// TestDeniedCallResultBody: the JSON-RPC response carries the request's id and a
// CallToolResult as MCP defines it.
func TestDeniedCallResultBody(t *testing.T) {
	c := &deniedCall{text: "denied.", fields: map[string]any{"reason": "tool_disabled"}, structured: true}
	got := string(c.resultBody(json.RawMessage(`7`)))
	want := `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"denied."}],"structuredContent":{"reason":"tool_disabled"},"isError":true,` +
		`"_meta":{"trustgate/denial":{"reason":"tool_disabled"}}}}`
	if got != want {
		t.Errorf("result body\n got %s\nwant %s", got, want)
	}
	// A tool with an output schema: no structuredContent, which the client would check against it.
	c.structured = false
	got = string(c.resultBody(json.RawMessage(`7`)))
	want = `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"denied."}],"isError":true,` +
		`"_meta":{"trustgate/denial":{"reason":"tool_disabled"}}}}`
	if got != want {
		t.Errorf("result body of a tool with an output schema\n got %s\nwant %s", got, want)
	}
}

// TestWantsEventStream: only a client that accepts an event stream and not JSON gets SSE.
func TestWantsEventStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                    false,
		"application/json, text/event-stream": false,
		"text/event-stream, application/json": false,
		"text/event-stream":                   true,
		"text/event-stream;q=1":               true,
		"*/*":                                 false,
		"text/event-stream, */*;q=0.1":        false,
		"application/*, text/event-stream":    false,
		"text/html":                           false,
	} {
		h := http.Header{}
		if accept != "" {
			h.Set("Accept", accept)
		}
		if got := wantsEventStream(h); got != want {
			t.Errorf("Accept %q: event stream %v, want %v", accept, got, want)
		}
	}
}
