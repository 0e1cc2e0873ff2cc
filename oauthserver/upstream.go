package oauthserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// Step 3 of the flow, between the choice of the server and the trust level: when the upstream
// server demands its own OAuth authorization and the human holds no token for it, the gateway
// sends the human to the upstream's authorization server (package upstreamauth) and continues
// at the trust-level page when they come back to UpstreamCallbackPath. Nothing of this lives in
// the pending request: the store keeps the upstream state, which names the pending request by
// its ref. And Dynamic MCPs: a human connecting a server by URL on the choose-server page.

// UpstreamCallbackPath is where upstream authorization servers send the human back (relative
// to the host's issuer).
const UpstreamCallbackPath = "/oauth/upstream/callback"

// DynamicCeiling is the ceiling a human gets on a server they connected with Dynamic MCPs:
// low (read) until an administrator reviews the server and raises it.
const DynamicCeiling = catalog.DynamicCeiling

// MaxDynamicServersPerHuman bounds the servers one human may connect by URL in a host.
const MaxDynamicServersPerHuman = catalog.MaxDynamicServersPerHuman

// maxServerURLLen bounds a server URL a human enters.
const maxServerURLLen = 2048

// upstreamReady runs the upstream authorization for the chosen server when it needs one. It
// returns true when the flow can go on to the trust level; otherwise it has answered.
func (s *Server) upstreamReady(w http.ResponseWriter, r *http.Request, h store.Host, ref, server, uid string) bool {
	up := s.cfg.Upstream
	if up == nil || server == "" {
		return true
	}
	ctx := r.Context()
	sv, err := s.cfg.Store.GetServer(ctx, h.Key, server)
	if err != nil {
		s.internalError(w, h, "load server", err)
		return false
	}
	if sv.CredentialKind == upstreamauth.CredentialKindHeader {
		return true // the static credential is how the gateway reaches it
	}
	if _, err := s.cfg.Store.GetGrant(ctx, h.Key, server, uid); err != nil {
		return true // the trust-level page explains the missing grant
	}
	// The probe carries the human's token, when they hold one (refreshed if due): a token the
	// upstream refuses, or one that cannot be refreshed, sends the human to sign in again.
	token, _, err := up.AccessToken(ctx, h.Key, uid, server)
	if err != nil {
		s.log.Info("oauthserver: upstream token unusable; signing in again", "host", h.Key, "server", server, "err", err)
		token = ""
	}
	required, ch, err := up.Probe(upstreamauth.WithNetwork(ctx, sv.Network), sv.URL, token)
	if errors.Is(err, ssrf.ErrForbiddenAddress) || errors.Is(err, ssrf.ErrSchemeNotAllowed) {
		// A server off its network's reach (on "host": public https and the operator's
		// networks) is not probed: its upstream OAuth cannot be used, and its static
		// credentials (if any) apply. A server on "any" is probed wherever it is.
		s.log.Debug("oauthserver: upstream not probed", "host", h.Key, "server", server, "err", err)
		return true
	}
	if err != nil {
		s.log.Info("oauthserver: upstream does not answer", "host", h.Key, "server", server, "err", err)
		s.errorPage(w, http.StatusBadGateway, consentui.ErrorPage{
			Frame:    frame(h),
			Title:    "The MCP server does not answer",
			Message:  serverLabel(sv) + " could not be reached, so your app cannot be connected to it now.",
			WhatToDo: "Try again later from your app. If it keeps happening, tell your administrator.",
		})
		return false
	}
	if !required {
		return true
	}
	authURL, err := up.Begin(ctx, upstreamauth.BeginRequest{
		Host: h.Key, UserID: uid, Server: sv, PendingRef: ref,
		RedirectURI: s.issuer(h.Key) + UpstreamCallbackPath, Challenge: ch,
	})
	if err != nil {
		s.log.Warn("oauthserver: upstream authorization cannot start", "host", h.Key, "server", server, "err", err)
		what := "Tell your administrator: the gateway's logs have the details."
		if errors.Is(err, upstreamauth.ErrNoClient) {
			what = "Your administrator must store an OAuth client id for this server first."
		}
		s.errorPage(w, http.StatusBadGateway, consentui.ErrorPage{
			Frame:    frame(h),
			Title:    "Cannot sign you in to the MCP server",
			Message:  serverLabel(sv) + " requires you to sign in to it, and trustgate could not start that sign-in.",
			WhatToDo: what,
		})
		return false
	}
	http.Redirect(w, r, authURL, http.StatusSeeOther)
	return false
}

