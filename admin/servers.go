package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

func validateCredentials(h *CredentialHeader, o *OAuthClient) error {
	if h != nil && o != nil {
		return problemf(http.StatusBadRequest, "give either a header or an OAuth client, not both")
	}
	if h != nil {
		name := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(h.Name))
		if name == "" || strings.ContainsAny(name, " \t\r\n:") || strings.ContainsAny(h.Value, "\r\n") || h.Value == "" {
			return problemf(http.StatusBadRequest, "header credential needs a valid header name and a non-empty value without line breaks")
		}
		switch strings.ToLower(name) {
		case "host", "content-length", "content-type", "transfer-encoding", "connection", "mcp-session-id", "mcp-protocol-version":
			return problemf(http.StatusBadRequest, "header %q is managed by the gateway and cannot be a credential", name)
		}
		h.Name = name
	}
	if o != nil && strings.TrimSpace(o.ClientID) == "" {
		return problemf(http.StatusBadRequest, "OAuth client credentials need a client_id")
	}
	return nil
}

// sealCredentials returns the kind and sealed bytes to store for a server.
func (a *API) sealCredentials(host, server string, h *CredentialHeader, o *OAuthClient) (string, []byte, error) {
	return upstreamauth.SealCredentials(a.cfg.Keys, host, server, upstreamauth.Credentials{
		Header:      (*upstreamauth.CredentialHeader)(h),
		OAuthClient: (*upstreamauth.OAuthClient)(o),
	})
}

// importNetwork is the network of a server imported by c asking for requested ("" for the
// default: "any" for a global token, "host" for a host's).
func importNetwork(c *caller, requested string) (string, error) {
	switch requested {
	case "":
		if c.global() {
			return store.NetworkAny, nil
		}
		return store.NetworkHost, nil
	case store.NetworkHost:
		return requested, nil
	case store.NetworkAny:
		if !c.global() {
			return "", errNetworkAny
		}
		return requested, nil
	}
	return "", problemf(http.StatusBadRequest, "network must be %q or %q", store.NetworkHost, store.NetworkAny)
}

var errNetworkAny = problemf(http.StatusForbidden, "only the gateway's operator (a global API token) can let a server reach any network; "+
	"a host's servers reach public addresses and the networks the operator allows (serve --upstream-allow-cidr)")

// unreachableDetail is all a host's admin learns of an upstream that could not be reached
// (refused by the network policy, or failing): the same text whatever the cause, so that the
// answer tells nothing about the networks behind the gateway.
const unreachableDetail = "the MCP server could not be reached; if it is on a private network, the gateway's operator must allow that network"

// upstreamError logs why an upstream could not be reached and, for a host's token, replaces
// the reason by unreachableDetail. The operator (a global token) sees the reason.
func (a *API) upstreamError(c *caller, host, server, network string, err error) error {
	if !errors.Is(err, discovery.ErrUnreachable) {
		return err
	}
	a.log.Warn("admin API: upstream MCP server not reachable", "host", host, "server", server, "network", network,
		"refused_by_policy", errors.Is(err, ssrf.ErrForbiddenAddress), "token", c.token.ID, "err", err, "cause", causeOf(err))
	if c.global() {
		return err
	}
	return &apiError{status: http.StatusBadGateway, title: "Upstream MCP server problem", detail: unreachableDetail}
}

// causeOf is the underlying error of a discovery error (for the log: it may name addresses).
func causeOf(err error) error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) > 1 {
			return errs[1]
		}
	}
	return nil
}

func (a *API) serverDoc(ctx context.Context, s store.Server) (Server, error) {
	tools, err := a.cfg.Store.ListTools(ctx, s.Host, s.Key)
	if err != nil {
		return Server{}, err
	}
	doc := Server{
		Key: s.Key, Name: s.Name, Description: s.Description, URL: s.URL,
		CredentialKind: s.CredentialKind, Tools: len(tools), Network: s.Network, DLPMode: string(s.DLPMode), CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
		Timeouts: timeoutsDoc(s),
	}
	for _, t := range tools {
		if t.Enabled {
			doc.EnabledTools++
		}
		if t.Flagged {
			doc.FlaggedTools++
		}
	}
	return doc, nil
}

