package backendtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Ready: a backend holding trustgate's schema says so, before and after writes.
func testReady(e *env) {
	e.must("Ready before any write", e.b.Ready(e.ctx))
	h := e.host("a")
	e.standardHost(h)
	e.sync()
	e.must("Ready after writes", e.b.Ready(e.ctx))
}

// DenyByDefault: questions about objects the backend never heard of, and agents nobody
// consented for, are answered "no" without an error.
func testDenyByDefault(e *env) {
	h := e.host("a")
	unknown := e.host("z")
	for _, req := range []authzserver.CheckRequest{
		callRequest(unknown, srv, "create_issue", agent, ""),
		callRequest(h, srv, "create_issue", agent, ""),
	} {
		if e.check(req) {
			e.t.Fatalf("before any write, %s may call %s", req.Subject, req.Resource)
		}
	}
	if got := e.callable(unknown, srv, agent); got != nil {
		e.t.Fatalf("an unknown host lists callable tools %q", got)
	}

	e.standardHost(h)
	e.sync()
	e.want("an agent without a consent", h, srv, agent)
	e.want("an agent that does not exist", h, srv, "a_unknown")
	e.want("a server that does not exist", h, "other", agent)
	if e.check(callRequest(h, srv, "no such tool", agent, e.rev)) {
		e.t.Fatal("an agent without a consent may call a tool that does not exist")
	}
	e.consent(h, agent, srv, schema.High)
	e.sync()
	if e.check(callRequest(h, srv, "no such tool", agent, e.rev)) {
		e.t.Fatal("an agent with a high consent may call a tool that does not exist")
	}
}

// ConsentAtEachLevel: a consent at a level lets the agent call exactly the tools at or below it,
// going up and coming down again, and a consent withdrawn lets it call nothing.
func testConsentAtEachLevel(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.sync()
	e.want("no consent yet", h, srv, agent)
	for _, l := range schema.Levels {
		e.consent(h, agent, srv, l)
		e.sync()
		e.want("consent "+l.String(), h, srv, agent, upTo(l)...)
	}
	for _, l := range []schema.Level{schema.Medium, schema.Low} {
		e.consent(h, agent, srv, l)
		e.sync()
		e.want("consent lowered to "+l.String(), h, srv, agent, upTo(l)...)
	}
	e.must("withdraw the consent", e.st.DeleteConsent(e.ctx, h, agent, srv))
	e.sync()
	e.want("consent withdrawn", h, srv, agent)
}

// CeilingsLoweredAndRaised: the agent calls what both its consent and its human's ceiling
// allow (the lower of the two), whichever of them moves.
//
// A ceiling is the human's: each change reaches every agent of theirs (a_2 consented high
// throughout) and no agent of another human (a_3 of u_2, ceiling and consent high).
func testCeilingsLoweredAndRaised(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.createAgent(h, "a_2", user1)
	e.createUser(h, "u_2")
	e.setCeiling(h, srv, "u_2", schema.High)
	e.createAgent(h, "a_3", "u_2")
	e.consent(h, agent, srv, schema.High)
	e.consent(h, "a_2", srv, schema.High)
	e.consent(h, "a_3", srv, schema.High)
	e.sync()
	e.want("consent high, ceiling high", h, srv, agent, upTo(schema.High)...)
	steps := []struct {
		name    string
		change  func()
		allowed schema.Level
		// second is what a_2, the human's other agent, may use.
		second schema.Level
	}{
		{"ceiling lowered to low", func() { e.setCeiling(h, srv, user1, schema.Low) }, schema.Low, schema.Low},
		{"ceiling raised to medium", func() { e.setCeiling(h, srv, user1, schema.Medium) }, schema.Medium, schema.Medium},
		{"ceiling raised to high", func() { e.setCeiling(h, srv, user1, schema.High) }, schema.High, schema.High},
		{"consent lowered to medium", func() { e.consent(h, agent, srv, schema.Medium) }, schema.Medium, schema.High},
		{"ceiling lowered to low again", func() { e.setCeiling(h, srv, user1, schema.Low) }, schema.Low, schema.Low},
		{"ceiling raised above the consent", func() { e.setCeiling(h, srv, user1, schema.High) }, schema.Medium, schema.High},
		// Removing the ceiling ends the consents it allowed: a new ceiling restores nothing.
		{"ceiling removed", func() { e.must("remove the ceiling", e.st.DeleteGrant(e.ctx, h, srv, user1)) }, 0, 0},
		{"ceiling set again", func() { e.setCeiling(h, srv, user1, schema.High) }, 0, 0},
		{"consent given again", func() { e.consent(h, agent, srv, schema.Low) }, schema.Low, 0},
	}
	for _, s := range steps {
		s.change()
		e.sync()
		e.want(s.name, h, srv, agent, upTo(s.allowed)...)
		e.want(s.name+" (the human's other agent)", h, srv, "a_2", upTo(s.second)...)
		e.want(s.name+" (another human's agent)", h, srv, "a_3", upTo(schema.High)...)
	}
	e.wantStoreSet("after the ceiling changes", h)
}

