package proxy

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/schema"
)

// TestExplainDenial: every reason code, decided from the store's facts alone, with the message
// naming the cause and the action that fixes it (and not the advice of another cause).
func TestExplainDenial(t *testing.T) {
	// granted: a human with a medium ceiling whose agent holds low on tracker.
	granted := func(method, tool string) denialFacts {
		return denialFacts{Method: method, Server: "tracker", ServerFound: true, AgentFound: true,
			HasGrant: true, Ceiling: schema.Medium, HasConsent: true, Level: schema.Low, Tool: tool}
	}
	tool := func(enabled, flagged bool, level schema.Level) denialFacts {
		f := granted("tools/call", "delete_issue")
		f.ToolFound, f.ToolEnabled, f.ToolFlagged, f.ToolLevel = true, enabled, flagged, level
		return f
	}
	with := func(f denialFacts, change func(*denialFacts)) denialFacts { change(&f); return f }

	for _, c := range []struct {
		name   string
		facts  denialFacts
		reason Reason
		want   []string // in the message
		never  []string // not in the message
		data   map[string]string
	}{
		{"agent removed", denialFacts{Method: "tools/call", Server: "tracker", Tool: "x"}, ReasonAgentRemoved,
			[]string{"removed by an administrator", "Reconnect the client"}, nil, nil},
		{"agent disabled (killed)", denialFacts{Method: "initialize", Server: "tracker", AgentFound: true, AgentDisabled: true}, ReasonAgentDisabled,
			[]string{"trustgate denied initialize on tracker: this app was disabled by an administrator", "Reconnecting will not help until an administrator enables it again"},
			[]string{"higher", "grant a"}, nil},
		{"bare /mcp, human has no grant at all", denialFacts{Method: "initialize", AgentFound: true}, ReasonNoAccess,
			[]string{"no access to any MCP server", "Ask an administrator"}, nil,
			map[string]string{"reason": "no_access"}},
		{"bare /mcp, agent consented nowhere", denialFacts{Method: "initialize", AgentFound: true, AnyGrant: true}, ReasonNotConnected,
			[]string{"not connected to any MCP server", "Reconnect the client and choose a server"}, nil, nil},
		{"unknown server", denialFacts{Method: "tools/list", Server: "nope", AgentFound: true}, ReasonUnknownServer,
			[]string{`there is no MCP server "nope" on this host`}, []string{"Reconnect"}, nil},
		{"grant revoked, initialize", with(granted("initialize", ""), func(f *denialFacts) {
			*f = denialFacts{Method: f.Method, Server: f.Server, ServerFound: true, AgentFound: true}
		}), ReasonNoAccess,
			[]string{"trustgate denied initialize on tracker: you have no access to tracker", "Ask an administrator to grant you access to tracker", "reconnecting alone will not help"},
			[]string{"trust level on"},
			map[string]string{"reason": "no_access", "server": "tracker", "agent_level": "none", "ceiling": "none"}},
		{"grant revoked, tools/call", with(tool(true, false, schema.Low), func(f *denialFacts) { f.HasGrant, f.Ceiling, f.HasConsent, f.Level = false, 0, false, 0 }), ReasonNoAccess,
			[]string{`trustgate denied tools/call "delete_issue" on tracker: you have no access to tracker`}, []string{"higher"}, nil},
		{"granted, not consented", with(granted("tools/list", ""), func(f *denialFacts) { f.HasConsent, f.Level = false, 0 }), ReasonNotConsented,
			[]string{"this app has no trust level on tracker", "Reconnect the client and choose a trust level for tracker", "allows up to medium"}, nil,
			map[string]string{"reason": "not_consented", "server": "tracker", "agent_level": "none", "ceiling": "medium"}},
		{"unknown tool", granted("tools/call", "no_such_tool"), ReasonUnknownTool,
			[]string{`tracker has no tool "no_such_tool"`, "tools/list"}, []string{"Reconnect", "higher"},
			map[string]string{"reason": "unknown_tool", "tool": "no_such_tool", "server": "tracker", "required_level": "", "agent_level": "low", "ceiling": "medium"}},
		{"tool disabled", tool(false, false, schema.Low), ReasonToolDisabled,
			[]string{"the tool is disabled", "Ask an administrator to enable it"}, []string{"Reconnect"}, nil},
		{"tool without a valid level", tool(true, false, 0), ReasonToolDisabled, []string{"disabled"}, nil, nil},
		{"tool flagged", tool(false, true, schema.Low), ReasonToolPendingReview,
			[]string{"definition changed", "awaits an administrator's review", "approve"}, []string{"Reconnect"},
			map[string]string{"reason": "tool_pending_review", "tool": "delete_issue", "server": "tracker", "required_level": "", "agent_level": "low", "ceiling": "medium"}},
		{"ceiling too low", tool(true, false, schema.High), ReasonCeilingTooLow,
			[]string{"it needs trust level high", "allows you at most medium on tracker", "Ask an administrator to raise your ceiling on tracker to high", "reconnecting will not help"},
			[]string{"Reconnect the client"},
			map[string]string{"reason": "ceiling_too_low", "tool": "delete_issue", "server": "tracker", "required_level": "high", "agent_level": "low", "ceiling": "medium"}},
		{"ceiling lowered below the consent", with(tool(true, false, schema.High), func(f *denialFacts) { f.Level = schema.High }), ReasonCeilingTooLow,
			[]string{"at most medium"}, nil, nil},
		{"level too low", tool(true, false, schema.Medium), ReasonLevelTooLow,
			[]string{"it needs trust level medium; this app has low (your ceiling is medium)", "Reconnect the client and choose trust level medium"},
			[]string{"administrator"},
			map[string]string{"reason": "level_too_low", "tool": "delete_issue", "server": "tracker", "required_level": "medium", "agent_level": "low", "ceiling": "medium"}},
		{"store allows the call: change not applied yet", tool(true, false, schema.Low), ReasonPendingChange,
			[]string{"still being applied", "Try again"}, []string{"Reconnect"}, nil},
		{"store allows tools/list: change not applied yet", granted("tools/list", ""), ReasonPendingChange,
			[]string{"trustgate denied tools/list on tracker: a recent change"}, nil, nil},
		{"host behind: the store's consent is gone, the backend has not applied it", with(tool(true, false, schema.Low), func(f *denialFacts) { f.Behind, f.HasConsent = true, false }), ReasonPendingChange,
			[]string{"has not been applied by the authorization backend yet", "calls are refused until it is", "ask an administrator"}, []string{"trust level", "Reconnect"},
			map[string]string{"reason": "pending_change", "tool": "delete_issue"}},
		{"host behind: the agent disabled in the store", with(tool(true, false, schema.Low), func(f *denialFacts) { f.Behind, f.AgentDisabled = true, true }), ReasonPendingChange,
			[]string{"has not been applied by the authorization backend yet"}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := explainDenial(c.facts)
			if d.Reason != c.reason {
				t.Fatalf("reason %q, want %q (%+v)", d.Reason, c.reason, d)
			}
			msg := d.Message(c.facts)
			if !strings.HasPrefix(msg, "trustgate denied ") || !strings.HasSuffix(msg, d.Action) {
				t.Errorf("message %q does not name the denial and end with the action", msg)
			}
			for _, s := range c.want {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
			for _, s := range c.never {
				if strings.Contains(msg, s) {
					t.Errorf("message %q has %q, which does not fit the case", msg, s)
				}
			}
			data := denialData(c.facts, d)
			if data["reason"] != string(c.reason) || data["action"] != d.Action {
				t.Errorf("data %v lacks the reason and the action", data)
			}
			for k, v := range c.data {
				if got, ok := data[k]; !ok || got != v {
					t.Errorf("data[%q] = %q, want %q (%v)", k, got, v, data)
				}
			}
		})
	}
}
