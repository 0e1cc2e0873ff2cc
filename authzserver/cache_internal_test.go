package authzserver

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/schema"
)

// A repeated question at an unchanged revision is answered without asking SpiceDB: it still
// answers after the gRPC connection is gone, while a new question fails closed.
func TestCacheAnswersWithoutSpiceDBAtTheSameRevision(t *testing.T) {
	ctx := context.Background()
	b, err := StartEmbedded(ctx, EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatal(err)
	}
	var updates []Update
	for _, r := range append([]schema.Relationship{
		schema.HostMember("acme", "u_1"), schema.ServerHost("acme", "srv"),
		schema.ToolLevel("acme", "srv", "tool", schema.Low), schema.Ceiling("acme", "srv", "a_1", schema.High),
		schema.Grant("acme", "srv", "a_1", schema.Low),
	}, schema.AgentTuples("acme", "a_1", "u_1")...) {
		updates = append(updates, Update{Op: OpTouch, Relationship: r})
	}
	if _, err := b.WriteRelationships(ctx, updates); err != nil {
		t.Fatal(err)
	}
	c, err := NewDecisionCache(ctx, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	req := CheckRequest{Resource: schema.Tool("acme", "srv", "tool"), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent("acme", "a_1")}}
	if ok, err := c.Check(ctx, req); err != nil || !ok {
		t.Fatalf("first check: %v %v", ok, err)
	}
	_ = b.conn.Close()
	if ok, err := c.Check(ctx, req); err != nil || !ok {
		t.Fatalf("repeated check without SpiceDB's API: %v %v (not cached)", ok, err)
	}
	other := req
	other.Subject = schema.SubjectRef{Object: schema.Agent("acme", "a_2")}
	if ok, err := c.Check(ctx, other); err == nil || ok {
		t.Fatalf("a new question without SpiceDB's API = %v, %v; want an error", ok, err)
	}
}