// AgentKill: a killed or deleted agent calls nothing at once, and the other agents of its human
// and of other humans keep what they had; deleting a human cuts their agents.
func testAgentKill(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.createAgent(h, "a_2", user1)
	e.createUser(h, "u_2")
	e.setCeiling(h, srv, "u_2", schema.High)
	e.createAgent(h, "a_3", "u_2")
	e.consent(h, agent, srv, schema.High)
	e.consent(h, "a_2", srv, schema.High)
	e.consent(h, "a_3", srv, schema.Medium)
	e.sync()
	e.want("a_1 before the kill", h, srv, agent, upTo(schema.High)...)
	e.want("a_3 before the kill", h, srv, "a_3", upTo(schema.Medium)...)

	_, err := e.st.KillAgent(e.ctx, h, agent)
	e.must("kill a_1", err)
	e.sync()
	e.want("the killed agent", h, srv, agent)
	e.want("another agent of the same human", h, srv, "a_2", upTo(schema.High)...)
	e.want("an agent of another human", h, srv, "a_3", upTo(schema.Medium)...)

	e.must("delete a_2", e.st.DeleteAgent(e.ctx, h, "a_2"))
	e.sync()
	e.want("the deleted agent", h, srv, "a_2")
	e.want("an agent of another human after a deletion", h, srv, "a_3", upTo(schema.Medium)...)

	e.must("delete u_2", e.st.DeleteUser(e.ctx, h, "u_2"))
	e.sync()
	e.want("an agent of a deleted human", h, srv, "a_3")
}

// RevocationVisibleToTheNextCheck: after a revocation is written, the very next check (asked at
// the write's revision, with an allowed answer for the same question asked just before) denies;
// repeated, with each kind of revocation.
func testRevocationVisibleToTheNextCheck(e *env) {
	h := e.host("a")
	e.standardHost(h)
	top := standardTools[len(standardTools)-1].name
	revocations := []struct {
		name    string
		agent   string
		consent schema.Level // given before the revocation
		tool    string       // allowed before, denied after
		revoke  func()
	}{
		{"consent withdrawn", agent, schema.High, top, func() { e.must("withdraw consent", e.st.DeleteConsent(e.ctx, h, agent, srv)) }},
		{"consent lowered", agent, schema.High, "create_issue", func() { e.consent(h, agent, srv, schema.Low) }},
		{"ceiling lowered", agent, schema.High, top, func() { e.setCeiling(h, srv, user1, schema.Medium) }},
		{"ceiling removed", agent, schema.High, "issues.search", func() { e.must("remove the ceiling", e.st.DeleteGrant(e.ctx, h, srv, user1)) }},
		{"tool disabled", agent, schema.High, top, func() { e.putTool(h, srv, top, schema.High, false) }},
		{"tool level raised", agent, schema.Medium, "create_issue", func() { e.putTool(h, srv, "create_issue", schema.High, true) }},
		{"agent killed", "a_k", schema.High, "issues.search", func() {
			_, err := e.st.KillAgent(e.ctx, h, "a_k")
			e.must("kill a_k", err)
		}},
	}
	for _, r := range revocations {
		// Restore a full path for the agent, then ask the question once so that any cache holds
		// the allowed answer.
		e.setCeiling(h, srv, user1, schema.High)
		for _, tl := range standardTools {
			e.putTool(h, srv, tl.name, tl.level, true)
		}
		if r.agent != agent {
			e.createAgent(h, r.agent, user1)
		}
		e.consent(h, r.agent, srv, r.consent)
		e.sync()
		if !e.check(callRequest(h, srv, r.tool, r.agent, e.rev)) || !e.check(callRequest(h, srv, r.tool, r.agent, "")) {
			e.t.Fatalf("%s: before the revocation %s may not call %q", r.name, r.agent, r.tool)
		}
		if names := e.callable(h, srv, r.agent); !slices.Contains(names, r.tool) {
			e.t.Fatalf("%s: before the revocation %s does not list %q: %q", r.name, r.agent, r.tool, names)
		}
		r.revoke()
		rev := e.sync()
		if e.check(callRequest(h, srv, r.tool, r.agent, rev)) {
			e.t.Fatalf("%s: the next check, at the revocation's revision, still allows %s to call %q", r.name, r.agent, r.tool)
		}
		if e.check(callRequest(h, srv, r.tool, r.agent, "")) {
			e.t.Fatalf("%s: a check at the default consistency still allows %s to call %q", r.name, r.agent, r.tool)
		}
		if names := e.callable(h, srv, r.agent); slices.Contains(names, r.tool) {
			e.t.Fatalf("%s: CallableTools still lists %q for %s: %q", r.name, r.tool, r.agent, names)
		}
	}
}

