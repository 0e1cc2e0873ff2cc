package storetest

import (
	"slices"
	"testing"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// testToolConditions: a tool's argument conditions are set, kept by a PutTool (a sync or an
// admin's update that knows nothing of them) and by a level change, cleared; each time the
// derived relationships and the outbox carry the tool's tuple with the caveat of the moment;
// invalid conditions and unknown tools are refused without a change.
func testToolConditions(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Server](t, "create server")(s.CreateServer(ctx, store.Server{Host: "acme", Key: "gh"}))
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "create_issue", Level: schema.Medium, Enabled: true}))
		drainAll(t, s)
		conds := schema.ArgumentConditions{Prefix: map[string]string{"repository": "acme/"}, Max: map[string]float64{"count": 10}}
		got := must[store.Tool](t, "set conditions")(s.SetToolConditions(ctx, "acme", "gh", "create_issue", conds))
		if got.Conditions != conds.Encode() {
			t.Fatalf("conditions %q, want %q", got.Conditions, conds.Encode())
		}
		want := schema.ToolLevelWithConditions("acme", "gh", "create_issue", schema.Medium, conds)
		wantTool := func(what string, rel schema.Relationship) {
			t.Helper()
			if !relationshipSet(t, s)[rel.String()] {
				t.Errorf("%s: Relationships lacks %s", what, rel)
			}
		}
		wantTool("after set", want)
		if ch := changeStrings(drainAll(t, s)); !slices.Equal(ch, []string{"touch " + want.String()}) {
			t.Errorf("outbox after set: %q", ch)
		}

		// A PutTool keeps them, even one that raises the level (delete the old tuple, touch the
		// new one with the same caveat).
		must[store.Tool](t, "put tool")(s.PutTool(ctx, store.Tool{Host: "acme", Server: "gh", Name: "create_issue", Description: "synced", Level: schema.High, Enabled: true}))
		kept := must[store.Tool](t, "get tool")(s.GetTool(ctx, "acme", "gh", "create_issue"))
		if kept.Conditions != conds.Encode() {
			t.Fatalf("PutTool dropped the conditions: %q", kept.Conditions)
		}
		high := schema.ToolLevelWithConditions("acme", "gh", "create_issue", schema.High, conds)
		wantTool("after a level change", high)
		if ch := changeStrings(drainAll(t, s)); !slices.Equal(ch, []string{"delete " + want.String(), "touch " + high.String()}) {
			t.Errorf("outbox after the level change: %q", ch)
		}

		_, err := s.SetToolConditions(ctx, "acme", "gh", "create_issue", schema.ArgumentConditions{Max: map[string]float64{"a": 1}, Min: map[string]float64{"a": 2}})
		wantErr(t, "min above max", err, store.ErrInvalid)
		_, err = s.SetToolConditions(ctx, "acme", "gh", "nope", conds)
		wantErr(t, "unknown tool", err, store.ErrNotFound)

		cleared := must[store.Tool](t, "clear conditions")(s.SetToolConditions(ctx, "acme", "gh", "create_issue", schema.ArgumentConditions{}))
		if cleared.Conditions != "" {
			t.Fatalf("cleared conditions %q", cleared.Conditions)
		}
		plain := schema.ToolLevel("acme", "gh", "create_issue", schema.High)
		wantTool("after clear", plain)
		if ch := changeStrings(drainAll(t, s)); !slices.Equal(ch, []string{"touch " + plain.String()}) {
			t.Errorf("outbox after clear: %q", ch)
		}
	})
}
