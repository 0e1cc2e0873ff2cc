package admin

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
)

// Decisions for other services: POST /api/v1/hosts/{host}/check asks whether an agent may call
// a tool, POST …/callable-tools which tools of a server it may call. The proxy answers both
// (Config.Decider) through the stages of its own decision (the emergency stop, the trust level,
// argument validation when the question gives arguments, the rate limits, read but not taken),
// so a service learns exactly what the agent's next tools/call or tools/list would get. An API token with scope "check" reaches these routes and no other one.

// Decider decides for the check routes: the MCP proxy (proxy.Proxy).
type Decider interface {
	CheckToolCall(ctx context.Context, host, agentID, server, tool string, arguments json.RawMessage) (proxy.ToolDecision, error)
	CallableTools(ctx context.Context, host, agentID, server string) ([]string, error)
}

// maxCheckField bounds each name in a check request.
const maxCheckField = 512

// checkRoutes are the routes a token with scope "check" may use (by operation id).
var checkRoutes = map[string]bool{"checkToolCall": true, "callableTools": true}

func (a *API) checkToolCall(r *http.Request, _ *caller) (int, any, error) {
	var req CheckRequest
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	if err := checkFields(map[string]string{"agent": req.Agent, "server": req.Server, "tool": req.Tool}); err != nil {
		return 0, nil, err
	}
	host, err := a.decidingHost(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := a.cfg.Decider.CheckToolCall(r.Context(), host, req.Agent, req.Server, req.Tool, req.Arguments)
	if err != nil {
		return 0, nil, a.undecided(r, err)
	}
	out := Decision{Agent: req.Agent, Server: req.Server, Tool: req.Tool, Allowed: d.Allowed, Reason: sdk.ReasonAllowed}
	if !d.Allowed {
		out.Reason, out.Message = string(d.Reason), d.Message
		out.AgentLevel, out.Ceiling, out.RequiredLevel = d.AgentLevel, d.Ceiling, d.RequiredLevel
	}
	return http.StatusOK, out, nil
}

func (a *API) callableTools(r *http.Request, _ *caller) (int, any, error) {
	var req CallableToolsRequest
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	if err := checkFields(map[string]string{"agent": req.Agent, "server": req.Server}); err != nil {
		return 0, nil, err
	}
	host, err := a.decidingHost(r)
	if err != nil {
		return 0, nil, err
	}
	tools, err := a.cfg.Decider.CallableTools(r.Context(), host, req.Agent, req.Server)
	if err != nil {
		return 0, nil, a.undecided(r, err)
	}
	return http.StatusOK, CallableTools{Agent: req.Agent, Server: req.Server, Tools: orEmpty(tools)}, nil
}

// decidingHost is the host of a check route, which must exist; 501 when the API has no Decider
// (only tests that build an API alone).
func (a *API) decidingHost(r *http.Request) (string, error) {
	if a.cfg.Decider == nil {
		return "", problemf(http.StatusNotImplemented, "this admin API decides nothing: it runs without the MCP proxy")
	}
	host := r.PathValue("host")
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return "", hostNotFound(err, host)
	}
	return host, nil
}

// undecided is the answer when the store or the authorization backend failed: the caller must
// deny, as the proxy does.
func (a *API) undecided(r *http.Request, err error) error {
	a.log.Error("admin API: could not decide", "host", r.PathValue("host"), "request_id", requestID(r), "err", err)
	return problemf(http.StatusServiceUnavailable, "trustgate could not decide (its store or authorization backend failed); treat the call as denied and try again later")
}

// checkFields refuses empty and oversized names.
func checkFields(fields map[string]string) error {
	for _, name := range []string{"agent", "server", "tool"} {
		v, ok := fields[name]
		if !ok {
			continue
		}
		if v == "" {
			return problemf(http.StatusBadRequest, "field %q is required", name)
		}
		if len(v) > maxCheckField {
			return problemf(http.StatusBadRequest, "field %q is longer than %d bytes", name, maxCheckField)
		}
	}
	return nil
}

// tokenScope is the stored scope of a requested one: "" or "admin" administers, "check" only
// decides.
func tokenScope(s string) (string, error) {
	switch s {
	case "", sdk.ScopeAdmin:
		return store.TokenScopeAdmin, nil
	case sdk.ScopeCheck:
		return store.TokenScopeCheck, nil
	}
	return "", problemf(http.StatusBadRequest, "scope %q: want %q (administer) or %q (ask for decisions only)", truncate(s, 64), sdk.ScopeAdmin, sdk.ScopeCheck)
}

// scopeName is the API's name of a stored scope.
func scopeName(s string) string {
	if s == store.TokenScopeCheck {
		return sdk.ScopeCheck
	}
	return sdk.ScopeAdmin
}
