package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/store"
)

// called records an allowed tools/call of agent in the host's audit log.
func (e *env) called(host, agentID, server, tool string) {
	e.t.Helper()
	if err := e.audit.Append(context.Background(), audit.Entry{Host: host, AgentID: agentID, Server: server, Tool: tool, Method: "tools/call", Decision: audit.Allowed}); err != nil {
		e.t.Fatal(err)
	}
}

func findingsOf(x admin.Insights, kind string) []admin.InsightFinding {
	var out []admin.InsightFinding
	for _, f := range x.Findings {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func TestInsightsWhoMayDoWhatAndOverPermission(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	aliceID, cursorID := e.imported(up) // alice: ceiling high on tracker; Cursor: medium
	// bob: ceiling low, his agent at low, and he uses it.
	var bob admin.Human
	e.must(201, "POST", "/api/v1/hosts/acme/humans", e.acme, admin.HumanCreate{Email: "bob@acme.test"}, &bob)
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/bob@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "low"}, nil)
	bobAgent, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "acme", UserID: bob.ID, ClientID: "client-b", Name: "Zed", RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, "PUT", "/api/v1/hosts/acme/agents/"+bobAgent.ID+"/servers/tracker", e.acme, admin.AgentLevel{Level: "low"}, nil)
	e.called("acme", cursorID, "tracker", "list_issues")
	e.called("acme", cursorID, "tracker", "list_issues")
	e.called("acme", bobAgent.ID, "tracker", "list_issues")

	var x admin.Insights
	e.must(200, "GET", "/api/v1/hosts/acme/insights", e.acme, nil, &x)
	if x.Host != "acme" || x.AuditRead != 3 || x.AuditTruncated || x.AuditLimit != 200000 || x.UsageSince.IsZero() {
		t.Fatalf("insights header = %+v", x)
	}
	if x.Counts != (admin.InsightCounts{Humans: 2, Agents: 2, Servers: 1, Tools: 3, UnusedLevels: 1, UnusedCeilings: 1, UncallableTools: 1}) {
		t.Errorf("counts = %+v", x.Counts)
	}

	// Who may do what: alice → Cursor → tracker at medium → list_issues and create_issue.
	if len(x.Humans) != 2 || x.Humans[0].Email != "alice@acme.test" || x.Humans[1].Email != "bob@acme.test" {
		t.Fatalf("humans = %+v", x.Humans)
	}
	alice := x.Humans[0]
	if len(alice.Ceilings) != 1 || alice.Ceilings[0].Server != "tracker" || alice.Ceilings[0].Ceiling != "high" || len(alice.Agents) != 1 {
		t.Fatalf("alice = %+v", alice)
	}
	s := alice.Agents[0].Servers
	if len(s) != 1 || s[0].Effective != "medium" || !slices.Equal(s[0].Tools, []string{"create_issue", "list_issues"}) ||
		!slices.Equal(s[0].Used, []string{"list_issues"}) || s[0].HighestUsed != "low" {
		t.Errorf("Cursor's servers = %+v", s)
	}
	callers := map[string]int{}
	uncallable := map[string]bool{}
	for _, tl := range x.Servers[0].Tools {
		callers[tl.Name], uncallable[tl.Name] = tl.Callers, tl.Uncallable
	}
	if callers["list_issues"] != 2 || callers["create_issue"] != 1 || callers["delete_issue"] != 0 || !uncallable["delete_issue"] || uncallable["create_issue"] {
		t.Errorf("callers = %v, uncallable = %v", callers, uncallable)
	}

	// Over-permission.
	levels := findingsOf(x, "unused_level")
	if len(levels) != 1 || levels[0].Agent != cursorID || levels[0].Level != "medium" || levels[0].Suggested != "low" || levels[0].HumanID != aliceID ||
		levels[0].Text != `Agent "Cursor" of alice@acme.test holds medium on tracker but called no medium tool in 30 days (at most low): lower it to low.` {
		t.Errorf("unused levels = %+v", levels)
	}
	ceilings := findingsOf(x, "unused_ceiling")
	if len(ceilings) != 1 || ceilings[0].HumanEmail != "alice@acme.test" || ceilings[0].Level != "high" || ceilings[0].Suggested != "medium" ||
		ceilings[0].Text != "The ceiling of alice@acme.test on tracker is high, but none of their agents holds more than medium there." {
		t.Errorf("unused ceilings = %+v", ceilings)
	}
	tools := findingsOf(x, "uncallable_tool")
	if len(tools) != 1 || tools[0].Tool != "delete_issue" || tools[0].Level != "high" ||
		tools[0].Text != "Tool delete_issue of tracker is enabled at high, but no agent can call it." {
		t.Errorf("uncallable tools = %+v", tools)
	}

	// Cursor calls a medium tool: its level is used; the kill switch then leaves alice's
	// ceiling with no agent at all and create_issue uncallable.
	e.called("acme", cursorID, "tracker", "create_issue")
	e.must(200, "GET", "/api/v1/hosts/acme/insights", e.acme, nil, &x)
	if len(findingsOf(x, "unused_level")) != 0 {
		t.Errorf("a used level is still a finding: %+v", x.Findings)
	}
	e.must(200, "POST", "/api/v1/hosts/acme/agents/"+cursorID+"/kill", e.acme, nil, nil)
	e.must(200, "GET", "/api/v1/hosts/acme/insights", e.acme, nil, &x)
	if c := findingsOf(x, "unused_ceiling"); len(c) != 1 || c[0].Suggested != "none" || !strings.Contains(c[0].Text, "no agent of theirs holds a level there") {
		t.Errorf("after the kill switch, ceilings = %+v", c)
	}
	if u := findingsOf(x, "uncallable_tool"); len(u) != 2 || u[0].Tool != "create_issue" || u[1].Tool != "delete_issue" {
		t.Errorf("after the kill switch, uncallable = %+v", u)
	}

	// Humans come a page at a time; the findings cover the whole host on every page.
	var p1, p2 admin.Insights
	e.must(200, "GET", "/api/v1/hosts/acme/insights?limit=1", e.acme, nil, &p1)
	if len(p1.Humans) != 1 || p1.Humans[0].Email != "alice@acme.test" || p1.NextCursor == "" || p1.Counts.Humans != 2 || len(p1.Findings) != len(x.Findings) {
		t.Fatalf("page 1 = %+v", p1)
	}
	e.must(200, "GET", "/api/v1/hosts/acme/insights?limit=1&cursor="+p1.NextCursor, e.acme, nil, &p2)
	if len(p2.Humans) != 1 || p2.Humans[0].Email != "bob@acme.test" || p2.NextCursor != "" {
		t.Fatalf("page 2 = %+v", p2)
	}
	if code, _ := e.do("GET", "/api/v1/hosts/acme/insights?limit=0", e.acme, nil); code != 400 {
		t.Errorf("limit=0 = %d", code)
	}
	// Another host's token sees nothing of acme.
	if code, _ := e.do("GET", "/api/v1/hosts/acme/insights", e.beta, nil); code != 403 && code != 404 {
		t.Errorf("beta's token on acme's insights = %d", code)
	}
}
