package admin_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/store"
)

// explain asks the explain route as token.
func (e *env) explain(token, host, agent, server, tool string) admin.Explanation {
	e.t.Helper()
	var out admin.Explanation
	q := url.Values{"agent": {agent}, "server": {server}, "tool": {tool}}
	e.must(200, "GET", "/api/v1/hosts/"+host+"/explain?"+q.Encode(), token, nil, &out)
	return out
}

// step is the explanation's step of kind (failing the test when absent).
func step(t *testing.T, x admin.Explanation, kind string) admin.ExplanationStep {
	t.Helper()
	for _, s := range x.Steps {
		if s.Kind == kind {
			return s
		}
	}
	t.Fatalf("no step %s in %+v", kind, x.Steps)
	return admin.ExplanationStep{}
}

func relationships(x admin.Explanation) []string {
	var out []string
	for _, r := range x.Relationships {
		out = append(out, r.Relationship)
	}
	return out
}

// decisive is the kind of the step marked decisive ("" for none; more than one fails).
func decisive(t *testing.T, x admin.Explanation) string {
	t.Helper()
	kind := ""
	for _, s := range x.Steps {
		if s.Decisive {
			if kind != "" {
				t.Fatalf("two decisive steps: %+v", x.Steps)
			}
			kind = s.Kind
		}
	}
	return kind
}

func TestExplainAllowedShowsThePathAndTheRelationships(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	userID, agentID := e.imported(up) // alice: ceiling high; her agent Cursor: medium
	x := e.explain(e.acme, "acme", agentID, "tracker", "create_issue")
	if !x.Allowed || x.Reason != "allowed" || decisive(t, x) != "" || x.AgentName != "Cursor" || x.HumanEmail != "alice@acme.test" {
		t.Fatalf("explanation = %+v", x)
	}
	if !strings.Contains(x.Summary, "Allowed: create_issue needs level medium") || !strings.Contains(x.Summary, "holds medium on tracker") ||
		!strings.Contains(x.Summary, "ceiling there is high") {
		t.Errorf("summary = %q", x.Summary)
	}
	for _, s := range x.Steps {
		if !s.Held {
			t.Errorf("step %s does not hold: %+v", s.Kind, s)
		}
	}
	if s := step(t, x, "grant"); s.Text != `agent "Cursor" holds level medium on tracker (granted by alice@acme.test).` ||
		!slices.Equal(s.Relationships, []string{"mcp_server:acme/tracker#granted_medium@agent:acme/" + agentID}) {
		t.Errorf("grant step = %+v", s)
	}
	if s := step(t, x, "ceiling"); s.Text != "An administrator allows alice@acme.test up to high on tracker (ceiling)." ||
		!slices.Contains(s.Relationships, "mcp_server:acme/tracker#ceiling_high@agent:acme/"+agentID) {
		t.Errorf("ceiling step = %+v", s)
	}
	if s := step(t, x, "tool"); s.Text != "Tool create_issue is enabled and needs level medium." {
		t.Errorf("tool step = %+v", s)
	}
	rels := relationships(x)
	for _, want := range []string{
		"tool:acme/tracker/create_issue#server_medium@mcp_server:acme/tracker",
		"mcp_server:acme/tracker#host@host:acme",
		"mcp_server:acme/tracker#granted_medium@agent:acme/" + agentID,
		"host:acme#agent@agent:acme/" + agentID,
		"agent:acme/" + agentID + "#owner@user:acme/" + userID,
		"user:acme/" + userID + "#agent@agent:acme/" + agentID,
		"mcp_server:acme/tracker#ceiling_high@agent:acme/" + agentID,
	} {
		if !slices.Contains(rels, want) {
			t.Errorf("relationship %s missing from %v", want, rels)
		}
	}
	for _, r := range x.Relationships {
		if r.Meaning == "" {
			t.Errorf("relationship %s has no meaning", r.Relationship)
		}
	}
	// SpiceDB's own trace: tool#call reached through use_medium, which held.
	if !x.TraceAvailable || x.Trace == nil || x.Trace.Object != "tool:acme/tracker/create_issue" || x.Trace.Name != "call" || x.Trace.Result != "has_permission" {
		t.Fatalf("trace = %+v", x.Trace)
	}
	if len(x.Trace.Steps) == 0 || x.Trace.Steps[0].Name != "use_medium" || x.Trace.Steps[0].Result != "has_permission" {
		t.Fatalf("trace steps = %+v", x.Trace.Steps)
	}
	if x.Revision == "" {
		t.Error("no revision")
	}
}