// upstreamCallback is where the upstream's authorization server sends the human back.
func (s *Server) upstreamCallback(w http.ResponseWriter, r *http.Request, h store.Host) {
	if s.cfg.Upstream == nil {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	q := r.URL.Query()
	if st := q.Get("state"); strings.HasPrefix(st, upstreamauth.AdminStatePrefix) && s.cfg.AdminUpstreamCallback != nil {
		// An administrator's authorization for Create server: the dashboard finishes it.
		fwd := url.Values{}
		for _, k := range []string{"state", "code", "error"} {
			if v := q.Get(k); v != "" && len(v) <= 2048 {
				fwd.Set(k, v)
			}
		}
		http.Redirect(w, r, s.cfg.AdminUpstreamCallback(h.Key)+"?"+fwd.Encode(), http.StatusSeeOther)
		return
	}
	uid, signedIn := s.sessionUser(r, h.Key)
	fail := func(status int, title, msg string) {
		s.errorPage(w, status, consentui.ErrorPage{Frame: frame(h), Title: title, Message: msg, WhatToDo: "Start again from your app."})
	}
	if !signedIn {
		fail(http.StatusBadRequest, "This sign-in has expired", "You are no longer signed in to trustgate in this browser.")
		return
	}
	code := q.Get("code")
	upstreamErr := q.Get("error")
	if upstreamErr != "" {
		code = "" // the state is used up without an exchange
	}
	fin, err := s.cfg.Upstream.Finish(ctx, h.Key, uid, q.Get("state"), code)
	switch {
	case errors.Is(err, upstreamauth.ErrState):
		fail(http.StatusBadRequest, "This sign-in has expired", "The sign-in at the MCP server is unknown or no longer valid.")
		return
	case upstreamErr != "":
		msg := "The MCP server's sign-in was not completed"
		if upstreamErr == "access_denied" {
			msg = "You (or the MCP server) declined the access trustgate asked for"
		}
		fail(http.StatusForbidden, "The MCP server did not give access", msg+" ("+truncate(upstreamErr, 64)+"). Your app was not connected.")
		return
	case errors.Is(err, upstreamauth.ErrExchange):
		s.log.Warn("oauthserver: upstream token exchange failed", "host", h.Key, "server", fin.Server, "err", err)
		fail(http.StatusBadGateway, "The MCP server did not give access", "trustgate could not obtain a token from the MCP server's sign-in. Your app was not connected.")
		return
	case err != nil:
		s.internalError(w, h, "finish upstream authorization", err)
		return
	}
	s.fillServer(ctx, h, fin.UserID, fin.Server)
	http.Redirect(w, r, s.flowURL(h.Key, consentPath, fin.PendingRef), http.StatusSeeOther)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// --- Dynamic MCPs ---

// addDynamicServer connects the server at rawURL for the human (catalog.ConnectDynamic): a
// server of the host with that URL already is reused when the human has a grant on it. msg is
// what to tell the human when the URL cannot be used.
func (s *Server) addDynamicServer(ctx context.Context, h store.Host, uid, rawURL string) (key, msg string, err error) {
	u, perr := url.Parse(rawURL)
	if len(rawURL) > maxServerURLLen || perr != nil || !u.IsAbs() || u.Host == "" || u.User != nil ||
		(u.Scheme != "https" && u.Scheme != "http") {
		return "", "Enter the server's full https:// URL.", nil
	}
	u.Fragment = ""
	rawURL = u.String()
	existing, err := s.cfg.Catalog.PrepareDynamic(ctx, h.Key, uid, rawURL)
	var tooMany *catalog.TooManyDynamicError
	switch {
	case existing != "":
		return existing, "", nil
	case errors.Is(err, catalog.ErrNotGranted):
		return "", "This server is already known here, but your administrator has not given you access to it.", nil
	case errors.As(err, &tooMany):
		return "", tooManyMessage(tooMany), nil
	case err != nil:
		return "", "", err
	}
	// The server will be on network "host": discovery dials under the same policy.
	found, derr := discovery.Discover(ctx, rawURL, discovery.Options{HTTPClient: s.hostFetch})
	needsAuth := false
	switch {
	case derr == nil:
	case errors.Is(derr, ssrf.ErrSchemeNotAllowed):
		return "", "Enter an https:// URL.", nil
	case errors.Is(derr, discovery.ErrUnauthorized) && s.cfg.Upstream != nil:
		needsAuth = true // tools are discovered after the human signs in to it
	case errors.Is(derr, discovery.ErrUnauthorized):
		return "", "This server requires a sign-in that trustgate cannot do.", nil
	default:
		// The same answer for an address off the allowed networks and for one that does not
		// answer: the form tells nothing about the networks behind the gateway.
		s.log.Info("oauthserver: dynamic MCP discovery failed", "host", h.Key, "refused_by_policy", errors.Is(derr, ssrf.ErrForbiddenAddress), "err", derr)
		return "", "trustgate could not reach an MCP server at this URL (it must be on the public internet or a network the operator allows).", nil
	}
	name := u.Hostname()
	if found != nil && found.ServerName != "" {
		name = found.ServerName
	}
	d := catalog.DynamicServer{Host: h.Key, UserID: uid, URL: rawURL, Name: name, Enable: h.Settings.AutoEnableNewTools}
	if !needsAuth {
		d.Tools = found.Tools // otherwise discovered after the human signs in to it
	}
	saved, err := s.cfg.Catalog.ConnectDynamic(ctx, d)
	if errors.As(err, &tooMany) {
		return "", tooManyMessage(tooMany), nil
	}
	if err != nil {
		return "", "", err
	}
	if _, err := s.cfg.Syncer.Sync(ctx); err != nil {
		s.log.Warn("oauthserver: relationship sync after dynamic MCP", "host", h.Key, "err", err)
	}
	s.log.Info("oauthserver: dynamic MCP connected", "host", h.Key, "server", saved.Key, "user", uid)
	return saved.Key, "", nil
}

func tooManyMessage(e *catalog.TooManyDynamicError) string {
	return fmt.Sprintf("You have connected %d servers by URL already, the most allowed; ask your administrator to remove some.", e.Count)
}

// fillServer discovers the tools of a server saved without any — connected by URL, or
// imported with an OAuth client, when it demanded a sign-in first — now that the human holds a
// token (best effort: logged on failure). New tools are enabled only when the host
// auto-enables them, as a sync does.
func (s *Server) fillServer(ctx context.Context, h store.Host, uid, key string) {
	sv, err := s.cfg.Store.GetServer(ctx, h.Key, key)
	if err != nil {
		return
	}
	if tools, err := s.cfg.Store.ListTools(ctx, h.Key, key); err != nil || len(tools) > 0 {
		return
	}
	tok, _, err := s.cfg.Upstream.AccessToken(ctx, h.Key, uid, key)
	if err != nil || tok == "" {
		return
	}
	fetch := s.serverFetch[store.NetworkHost]
	if sv.Network == store.NetworkAny {
		fetch = s.serverFetch[store.NetworkAny]
	}
	found, err := discovery.Discover(ctx, sv.URL, discovery.Options{HTTPClient: fetch, Header: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		s.log.Info("oauthserver: discovery after upstream sign-in failed", "host", h.Key, "server", key, "err", err)
		return
	}
	if _, err := s.cfg.Catalog.Fill(ctx, h.Key, key, found.Tools, h.Settings.AutoEnableNewTools); err != nil {
		s.log.Warn("oauthserver: save discovered tool", "host", h.Key, "server", key, "err", err)
		return
	}
	if _, err := s.cfg.Syncer.Sync(ctx); err != nil {
		s.log.Warn("oauthserver: relationship sync after dynamic MCP", "host", h.Key, "err", err)
	}
}
