package oauthserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The browser side of the authorization code flow: /authorize keeps the validated request
// server-side under a random state_ref, then sign-in (or sign-up), the choice of the MCP
// server, the upstream server's own authorization when it demands one, and the trust level
// (upstream.go has the upstream step and Dynamic MCPs: servers connected by URL).

// Paths of the flow's pages, relative to the issuer.
const (
	loginPath        = "/login"
	signupPath       = "/signup"
	chooseServerPath = "/consent/server"
	consentPath      = "/consent"
)

// sessionCookiePrefix + host is the name of a host's signed-in session cookie.
const sessionCookiePrefix = "tg_session_"

// pending is an authorization request between /authorize and the consent decision. It is kept
// in the store (see pending.go), so that any replica can serve the flow's next page.
type pending struct {
	host        string
	ar          fosite.AuthorizeRequester
	resource    string
	server      string // the server consented to: from the resource, or chosen
	fromRes     bool   // server came from the resource: no choice
	upstreamMCP string
	clientName  string
	agentType   string
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// --- /authorize ---

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
	server, ok := s.resourceServer(ctx, h.Key, resource)
	if !ok {
		s.writeAuthorizeError(ctx, w, h, ar, errInvalidTarget("The resource must be this host's MCP URL or the MCP URL of one of its servers."))
		return
	}
	ar.SetRequestedAudience(fosite.Arguments{resource})
	p := &pending{host: h.Key, ar: ar, resource: resource, server: server, fromRes: server != "", upstreamMCP: q.Get("upstream_mcp")}
	p.clientName, p.agentType = clientInfo(ar.GetClient())
	ref, err := s.putPending(ctx, p)
	if err != nil {
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

// flowURL is the absolute URL of a flow page with its state_ref.
func (s *Server) flowURL(host, path, ref string) string {
	return s.issuer(host) + path + "?" + url.Values{"state_ref": {ref}}.Encode()
}

func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, h store.Host, ref, email, msg string, status int) {
	page := consentui.SignInPage{
		Frame: frame(h),
		Form:  consentui.Form{Action: s.issuer(h.Key) + loginPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		Email: email,
		Error: msg,
	}
	s.render(w, status, page)
}

// --- signed-in session cookie ---

// The session cookie is "<host>|<user id>|<expiry unix>" and its HMAC-SHA256, base64url: it
// names the human and the host, and expires after SessionTTL. Path is the host's base path,
// so hosts served under /h/{host} keep separate sessions.

func (s *Server) sessionMAC(payload string) []byte {
	m := hmac.New(sha256.New, s.session)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (s *Server) setSession(w http.ResponseWriter, host, userID string) {
	exp := s.now().Add(SessionTTL)
	payload := host + "|" + userID + "|" + strconv.FormatInt(exp.Unix(), 10)
	value := base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.sessionMAC(payload))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookiePrefix + host, Value: value, Path: s.cookiePath(host),
		Expires: exp, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) cookiePath(host string) string {
	u, err := url.Parse(s.issuer(host))
	if err != nil || u.Path == "" {
		return "/"
	}
	return strings.TrimSuffix(u.Path, "/") + "/"
}

// sessionUser returns the human signed in to host in r's browser.
func (s *Server) sessionUser(r *http.Request, host string) (string, bool) {
	for _, c := range r.CookiesNamed(sessionCookiePrefix + host) {
		p64, m64, ok := strings.Cut(c.Value, ".")
		if !ok {
			continue
		}
		payload, err1 := base64.RawURLEncoding.DecodeString(p64)
		mac, err2 := base64.RawURLEncoding.DecodeString(m64)
		if err1 != nil || err2 != nil || !hmac.Equal(mac, s.sessionMAC(string(payload))) {
			continue
		}
		parts := strings.Split(string(payload), "|")
		if len(parts) != 3 || parts[0] != host || parts[1] == "" {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || !s.now().Before(time.Unix(exp, 0)) {
			continue
		}
		if _, err := s.cfg.Store.GetUser(r.Context(), host, parts[1]); err != nil {
			continue // deleted since
		}
		return parts[1], true
	}
	return "", false
}

// --- form helpers ---

// postForm bounds and parses a flow form, checks its CSRF token and finds its pending request.
// It answers the request itself and returns false when any of that fails.
func (s *Server) postForm(w http.ResponseWriter, r *http.Request, h store.Host) (string, *pending, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form could not be read."})
		return "", nil, false
	}
	if err := s.csrf.Verify(r); err != nil {
		s.log.Info("oauthserver: CSRF check failed", "host", h.Key, "err", err)
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "The form expired", Message: consentui.CSRFMessage})
		return "", nil, false
	}
	return s.pendingOf(w, r, h, r.PostFormValue("state_ref"))
}

// pendingOf finds the pending request ref, or shows the "expired" page.
func (s *Server) pendingOf(w http.ResponseWriter, r *http.Request, h store.Host, ref string) (string, *pending, bool) {
	p, err := s.getPending(r.Context(), h.Key, ref)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, h, "load the authorization request", err)
			return "", nil, false
		}
		s.expiredPage(w, h)
		return "", nil, false
	}
	return ref, p, true
}

// expiredPage tells the human that the flow's request is gone (expired, used, or unknown).
func (s *Server) expiredPage(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "This sign-in has expired",
		Message:  "The request to connect your app is no longer valid.",
		WhatToDo: "Start again from your app.",
	})
}

