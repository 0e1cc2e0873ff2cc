package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Decisions for other services. A service that asks "may this agent call this tool?" (through
// the admin API's check routes) gets the answer a tools/call would get from the proxy now: the
// same facts, the same authorization backend (one check, through the decision cache and the
// metrics), and on a denial the same explanation.

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

// CheckToolCall decides whether the agent may call tool on server of host now. An error is a
// failure to decide (store or authorization backend): callers deny.
func (p *Proxy) CheckToolCall(ctx context.Context, host, agentID, server, tool string) (ToolDecision, error) {
	f := storeFacts{st: p.cfg.Store, backend: p.cfg.Backend, defs: p.defs}
	userID := ""
	a, err := f.st.GetAgent(ctx, host, agentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Explained below (agent_removed).
	case err != nil:
		return ToolDecision{}, fmt.Errorf("read agent %s: %w", agentID, err)
	default:
		userID = a.UserID
		srv, found, err := f.server(ctx, host, server)
		if err != nil {
			return ToolDecision{}, fmt.Errorf("read server %s: %w", server, err)
		}
		if found && !a.Disabled {
			allowed, err := f.check(ctx, authzserver.CheckRequest{Resource: schema.Tool(host, srv.Key, tool),
				Permission: schema.PermToolCall, Subject: schema.SubjectRef{Object: schema.Agent(host, agentID)}})
			if err != nil {
				return ToolDecision{}, fmt.Errorf("check tools/call %s on %s: %w", tool, server, err)
			}
			if allowed {
				return ToolDecision{Allowed: true}, nil
			}
		}
	}
	df, err := f.denialFacts(ctx, denialQuery{host: host, userID: userID, agentID: agentID, method: "tools/call", server: server, tool: tool})
	if err != nil {
		return ToolDecision{}, err
	}
	d := explainDenial(df)
	data := denialData(df, d)
	return ToolDecision{Reason: d.Reason, Message: d.Message(df),
		AgentLevel: data["agent_level"], Ceiling: data["ceiling"], RequiredLevel: data["required_level"]}, nil
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