func (a *API) listServers(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	servers, err := a.cfg.Store.ListServers(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	docs := make([]Server, 0, len(servers))
	for _, s := range servers {
		d, err := a.serverDoc(r.Context(), s)
		if err != nil {
			return 0, nil, err
		}
		docs = append(docs, d)
	}
	page, err := paginate(r, docs, func(s Server) string { return s.Key })
	return http.StatusOK, page, err
}

func (a *API) getServer(r *http.Request, _ *caller) (int, any, error) {
	s, err := a.cfg.Store.GetServer(r.Context(), r.PathValue("host"), r.PathValue("server"))
	if err != nil {
		return 0, nil, err
	}
	d, err := a.serverDoc(r.Context(), s)
	return http.StatusOK, d, err
}

func (a *API) importServer(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	host := r.PathValue("host")
	var req ServerImport
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	if _, err := a.cfg.Store.GetHost(ctx, host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	if err := validateCredentials(req.Header, req.OAuthClient); err != nil {
		return 0, nil, err
	}
	if req.UpstreamSignIn && req.Header != nil {
		return 0, nil, problemf(http.StatusBadRequest, "upstream_sign_in and a header credential exclude each other: the header is how the gateway reaches the server for everyone")
	}
	if err := validDiscoveryToken(req); err != nil {
		return 0, nil, err
	}
	network, err := importNetwork(c, req.Network)
	if err != nil {
		return 0, nil, err
	}
	ireq := catalog.ImportRequest{Host: host, URL: req.URL, Network: network, Key: req.Key, Name: req.Name, Description: req.Description,
		OAuthClient: req.OAuthClient != nil || req.UpstreamSignIn, EnableTools: req.EnableTools == nil || *req.EnableTools}
	if req.Header != nil {
		ireq.Header = http.Header{}
		ireq.Header.Set(req.Header.Name, req.Header.Value)
	}
	if req.DiscoveryToken != "" {
		// Discovery only (the credentials saved are the OAuth client's, below): a server that
		// refuses the token fails the import instead of being saved without tools.
		ireq.Header = http.Header{"Authorization": {"Bearer " + req.DiscoveryToken}}
		ireq.OAuthClient = false
	}
	plan, err := a.cfg.Catalog.PlanImport(ctx, ireq)
	if errors.Is(err, catalog.ErrNoKey) {
		return 0, nil, problemf(http.StatusBadRequest, "%v", catalog.ErrNoKey)
	}
	if err != nil {
		return 0, nil, a.upstreamError(c, host, req.Key, network, err) // nothing saved
	}
	srv, tools, key := plan.Server, plan.Tools, plan.Server.Key
	t := req.Timeouts
	if err := setTimeouts(&srv, &t.ConnectTimeoutMS, &t.FirstByteTimeoutMS, &t.IdleTimeoutMS); err != nil {
		return 0, nil, err
	}
	result := ImportResult{DryRun: req.DryRun, Server: Server{Key: key, Name: srv.Name, Description: srv.Description, URL: srv.URL, Tools: len(tools), Network: network, Timeouts: timeoutsDoc(srv)}}
	result.ClientDependentTools, result.Note = clientDependence(plan.ClientDependentTools)
	for _, t := range tools {
		result.Tools = append(result.Tools, toolDoc(t))
		if t.Enabled {
			result.Server.EnabledTools++
		}
	}
	if req.DryRun {
		c.change.none = true
		result.Server.CredentialKind = upstreamauth.Credentials{Header: (*upstreamauth.CredentialHeader)(req.Header), OAuthClient: (*upstreamauth.OAuthClient)(req.OAuthClient)}.Kind()
		return http.StatusOK, result, nil
	}
	srv.CredentialKind, srv.Credentials, err = a.sealCredentials(host, key, req.Header, req.OAuthClient)
	if err != nil {
		return 0, nil, err
	}
	c.change.object = "servers/" + key
	saved, err := a.cfg.Catalog.Import(ctx, srv, tools)
	if err != nil {
		return 0, nil, err
	}
	if result.Server, err = a.serverDoc(ctx, saved); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, result, a.sync(ctx)
}

// maxDiscoveryToken bounds an import's discovery token.
const maxDiscoveryToken = 8 << 10

// validDiscoveryToken: a discovery token only for a server of humans' own sign-ins, bounded,
// and fit for a header.
func validDiscoveryToken(req ServerImport) error {
	t := req.DiscoveryToken
	switch {
	case t == "":
		return nil
	case req.OAuthClient == nil && !req.UpstreamSignIn:
		return problemf(http.StatusBadRequest, "discovery_token is for a server of each human's own sign-in: give oauth_client or upstream_sign_in too")
	case len(t) > maxDiscoveryToken || strings.ContainsAny(t, "\r\n\x00 "):
		return problemf(http.StatusBadRequest, "discovery_token: want an access token of at most %d bytes, without spaces or line breaks", maxDiscoveryToken)
	}
	return nil
}

// clientDependence reports the tools the server lists only to clients declaring roots,
// sampling or elicitation, with a note for the admin (nil and "" when there are none).
func clientDependence(tools []string) ([]string, string) {
	if len(tools) == 0 {
		return nil, ""
	}
	return tools, fmt.Sprintf("The server lists %d tool(s) only to MCP clients that declare the roots, sampling or elicitation capability: %s. "+
		"They were discovered (trustgate declares all three); an agent whose client declares none of them will not see them, "+
		"and calling them may need the client to answer the server's roots, sampling or elicitation requests, which trustgate passes through.",
		len(tools), strings.Join(tools, ", "))
}

func (a *API) updateServer(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req ServerUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	s, err := a.cfg.Store.GetServer(ctx, r.PathValue("host"), r.PathValue("server"))
	if err != nil {
		return 0, nil, err
	}
	if err := validateCredentials(req.Header, req.OAuthClient); err != nil {
		return 0, nil, err
	}
	if req.Name != nil {
		s.Name = *req.Name
	}
	if req.Description != nil {
		s.Description = *req.Description
	}
	if req.URL != nil {
		if err := checkURL(*req.URL); err != nil {
			return 0, nil, err
		}
		s.URL = *req.URL
	}
	if req.Network != nil {
		switch *req.Network {
		case store.NetworkHost:
		case store.NetworkAny:
			if !c.global() {
				return 0, nil, errNetworkAny
			}
		default:
			return 0, nil, problemf(http.StatusBadRequest, "network must be %q or %q", store.NetworkHost, store.NetworkAny)
		}
		if s.Network != *req.Network {
			c.change.old, c.change.new = "network="+s.Network, "network="+*req.Network // in the audit entry
		}
		s.Network = *req.Network
	}
	if req.DLPMode != nil {
		if *req.DLPMode != "" && !dlp.ValidMode(dlp.Mode(*req.DLPMode)) {
			return 0, nil, problemf(http.StatusBadRequest, "dlp_mode must be off, redact, block, or empty to follow the host's setting")
		}
		if string(s.DLPMode) != *req.DLPMode {
			c.change.old = strings.TrimPrefix(c.change.old+"; dlp_mode="+string(s.DLPMode), "; ") // in the audit entry
			c.change.new = strings.TrimPrefix(c.change.new+"; dlp_mode="+*req.DLPMode, "; ")
		}
		s.DLPMode = dlp.Mode(*req.DLPMode)
	}
	if req.URL != nil && s.Network == store.NetworkAny && !c.global() {
		return 0, nil, problemf(http.StatusForbidden, "the server may reach any network, so only the gateway's operator (a global API token) can change its URL; "+
			"set its network to %q to change it with this token", store.NetworkHost)
	}
	if req.ClearCredentials {
		s.CredentialKind, s.Credentials = "", nil
	}
	if err := setTimeouts(&s, req.ConnectTimeoutMS, req.FirstByteTimeoutMS, req.IdleTimeoutMS); err != nil {
		return 0, nil, err
	}
	if req.Header != nil || req.OAuthClient != nil {
		if s.CredentialKind, s.Credentials, err = a.sealCredentials(s.Host, s.Key, req.Header, req.OAuthClient); err != nil {
			return 0, nil, err
		}
	}
	if s, err = a.cfg.Store.UpdateServer(ctx, s); err != nil {
		return 0, nil, err
	}
	d, err := a.serverDoc(ctx, s)
	return http.StatusOK, d, err
}

func (a *API) deleteServer(r *http.Request, _ *caller) (int, any, error) {
	if err := a.cfg.Store.DeleteServer(r.Context(), r.PathValue("host"), r.PathValue("server")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.sync(r.Context())
}

// syncServer has the catalog re-discover the tools and sync them: new ones are added (disabled
// until reviewed unless the host auto-enables them), ones whose definition changed since
// approval are disabled and flagged, ones gone upstream are removed.
func (a *API) syncServer(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	host := r.PathValue("host")
	s, err := a.cfg.Store.GetServer(ctx, host, r.PathValue("server"))
	if err != nil {
		return 0, nil, err
	}
	synced, err := a.cfg.Catalog.SyncServer(ctx, s, catalog.Source{Name: "sync", Actor: c.actor(), Detail: "server sync"})
	if err != nil {
		return 0, nil, a.upstreamError(c, host, s.Key, s.Network, err)
	}
	res := SyncResult{Added: synced.Added, Changed: synced.Changed, Removed: synced.Removed, Unchanged: synced.Unchanged}
	res.ClientDependentTools, res.Note = clientDependence(synced.ClientDependentTools)
	for _, t := range synced.Tools {
		res.Tools = append(res.Tools, toolDoc(t))
	}
	return http.StatusOK, res, a.sync(ctx)
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return problemf(http.StatusBadRequest, "server URL %q must be an absolute http(s) URL without credentials in it", raw)
	}
	return nil
}

func timeoutsDoc(s store.Server) Timeouts {
	return Timeouts{
		ConnectTimeoutMS:   s.ConnectTimeout.Milliseconds(),
		FirstByteTimeoutMS: s.FirstByteTimeout.Milliseconds(),
		IdleTimeoutMS:      s.IdleTimeout.Milliseconds(),
	}
}

// setTimeouts sets the timeouts given (nil: unchanged), in milliseconds.
func setTimeouts(s *store.Server, connectMS, firstByteMS, idleMS *int64) error {
	for _, f := range []struct {
		name string
		ms   *int64
		dst  *time.Duration
	}{
		{"connect_timeout_ms", connectMS, &s.ConnectTimeout},
		{"first_byte_timeout_ms", firstByteMS, &s.FirstByteTimeout},
		{"idle_timeout_ms", idleMS, &s.IdleTimeout},
	} {
		if f.ms == nil {
			continue
		}
		if *f.ms < 0 || *f.ms > store.MaxServerTimeout.Milliseconds() {
			return problemf(http.StatusBadRequest, "%s must be from 0 (the default) to %d", f.name, store.MaxServerTimeout.Milliseconds())
		}
		*f.dst = time.Duration(*f.ms) * time.Millisecond
	}
	return nil
}
