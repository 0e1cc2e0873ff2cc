package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// agentDoc builds an agent's document: its human, and per consented server the level, the
// human's ceiling and what the agent can actually do.
func (a *API) agentDoc(ctx context.Context, ag store.Agent, users map[string]store.User) (Agent, error) {
	d := Agent{
		ID: ag.ID, Name: ag.Name, ClientID: ag.ClientID, HumanID: ag.UserID, RedirectURIs: orEmpty(ag.RedirectURIs),
		Type: ag.Type, Disabled: ag.Disabled, Servers: []AgentServer{}, CreatedAt: ag.CreatedAt, LastActiveAt: timePtr(ag.LastActiveAt),
	}
	if u, ok := users[ag.UserID]; ok {
		d.HumanEmail = u.Email
	} else if u, err := a.cfg.Store.GetUser(ctx, ag.Host, ag.UserID); err == nil {
		d.HumanEmail = u.Email
	}
	consents, err := a.cfg.Store.ListConsents(ctx, ag.Host, ag.ID)
	if err != nil {
		return Agent{}, err
	}
	for _, c := range consents {
		s := AgentServer{Server: c.Server, Level: c.Level.String()}
		if g, err := a.cfg.Store.GetGrant(ctx, ag.Host, c.Server, ag.UserID); err == nil {
			s.Ceiling = g.Ceiling.String()
			if !ag.Disabled {
				s.Effective = schema.MinLevel(c.Level, g.Ceiling).String()
			}
		} else if !isNotFound(err) {
			return Agent{}, err
		}
		d.Servers = append(d.Servers, s)
	}
	return d, nil
}

func (a *API) listAgents(r *http.Request, _ *caller) (int, any, error) {
	ctx := r.Context()
	host := r.PathValue("host")
	userID := ""
	if ref := r.URL.Query().Get("human"); ref != "" {
		u, err := a.findUser(ctx, host, ref)
		if err != nil {
			return 0, nil, err
		}
		userID = u.ID
	}
	agents, err := a.cfg.Store.ListAgents(ctx, host, userID)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	users, err := a.cfg.Store.ListUsers(ctx, host)
	if err != nil {
		return 0, nil, err
	}
	byID := make(map[string]store.User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	docs := make([]Agent, 0, len(agents))
	for _, ag := range agents {
		d, err := a.agentDoc(ctx, ag, byID)
		if err != nil {
			return 0, nil, err
		}
		docs = append(docs, d)
	}
	page, err := paginate(r, docs, func(d Agent) string { return d.ID })
	return http.StatusOK, page, err
}

func (a *API) getAgent(r *http.Request, _ *caller) (int, any, error) {
	ag, err := a.cfg.Store.GetAgent(r.Context(), r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		return 0, nil, err
	}
	d, err := a.agentDoc(r.Context(), ag, nil)
	return http.StatusOK, d, err
}

func (a *API) updateAgent(r *http.Request, _ *caller) (int, any, error) {
	ctx := r.Context()
	var req AgentUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	ag, err := a.cfg.Store.GetAgent(ctx, r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		return 0, nil, err
	}
	if req.Name != nil {
		ag.Name = *req.Name
	}
	if req.Type != nil {
		ag.Type = *req.Type
	}
	if ag, err = a.cfg.Store.UpdateAgent(ctx, ag); err != nil {
		return 0, nil, err
	}
	d, err := a.agentDoc(ctx, ag, nil)
	return http.StatusOK, d, err
}

func (a *API) setAgentLevel(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req AgentLevel
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	level, err := parseLevel(req.Level)
	if err != nil {
		return 0, nil, err
	}
	ag, err := a.cfg.Store.GetAgent(ctx, r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: ag.UserID, old: a.agentLevelOf(ctx, ag.Host, ag.ID, r.PathValue("server")), new: level.String()}
	if _, err := a.cfg.Store.SetConsent(ctx, store.Consent{Host: ag.Host, AgentID: ag.ID, Server: r.PathValue("server"), Level: level}); err != nil {
		return 0, nil, err
	}
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	d, err := a.agentDoc(ctx, ag, nil)
	return http.StatusOK, d, err
}

func (a *API) revokeAgentServer(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	c.change = change{old: a.agentLevelOf(ctx, r.PathValue("host"), r.PathValue("agent"), r.PathValue("server")), new: "none"}
	if err := a.cfg.Store.DeleteConsent(ctx, r.PathValue("host"), r.PathValue("agent"), r.PathValue("server")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.sync(ctx)
}

// killAgent is the kill switch: every consent goes, the agent is disabled, and the change is
// enforced before the answer.
func (a *API) killAgent(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	ag, err := a.cfg.Store.KillAgent(ctx, r.PathValue("host"), r.PathValue("agent"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: ag.UserID, new: "disabled"}
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	a.log.Warn("agent killed", "host", ag.Host, "agent", ag.ID, "client_id", ag.ClientID)
	d, err := a.agentDoc(ctx, ag, nil)
	return http.StatusOK, d, err
}

// agentLevelOf is the agent's level on the server, "none" without a consent (for audit entries).
func (a *API) agentLevelOf(ctx context.Context, host, agentID, server string) string {
	if c, err := a.cfg.Store.GetConsent(ctx, host, agentID, server); err == nil {
		return c.Level.String()
	}
	return "none"
}