func TestExplainDenials(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)

	// Denied by the agent's level: the grant step decides.
	x := e.explain(e.acme, "acme", agentID, "tracker", "delete_issue")
	if x.Allowed || x.Reason != "level_too_low" || decisive(t, x) != "grant" ||
		!strings.HasPrefix(x.Summary, `trustgate denied tools/call "delete_issue" on tracker: `) || !strings.Contains(x.Summary, "choose trust level high") {
		t.Fatalf("level: %+v", x)
	}
	if s := step(t, x, "grant"); s.Held || s.Text != `agent "Cursor" holds level medium on tracker, below the tool's level high.` {
		t.Errorf("level: grant step = %+v", s)
	}
	if !slices.Contains(relationships(x), "tool:acme/tracker/delete_issue#server_high@mcp_server:acme/tracker") {
		t.Errorf("level: relationships = %v", relationships(x))
	}
	if x.Trace == nil || x.Trace.Result != "no_permission" || len(x.Trace.Steps) == 0 || x.Trace.Steps[0].Name != "use_high" {
		t.Errorf("level: trace = %+v", x.Trace)
	}

	// Denied by the ceiling: an admin lowers alice's ceiling below the tool's level.
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "low"}, nil)
	x = e.explain(e.acme, "acme", agentID, "tracker", "create_issue")
	if x.Allowed || x.Reason != "ceiling_too_low" || decisive(t, x) != "ceiling" {
		t.Fatalf("ceiling: %+v", x)
	}
	if s := step(t, x, "ceiling"); s.Held || s.Text != "The ceiling of alice@acme.test on tracker is low, below the tool's level medium." ||
		!slices.Contains(s.Relationships, "mcp_server:acme/tracker#ceiling_low@agent:acme/"+agentID) {
		t.Errorf("ceiling: step = %+v", s)
	}
	if rels := relationships(x); !slices.Contains(rels, "mcp_server:acme/tracker#ceiling_low@agent:acme/"+agentID) ||
		slices.Contains(rels, "mcp_server:acme/tracker#ceiling_high@agent:acme/"+agentID) {
		t.Errorf("ceiling: relationships = %v", rels)
	}
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "high"}, nil)

	// A disabled tool has no server_* relationship.
	off := false
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/list_issues", e.acme, admin.ToolUpdate{Enabled: &off}, nil)
	x = e.explain(e.acme, "acme", agentID, "tracker", "list_issues")
	if x.Allowed || x.Reason != "tool_disabled" || decisive(t, x) != "tool" {
		t.Fatalf("disabled: %+v", x)
	}
	if s := step(t, x, "tool"); s.Held || s.Text != "Tool list_issues is disabled: it has no server_* relationship, so no agent may call it." {
		t.Errorf("disabled: tool step = %+v", s)
	}
	for _, r := range relationships(x) {
		if strings.HasPrefix(r, "tool:") {
			t.Errorf("disabled tool still has %s", r)
		}
	}

	// The kill switch: the agent holds nothing, not even its host membership.
	e.must(200, "POST", "/api/v1/hosts/acme/agents/"+agentID+"/kill", e.acme, nil, nil)
	x = e.explain(e.acme, "acme", agentID, "tracker", "create_issue")
	if x.Allowed || x.Reason != "agent_disabled" || decisive(t, x) != "agent" {
		t.Fatalf("killed: %+v", x)
	}
	if s := step(t, x, "agent"); s.Held || s.Text != `agent "Cursor" was stopped with the kill switch (disabled): it holds no relationship and may call nothing.` {
		t.Errorf("killed: agent step = %+v", s)
	}
	if s := step(t, x, "host_membership"); s.Held || !slices.Equal(s.Relationships, []string{"host:acme#agent@agent:acme/" + agentID}) {
		t.Errorf("killed: membership step = %+v", s)
	}
	for _, r := range relationships(x) {
		if strings.Contains(r, agentID) {
			t.Errorf("killed agent still has %s", r)
		}
	}
}