// ToolEnableDisable: a disabled tool is callable by no one and listed for no one; enabled again,
// it is; a level an admin changes applies at once; a tool added later is callable at once.
func testToolEnableDisable(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.consent(h, agent, srv, schema.High)
	e.sync()
	e.want("all enabled", h, srv, agent, upTo(schema.High)...)

	e.putTool(h, srv, "create_issue", schema.Medium, false)
	e.sync()
	e.want("create_issue disabled", h, srv, agent, "issues.search", "list projects", "delete-repo/now")
	e.putTool(h, srv, "issues.search", schema.Low, false)
	e.putTool(h, srv, "list projects", schema.Low, false)
	e.putTool(h, srv, "delete-repo/now", schema.High, false)
	e.sync()
	e.want("every tool disabled", h, srv, agent)
	for _, tl := range standardTools {
		e.putTool(h, srv, tl.name, tl.level, true)
	}
	e.sync()
	e.want("every tool enabled again", h, srv, agent, upTo(schema.High)...)

	e.consent(h, agent, srv, schema.Low)
	e.sync()
	e.want("consent low", h, srv, agent, upTo(schema.Low)...)
	e.putTool(h, srv, "delete-repo/now", schema.Low, true)
	e.sync()
	e.want("a high tool lowered to low by an admin", h, srv, agent, "issues.search", "list projects", "delete-repo/now")
	e.putTool(h, srv, "list projects", schema.Medium, true)
	e.sync()
	e.want("a low tool raised to medium by an admin", h, srv, agent, "issues.search", "delete-repo/now")
	e.putTool(h, srv, "archive project (v2)", schema.Low, true)
	e.sync()
	e.want("a tool added later", h, srv, agent, "issues.search", "delete-repo/now", "archive project (v2)")
}

// TenantIsolation: two hosts with the same server, tool, human and agent keys decide
// independently; an agent of one host is nothing on the other, and changes (even deleting a
// host) in one leave the other's decisions alone.
func testTenantIsolation(e *env) {
	a, b := e.host("a"), e.host("b")
	e.standardHost(a)
	e.standardHost(b)
	e.consent(a, agent, srv, schema.High)
	e.consent(b, agent, srv, schema.Low)
	e.sync()
	e.want("host a", a, srv, agent, upTo(schema.High)...)
	e.want("host b", b, srv, agent, upTo(schema.Low)...)
	top := standardTools[len(standardTools)-1].name
	cross := authzserver.CheckRequest{
		Resource:   schema.Tool(b, srv, top),
		Permission: schema.PermToolCall,
		Subject:    schema.SubjectRef{Object: schema.Agent(a, agent)},
	}
	if e.check(cross) {
		e.t.Fatalf("the agent of host a may call host b's %q", top)
	}

	e.setCeiling(a, srv, user1, schema.Low)
	e.sync()
	e.want("host a after its ceiling was lowered", a, srv, agent, upTo(schema.Low)...)
	e.consent(b, agent, srv, schema.High)
	e.sync()
	e.want("host b after its consent was raised", b, srv, agent, upTo(schema.High)...)
	e.want("host a after host b's consent was raised", a, srv, agent, upTo(schema.Low)...)

	e.must("delete host a", e.st.DeleteHost(e.ctx, a))
	e.sync()
	e.want("host a deleted", a, srv, agent)
	e.want("host b after host a was deleted", b, srv, agent, upTo(schema.High)...)
	if got := e.backendSet(a); got != nil {
		e.t.Fatalf("after host a was deleted the backend still holds %q", got)
	}
	e.wantStoreSet("host b after host a was deleted", b)
}

