package sdk

import (
	"context"
	"net/http"
	"net/url"
)

// Check asks whether agent may call tool on server of host now: the decision the proxy would
// make for that tools/call, from the same authorization backend (one check). A denial is a
// Decision with Allowed false and its Reason, not an error; errors are failures to decide
// (the gateway or its authorization backend unreachable: treat them as a denial).
//
// It changes nothing, so it is retried like a GET. A token with ScopeCheck is enough (see
// TokenCreate).
func (c *Client) Check(ctx context.Context, host, agent, server, tool string) (Decision, error) {
	var out Decision
	err := c.call(ctx, true, http.MethodPost, nil, CheckRequest{Agent: agent, Server: server, Tool: tool}, &out, "hosts", host, "check")
	if err != nil {
		return Decision{}, err
	}
	return out, nil
}

// CallableTools lists the tools of server that agent may call now, sorted, from one question
// to the authorization backend: what the agent's tools/list shows on a host whose
// tool_visibility is "callable". An unknown or disabled agent, or an unknown server, has none.
//
// It changes nothing, so it is retried like a GET. A token with ScopeCheck is enough (see
// TokenCreate).
func (c *Client) CallableTools(ctx context.Context, host, agent, server string) ([]string, error) {
	var out CallableTools
	err := c.call(ctx, true, http.MethodPost, nil, CallableToolsRequest{Agent: agent, Server: server}, &out, "hosts", host, "callable-tools")
	if err != nil {
		return nil, err
	}
	if out.Tools == nil {
		out.Tools = []string{}
	}
	return out.Tools, nil
}

// Explain says why agent may or may not call tool of server now: the decision, the path that
// decided it in words, the relationships it rests on and the authorization engine's trace.
// An admin token is needed.
func (c *Client) Explain(ctx context.Context, host, agent, server, tool string) (Explanation, error) {
	var out Explanation
	q := url.Values{"agent": {agent}, "server": {server}, "tool": {tool}}
	if err := c.do(ctx, http.MethodGet, q, nil, &out, "hosts", host, "explain"); err != nil {
		return Explanation{}, err
	}
	return out, nil
}

// Insights analyses who may do what on host and where that is more than is used (one page of
// its humans: cursor "" for the first, limit 0 for the default). An admin token is needed.
func (c *Client) Insights(ctx context.Context, host string, p PageRequest) (Insights, error) {
	var out Insights
	if err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "insights"); err != nil {
		return Insights{}, err
	}
	return out, nil
}
