package oauthserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// GET and POST /consent: the human chooses the trust level the app gets on the server (up to
// their ceiling), and the authorization code is issued.

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, p, ok := s.pendingOf(w, r, h, r.URL.Query().Get("state_ref"))
	if !ok {
		return
	}
	if p.portal != nil { // a sign-in only: its page
		s.renderSignIn(w, r, h, ref, "", "", http.StatusOK)
		return
	}
	uid, ok := s.signedInOr(w, r, h, ref)
	if !ok {
		return
	}
	// An app an administrator disabled is told so at once, not after choosing a level.
	if disabled, err := s.agentDisabled(r.Context(), h.Key, uid, p); err != nil {
		s.internalError(w, h, "load agents", err)
		return
	} else if disabled {
		s.agentDisabledPage(w, h)
		return
	}
	if !s.upstreamReady(w, r, h, ref, p.server, uid) {
		return
	}
	s.renderConsent(w, r, h, ref, p, uid, "", http.StatusOK)
}

// agentDisabled reports whether the human's agent of the request's client was disabled by an
// administrator (the kill switch).
func (s *Server) agentDisabled(ctx context.Context, host, userID string, p *pending) (bool, error) {
	agents, err := s.cfg.Store.ListAgents(ctx, host, userID)
	if err != nil {
		return false, err
	}
	clientID := p.ar.GetClient().GetID()
	for _, a := range agents {
		if a.ClientID == clientID {
			return a.Disabled, nil
		}
	}
	return false, nil
}

// agentDisabledPage tells the human that an administrator disabled this app.
func (s *Server) agentDisabledPage(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "This app was disabled",
		Message:  "Your administrator disabled this app for your account. Connecting it again will not help until it is enabled again.",
		WhatToDo: "Ask your administrator to enable it again.",
	})
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p *pending, uid, msg string, status int) {
	ctx := r.Context()
	if p.server == "" {
		http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
		return
	}
	sv, err := s.cfg.Store.GetServer(ctx, h.Key, p.server)
	if err != nil {
		s.internalError(w, h, "load server", err)
		return
	}
	g, err := s.cfg.Store.GetGrant(ctx, h.Key, p.server, uid)
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{
			Frame:    frame(h),
			Title:    "No access to this server",
			Message:  "Your administrator has not given you access to " + serverLabel(sv) + ".",
			WhatToDo: "Ask your administrator to grant you access, then connect again from your app.",
		})
		return
	}
	if err != nil {
		s.internalError(w, h, "load grant", err)
		return
	}
	tools, err := s.cfg.Store.ListTools(ctx, h.Key, p.server)
	if err != nil {
		s.internalError(w, h, "list tools", err)
		return
	}
	rows := make([]consentui.ToolRow, 0, len(tools))
	for _, t := range tools {
		allowed := map[schema.Level]bool{}
		for _, l := range schema.Levels {
			allowed[l] = t.Enabled && t.Level.Valid() && t.Level <= l
		}
		rows = append(rows, consentui.ToolRow{Name: t.Name, Title: t.Title, Allowed: allowed})
	}
	s.render(w, status, consentui.TrustLevelPage{
		Frame:       frame(h),
		Form:        consentui.Form{Action: s.issuer(h.Key) + consentPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		AgentName:   p.clientName,
		ClientID:    p.ar.GetClient().GetID(),
		RedirectURI: p.ar.GetRedirectURI().String(),
		ServerKey:   sv.Key,
		ServerName:  sv.Name,
		Ceiling:     g.Ceiling,
		Tools:       rows,
		Error:       msg,
	})
}

func serverLabel(sv store.Server) string {
	if sv.Name != "" {
		return sv.Name
	}
	return sv.Key
}