// CallableToolsEqualsChecks: for every agent, server and tool of a varied host, CallableTools
// lists exactly the tools Check allows, and both equal the model (enabled, and level at most
// min(consent, ceiling)); tools of another server of the same host never appear.
func testCallableToolsEqualsChecks(e *env) {
	h := e.host("a")
	e.createHost(h)
	type tool struct {
		name    string
		level   schema.Level
		enabled bool
	}
	tools := []tool{
		{"read", schema.Low, true},
		{"read.v2", schema.Low, true},
		{"über/search", schema.Low, true},
		{"a=b c", schema.Medium, true},
		{"write", schema.Medium, true},
		{"write_disabled", schema.Medium, false},
		{"drop", schema.High, true},
		{"drop_disabled", schema.High, false},
	}
	servers := []string{"srv", "srv-2", "srv_"}
	for _, s := range servers {
		e.createServer(h, s)
		for _, tl := range tools {
			e.putTool(h, s, tl.name, tl.level, tl.enabled)
		}
	}
	type consent struct {
		user, agent string
		levels      map[string]schema.Level // server → level
	}
	ceilings := map[string]map[string]schema.Level{ // user → server → ceiling
		"u_1": {"srv": schema.High, "srv-2": schema.Low, "srv_": schema.Medium},
		"u_2": {"srv": schema.Medium},
		"u_3": {},
	}
	for _, u := range []string{"u_1", "u_2", "u_3"} {
		e.createUser(h, u)
		for s, l := range ceilings[u] {
			e.setCeiling(h, s, u, l)
		}
	}
	consents := []consent{
		{"u_1", "a_1", map[string]schema.Level{"srv": schema.High, "srv-2": schema.Low, "srv_": schema.Low}},
		{"u_1", "a_2", map[string]schema.Level{"srv": schema.Low, "srv_": schema.Medium}},
		{"u_2", "a_3", map[string]schema.Level{"srv": schema.Medium}},
		{"u_2", "a_4", nil},
		{"u_3", "a_5", nil},
		{"u_1", "a_killed", map[string]schema.Level{"srv": schema.High}},
	}
	for _, c := range consents {
		e.createAgent(h, c.agent, c.user)
		for s, l := range c.levels {
			e.consent(h, c.agent, s, l)
		}
	}
	_, err := e.st.KillAgent(e.ctx, h, "a_killed")
	e.must("kill a_killed", err)
	e.sync()
	for _, c := range consents {
		for _, s := range servers {
			var want []string
			if c.agent != "a_killed" {
				allowed := min(c.levels[s], ceilings[c.user][s]) // 0 when either is missing
				for _, tl := range tools {
					if tl.enabled && tl.level <= allowed {
						want = append(want, tl.name)
					}
				}
			}
			e.want(fmt.Sprintf("%s (of %s) on %s", c.agent, c.user, s), h, s, c.agent, want...)
		}
	}
}

// ReadRelationshipsReturnsWhatWasWritten: the relationships read back per object type are
// exactly those the store implies, after creation and after every kind of removal.
func testReadRelationships(e *env) {
	a, b := e.host("a"), e.host("b")
	e.standardHost(a)
	e.standardHost(b)
	e.createAgent(a, "a_2", user1)
	e.consent(a, agent, srv, schema.Medium)
	e.consent(a, "a_2", srv, schema.Low)
	e.consent(b, agent, srv, schema.High)
	e.sync()
	e.wantStoreSet("after creation", a, b)
	if n := len(e.backendSet(a)); n < 10 {
		e.t.Fatalf("host a has %d relationships, want every kind (memberships, agents, server, tools, ceiling, consents)", n)
	}

	e.putTool(a, srv, "create_issue", schema.Medium, false)
	_, err := e.st.KillAgent(e.ctx, a, "a_2")
	e.must("kill a_2", err)
	e.setCeiling(a, srv, user1, schema.Medium)
	e.consent(a, agent, srv, schema.Low)
	e.sync()
	e.wantStoreSet("after a tool was disabled, an agent killed, a ceiling and a consent changed", a, b)

	e.must("delete the ceiling", e.st.DeleteGrant(e.ctx, a, srv, user1))
	e.must("delete the server of host b", e.st.DeleteServer(e.ctx, b, srv))
	e.sync()
	e.wantStoreSet("after a ceiling and a server were deleted", a, b)
}

