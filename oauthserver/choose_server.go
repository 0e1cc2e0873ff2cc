package oauthserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// GET and POST /consent/server: the human chooses which granted MCP server the app connects
// to (or, with Dynamic MCPs, connects a new one by URL; see upstream.go). A request whose
// resource names a server skips the choice.

// grantedServers lists the servers the admin granted userID, with their ceilings.
func (s *Server) grantedServers(ctx context.Context, host, userID string) ([]consentui.ServerOption, map[string]store.Server, error) {
	grants, err := s.cfg.Store.ListGrants(ctx, host, userID)
	if err != nil {
		return nil, nil, err
	}
	servers, err := s.cfg.Store.ListServers(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	byKey := map[string]store.Server{}
	for _, sv := range servers {
		byKey[sv.Key] = sv
	}
	var opts []consentui.ServerOption
	for _, g := range grants {
		sv, ok := byKey[g.Server]
		if !ok || !g.Ceiling.Valid() {
			continue
		}
		opts = append(opts, consentui.ServerOption{Key: sv.Key, Name: sv.Name, Description: sv.Description, Ceiling: g.Ceiling})
	}
	return opts, byKey, nil
}

func (s *Server) chooseServerPage(w http.ResponseWriter, r *http.Request, h store.Host) {
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
	if p.fromRes {
		// The resource names the server: no choice (consentPage checks the grant).
		http.Redirect(w, r, s.flowURL(h.Key, consentPath, ref), http.StatusSeeOther)
		return
	}
	s.renderChooseServer(w, r, h, ref, p, uid, "", http.StatusOK)
}

func (s *Server) renderChooseServer(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p *pending, uid, msg string, status int) {
	opts, byKey, err := s.grantedServers(r.Context(), h.Key, uid)
	if err != nil {
		s.internalError(w, h, "list granted servers", err)
		return
	}
	// upstream_mcp pre-selects a granted server with that URL; anything else is ignored.
	if p.upstreamMCP != "" {
		for i := range opts {
			if byKey[opts[i].Key].URL == p.upstreamMCP {
				opts[i].Selected = true
				break
			}
		}
	}
	page := consentui.ChooseServerPage{
		Frame:       frame(h),
		Form:        consentui.Form{Action: s.issuer(h.Key) + chooseServerPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		AgentName:   p.clientName,
		Servers:     opts,
		Error:       msg,
		DynamicMCPs: h.Settings.DynamicMCPs,
	}
	if page.DynamicMCPs && r.Method == http.MethodPost {
		page.ServerURL = truncate(strings.TrimSpace(r.PostFormValue("server_url")), maxServerURLLen)
	}
	s.render(w, status, page)
}

// renderChooseServerURLError shows the choose-server page with an error on server_url.
func (s *Server) renderChooseServerURLError(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p *pending, uid, msg string) {
	opts, _, err := s.grantedServers(r.Context(), h.Key, uid)
	if err != nil {
		s.internalError(w, h, "list granted servers", err)
		return
	}
	s.render(w, http.StatusBadRequest, consentui.ChooseServerPage{
		Frame:          frame(h),
		Form:           consentui.Form{Action: s.issuer(h.Key) + chooseServerPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		AgentName:      p.clientName,
		Servers:        opts,
		DynamicMCPs:    true,
		ServerURL:      truncate(strings.TrimSpace(r.PostFormValue("server_url")), maxServerURLLen),
		ServerURLError: msg,
	})
}

func (s *Server) chooseServer(w http.ResponseWriter, r *http.Request, h store.Host) {
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
	key := r.PostFormValue("server")
	if rawURL := strings.TrimSpace(r.PostFormValue("server_url")); rawURL != "" && h.Settings.DynamicMCPs && !p.fromRes {
		k, msg, err := s.addDynamicServer(r.Context(), h, uid, rawURL)
		if err != nil {
			s.internalError(w, h, "connect dynamic MCP", err)
			return
		}
		if msg != "" {
			s.renderChooseServerURLError(w, r, h, ref, p, uid, msg)
			return
		}
		key = k
	}
	if !p.fromRes {
		if _, err := s.cfg.Store.GetGrant(r.Context(), h.Key, key, uid); err != nil {
			s.renderChooseServer(w, r, h, ref, p, uid, "Choose one of the servers listed.", http.StatusBadRequest)
			return
		}
		p.server = key
		if err := s.savePending(r.Context(), ref, p); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.expiredPage(w, h)
				return
			}
			s.internalError(w, h, "save the authorization request", err)
			return
		}
	}
	http.Redirect(w, r, s.flowURL(h.Key, consentPath, ref), http.StatusSeeOther)
}
