package authzserver_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// TestArgumentConditionsDecideInTheCheck: a tool whose relationship carries the arguments_match
// caveat is allowed by CheckPermission only with arguments that meet its conditions, given as
// the caveat context; without context the answer is conditional, which is a "no". Through the
// decision cache the same: a check with context is never answered from the cache. The tool is
// listed as callable (conditionally), the relationship reads back with its caveat as written,
// and writing it again with other conditions replaces them.
func TestArgumentConditionsDecideInTheCheck(t *testing.T) {
	ctx := context.Background()
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	cache := newCache(t, b)
	conds := schema.ArgumentConditions{
		Prefix: map[string]string{"repository": "acme/"},
		Max:    map[string]float64{"amount": 1000},
		OneOf:  map[string][]string{"env": {"staging", "qa"}},
	}
	updates := grantAll(schema.Low)
	caveated := schema.ToolLevelWithConditions("acme", "srv", "tool", schema.Low, conds)
	for i, u := range updates {
		if u.Relationship.Key() == caveated.Key() {
			updates[i].Relationship = caveated
		}
	}
	if _, err := b.WriteRelationships(ctx, updates); err != nil {
		t.Fatal(err)
	}
	check := func(c authzserver.Backend, arguments string) bool {
		t.Helper()
		req := callTool
		req.Context = conds.CheckContext(json.RawMessage(arguments))
		ok, err := c.Check(ctx, req)
		if err != nil {
			t.Fatalf("check %s: %v", arguments, err)
		}
		return ok
	}
	for _, c := range []struct {
		args string
		want bool
	}{
		{`{"repository":"acme/api","amount":999,"env":"qa","other":{"x":1}}`, true},
		{`{"repository":"acme/api","amount":1000,"env":"staging"}`, true},
		{`{"repository":"evil/api","amount":5,"env":"qa"}`, false},
		{`{"repository":"acme/api","amount":1000.5,"env":"qa"}`, false},
		{`{"repository":"acme/api","amount":"5","env":"qa"}`, false}, // a string is not a number
		{`{"repository":"acme/api","env":"qa"}`, false},              // amount missing
		{`{"repository":"acme/api","amount":5,"env":"prod"}`, false},
		{`{"repository":["acme/x"],"amount":5,"env":"qa"}`, false},
		{`{}`, false},
		{``, false},
	} {
		for _, backend := range []authzserver.Backend{b, cache} {
			if got := check(backend, c.args); got != c.want {
				t.Errorf("%T: arguments %s: allowed %v, want %v", backend, c.args, got, c.want)
			}
		}
	}
	// Alternating answers through the cache: each is decided on its own arguments.
	for range 3 {
		if !check(cache, `{"repository":"acme/x","amount":1,"env":"qa"}`) || check(cache, `{"repository":"x","amount":1,"env":"qa"}`) {
			t.Fatal("the cache answered a check with context from an earlier one")
		}
	}
	// No context at all: conditional, denied.
	for _, backend := range []authzserver.Backend{b, cache} {
		if ok, err := backend.Check(ctx, callTool); err != nil || ok {
			t.Errorf("%T: a check without the arguments = %v, %v; want denied", backend, ok, err)
		}
	}
	if names, err := b.CallableTools(ctx, "acme", "srv", "a_1"); err != nil || !slices.Equal(names, []string{"tool"}) {
		t.Errorf("callable tools = %v, %v; want the conditional tool", names, err)
	}
	var read []string
	if err := b.ReadRelationships(ctx, schema.TypeTool, func(r schema.Relationship) error {
		read = append(read, r.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read, []string{caveated.String()}) {
		t.Errorf("read back %q, want %q", read, caveated.String())
	}
	// Other conditions replace the caveat: the old arguments no longer pass.
	looser := schema.ArgumentConditions{Prefix: map[string]string{"repository": "beta/"}}
	if _, err := b.WriteRelationships(ctx, []authzserver.Update{{Op: authzserver.OpTouch,
		Relationship: schema.ToolLevelWithConditions("acme", "srv", "tool", schema.Low, looser)}}); err != nil {
		t.Fatal(err)
	}
	conds = looser
	if check(cache, `{"repository":"acme/api"}`) || !check(cache, `{"repository":"beta/api"}`) {
		t.Error("the replaced conditions did not decide")
	}
	// And without conditions the tool is allowed without context again.
	if _, err := b.WriteRelationships(ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: schema.ToolLevel("acme", "srv", "tool", schema.Low)}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := cache.Check(ctx, callTool); err != nil || !ok {
		t.Errorf("after the conditions were removed: %v, %v", ok, err)
	}
}