// DirectWritesAndDeletes: relationships written through the Backend itself (as the writer's
// reconciliation does) take effect at the write's revision; touching twice and deleting what is
// absent are harmless; a batch of touches and deletes applies whole.
func testDirectWritesAndDeletes(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.sync()
	e.want("no consent", h, srv, agent)

	grantHigh := schema.Grant(h, srv, agent, schema.High)
	grantLow := schema.Grant(h, srv, agent, schema.Low)
	// The agent's copy of its human's ceiling, which the store writes with a consent.
	ceilingCopy := schema.Ceiling(h, srv, agent, schema.High)
	touch := func(rels ...schema.Relationship) []authzserver.Update {
		var u []authzserver.Update
		for _, r := range rels {
			u = append(u, authzserver.Update{Op: authzserver.OpTouch, Relationship: r})
		}
		return u
	}
	for i := range 2 { // the second touch is idempotent
		rev, err := e.b.WriteRelationships(e.ctx, touch(grantHigh, ceilingCopy))
		e.must(fmt.Sprintf("touch %s (%d)", grantHigh, i+1), err)
		e.rev = rev
		e.want(fmt.Sprintf("written directly (%d)", i+1), h, srv, agent, upTo(schema.High)...)
	}
	if got := e.backendSet(h); !slices.Contains(got, grantHigh.String()) {
		e.t.Fatalf("a relationship written directly is not read back: %q", got)
	}

	rev, err := e.b.WriteRelationships(e.ctx, []authzserver.Update{
		{Op: authzserver.OpDelete, Relationship: grantHigh},
		{Op: authzserver.OpTouch, Relationship: grantLow},
	})
	e.must("swap high for low in one batch", err)
	e.rev = rev
	e.want("after one batch swapped high for low", h, srv, agent, upTo(schema.Low)...)

	rev, err = e.b.DeleteRelationships(e.ctx, []schema.Relationship{grantLow, grantHigh, ceilingCopy})
	e.must("delete the grant (one of the two absent)", err)
	e.rev = rev
	e.want("deleted directly", h, srv, agent)
	got := e.backendSet(h)
	if slices.Contains(got, grantLow.String()) || slices.Contains(got, grantHigh.String()) {
		e.t.Fatalf("deleted relationships are still read back: %q", got)
	}
	e.wantStoreSet("after the direct writes were undone", h)

	if _, err := e.b.DeleteRelationships(e.ctx, []schema.Relationship{grantLow}); err != nil {
		e.t.Fatalf("deleting an absent relationship: %v", err)
	}
	if _, err := e.b.WriteRelationships(e.ctx, nil); err != nil {
		e.t.Fatalf("an empty write: %v", err)
	}
	if _, err := e.b.WriteRelationships(e.ctx, []authzserver.Update{{Op: 0, Relationship: grantHigh}}); err == nil {
		e.t.Fatal("a write with no operation was accepted")
	} else if errors.Is(err, authzserver.ErrUnavailable) {
		e.t.Fatalf("a write with no operation is reported as the backend being unavailable: %v", err)
	}
	e.want("after the refused write", h, srv, agent)
}