func TestExplainAnAgentOfAnotherHost(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	e.imported(up)
	var bob admin.Human
	e.must(201, "POST", "/api/v1/hosts/beta/humans", e.beta, admin.HumanCreate{Email: "bob@beta.test"}, &bob)
	other, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "beta", UserID: bob.ID, ClientID: "client-b", Name: "Beta agent", RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	x := e.explain(e.acme, "acme", other.ID, "tracker", "list_issues")
	if x.Allowed || x.Reason != "agent_removed" || decisive(t, x) != "agent" || x.AgentName != "" {
		t.Fatalf("other host: %+v", x)
	}
	if s := step(t, x, "agent"); s.Text != "There is no agent "+other.ID+" on host acme: it was removed, or it belongs to another host." {
		t.Errorf("agent step = %+v", s)
	}
	if s := step(t, x, "host_membership"); s.Held || s.Text != "The agent is not a member of host acme (no relationship host:acme#agent@agent:acme/"+other.ID+"), so it may call no tool of this host." {
		t.Errorf("membership step = %+v", s)
	}
	// beta's admin may not ask about acme at all.
	q := url.Values{"agent": {other.ID}, "server": {"tracker"}, "tool": {"list_issues"}}
	if code, body := e.do("GET", "/api/v1/hosts/acme/explain?"+q.Encode(), e.beta, nil); code != 403 && code != 404 {
		t.Fatalf("beta's token on acme = %d: %s", code, body)
	}
	// Missing and oversized names are refused.
	if code, _ := e.do("GET", "/api/v1/hosts/acme/explain?agent=x&server=tracker", e.acme, nil); code != 400 {
		t.Errorf("no tool = %d", code)
	}
	if code, _ := e.do("GET", "/api/v1/hosts/acme/explain?agent="+strings.Repeat("a", 600)+"&server=s&tool=t", e.acme, nil); code != 400 {
		t.Errorf("long agent = %d", code)
	}
}

// untraced is a backend that cannot trace its checks (as Permit cannot).
type untraced struct{ authzserver.Backend }

func TestExplainWithoutATracingBackendSaysSo(t *testing.T) {
	var e *env
	e = newEnvWith(t, func(c *admin.Config) {
		c.Decider = &lazyDecider{e: &e, cfg: c}
		c.Backend = untraced{c.Backend}
	})
	up := mcpserver.Start(t, "")
	// newEnvWith's HostNetworks are not set here: import through the store's view of a
	// loopback server needs them.
	_ = up
	var h admin.Human
	e.must(201, "POST", "/api/v1/hosts/acme/humans", e.acme, admin.HumanCreate{Email: "carol@acme.test"}, &h)
	ag, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "acme", UserID: h.ID, ClientID: "client-c", Name: "Carol's agent", RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	x := e.explain(e.acme, "acme", ag.ID, "nothing", "tool")
	if x.TraceAvailable || x.Trace != nil || !strings.Contains(x.TraceNote, "does not trace its checks") || len(x.Relationships) != 0 {
		t.Fatalf("untraced: %+v", x)
	}
	if x.Allowed || x.Reason != "unknown_server" || decisive(t, x) != "server" || step(t, x, "server").Text != "There is no MCP server nothing on host acme." {
		t.Fatalf("untraced steps: %+v", x)
	}
}

func TestExplainAToolWithConditionsOnItsArguments(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	e.must(200, "PUT", "/api/v1/hosts/acme/servers/tracker/tools/create_issue/conditions", e.acme,
		admin.ToolConditions{Prefix: map[string]string{"title": "[bot] "}}, nil)
	x := e.explain(e.acme, "acme", agentID, "tracker", "create_issue")
	if s := step(t, x, "tool"); !s.Held || !strings.Contains(s.Text, "its arguments must meet its conditions (arguments_match)") {
		t.Errorf("tool step = %+v", s)
	}
	var caveated bool
	for _, r := range x.Relationships {
		if strings.HasPrefix(r.Relationship, "tool:acme/tracker/create_issue#server_medium@mcp_server:acme/tracker[arguments_match:") &&
			strings.Contains(r.Meaning, "arguments that meet its conditions") {
			caveated = true
		}
	}
	if !caveated {
		t.Errorf("no caveated tool relationship in %+v", x.Relationships)
	}
	if x.Trace == nil || x.Trace.Result != "conditional" || len(x.Notes) != 1 || !strings.Contains(x.Notes[0], "depends on a call's arguments") {
		t.Errorf("conditional: trace %+v, notes %q", x.Trace, x.Notes)
	}
}

func TestExplainADenialBySafetyPolicy(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	e.must(200, "POST", "/api/v1/hosts/acme/emergency-stop", e.acme, admin.EmergencyStopRequest{Reason: "incident 42"}, nil)
	x := e.explain(e.acme, "acme", agentID, "tracker", "create_issue")
	if x.Allowed || x.Reason != "emergency_stop" || decisive(t, x) != "" {
		t.Fatalf("stopped host: %+v", x)
	}
	if len(x.Notes) != 1 || !strings.Contains(x.Notes[0], "This denial (emergency_stop) comes from a safety policy") {
		t.Errorf("notes = %q", x.Notes)
	}
	// Who may do what still holds: every step does, and SpiceDB allows.
	for _, s := range x.Steps {
		if !s.Held {
			t.Errorf("step %s does not hold under an emergency stop: %+v", s.Kind, s)
		}
	}
	if x.Trace == nil || x.Trace.Result != "has_permission" {
		t.Errorf("trace = %+v", x.Trace)
	}
}
