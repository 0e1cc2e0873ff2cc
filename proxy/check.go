package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/store"
)

// Decisions for other services. A service that asks "may this agent call this tool?" (through
// the admin API's check routes) gets the answer a tools/call would get from the proxy now: the
// same stages of decide, the same facts, the same authorization backend (one check, through
// the decision cache and the metrics), and on a denial the same explanation.

// ToolDecision is the proxy's decision on a tools/call, asked outside an MCP request.
type ToolDecision struct {
	Allowed bool
	// Reason is the cause of a denial ("" when allowed); Message says what is wrong and what
	// fixes it, as the -31001 error's message does.
	Reason  Reason
	Message string
	// The levels a denial involved ("none" for an absent one; RequiredLevel "" when the tool
	// cannot be called at any level). Empty when allowed.
	AgentLevel, Ceiling, RequiredLevel string
}

// CheckToolCall decides whether the agent may call tool on server of host now, with arguments
// (nil: the question gives none, and they are not checked). It runs the stages a tools/call
// goes through in the proxy (decideMessage: the emergency stop, the trust level, argument
// validation, the rate limits, read but not taken) and explains a denial as the proxy would.
// An error is a failure to decide (store, authorization backend or rate limiter): callers deny.
func (p *Proxy) CheckToolCall(ctx context.Context, host, agentID, server, tool string, arguments json.RawMessage) (ToolDecision, error) {
	userID := ""
	a, err := p.cfg.Store.GetAgent(ctx, host, agentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Explained by the denial (agent_removed).
	case err != nil:
		return ToolDecision{}, fmt.Errorf("read agent %s: %w", agentID, err)
	default:
		userID = a.UserID
	}
	m := &message{kind: kindRequest, id: json.RawMessage("0"), method: "tools/call", name: tool, arguments: arguments, toolCall: true, tool: tool}
	req := request{host: host, userID: userID, agentID: agentID, pathServer: server, httpMethod: http.MethodPost, msg: m, dryRun: true}
	d := decideMessage(ctx, req, decision{described: true}, p.facts)
	return toolDecisionOf(d)
}

// toolDecisionOf is the check's answer of a decision on a tools/call.
func toolDecisionOf(d decision) (ToolDecision, error) {
	if d.hold != nil {
		return ToolDecision{Reason: ReasonApprovalRequired, Message: fmt.Sprintf(
			"trustgate would hold tools/call %q on %s for a person's approval (up to %s) before forwarding it", d.hold.tool.Name, d.server.Key, d.hold.rule.Timeout())}, nil
	}
	if d.verdict != verdictRefuse {
		return ToolDecision{Allowed: true}, nil
	}
	rf := d.refusal
	if rf.audited == audit.Error || rf.denial == "" {
		if rf.cause != nil {
			return ToolDecision{}, rf.cause
		}
		return ToolDecision{}, errors.New(rf.reason)
	}
	out := ToolDecision{Reason: rf.denial, Message: rf.message}
	if rf.levels != nil {
		out.AgentLevel, out.Ceiling, out.RequiredLevel = rf.levels.agent, rf.levels.ceiling, rf.levels.required
	}
	return out, nil
}

// CallableTools names the tools of server that the agent may call now, sorted, from one
// question to the authorization backend (what a tools/list keeps with the host's tool
// visibility "callable"). An unknown or disabled agent, or an unknown server, has none.
func (p *Proxy) CallableTools(ctx context.Context, host, agentID, server string) ([]string, error) {
	names, err := p.cfg.Backend.CallableTools(ctx, host, server, agentID)
	if err != nil {
		return nil, fmt.Errorf("callable tools of %s on %s: %w", agentID, server, err)
	}
	names = slices.Clone(names)
	slices.Sort(names)
	return slices.Compact(names), nil
}