// ConsistencyAfterRestart: after a restart over the same data the backend decides as before and
// holds what the store implies (a volatile backend after the start-up reconciliation), and
// changes made after the restart are enforced.
func testConsistencyAfterRestart(e *env) {
	if e.target.Restart == nil {
		e.t.Skip("the backend under test gives no Restart hook")
	}
	a, b := e.host("a"), e.host("b")
	e.standardHost(a)
	e.standardHost(b)
	e.createAgent(a, "a_2", user1)
	e.consent(a, agent, srv, schema.Medium)
	e.consent(a, "a_2", srv, schema.High)
	e.consent(b, agent, srv, schema.Low)
	e.putTool(a, srv, "list projects", schema.Low, false)
	e.sync()
	check := func(what string) {
		e.t.Helper()
		e.want(what+": a_1 of host a", a, srv, agent, "issues.search", "create_issue")
		e.want(what+": a_2 of host a", a, srv, "a_2", "issues.search", "create_issue", "delete-repo/now")
		e.want(what+": a_1 of host b", b, srv, agent, upTo(schema.Low)...)
	}
	check("before the restart")

	e.b = e.target.Restart(e.t)
	if e.b == nil {
		e.t.Fatal("Restart returned no backend")
	}
	e.w = authzserver.NewWriter(e.st, e.b, nil)
	e.rev = "" // a revision of the old backend means nothing to a volatile new one
	e.must("Ready after the restart", e.b.Ready(e.ctx))
	if e.target.Volatile {
		if got := e.backendSet(a, b); got != nil {
			e.t.Fatalf("a volatile backend holds after its restart: %q", got)
		}
		stats, err := e.w.Reconcile(e.ctx)
		e.must("reconcile after the restart", err)
		if stats.Deleted != 0 || stats.Touched != stats.Desired {
			e.t.Fatalf("reconciling the restarted volatile backend: %+v, want every desired relationship touched and none deleted", stats)
		}
	}
	e.wantStoreSet("after the restart", a, b)
	check("after the restart")

	e.must("withdraw a_2's consent", e.st.DeleteConsent(e.ctx, a, "a_2", srv))
	e.consent(b, agent, srv, schema.High)
	e.sync()
	e.want("a_2 after its consent was withdrawn after the restart", a, srv, "a_2")
	e.want("a_1 of host b after its consent was raised after the restart", b, srv, agent, upTo(schema.High)...)
	e.wantStoreSet("after changes following the restart", a, b)
}

// manyTools is more tools on one server than one page of ReadRelationships and one
// WriteRelationships request of SpiceDB hold (1000 each).
const manyTools = 1200

// ManyRelationships: a server with more tools than one page or one request holds is listed
// whole, read back whole, and removed and restored whole by single calls of the Backend.
func testManyRelationships(e *env) {
	h := e.host("a")
	e.standardHost(h)
	const big = "big"
	var names, want []string
	err := e.st.ReadWriteTx(e.ctx, func(tx store.Tx) error {
		names, want = names[:0], want[:0]
		if _, err := tx.CreateServer(e.ctx, store.Server{Host: h, Key: big, Name: big, URL: "https://big.example.test/mcp"}); err != nil {
			return err
		}
		for i := range manyTools {
			name := fmt.Sprintf("tool %04d", i)
			level := schema.Levels[i%len(schema.Levels)]
			if _, err := tx.PutTool(e.ctx, store.Tool{Host: h, Server: big, Name: name, Level: level, LevelOverridden: true, Enabled: true}); err != nil {
				return err
			}
			names = append(names, name)
			if level <= schema.Medium {
				want = append(want, name)
			}
		}
		_, err := tx.SetGrant(e.ctx, store.Grant{Host: h, Server: big, UserID: user1, Ceiling: schema.High})
		return err
	})
	e.must("import a server with many tools", err)
	e.consent(h, agent, big, schema.Medium)
	e.sync()
	want = sorted(want)
	if got := e.callable(h, big, agent); !slices.Equal(got, want) {
		e.t.Fatalf("CallableTools lists %d tools, want the %d at or below medium", len(got), len(want))
	}
	e.wantStoreSet("a server with many tools", h)
	if got := e.callable(h, srv, agent); got != nil {
		e.t.Fatalf("the tools of another server are listed for a server without a consent: %d", len(got))
	}

	var levels []schema.Relationship
	for i, name := range names {
		levels = append(levels, schema.ToolLevel(h, big, name, schema.Levels[i%len(schema.Levels)]))
	}
	rev, err := e.b.DeleteRelationships(e.ctx, levels)
	e.must(fmt.Sprintf("delete %d tool relationships in one call", len(levels)), err)
	e.rev = rev
	if got := e.callable(h, big, agent); got != nil {
		e.t.Fatalf("after every tool's relationship was deleted, %d tools are listed", len(got))
	}
	if e.check(callRequest(h, big, names[0], agent, rev)) {
		e.t.Fatalf("after every tool's relationship was deleted, %q may be called", names[0])
	}
	updates := make([]authzserver.Update, len(levels))
	for i, r := range levels {
		updates[i] = authzserver.Update{Op: authzserver.OpTouch, Relationship: r}
	}
	rev, err = e.b.WriteRelationships(e.ctx, updates)
	e.must(fmt.Sprintf("write %d tool relationships in one call", len(updates)), err)
	e.rev = rev
	if !e.check(callRequest(h, big, names[0], agent, rev)) {
		e.t.Fatalf("after every tool's relationship was written again, %q may not be called", names[0])
	}
	if got := e.callable(h, big, agent); !slices.Equal(got, want) {
		e.t.Fatalf("after every tool's relationship was written again, CallableTools lists %d tools, want %d", len(got), len(want))
	}
	e.wantStoreSet("after the tools were deleted and written again", h)
}

