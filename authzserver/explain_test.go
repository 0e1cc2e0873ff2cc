package authzserver_test

import (
	"context"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// findStep is the first step of the trace (depth first) on object#name.
func findStep(t authzserver.TraceStep, object schema.ObjectRef, name string) (authzserver.TraceStep, bool) {
	if t.Resource == object && t.Name == name {
		return t, true
	}
	for _, s := range t.Steps {
		if f, ok := findStep(s, object, name); ok {
			return f, true
		}
	}
	return authzserver.TraceStep{}, false
}

func TestExplainToolCallTracesEveryStepEvenAfterTheSameCheck(t *testing.T) {
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	ctx := context.Background()
	if _, err := b.WriteRelationships(ctx, grantAll(schema.Medium)); err != nil {
		t.Fatal(err)
	}
	// The proxy checked first: SpiceDB has the answer cached at the head revision.
	if ok, err := b.Check(ctx, callTool); err != nil || !ok {
		t.Fatalf("check = %v, %v", ok, err)
	}
	tr, err := b.ExplainToolCall(ctx, "acme", "srv", "tool", "a_1")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Allowed || tr.Revision == "" || tr.TraceTruncated || tr.Trace.Cached || tr.Trace.Result != authzserver.TraceHasPermission {
		t.Fatalf("explained = %+v", tr)
	}
	server := schema.Server("acme", "srv")
	for _, want := range []struct {
		name   string
		result authzserver.TraceResult
	}{{"use_low", authzserver.TraceHasPermission}, {"granted_medium", authzserver.TraceHasPermission}, {"ceiling_high", authzserver.TraceHasPermission}, {"granted_low", authzserver.TraceNoPermission}} {
		s, ok := findStep(tr.Trace, server, want.name)
		if !ok || s.Result != want.result {
			t.Errorf("step %s#%s = %+v (found %v), want %s", server, want.name, s, ok, want.result)
		}
	}
	if s, ok := findStep(tr.Trace, schema.Host("acme"), schema.RelHostAgent); !ok || !s.Relation || s.Result != authzserver.TraceHasPermission {
		t.Errorf("host membership step = %+v (found %v)", s, ok)
	}
	var got []string
	for _, r := range tr.Relationships {
		got = append(got, r.String())
	}
	for _, r := range grantAll(schema.Medium) {
		if r.Relationship == schema.HostMember("acme", "u_1") {
			continue // not on a tool call's path
		}
		if !slices.Contains(got, r.Relationship.String()) {
			t.Errorf("relationship %s missing from %v", r.Relationship, got)
		}
	}

	// Revoked: the trace ends at the grant that is gone, and the relationships no longer hold it.
	if _, err := b.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("acme", "srv", "a_1", schema.Medium)}); err != nil {
		t.Fatal(err)
	}
	tr, err = b.ExplainToolCall(ctx, "acme", "srv", "tool", "a_1")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Allowed || tr.Trace.Result != authzserver.TraceNoPermission {
		t.Fatalf("after revocation = %+v", tr)
	}
	for _, r := range tr.Relationships {
		if r == schema.Grant("acme", "srv", "a_1", schema.Medium) {
			t.Errorf("revoked grant still listed")
		}
	}
}
