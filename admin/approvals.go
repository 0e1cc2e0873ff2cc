package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// Calls held for a person's approval (the host's approval policy, settings.approval_rules):
// the pending ones, deciding one, and the standing approvals ("approve for N hours").

// Approvals decides held calls (approval.Service).
type Approvals interface {
	Decide(ctx context.Context, host, id string, approve bool, by, channel string) (store.HeldCall, error)
}

// approvalRulesOf reads the API's approval rules into the store's form (the store checks the
// rest).
func approvalRulesOf(docs []ApprovalRule) ([]store.ApprovalRule, error) {
	rules := make([]store.ApprovalRule, len(docs))
	for i, d := range docs {
		r := store.ApprovalRule{Server: d.Server, Tool: d.Tool, AgentType: d.AgentType, Approvers: d.Approvers,
			StandingHours: d.StandingHours, TimeoutSeconds: d.TimeoutSeconds}
		if d.Level != "" {
			l, err := schema.ParseLevel(d.Level)
			if err != nil {
				return nil, &store.FieldError{Field: fmt.Sprintf("approval_rules[%d].level", i),
					Err: problemf(http.StatusBadRequest, "approval rule %d: %v", i+1, err)}
			}
			r.Level = l
		}
		rules[i] = r
	}
	return rules, nil
}

func approvalRuleDocs(rules []store.ApprovalRule) []ApprovalRule {
	docs := make([]ApprovalRule, len(rules))
	for i, r := range rules {
		docs[i] = ApprovalRule{Server: r.Server, Tool: r.Tool, AgentType: r.AgentType, Approvers: r.Approvers,
			StandingHours: r.StandingHours, TimeoutSeconds: r.TimeoutSeconds}
		if r.Level != 0 {
			docs[i].Level = r.Level.String()
		}
	}
	return docs
}

// heldCallDoc is the API's document of a held call; approvers are resolved (the agent's human
// when the rule names none).
func (a *API) heldCallDoc(ctx context.Context, c store.HeldCall) HeldCall {
	doc := HeldCall{ID: c.ID, Agent: c.AgentID, AgentName: c.AgentName, Human: c.UserID, Server: c.Server, Tool: c.Tool,
		Approvers: c.Approvers, Status: c.Status, DecidedBy: c.DecidedBy, Channel: c.Channel, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt}
	if c.Arguments != "" {
		doc.Arguments = json.RawMessage(c.Arguments)
	}
	if len(doc.Approvers) == 0 {
		doc.Approvers = []string{}
		if u, err := a.cfg.Store.GetUser(ctx, c.Host, c.UserID); err == nil {
			doc.Approvers = []string{u.Email}
		}
	}
	return doc
}

func (a *API) listHeldCalls(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	calls, err := a.cfg.Store.ListHeldCalls(r.Context(), host, time.Now())
	if err != nil {
		return 0, nil, err
	}
	docs := make([]HeldCall, len(calls))
	for i, c := range calls {
		docs[i] = a.heldCallDoc(r.Context(), c)
	}
	page, err := paginate(r, docs, func(c HeldCall) string { return c.CreatedAt.UTC().Format(time.RFC3339Nano) + c.ID })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

func (a *API) approveHeldCall(r *http.Request, c *caller) (int, any, error) {
	return a.decideHeldCall(r, c, true)
}

func (a *API) denyHeldCall(r *http.Request, c *caller) (int, any, error) {
	return a.decideHeldCall(r, c, false)
}

// decideHeldCall decides as the caller: through the dashboard as the signed-in person, or
// through the API as the token.
func (a *API) decideHeldCall(r *http.Request, c *caller, approve bool) (int, any, error) {
	if a.cfg.Approvals == nil {
		return 0, nil, problemf(http.StatusNotImplemented, "this admin API decides no held calls: it runs without the MCP proxy")
	}
	host, id := r.PathValue("host"), r.PathValue("id")
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	channel := "api"
	if c.person != "" {
		channel = "dashboard"
	}
	decided, err := a.cfg.Approvals.Decide(r.Context(), host, id, approve, c.actor(), channel)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil, problemf(http.StatusNotFound, "held call %q not found", truncate(id, 64))
	case errors.Is(err, store.ErrConflict):
		return 0, nil, problemf(http.StatusConflict, "held call %s is %s: it can no longer be decided", truncate(id, 64), decided.Status)
	case err != nil:
		return 0, nil, err
	}
	c.change.object = "held_call:" + id
	c.change.new = decided.Status
	return http.StatusOK, a.heldCallDoc(r.Context(), decided), nil
}

func (a *API) listStandingApprovals(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	list, err := a.cfg.Store.ListStandingApprovals(r.Context(), host, time.Now())
	if err != nil {
		return 0, nil, err
	}
	docs := make([]StandingApproval, len(list))
	for i, s := range list {
		docs[i] = StandingApproval{Agent: s.AgentID, Server: s.Server, Tool: s.Tool, ApprovedBy: s.ApprovedBy, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
	}
	page, err := paginate(r, docs, func(s StandingApproval) string { return s.Agent + "/" + s.Server + "/" + s.Tool })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

func (a *API) revokeStandingApproval(r *http.Request, c *caller) (int, any, error) {
	host := r.PathValue("host")
	agent, server, tool := r.PathValue("agent"), r.PathValue("server"), r.PathValue("tool")
	err := a.cfg.Store.DeleteStandingApproval(r.Context(), host, agent, server, tool)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, problemf(http.StatusNotFound, "no standing approval of agent %s for %s/%s", truncate(agent, 64), truncate(server, 64), truncate(tool, 128))
	}
	if err != nil {
		return 0, nil, err
	}
	c.change.old = "standing"
	return http.StatusNoContent, nil, nil
}
