package proxy

import (
	"context"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Argument conditions (schema.ArgumentConditions): a host may require, for a tool, conditions
// on a call's arguments. They are a caveat on the tool's relationship in SpiceDB, so the trust
// level's one check decides them too: the check of a tools/call of such a tool carries the
// call's arguments (those the conditions name) as its caveat context. Its answer is never
// cached (authzserver.DecisionCache), and a check whose context is missing is a "no".

// ReasonArgumentCondition: the call's arguments do not meet the host's conditions on the tool;
// the agent calls again with arguments that do.
const ReasonArgumentCondition Reason = "argument_condition"

// withConditions adds the caveat context of the tool's argument conditions to the check of the
// tools/call m; conds is empty when the tool has none (or is not stored: the check then denies
// and the denial explains it).
func withConditions(ctx context.Context, f facts, host string, srv store.Server, m *message, check *authzserver.CheckRequest) (schema.ArgumentConditions, store.Tool, *refusal) {
	t, found, err := f.tool(ctx, host, srv.Key, m.tool)
	if err != nil {
		rf := storeFailed(err)
		return schema.ArgumentConditions{}, t, &rf
	}
	if !found || t.Conditions == "" {
		return schema.ArgumentConditions{}, t, nil
	}
	conds, err := schema.DecodeArgumentConditions(t.Conditions)
	if err != nil {
		// Conditions the store holds but cannot read: the tuple's caveat has no usable
		// context either, so the check denies; send none.
		check.Context = map[string]any{}
		return schema.ArgumentConditions{}, t, nil
	}
	check.Context = conds.CheckContext(m.arguments)
	return conds, t, nil
}

// conditionDenied explains a denied call of a tool with conditions: when the levels allow it
// (the denial would otherwise be pending_change), the first condition its arguments do not
// meet, as a refusal of its own. A host that is behind stays pending_change: its calls are
// refused whatever their arguments, and the condition is not what refused this one.
func conditionDenied(rf refusal, conds schema.ArgumentConditions, t store.Tool, srv store.Server, m *message) refusal {
	if conds.Empty() || rf.denial != ReasonPendingChange || rf.behind {
		return rf
	}
	unmet := conds.Unmet(m.arguments)
	if unmet == "" {
		return rf
	}
	out := safetyRefusal(m, srv, t, ReasonArgumentCondition, ErrCodeDenied,
		"its arguments do not meet the host's condition on this tool: "+unmet,
		"Call the tool again with arguments that meet the condition; the same arguments will be refused again.",
		unmet, map[string]any{"condition": unmet})
	out.levels = rf.levels
	return *out
}