func (s *Server) consent(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, p, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	if p.portal != nil { // a sign-in only: nothing to choose or consent to
		s.expiredPage(w, h)
		return
	}
	uid, ok := s.signedInOr(w, r, h, ref)
	if !ok {
		return
	}
	ctx := r.Context()
	redirectW := &authorizeRedirectWriter{ResponseWriter: w, iss: s.issuer(h.Key), dropState: p.ar.GetState() == ""}
	if r.PostFormValue("decision") != "allow" {
		if !s.usePending(w, r, h, ref) {
			return
		}
		s.provider.WriteAuthorizeError(ctx, redirectW, p.ar, fosite.ErrAccessDenied.WithHint("The person denied the request."))
		return
	}
	if p.server == "" || r.PostFormValue("server") != p.server {
		http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
		return
	}
	level, err := schema.ParseLevel(r.PostFormValue("trust_level"))
	if err != nil {
		s.renderConsent(w, r, h, ref, p, uid, "Choose a trust level.", http.StatusBadRequest)
		return
	}
	// The request is used from here on, whatever happens next; of two concurrent decisions on
	// it only one gets this far.
	if !s.usePending(w, r, h, ref) {
		return
	}
	agentID, err := s.agentFor(ctx, h.Key, uid, p)
	if err != nil {
		if errors.Is(err, errAgentDisabled) {
			s.agentDisabledPage(w, h)
			return
		}
		s.internalError(w, h, "create agent", err)
		return
	}
	if _, err := s.cfg.Store.SetConsent(ctx, store.Consent{Host: h.Key, AgentID: agentID, Server: p.server, Level: level}); err != nil {
		if !errors.Is(err, store.ErrNotGranted) {
			s.internalError(w, h, "set consent", err)
			return
		}
		// The store checks the level against the human's ceiling, in the transaction that
		// writes it. Above it (or without a grant any more) the request is put back, and the
		// human chooses again.
		if err := s.restorePending(ctx, ref, p); err != nil {
			s.internalError(w, h, "restore the authorization request", err)
			return
		}
		s.renderConsent(w, r, h, ref, p, uid, "Choose a trust level your administrator allows.", http.StatusBadRequest)
		return
	}
	if _, err := s.cfg.Syncer.Sync(ctx); err != nil {
		// The consent is stored and the writer's outbox applies it later; tokens may be
		// refused until then.
		s.log.Warn("oauthserver: relationship sync after consent", "host", h.Key, "err", err)
	}
	ar := p.ar
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	if len(ar.GetRequestedScopes()) == 0 {
		ar.GrantScope(MCPScope)
	}
	ar.GrantAudience(p.resource)
	sess := fositestore.NewSession(h.Key, uid, agentID)
	sess.ConsentedAt = s.now().UTC()
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, redirectW, ar, err)
		return
	}
	if err := s.cfg.Store.MarkOAuthClientUsed(ctx, h.Key, ar.GetClient().GetID(), s.now()); err != nil {
		s.log.Warn("oauthserver: record the client's first use", "host", h.Key, "err", err)
	}
	s.provider.WriteAuthorizeResponse(ctx, redirectW, ar, resp)
}

var errAgentDisabled = errors.New("agent disabled")

// agentFor returns the agent of the request's client for the human, creating it the first time.
func (s *Server) agentFor(ctx context.Context, host, userID string, p *pending) (string, error) {
	clientID := p.ar.GetClient().GetID()
	agents, err := s.cfg.Store.ListAgents(ctx, host, userID)
	if err != nil {
		return "", err
	}
	for _, a := range agents {
		if a.ClientID == clientID {
			if a.Disabled {
				return "", errAgentDisabled
			}
			return a.ID, nil
		}
	}
	name := p.clientName
	if name == "" {
		name = clientID
	}
	a, err := s.cfg.Store.CreateAgent(ctx, store.Agent{
		Host: host, UserID: userID, ClientID: clientID, Name: name,
		RedirectURIs: p.ar.GetClient().GetRedirectURIs(), Type: p.agentType,
	})
	if err != nil {
		return "", err
	}
	return a.ID, nil
}