// --- sign in ---

// login signs a human in with email and password. It never claims an account: a human an
// admin added chooses their password through an invitation link (invitations.go), and until
// then their account grants nothing. An unknown email, an account without a password and a
// wrong password get the same page after the same password-hash work, so the page does not
// tell which emails have an account or which accounts are unclaimed.
func (s *Server) login(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	// Only failures count: both budgets are taken before the password is checked (so that
	// concurrent attempts cannot exceed them) and given back after a correct one.
	now := s.now()
	addrKey := s.addressKey(r)
	if ok, retry := s.addrLimiter.Allow(addrKey, now); !ok {
		s.renderSignIn(w, r, h, ref, email, consentui.TooManyAttemptsMessage(retry), http.StatusTooManyRequests)
		return
	}
	acctKey := "account:" + h.Key + "/" + strings.ToLower(email)
	if ok, retry := s.acctBackoff.Allow(acctKey, now); !ok {
		s.addrLimiter.Refund(addrKey, now) // no password was tried
		s.renderSignIn(w, r, h, ref, email, consentui.TooManyAttemptsMessage(retry), http.StatusTooManyRequests)
		return
	}
	u, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			s.internalError(w, h, "look up user", err)
			return
		}
		consentui.DummyVerify(password)
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, u.ID)
	if err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	}
	if phc == "" {
		// Not claimed yet (invitation pending): exactly the answer of a wrong password.
		consentui.DummyVerify(password)
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	match, rehash, err := consentui.VerifyPassword(phc, password)
	if err != nil {
		s.log.Error("oauthserver: stored password hash unusable", "host", h.Key, "user", u.ID, "err", err)
		consentui.DummyVerify(password) // a malformed hash is refused before any hashing
	}
	if !match {
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	if rehash {
		if err := s.storePassword(ctx, h.Key, u.ID, password); err != nil {
			s.log.Error("oauthserver: rehash password", "host", h.Key, "user", u.ID, "err", err)
		}
	}
	s.acctBackoff.Success(acctKey)
	s.addrLimiter.Refund(addrKey, now)
	s.signedIn(w, r, h, u.ID, ref)
}

// addressKey is the rate-limit key of the request's client address.
func (s *Server) addressKey(r *http.Request) string {
	return consentui.AddressKey(consentui.ClientAddr(r, s.cfg.TrustedProxies))
}

func (s *Server) storePassword(ctx context.Context, host, userID, password string) error {
	phc, err := consentui.HashPassword(password)
	if err != nil {
		return err
	}
	return s.cfg.Store.SetUserPassword(ctx, host, userID, phc)
}

func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, h store.Host, userID, ref string) {
	if err := s.cfg.Store.TouchUser(r.Context(), h.Key, userID, s.now()); err != nil {
		s.log.Warn("oauthserver: touch user", "host", h.Key, "err", err)
	}
	s.setSession(w, h.Key, userID)
	http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
}

// --- sign up ---

// signUpOpen reports whether host lists allowed email domains (HostSettings.AllowedEmailDomains):
// the setting that opens self sign-up. Sign-up must prove the mailbox first (anyone could
// otherwise become bob@acme.com, whom an admin later trusts by name); until trustgate sends
// verification emails it is refused with MsgSignUpNeedsVerification, and the setting only
// changes which message the page shows.
func signUpOpen(h store.Host) bool { return len(h.Settings.AllowedEmailDomains) > 0 }

// Messages of the sign-up page that tests and documentation refer to.
const (
	// MsgSignUpClosed: the host does not let humans sign up.
	MsgSignUpClosed = "This gateway does not let people create their own accounts."
	// MsgSignUpNeedsVerification: the host allows sign-up for some domains, but sign-up needs
	// email verification, which is not available yet.
	MsgSignUpNeedsVerification = "Creating your own account needs email verification, which this gateway does not offer yet."
)

// signup answers the sign-up page and form: refused, whatever is posted (nothing is read or
// created), with what to do instead.
func (s *Server) signup(w http.ResponseWriter, _ *http.Request, h store.Host) {
	msg := MsgSignUpClosed
	if signUpOpen(h) {
		msg = MsgSignUpNeedsVerification
	}
	s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Sign-up is not available",
		Message:  msg,
		WhatToDo: "Ask your admin for an invitation: it lets you choose your password, then connect again from your app.",
	})
}

// --- choose the server ---

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

// signedInOr returns the signed-in human, or shows the sign-in page for ref.
func (s *Server) signedInOr(w http.ResponseWriter, r *http.Request, h store.Host, ref string) (string, bool) {
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		s.renderSignIn(w, r, h, ref, "", "", http.StatusOK)
	}
	return uid, ok
}

func (s *Server) chooseServerPage(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, p, ok := s.pendingOf(w, r, h, r.URL.Query().Get("state_ref"))
	if !ok {
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

// --- trust level ---

func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, p, ok := s.pendingOf(w, r, h, r.URL.Query().Get("state_ref"))
	if !ok {
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
	g, err := s.cfg.Store.GetGrant(ctx, h.Key, p.server, uid)
	if err != nil || level > g.Ceiling {
		s.renderConsent(w, r, h, ref, p, uid, "Choose a trust level your administrator allows.", http.StatusBadRequest)
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
		s.internalError(w, h, "set consent", err)
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