// ChecksRacingARevocation: while goroutines keep asking, a revocation is written; every check
// and tool list that starts after the write returned denies, whatever was answered (and
// cached) while it was in flight.
func testChecksRacingARevocation(e *env) {
	h := e.host("a")
	e.standardHost(h)
	e.consent(h, agent, srv, schema.High)
	e.sync()
	top := standardTools[len(standardTools)-1].name
	e.want("before the revocation", h, srv, agent, upTo(schema.High)...)

	const askers, after = 4, 20 // each asker stops after this many questions following the write
	var revoked atomic.Bool
	var revision atomic.Value // authzserver.Revision of the revocation
	errs := make(chan error, askers)
	var wg sync.WaitGroup
	for i := range askers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < after; {
				if e.ctx.Err() != nil {
					errs <- e.ctx.Err()
					return
				}
				done := revoked.Load()
				var rev authzserver.Revision
				if done {
					rev, _ = revision.Load().(authzserver.Revision)
					n++
				}
				if i%2 == 0 {
					ok, err := e.b.Check(e.ctx, callRequest(h, srv, top, agent, rev))
					if err != nil {
						errs <- fmt.Errorf("check: %w", err)
						return
					}
					if done && ok {
						errs <- fmt.Errorf("a check started after the revocation was written allowed %q", top)
						return
					}
					continue
				}
				names, err := e.b.CallableTools(e.ctx, h, srv, agent)
				if err != nil {
					errs <- fmt.Errorf("callable tools: %w", err)
					return
				}
				if done && len(names) > 0 {
					errs <- fmt.Errorf("a tool list started after the revocation was written lists %q", names)
					return
				}
			}
			errs <- nil
		}()
	}
	e.must("withdraw the consent", e.st.DeleteConsent(e.ctx, h, agent, srv))
	revision.Store(e.sync())
	revoked.Store(true)
	wg.Wait()
	for range askers {
		if err := <-errs; err != nil {
			e.t.Fatal(err)
		}
	}
}

// FailsClosedWhenUnavailable: when the engine cannot be reached, checks and tool lists deny with
// an error wrapping authzserver.ErrUnavailable (even for a question answered "yes" just before),
// Ready reports it, writes fail the same way, and the store keeps the changes for later.
func testFailsClosedWhenUnavailable(e *env) {
	if e.target.Stop == nil {
		e.t.Skip("the backend under test gives no Stop hook")
	}
	h := e.host("a")
	e.standardHost(h)
	e.consent(h, agent, srv, schema.High)
	e.sync()
	e.want("before the engine stops", h, srv, agent, upTo(schema.High)...)
	top := standardTools[len(standardTools)-1].name

	e.target.Stop(e.t)
	unavailable := func(what string, err error) {
		e.t.Helper()
		if !errors.Is(err, authzserver.ErrUnavailable) {
			e.t.Fatalf("%s with the engine unreachable: error %v, want one wrapping %q", what, err, authzserver.ErrUnavailable)
		}
	}
	for _, rev := range []authzserver.Revision{e.rev, ""} {
		ok, err := e.b.Check(e.ctx, callRequest(h, srv, top, agent, rev))
		unavailable("Check", err)
		if ok {
			e.t.Fatal("a check with the engine unreachable allowed")
		}
	}
	names, err := e.b.CallableTools(e.ctx, h, srv, agent)
	unavailable("CallableTools", err)
	if len(names) > 0 {
		e.t.Fatalf("CallableTools with the engine unreachable lists %q", names)
	}
	unavailable("Ready", e.b.Ready(e.ctx))
	_, err = e.b.WriteRelationships(e.ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: schema.Grant(h, srv, "a_2", schema.Low)}})
	unavailable("WriteRelationships", err)

	e.must("withdraw the consent", e.st.DeleteConsent(e.ctx, h, agent, srv))
	if _, err := e.w.Sync(e.ctx); !errors.Is(err, authzserver.ErrUnavailable) {
		e.t.Fatalf("applying the store's changes with the engine unreachable: %v, want an error wrapping %q", err, authzserver.ErrUnavailable)
	}
	if n, err := e.st.PendingRelationshipChanges(e.ctx); err != nil || n == 0 {
		e.t.Fatalf("after a failed apply the store keeps %d changes (%v), want the withdrawal kept", n, err)
	}
}

