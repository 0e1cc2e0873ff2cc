package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/store"
)

// GET /authorize validates the client's request (PKCE, client, redirect URI, resource), keeps
// it server-side under a random state_ref, and shows the sign-in page, or the server choice to
// a human already signed in.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, h store.Host) {
	ctx := r.Context()
	q := r.URL.Query()
	// PKCE with S256 first: nothing (no document fetch, no lookup) for a request without it.
	// The redirect URI is not validated yet, so the error is a page, not a redirect.
	if err := ValidatePKCEChallenge(q.Get("code_challenge_method"), q.Get("code_challenge")); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{
			Frame:    frame(h),
			Title:    "The app's sign-in request is invalid",
			Message:  err.Error(),
			WhatToDo: "The app must use PKCE with S256 (OAuth 2.1). Tell its developers.",
		})
		return
	}
	clientID := q.Get("client_id")
	if IsClientIDMetadataURL(clientID) {
		if err := s.ensureCIMDClient(ctx, h.Key, clientID); err != nil {
			s.log.Info("oauthserver: client metadata document refused", "host", h.Key, "client_id", clientID, "err", err)
			s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{
				Frame:    frame(h),
				Title:    "The app could not be identified",
				Message:  "trustgate could not use the app's client metadata document.",
				WhatToDo: "Try again later. If it keeps happening, tell the app's developers.",
			})
			return
		}
	}
	ctx = withRedirectURI(ctx, q.Get("redirect_uri"))
	// fosite (v0.49) refuses a state shorter than fosite.MinParameterEntropy, and its config
	// cannot lower that; OAuth 2.1 makes state optional with PKCE and MCP clients may send none.
	// For a request without state fosite gets a random placeholder, which is removed from the
	// request it returns (and so never echoed to the client); a state that is sent keeps
	// fosite's rule.
	noState := q.Get("state") == ""
	fr := r
	if noState {
		q2 := r.URL.Query()
		q2.Set("state", randomToken())
		u := *r.URL
		u.RawQuery = q2.Encode()
		fr = r.Clone(ctx)
		fr.URL = &u
		fr.Form, fr.PostForm = nil, nil
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, fr)
	if noState {
		if a, ok := ar.(*fosite.AuthorizeRequest); ok {
			a.State = ""
			a.Form.Del("state")
		}
	}
	if err != nil {
		s.writeAuthorizeError(ctx, w, h, ar, err)
		return
	}
	resources := q["resource"]
	resource := s.cfg.URLs.MCP(h.Key) // clients without RFC 8707 get the host's MCP URL
	if len(resources) > 1 {
		s.writeAuthorizeError(ctx, w, h, ar, errInvalidTarget("Send one resource parameter."))
		return
	}
	if len(resources) == 1 {
		resource = resources[0]
	}
	server, upstream, ok := s.resourceServer(ctx, h, resource)
	if !ok {
		s.writeAuthorizeError(ctx, w, h, ar, errInvalidTarget("The resource must be this host's MCP URL or the MCP URL of one of its servers."))
		return
	}
	if upstream == "" {
		upstream = q.Get("upstream_mcp")
	}
	ar.SetRequestedAudience(fosite.Arguments{resource})
	p := &pending{host: h.Key, ar: ar, resource: resource, server: server, fromRes: server != "", upstreamMCP: upstream}
	p.clientName, p.agentType = clientInfo(ar.GetClient())
	ref, err := s.putPending(ctx, s.addressKey(r), p)
	if err != nil {
		if s.tooManySignIns(w, h, err) {
			return
		}
		if errors.Is(err, store.ErrInvalid) {
			s.writeAuthorizeError(ctx, w, h, ar, fosite.ErrInvalidRequest.WithHint("The request is too large."))
			return
		}
		s.internalError(w, h, "store the authorization request", err)
		return
	}
	if _, ok := s.sessionUser(r, h.Key); ok {
		http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
		return
	}
	s.renderSignIn(w, r, h, ref, "", "", http.StatusOK)
}

// clientInfo reads the client's name and agent type (trustgate's registration extension).
func clientInfo(c fosite.Client) (name, agentType string) {
	fc, ok := c.(*fositestore.Client)
	if !ok {
		return "", ""
	}
	var meta struct {
		AgentType string `json:"agent_type"`
	}
	_ = json.Unmarshal([]byte(fc.Metadata), &meta)
	switch meta.AgentType {
	case AgentTypeChat, AgentTypeProactive, AgentTypeAmbient:
	default:
		meta.AgentType = ""
	}
	return fc.Name, meta.AgentType
}

// ensureCIMDClient makes sure the store holds a fresh copy of the Client ID Metadata Document
// clientID. A document is fetched again once its cache lifetime (from this process's fetch) or,
// for one fetched by another replica, DefaultCIMDCacheTTL after its FetchedAt has passed.
func (s *Server) ensureCIMDClient(ctx context.Context, host, clientID string) error {
	now := s.now()
	key := host + " " + clientID
	if c, err := s.cfg.Store.GetOAuthClient(ctx, host, clientID); err == nil {
		s.cimdMu.Lock()
		exp, known := s.cimdExpiries[key]
		s.cimdMu.Unlock()
		if !known {
			exp = c.FetchedAt.Add(DefaultCIMDCacheTTL)
		}
		if now.Before(exp) {
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	md, err := FetchClientMetadata(ctx, s.fetch, clientID)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.PutOAuthClient(ctx, store.OAuthClient{
		Host: host, ID: clientID, Kind: store.OAuthClientCIMD, Name: md.ClientName,
		RedirectURIs: md.RedirectURIs, GrantTypes: md.GrantTypes, ResponseTypes: md.ResponseTypes,
		TokenEndpointAuthMethod: store.OAuthAuthNone, Metadata: string(md.Raw), FetchedAt: md.FetchedAt,
	}); err != nil {
		return err
	}
	s.cimdMu.Lock()
	if len(s.cimdExpiries) > MaxPendingAuthorize {
		clear(s.cimdExpiries)
	}
	s.cimdExpiries[key] = md.ExpiresAt
	s.cimdMu.Unlock()
	return nil
}
