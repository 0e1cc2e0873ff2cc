package schema_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// startSpiceDB runs a real embedded SpiceDB on its memory datastore with schema.zed written.
func startSpiceDB(t *testing.T) *authzserver.SpiceDB {
	t.Helper()
	ctx := context.Background()
	backend, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
	if err != nil {
		t.Fatalf("start embedded SpiceDB: %v", err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	if err := backend.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatalf("write schema: %v", err)
	}
	return backend
}

func touch(t *testing.T, b authzserver.Backend, rels ...schema.Relationship) {
	t.Helper()
	updates := make([]authzserver.Update, len(rels))
	for i, r := range rels {
		updates[i] = authzserver.Update{Op: authzserver.OpTouch, Relationship: r}
	}
	if _, err := b.WriteRelationships(context.Background(), updates); err != nil {
		t.Fatalf("write relationships: %v", err)
	}
}

func canCall(t *testing.T, b authzserver.Backend, host, server, tool, agent string) bool {
	t.Helper()
	ok, err := b.Check(context.Background(), authzserver.CheckRequest{
		Resource:   schema.Tool(host, server, tool),
		Permission: schema.PermToolCall,
		Subject:    schema.SubjectRef{Object: schema.Agent(host, agent)},
	})
	if err != nil {
		t.Fatalf("check %s/%s/%s for %s: %v", host, server, tool, agent, err)
	}
	return ok
}

// tenant writes one host with one server, one enabled tool per level and one disabled tool.
func tenant(t *testing.T, b authzserver.Backend, host string) {
	t.Helper()
	touch(t, b, schema.ServerHost(host, "srv"))
	for _, l := range schema.Levels {
		touch(t, b, schema.ToolLevel(host, "srv", "tool_"+l.String(), l))
	}
	// tool_disabled exists in the store but has no relationship: that is what disabled means.
}

// human writes a human with one agent, an optional ceiling (the agent's copy of it, as the store
// writes for a consenting agent) and an optional grant (0 = none).
func human(t *testing.T, b authzserver.Backend, host, user, agent string, ceiling, granted schema.Level) {
	t.Helper()
	rels := append([]schema.Relationship{schema.HostMember(host, user)}, schema.AgentTuples(host, agent, user)...)
	if ceiling != 0 {
		rels = append(rels, schema.Ceiling(host, "srv", agent, ceiling))
	}
	if granted != 0 {
		rels = append(rels, schema.Grant(host, "srv", agent, granted))
	}
	touch(t, b, rels...)
}

var levelsOrNone = []schema.Level{0, schema.Low, schema.Medium, schema.High}

func TestPermissionMatrix(t *testing.T) {
	b := startSpiceDB(t)
	tenant(t, b, "acme")
	for _, granted := range levelsOrNone {
		for _, ceiling := range levelsOrNone {
			id := fmt.Sprintf("g%d_c%d", granted, ceiling)
			human(t, b, "acme", "u_"+id, "a_"+id, ceiling, granted)
		}
	}
	checked := 0
	for _, granted := range levelsOrNone {
		for _, ceiling := range levelsOrNone {
			id := fmt.Sprintf("g%d_c%d", granted, ceiling)
			for _, toolLevel := range schema.Levels {
				want := granted != 0 && ceiling != 0 && toolLevel <= schema.MinLevel(granted, ceiling)
				got := canCall(t, b, "acme", "srv", "tool_"+toolLevel.String(), "a_"+id)
				if got != want {
					t.Errorf("granted=%v ceiling=%v tool=%s: allowed=%v, want %v", granted, ceiling, toolLevel, got, want)
				}
				checked++
			}
			if canCall(t, b, "acme", "srv", "tool_disabled", "a_"+id) {
				t.Errorf("granted=%v ceiling=%v: a disabled tool was callable", granted, ceiling)
			}
		}
	}
	if checked != 48 {
		t.Fatalf("checked %d combinations, want 48", checked)
	}
}

func TestRemovingCeilingDeniesEveryAgentOfTheHuman(t *testing.T) {
	b := startSpiceDB(t)
	ctx := context.Background()
	tenant(t, b, "acme")
	human(t, b, "acme", "u_alice", "a_cursor", schema.High, schema.High)
	touch(t, b, schema.AgentTuples("acme", "a_claude", "u_alice")...)
	touch(t, b, schema.Grant("acme", "srv", "a_claude", schema.Medium), schema.Ceiling("acme", "srv", "a_claude", schema.High))
	human(t, b, "acme", "u_bob", "a_bob", schema.High, schema.High)

	for _, agent := range []string{"a_cursor", "a_claude", "a_bob"} {
		if !canCall(t, b, "acme", "srv", "tool_low", agent) {
			t.Fatalf("%s cannot call tool_low before the ceiling is removed", agent)
		}
	}
	// The store removes the copy of alice's ceiling every consenting agent of hers carries
	// (one delete request); bob's agent carries bob's.
	if _, err := b.DeleteRelationships(ctx, []schema.Relationship{
		schema.Ceiling("acme", "srv", "a_cursor", schema.High), schema.Ceiling("acme", "srv", "a_claude", schema.High),
	}); err != nil {
		t.Fatal(err)
	}
	for _, agent := range []string{"a_cursor", "a_claude"} {
		for _, l := range schema.Levels {
			if canCall(t, b, "acme", "srv", "tool_"+l.String(), agent) {
				t.Errorf("%s still calls tool_%s after alice's ceiling was removed", agent, l)
			}
		}
	}
	if !canCall(t, b, "acme", "srv", "tool_high", "a_bob") {
		t.Error("bob lost access when alice's ceiling was removed")
	}
}

func TestLoweringCeilingCapsExistingGrants(t *testing.T) {
	b := startSpiceDB(t)
	ctx := context.Background()
	tenant(t, b, "acme")
	human(t, b, "acme", "u_alice", "a_cursor", schema.High, schema.High)
	if !canCall(t, b, "acme", "srv", "tool_high", "a_cursor") {
		t.Fatal("high grant under a high ceiling cannot call tool_high")
	}
	if _, err := b.WriteRelationships(ctx, []authzserver.Update{
		{Op: authzserver.OpDelete, Relationship: schema.Ceiling("acme", "srv", "a_cursor", schema.High)},
		{Op: authzserver.OpTouch, Relationship: schema.Ceiling("acme", "srv", "a_cursor", schema.Low)},
	}); err != nil {
		t.Fatal(err)
	}
	if canCall(t, b, "acme", "srv", "tool_high", "a_cursor") || canCall(t, b, "acme", "srv", "tool_medium", "a_cursor") {
		t.Error("lowering the ceiling to low left medium or high tools callable")
	}
	if !canCall(t, b, "acme", "srv", "tool_low", "a_cursor") {
		t.Error("lowering the ceiling to low denied low tools too")
	}
}

func TestTenantsNeverSeeEachOthersObjects(t *testing.T) {
	b := startSpiceDB(t)
	ctx := context.Background()
	tenant(t, b, "acme")
	tenant(t, b, "beta")
	// The same user, agent, server and tool names in both tenants.
	human(t, b, "acme", "u_alice", "a_cursor", schema.High, schema.High)
	human(t, b, "beta", "u_alice", "a_cursor", schema.High, schema.High)
	human(t, b, "beta", "u_mallory", "a_mallory", schema.High, schema.High)

	if !canCall(t, b, "acme", "srv", "tool_high", "a_cursor") || !canCall(t, b, "beta", "srv", "tool_high", "a_cursor") {
		t.Fatal("each tenant's own agent must be able to call its own tools")
	}
	// Even a grant and a ceiling written across tenants by mistake do not open the door: the
	// schema requires the agent to belong to the server's host.
	touch(t, b,
		schema.Relationship{Resource: schema.Server("acme", "srv"), Relation: "granted_high", Subject: schema.SubjectRef{Object: schema.Agent("beta", "a_mallory")}},
		schema.Ceiling("acme", "srv", "a_mallory", schema.High),
	)
	for _, l := range schema.Levels {
		ok, err := b.Check(ctx, authzserver.CheckRequest{
			Resource:   schema.Tool("acme", "srv", "tool_"+l.String()),
			Permission: schema.PermToolCall,
			Subject:    schema.SubjectRef{Object: schema.Agent("beta", "a_mallory")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Errorf("an agent of beta can call acme's tool_%s", l)
		}
	}
	tools, err := b.CallableTools(ctx, "acme", "srv", "a_cursor")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tools) != "[tool_high tool_low tool_medium]" {
		t.Errorf("acme's agent lists %v, want its own three tools", tools)
	}
	tools, err = b.CallableTools(ctx, "beta", "srv", "a_mallory")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tools) != "[tool_high tool_low tool_medium]" {
		t.Errorf("beta's agent lists %v, want only beta's three tools", tools)
	}
}

func TestCallableToolsFollowsLevels(t *testing.T) {
	b := startSpiceDB(t)
	tenant(t, b, "acme")
	human(t, b, "acme", "u_alice", "a_cursor", schema.High, schema.Medium)
	touch(t, b, schema.ToolLevel("acme", "srv", "odd name/with.dots", schema.Low))
	tools, err := b.CallableTools(context.Background(), "acme", "srv", "a_cursor")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tools) != "[odd name/with.dots tool_low tool_medium]" {
		t.Errorf("callable tools = %q", tools)
	}
}

func TestEmbeddedSchemaIsValid(t *testing.T) {
	if err := authzserver.ValidateSchema(schema.Text); err != nil {
		t.Fatal(err)
	}
}