// RefusedChangeSetAsideAndItsHostFailsClosed: a change the engine refuses for good (a relation
// the schema does not have) does not stop the outbox: the writer sets it aside in the store's
// quarantine and applies the changes behind it, of its host and of another. Inside
// authzserver.NewFailClosed with the writer's Lag, its host then gets no allow and no callable
// tool (the engine itself answers as the store says) while the other host's answers are the
// engine's; once the change is discarded, its host's answers are the engine's again.
func testRefusedChangeSetAside(e *env) {
	h, other := e.host("a"), e.host("b")
	e.standardHost(h)
	e.standardHost(other)
	e.consent(h, agent, srv, schema.High)
	e.consent(other, agent, srv, schema.Medium)
	e.sync()
	guard := authzserver.NewFailClosed(e.b, e.w.Lag())
	e.wantVia(guard, "before the refused change", h, srv, agent, upTo(schema.High)...)
	e.wantVia(guard, "the other host before the refused change", other, srv, agent, upTo(schema.Medium)...)

	// The refused change, then a lowering of its host and a raise of the other behind it.
	refused := e.putRefused(h)
	e.consent(h, agent, srv, schema.Low)
	e.consent(other, agent, srv, schema.High)
	if _, err := e.b.WriteRelationships(e.ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: refused}}); !errors.Is(err, authzserver.ErrRefused) {
		e.t.Fatalf("a write of a relation the schema does not have: %v, want an error wrapping %q", err, authzserver.ErrRefused)
	}
	e.sync() // fails the case unless the refused change is set aside and the rest applied

	aside, err := e.st.ListQuarantinedChanges(e.ctx, "")
	e.must("list the changes set aside", err)
	var ours []store.QuarantinedChange
	for _, c := range aside {
		if c.Host == h || c.Host == other {
			ours = append(ours, c)
		}
	}
	if len(ours) != 1 || ours[0].Host != h || ours[0].Relationship != refused || !strings.Contains(ours[0].Reason, "no_such_relation") {
		e.t.Fatalf("set aside: %+v, want the refused change of %s with the engine's reason naming its relation", ours, h)
	}
	// Operators read the reason (admin outbox list, the API, the dashboard): it is the engine's
	// words, not a formatting artefact of its client library.
	if r := ours[0].Reason; strings.Contains(r, "%!") || strings.Contains(r, "<nil>") {
		e.t.Errorf("the reason set aside reads %q", r)
	}
	if n, err := e.st.PendingRelationshipChanges(e.ctx); err != nil || n != 0 {
		e.t.Fatalf("after the drain %d changes are pending (%v), want none", n, err)
	}
	e.want("the engine, after the lowering behind the refused change", h, srv, agent, upTo(schema.Low)...)
	e.want("the engine, the other host's raise behind the refused change", other, srv, agent, upTo(schema.High)...)
	e.wantVia(guard, "a host with a change set aside", h, srv, agent)
	e.wantVia(guard, "the other host while a change of another is set aside", other, srv, agent, upTo(schema.High)...)
	if s := e.w.Lag().Status(); !slices.Contains(s.Behind, h) || slices.Contains(s.Behind, other) {
		e.t.Fatalf("the writer's Lag says %v are behind, want %s and not %s", s.Behind, h, other)
	}

	_, err = e.st.DiscardQuarantinedChange(e.ctx, ours[0].ID)
	e.must("discard the change set aside", err)
	e.sync()
	e.wantVia(guard, "once the change set aside was discarded", h, srv, agent, upTo(schema.Low)...)
	e.wantVia(guard, "the other host at the end", other, srv, agent, upTo(schema.High)...)
}
