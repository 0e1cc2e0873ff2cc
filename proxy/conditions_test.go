package proxy

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
)

// conditionWorld is the world whose engine evaluates edit's argument conditions as the caveat
// does: with the check's context, and "no" without it.
type conditionWorld struct {
	*world
	conds schema.ArgumentConditions
}

func (w conditionWorld) check(ctx context.Context, req authzserver.CheckRequest) (bool, error) {
	ok, err := w.world.check(ctx, req)
	if err != nil || !ok || req.Resource != schema.Tool("h", "tracker", "edit") {
		return ok, err
	}
	if req.Context == nil {
		return false, nil // conditional: denied
	}
	args, _ := json.Marshal(req.Context["arguments"])
	return w.conds.Unmet(args) == "", nil
}

// TestDecideArgumentConditions: the check of a tool with conditions carries the call's named
// arguments (and only those) as its context; a call whose arguments meet them is forwarded, one
// that does not is refused with argument_condition naming the condition, a tool without
// conditions is checked without context, a level denial stays a level denial, and a host that
// is behind stays pending_change.
func TestDecideArgumentConditions(t *testing.T) {
	conds := schema.ArgumentConditions{Prefix: map[string]string{"title": "ACME-"}}
	w := conditionWorld{world: newWorld(), conds: conds}
	edit := w.tools["tracker/edit"]
	edit.Conditions = conds.Encode()
	w.tools["tracker/edit"] = edit

	d := decide(context.Background(), post("tracker", callWith(1, "edit", `{"title":"ACME-1","body":"secret"}`)), w)
	if d.verdict != verdictForward {
		t.Fatalf("fitting arguments: %v %+v", d.verdict, d.refusal)
	}
	last := w.checked[len(w.checked)-1]
	if args, _ := last.Context["arguments"].(map[string]any); len(args) != 1 || args["title"] != "ACME-1" {
		t.Errorf("check context %v: want only the named argument", last.Context)
	}

	d = decide(context.Background(), post("tracker", callWith(2, "edit", `{"title":"other"}`)), w)
	if d.verdict != verdictRefuse || d.refusal.denial != ReasonArgumentCondition {
		t.Fatalf("other arguments: %v %+v", d.verdict, d.refusal)
	}
	data, _ := d.refusal.data.(map[string]any)
	if data["condition"] != `title must be a string starting with "ACME-"` || d.refusal.call == nil {
		t.Errorf("refusal data %v", data)
	}

	d = decide(context.Background(), post("tracker", call(3, "read")), w)
	if d.verdict != verdictForward || w.checked[len(w.checked)-1].Context != nil {
		t.Errorf("a tool without conditions: %v, context %v", d.verdict, w.checked[len(w.checked)-1].Context)
	}
	// A host that is behind refuses the call as pending_change, whatever the arguments: the
	// condition did not refuse it, and other arguments will not help.
	w.behind, w.hostBehind = true, true
	d = decide(context.Background(), post("tracker", callWith(5, "edit", `{"title":"other"}`)), w)
	if d.refusal.denial != ReasonPendingChange {
		t.Errorf("a host behind, arguments not meeting the condition: %s, want pending_change", d.refusal.denial)
	}
	w.behind, w.hostBehind = false, false

	del := w.tools["tracker/delete"]
	del.Conditions = conds.Encode()
	w.tools["tracker/delete"] = del
	d = decide(context.Background(), post("tracker", callWith(4, "delete", `{"title":"x"}`)), w)
	if d.refusal.denial != ReasonLevelTooLow {
		t.Errorf("a tool above the agent's level with conditions: %s, want level_too_low", d.refusal.denial)
	}
}
