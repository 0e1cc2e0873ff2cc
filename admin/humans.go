package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/invitation"
	"github.com/trustgate/trustgate/store"
)

// findUser resolves a {human} path value: an email when it has an '@', else an id.
func (a *API) findUser(ctx context.Context, host, ref string) (store.User, error) {
	if strings.Contains(ref, "@") {
		return a.cfg.Store.GetUserByEmail(ctx, host, ref)
	}
	return a.cfg.Store.GetUser(ctx, host, ref)
}

// humanDocs builds the documents of the given humans with their grants and agents, reading
// the host's grants and agents once.
func (a *API) humanDocs(ctx context.Context, host string, users []store.User) ([]Human, error) {
	grants, err := a.cfg.Store.ListGrants(ctx, host, "")
	if err != nil {
		return nil, err
	}
	agents, err := a.cfg.Store.ListAgents(ctx, host, "")
	if err != nil {
		return nil, err
	}
	byUser := map[string]*Human{}
	docs := make([]Human, len(users))
	for i, u := range users {
		docs[i] = Human{ID: u.ID, Email: u.Email, Name: u.Name, Admin: u.Admin, Grants: []Grant{}, Agents: []AgentSummary{},
			CreatedAt: u.CreatedAt, LastActiveAt: timePtr(u.LastActiveAt)}
		byUser[u.ID] = &docs[i]
	}
	for _, g := range grants {
		if d := byUser[g.UserID]; d != nil {
			d.Grants = append(d.Grants, Grant{Server: g.Server, Ceiling: g.Ceiling.String(), UpdatedAt: g.UpdatedAt})
		}
	}
	for _, ag := range agents {
		if d := byUser[ag.UserID]; d != nil {
			d.Agents = append(d.Agents, AgentSummary{ID: ag.ID, Name: ag.Name, ClientID: ag.ClientID, Disabled: ag.Disabled})
			if ag.LastActiveAt.After(derefTime(d.LastActiveAt)) {
				d.LastActiveAt = timePtr(ag.LastActiveAt)
			}
		}
	}
	return docs, nil
}

func (a *API) humanDoc(ctx context.Context, u store.User) (Human, error) {
	docs, err := a.humanDocs(ctx, u.Host, []store.User{u})
	if err != nil {
		return Human{}, err
	}
	return docs[0], nil
}

func (a *API) listHumans(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	users, err := a.cfg.Store.ListUsers(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	docs, err := a.humanDocs(r.Context(), host, users)
	if err != nil {
		return 0, nil, err
	}
	page, err := paginate(r, docs, func(h Human) string { return h.Email })
	return http.StatusOK, page, err
}

func (a *API) createHuman(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req HumanCreate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	u, err := a.cfg.Store.CreateUser(ctx, store.User{Host: r.PathValue("host"), Email: req.Email, Name: req.Name, Admin: req.Admin})
	if err != nil {
		return 0, nil, err
	}
	c.change.object, c.change.userID, c.change.userEmail = "humans/"+u.Email, u.ID, u.Email
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	d, err := a.humanDoc(ctx, u)
	if err != nil || !req.Invite {
		return http.StatusCreated, d, err
	}
	d.Invitation, err = a.invite(ctx, u)
	return http.StatusCreated, d, err
}

// invite issues a new invitation for u, replacing any earlier one.
func (a *API) invite(ctx context.Context, u store.User) (*Invitation, error) {
	tok := invitation.New()
	inv, err := a.cfg.Store.PutInvitation(ctx, store.Invitation{Host: u.Host, UserID: u.ID,
		Selector: tok.Selector, VerifierHash: tok.VerifierHash, ExpiresAt: time.Now().Add(invitation.TTL)})
	if err != nil {
		return nil, err
	}
	return &Invitation{URL: invitation.URL(a.cfg.URLs.Base(u.Host), tok.Value), ExpiresAt: inv.ExpiresAt}, nil
}

func (a *API) inviteHuman(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	u, err := a.findUser(ctx, r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: u.ID, userEmail: u.Email}
	d, err := a.humanDoc(ctx, u)
	if err != nil {
		return 0, nil, err
	}
	d.Invitation, err = a.invite(ctx, u)
	return http.StatusCreated, d, err
}

func (a *API) getHuman(r *http.Request, _ *caller) (int, any, error) {
	u, err := a.findUser(r.Context(), r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	d, err := a.humanDoc(r.Context(), u)
	return http.StatusOK, d, err
}

func (a *API) updateHuman(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req HumanUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	u, err := a.findUser(ctx, r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: u.ID, userEmail: u.Email, old: fmt.Sprintf("admin=%t", u.Admin)}
	if req.Name != nil {
		u.Name = *req.Name
	}
	if req.Admin != nil {
		u.Admin = *req.Admin
	}
	c.change.new = fmt.Sprintf("admin=%t", u.Admin)
	if u, err = a.cfg.Store.UpdateUser(ctx, u); err != nil {
		return 0, nil, err
	}
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	d, err := a.humanDoc(ctx, u)
	return http.StatusOK, d, err
}

func (a *API) deleteHuman(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	u, err := a.findUser(ctx, r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: u.ID, userEmail: u.Email}
	if err := a.cfg.Store.DeleteUser(ctx, u.Host, u.ID); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.sync(ctx)
}

func (a *API) setGrant(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req GrantSet
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	level, err := parseLevel(req.Ceiling)
	if err != nil {
		return 0, nil, err
	}
	u, err := a.findUser(ctx, r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: u.ID, userEmail: u.Email, old: a.ceilingOf(ctx, u, r.PathValue("server")), new: level.String()}
	if _, err := a.cfg.Store.SetGrant(ctx, store.Grant{Host: u.Host, Server: r.PathValue("server"), UserID: u.ID, Ceiling: level}); err != nil {
		return 0, nil, err
	}
	if err := a.sync(ctx); err != nil {
		return 0, nil, err
	}
	d, err := a.humanDoc(ctx, u)
	return http.StatusOK, d, err
}

func (a *API) revokeGrant(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	u, err := a.findUser(ctx, r.PathValue("host"), r.PathValue("human"))
	if err != nil {
		return 0, nil, err
	}
	c.change = change{userID: u.ID, userEmail: u.Email, old: a.ceilingOf(ctx, u, r.PathValue("server")), new: "none"}
	if err := a.cfg.Store.DeleteGrant(ctx, u.Host, r.PathValue("server"), u.ID); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.sync(ctx)
}

// ceilingOf is the human's ceiling on the server, "none" without a grant (for audit entries).
func (a *API) ceilingOf(ctx context.Context, u store.User, server string) string {
	if g, err := a.cfg.Store.GetGrant(ctx, u.Host, server, u.ID); err == nil {
		return g.Ceiling.String()
	}
	return "none"
}
