package authzserver

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/trustgate/trustgate/schema"
)

// legacySchema is schema.zed as it was before per-agent ceilings: ceiling_<level>: user#agent.
func legacySchema(t *testing.T) string {
	t.Helper()
	text := schema.Text
	for _, l := range schema.Levels {
		text = strings.Replace(text, "relation ceiling_"+l.String()+": agent", "relation ceiling_"+l.String()+": user#agent", 1)
	}
	if text == schema.Text {
		t.Fatal("the legacy schema equals the current one")
	}
	return text
}

// A datastore written by an earlier version (ceilings per human) is upgraded: the current schema
// cannot be written over the legacy ceilings, RemoveLegacyCeilings deletes exactly those, and then
// it can; the agent decides as the earlier version did once its copy of the ceiling is written.
func TestLegacyCeilingsAreRemovedBeforeTheSchemaChanges(t *testing.T) {
	ctx := context.Background()
	b, err := StartEmbedded(ctx, EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n, err := b.RemoveLegacyCeilings(ctx); err != nil || n != 0 {
		t.Fatalf("a datastore without a schema: removed %d, %v; want 0, nil", n, err)
	}
	// The earlier version wrote its schema (which ValidateSchema now refuses) and its tuples.
	legacy := legacySchema(t)
	if err := ValidateSchema(legacy); !errors.Is(err, ErrInvalidSchema) || !strings.Contains(err.Error(), "mcp_server#ceiling_low must allow subjects of type agent") {
		t.Fatalf("the legacy schema as a custom schema: %v; want it refused, naming the relation", err)
	}
	if _, err := b.schemas.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: legacy}); err != nil {
		t.Fatal(err)
	}
	legacyCeilings := make([]schema.Relationship, 0, 1100)
	for i := range 1100 { // more than one delete request holds
		legacyCeilings = append(legacyCeilings, schema.Relationship{
			Resource: schema.Server("acme", "srv"), Relation: "ceiling_" + schema.Levels[i%3].String(),
			Subject: schema.SubjectRef{Object: schema.User("acme", "u_"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i/26)), Relation: schema.RelUserAgent},
		})
	}
	kept := append([]schema.Relationship{
		schema.ServerHost("acme", "srv"), schema.ToolLevel("acme", "srv", "tool", schema.Medium),
		schema.Grant("acme", "srv", "a_1", schema.High),
	}, schema.AgentTuples("acme", "a_1", "u_1")...)
	var updates []Update
	for _, r := range append(append([]schema.Relationship{}, kept...), legacyCeilings...) {
		updates = append(updates, Update{Op: OpTouch, Relationship: r})
	}
	if _, err := b.WriteRelationships(ctx, updates); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteSchema(ctx, schema.Text); err == nil {
		t.Fatal("the current schema was written over legacy ceilings; SpiceDB should refuse it")
	}

	n, err := b.RemoveLegacyCeilings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(legacyCeilings) {
		t.Errorf("removed %d legacy ceilings, want %d", n, len(legacyCeilings))
	}
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatalf("write the current schema after the removal: %v", err)
	}
	left := map[string]bool{}
	for _, typ := range schema.ObjectTypes {
		if err := b.ReadRelationships(ctx, typ, func(r schema.Relationship) error { left[r.String()] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(left) != len(kept) {
		t.Errorf("%d relationships left, want the %d that are not legacy ceilings", len(left), len(kept))
	}
	for _, r := range kept {
		if !left[r.String()] {
			t.Errorf("%s was removed too", r)
		}
	}
	req := CheckRequest{Resource: schema.Tool("acme", "srv", "tool"), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}
	if ok, err := b.Check(ctx, req); err != nil || ok {
		t.Fatalf("before its copy of the ceiling: allowed=%v, %v; want denied (fail closed)", ok, err)
	}
	if _, err := b.WriteRelationships(ctx, []Update{{Op: OpTouch, Relationship: schema.Ceiling("acme", "srv", "a_1", schema.Medium)}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Check(ctx, req); err != nil || !ok {
		t.Fatalf("with its copy of the ceiling: allowed=%v, %v; want allowed", ok, err)
	}
	if n, err := b.RemoveLegacyCeilings(ctx); err != nil || n != 0 {
		t.Fatalf("again on the current schema: removed %d, %v; want 0, nil", n, err)
	}
}
