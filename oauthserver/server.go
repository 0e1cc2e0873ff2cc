package oauthserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	foauth2 "github.com/ory/fosite/handler/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/oauthserver/samlsso"
	"github.com/trustgate/trustgate/oauthserver/sso"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
)

// The authorization server's HTTP side, per host: discovery documents, registration, the
// authorize / sign-in / consent flow, and fosite's token, revocation and introspection
// endpoints. Routes are relative to the host's base URL: the route table (tenant.Mount) serves
// them under every form of it, with the host in the request context.

// Syncer applies the store's pending relationship changes to the authorization backend (the
// relationship writer, authzserver.Writer), like admin.Config's.
type Syncer interface {
	Sync(ctx context.Context) (authzserver.Revision, error)
}

// ServerConfig is what NewServer needs: what the gateway already has, plus two secrets.
type ServerConfig struct {
	Store  Store
	URLs   tenant.URLs
	KeySet *accesstoken.KeySet
	Syncer Syncer
	// CookieSecret (at least 32 bytes) signs the signed-in session cookie and the CSRF tokens.
	// GlobalSecret (at least 32 bytes) is fosite's HMAC key for codes and refresh tokens. Both
	// must be stable across restarts and equal on every replica; the gateway derives them from
	// its master keyring (e.g. HKDF of a random value sealed in the store), which is why the
	// server takes the derived bytes rather than the keyring.
	CookieSecret []byte
	GlobalSecret []byte
	// HTTPClient fetches Client ID Metadata Documents; nil means ssrf.NewClient's defaults (it
	// must be SSRF-safe: never give it a plain client in production). When set (tests), it
	// also reaches Dynamic MCPs, in place of the clients HostNetworks makes.
	HTTPClient *http.Client
	// HostNetworks is what Dynamic MCPs (servers humans add by URL, on network "host") may be
	// reached on: public addresses plus the operator's prefixes; the zero value is public
	// addresses only.
	HostNetworks ssrf.Policy
	// Upstream, when set, makes the gateway an OAuth client of upstream servers that demand
	// their own authorization (step 3 of the flow, UpstreamCallbackPath); nil skips that step.
	Upstream *upstreamauth.Client
	// AdminUpstreamCallback, when set, is where the callback sends an administrator's own
	// authorization at an upstream (state upstreamauth.AdminStatePrefix…: the dashboard's
	// Create server) for host.
	AdminUpstreamCallback func(host string) string
	// Catalog saves the servers humans connect by URL (Dynamic MCPs) and the tools discovered
	// after an upstream sign-in; nil is one on Store.
	Catalog *catalog.Catalog
	// TrustedProxies are the reverse proxies whose X-Forwarded-For gives the client address of
	// rate limits (consentui.ClientAddr); none by default: the header is ignored.
	TrustedProxies []netip.Prefix
	// Keys (the master keyring) open the sign-in methods' provider secrets and seal the single
	// sign-on state kept in the store; nil leaves the SSO methods (OIDC, Google, Microsoft,
	// GitHub) without routes.
	Keys *secrets.Keyring
	// Audit receives the entries of sign-ins and account changes (decision "identity"); nil
	// records none.
	Audit audit.Appender
	// Mail sends the codes of the email methods (sign-in codes, claims, sign-ups and password
	// resets, emailcode.go); nil turns them off, and the pages say so.
	Mail   Mailer
	Logger *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Limits of the flow.
const (
	// PendingAuthorizeTTL is how long a pending authorization request (between /authorize
	// and the consent decision) is kept.
	PendingAuthorizeTTL = 10 * time.Minute
	// MaxPendingAuthorize bounds the Client ID Metadata Document expiries kept in memory.
	MaxPendingAuthorize = 10_000
	// SessionTTL is the lifetime of the signed-in session cookie.
	SessionTTL = 12 * time.Hour
	// maxFormBytes bounds the body of the sign-in and consent forms.
	maxFormBytes = 16 << 10
	// maxAccessTokenTTL caps a host's AccessTokenTTLSeconds (accesstoken's default maximum).
	maxAccessTokenTTL = accesstoken.DefaultMaxTokenLifetime
)

// Server is the OAuth 2.1 authorization server of every host. It is safe for concurrent use.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	provider fosite.OAuth2Provider
	csrf     *consentui.CSRF
	session  []byte // HMAC key of the session cookie
	secure   bool   // the public URL is https: cookies are Secure
	now      func() time.Time

	fetch *http.Client
	// hostFetch reaches Dynamic MCPs (https, network "host"); serverFetch[network] reaches
	// stored servers of each network (http too, as the proxy does).
	hostFetch    *http.Client
	serverFetch  map[string]*http.Client
	clients      *fositestore.Store // client lookups of pending requests
	refreshSigs  refreshSigner      // the signature (row key) of a refresh token
	addrLimiter  *consentui.Limiter // failed sign-ins per client address
	acctBackoff  *consentui.Backoff // failed sign-ins per account
	regLimiter   *consentui.Limiter // client registrations per client address
	codeLimiter  *consentui.Limiter // email codes asked for per client address
	beginLimiter *consentui.Limiter // sign-ins begun (pending requests stored) per client address
	codeKey      []byte             // HMAC key of stored email codes
	cimdMu       sync.Mutex
	cimdExpiries map[string]time.Time // host + " " + client id → when to fetch the document again
	extMu        sync.Mutex
	external     map[string]func(*mux.Router) // external sign-in methods' routes (HandleAuthMethod)
	saml         *samlsso.Service             // SAML 2.0 sign-in (saml.go)
	sso          *sso.Client                  // sign-in at OIDC providers and GitHub (ssomethods.go)
}

// NewServer builds the server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Store == nil || cfg.KeySet == nil || cfg.Syncer == nil || cfg.URLs.Public == nil {
		return nil, errors.New("oauthserver: a store, URLs, a key set and a syncer are required")
	}
	if len(cfg.CookieSecret) < 32 {
		return nil, errors.New("oauthserver: the cookie secret must be at least 32 bytes")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Catalog == nil {
		cfg.Catalog = catalog.New(catalog.Config{Store: cfg.Store, Log: log})
	}
	s := &Server{
		cfg:          cfg,
		log:          log,
		secure:       cfg.URLs.Public.Scheme == "https",
		now:          now,
		fetch:        cfg.HTTPClient,
		addrLimiter:  consentui.NewLimiter(20, 15*time.Minute, 0),
		acctBackoff:  consentui.NewBackoff(consentui.BackoffFree, consentui.BackoffFirst, consentui.BackoffMax, 0),
		regLimiter:   consentui.NewLimiter(RegistrationsPerHour, time.Hour, 0),
		codeLimiter:  consentui.NewLimiter(EmailCodesPerClientAddress, 15*time.Minute, 0),
		beginLimiter: consentui.NewLimiter(SignInsBegunPerClientAddress, 15*time.Minute, 0),
		cimdExpiries: map[string]time.Time{},
	}
	if s.fetch == nil {
		s.fetch = ssrf.NewClient(ssrf.Options{})
		s.hostFetch = ssrf.NewClient(ssrf.Options{Policy: cfg.HostNetworks})
		s.serverFetch = map[string]*http.Client{
			store.NetworkHost: ssrf.NewClient(ssrf.Options{AllowHTTP: true, Policy: cfg.HostNetworks}),
			store.NetworkAny:  ssrf.NewClient(ssrf.Options{AllowHTTP: true, Policy: ssrf.AllowAll()}),
		}
	} else {
		s.hostFetch = s.fetch
		s.serverFetch = map[string]*http.Client{store.NetworkHost: s.fetch, store.NetworkAny: s.fetch}
	}
	s.session = derive(cfg.CookieSecret, "trustgate/oauthserver/session/v1")
	s.codeKey = derive(cfg.CookieSecret, "trustgate/oauthserver/email-code/v1")
	csrf, err := consentui.NewCSRF(derive(cfg.CookieSecret, "trustgate/oauthserver/csrf/v1"), "tg_csrf", s.secure)
	if err != nil {
		return nil, err
	}
	s.csrf = csrf
	s.clients = fositestore.New(redirectOverlay{cfg.Store}, fositestore.Options{DefaultScopes: []string{MCPScope}, Audience: s.audiences})
	p, err := fositestore.NewProvider(redirectOverlay{cfg.Store}, fositestore.ProviderConfig{
		GlobalSecret:  cfg.GlobalSecret,
		DefaultScopes: []string{MCPScope},
		Audience:      s.audiences,
		Now:           now,
		SessionLimits: s.sessionLimits,
		AccessTokenStrategy: func(_ *fosite.Config, h *foauth2.HMACSHAStrategy) foauth2.AccessTokenStrategy {
			s.refreshSigs = h
			return &jwtAccessTokens{s: s}
		},
	})
	if err != nil {
		return nil, err
	}
	s.provider = p
	if err := s.registerSAML(); err != nil {
		return nil, err
	}
	if err := s.registerSSO(); err != nil {
		return nil, err
	}
	return s, nil
}

// macPurpose labels what an HMAC under the session key proves (Server.mac), so that a value
// signed for one purpose is never accepted for another. Each label ends in '|' and none is a
// prefix of another (TestMACPurposesArePrefixFree): a payload cannot make one purpose's input
// another's.
type macPurpose string

const (
	macBrowserSession macPurpose = "browser-session|"
	macEmailPassword  macPurpose = "email-password|"
	macExternalSignIn macPurpose = "external-signin|"
)

// macPurposes lists every purpose.
var macPurposes = []macPurpose{macBrowserSession, macEmailPassword, macExternalSignIn}

// mac is HMAC-SHA256 under the session key of payload, labelled with its purpose.
func (s *Server) mac(purpose macPurpose, payload string) []byte {
	return derive(s.session, string(purpose)+payload)
}

// derive is HMAC-SHA256(secret, label): independent keys from one secret.
func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Routes registers a host's OAuth server: discovery, registration, sign-in, consent and
// tokens. The host is in the request context (tenant.Mount).
func (s *Server) Routes(r *mux.Router) {
	handle := func(method, path string, h http.HandlerFunc) {
		r.Methods(route.Methods(method)...).Path(path).Handler(h)
	}
	issuer := func(r *http.Request) (string, bool) {
		host := tenant.FromContext(r.Context())
		return s.issuer(host), host != ""
	}
	r.Path(AuthorizationServerMetadataWellKnown).Handler(AuthorizationServerMetadataHandler(issuer))
	r.Path(OpenIDConfigurationWellKnown).Handler(OpenIDConfigurationHandler(issuer))
	prm := ProtectedResourceMetadataHandler(s.resolveResource)
	r.Path(accesstoken.ProtectedResourceMetadataWellKnown).Handler(prm)
	r.Path(accesstoken.ProtectedResourceMetadataWellKnown + "/mcp").Handler(prm)
	r.Path(accesstoken.ProtectedResourceMetadataWellKnown + "/mcp/{server}").Handler(prm)
	handle("GET", JWKSPath, s.jwks)
	// Browser-based MCP clients call registration, the token endpoint and revocation from
	// their own origin (see cors); the pages (authorize, sign-in, consent) are never read
	// cross-origin.
	for _, path := range []string{RegistrationEndpointPath, TokenEndpointPath, RevocationEndpointPath} {
		handle("OPTIONS", path, corsPreflight)
	}
	handle("POST", RegistrationEndpointPath, cors(s.withHost(s.register)))
	// At the bare public URL, /authorize, /token and /revoke serve the host the request names
	// (its client, resource or token), see origin.go; /register stays the default host's.
	handle("GET", AuthorizeEndpointPath, s.atOrigin(s.authorizeOriginHost, s.redirectToHost, s.authorizeUnavailable, s.withHost(s.authorize)))
	handle("GET", loginPath, s.withHost(s.loginPage))
	handle("POST", loginPath, s.withHost(s.login))
	handle("GET", invitePath, s.withHost(s.invitationPage))
	handle("POST", invitePath, s.withHost(s.acceptInvitation))
	handle("GET", emailCodePath, s.withHost(s.emailCodeForm))
	handle("POST", emailCodePath, s.withHost(s.emailCodeStart))
	handle("POST", emailCodeVerifyPath, s.withHost(s.emailCodeVerify))
	handle("GET", emailCodeLinkPath, s.withHost(s.emailCodeLink))
	handle("POST", emailPasswordPath, s.withHost(s.emailPassword))
	handle("GET", signupPath, s.withHost(s.signup))
	handle("POST", signupPath, s.withHost(s.signup))
	handle("GET", chooseServerPath, s.withHost(s.chooseServerPage))
	handle("POST", chooseServerPath, s.withHost(s.chooseServer))
	handle("GET", consentPath, s.withHost(s.consentPage))
	handle("POST", consentPath, s.withHost(s.consent))
	handle("GET", UpstreamCallbackPath, s.withHost(s.upstreamCallback))
	handle("GET", accountPath, s.withHost(s.account))
	handle("POST", passwordPath, s.withHost(s.changePassword))
	handle("POST", logoutPath, s.withHost(s.logout))
	handle("POST", accountPasskeyOptionsPath, s.withHost(s.accountPasskeyOptions))
	handle("POST", accountPasskeysPath, s.withHost(s.accountAddPasskey))
	handle("POST", accountPasskeyRemovePath, s.withHost(s.accountRemovePasskey))
	handle("POST", passkeySignInOptionsPath, s.withHost(s.passkeySignInOptions))
	handle("POST", passkeySignInPath, s.withHost(s.passkeySignIn))
	s.mountExternal(r)
	token, revoke := s.withHost(s.token), s.withHost(s.revoke)
	handle("POST", TokenEndpointPath, cors(limitTokenForm(s.atOrigin(s.tokenOriginHost, serveAs(token), s.tokenUnavailable, token))))
	handle("POST", RevocationEndpointPath, cors(limitTokenForm(s.atOrigin(s.revokeOriginHost, serveAs(revoke), s.tokenUnavailable, revoke))))
	handle("POST", IntrospectionEndpointPath, s.withHost(s.introspect))
	r.Methods(route.Methods("GET")...).Path(consentui.DefaultStylesheetURL).Handler(consentui.StylesheetHandler())
	r.Methods(route.Methods("GET")...).Path(consentui.PasskeyScriptURL).Handler(consentui.PasskeyScriptHandler())
}

// cors lets any origin read the answers of next, without credentials: these endpoints take no
// cookies (a client authenticates with its client_id, a secret in the body or the
// Authorization header, or a code or token it holds), so an answer to a page of another origin
// reveals nothing that page did not send.
func cors(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next(w, r)
	}
}

// corsPreflight answers a CORS preflight of a POST endpoint that cors wraps. Authorization is
// named explicitly: the "*" wildcard of Access-Control-Allow-Headers never covers it.
func corsPreflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// hostHandler is a handler of one host's request; h is the stored host.
type hostHandler func(w http.ResponseWriter, r *http.Request, h store.Host)

// withHost loads the host of the request context (read while routing, else here); an unknown
// host gets 404.
func (s *Server) withHost(next hostHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := tenant.FromContext(r.Context())
		h, found := tenant.StoredHost(r.Context())
		var err error
		if !found {
			h, err = s.cfg.Store.GetHost(r.Context(), key)
		}
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.log.Error("oauthserver: load host", "host", key, "err", err)
			}
			s.errorPage(w, http.StatusNotFound, consentui.HostNotFoundPage(key))
			return
		}
		next(w, r.WithContext(fositestore.WithHost(r.Context(), h.Key)), h)
	}
}

// issuer is the host's issuer: its base URL.
func (s *Server) issuer(host string) string { return s.cfg.URLs.Base(host) }

// audiences are the resources a client of host may be granted: the host's MCP URL and each of
// its servers' (fosite checks a grant's audience against them on every refresh).
func (s *Server) audiences(host string) []string {
	out := []string{s.cfg.URLs.MCP(host)}
	servers, err := s.cfg.Store.ListServers(context.Background(), host)
	if err != nil {
		s.log.Error("oauthserver: list servers", "host", host, "err", err)
		return out
	}
	for _, sv := range servers {
		out = append(out, s.cfg.URLs.MCP(host)+"/"+sv.Key)
	}
	return out
}

// resourceServer checks an RFC 8707 resource for host h: the host's MCP URL (server ""), the
// MCP URL of one of its servers (server is its key), or, on a host that allows Dynamic MCPs,
// the Dynamic MCP link to an upstream (server "", upstream its URL) spelled exactly as its
// protected resource metadata announces it.
func (s *Server) resourceServer(ctx context.Context, h store.Host, resource string) (server, upstream string, ok bool) {
	base := s.cfg.URLs.MCP(h.Key)
	if resource == base {
		return "", "", true
	}
	if h.Settings.DynamicMCPs {
		if up, ok := accesstoken.IsUpstreamMCPResource(base, resource); ok {
			return "", up, true
		}
	}
	key, ok := s.serverOfResource(ctx, h.Key, base, resource)
	return key, "", ok
}

// serverOfResource is the key of the server of host whose MCP URL is resource.
func (s *Server) serverOfResource(ctx context.Context, host, base, resource string) (string, bool) {
	key, found := strings.CutPrefix(resource, base+"/")
	if !found || key == "" || strings.ContainsAny(key, "/?#") {
		return "", false
	}
	if _, err := s.cfg.Store.GetServer(ctx, host, key); err != nil {
		return "", false
	}
	return key, true
}

// resolveResource answers protected resource metadata requests. The metadata of a Dynamic MCP
// link (…/mcp?upstream_mcp=<url>, on a host that allows Dynamic MCPs) announces the link,
// query included, as its resource; any other query is ignored, as it always was.
func (s *Server) resolveResource(r *http.Request) (resource, issuer string, ok bool) {
	host := tenant.FromContext(r.Context())
	if host == "" {
		return "", "", false
	}
	resource = s.cfg.URLs.MCP(host)
	if key := r.PathValue("server"); key != "" {
		if _, err := s.cfg.Store.GetServer(r.Context(), host, key); err != nil {
			return "", "", false
		}
		resource += "/" + key
	} else if up, isLink := accesstoken.UpstreamMCPOf(r.URL.RawQuery); isLink {
		h, err := s.cfg.Store.GetHost(r.Context(), host)
		if err != nil {
			return "", "", false
		}
		if h.Settings.DynamicMCPs {
			resource = accesstoken.UpstreamMCPResource(resource, up)
		}
	}
	return resource, s.issuer(host), true
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(s.cfg.KeySet.JWKS())
}

// RegistrationsPerHour is how many clients one address (an IPv4 address or an IPv6 /64) may
// register per hour, in a burst or spread out; one more is answered 429 with Retry-After.
const RegistrationsPerHour = 60

// register is RFC 7591 dynamic client registration. Registration is open (as MCP clients
// need), throttled per client address.
func (s *Server) register(w http.ResponseWriter, r *http.Request, h store.Host) {
	if ok, retry := s.regLimiter.Allow(s.addressKey(r), s.now()); !ok {
		s.log.Info("oauthserver: client registration throttled", "host", h.Key)
		WriteRegistrationThrottled(w, retry)
		return
	}
	req, err := ParseRegistrationRequest(r, RegistrationLimits{})
	if err != nil {
		WriteRegistrationError(w, err)
		return
	}
	id, secret, hash := NewClientID(), "", ""
	if !req.Public() {
		secret = NewClientSecret()
		hash = HashClientSecret(secret)
	}
	issued := s.now()
	// The stored metadata is the response without the secret: the registered metadata with
	// defaults applied (fositestore reads its scope; consent reads its agent_type).
	meta, err := json.Marshal(req.Response(id, "", issued))
	if err != nil {
		WriteRegistrationError(w, err)
		return
	}
	if _, err := s.cfg.Store.CreateOAuthClient(r.Context(), store.OAuthClient{
		Host: h.Key, ID: id, Kind: store.OAuthClientDCR, SecretHash: hash, Name: req.ClientName,
		RedirectURIs: req.RedirectURIs, GrantTypes: req.GrantTypes, ResponseTypes: req.ResponseTypes,
		TokenEndpointAuthMethod: req.TokenEndpointAuthMethod, Metadata: string(meta),
	}); err != nil {
		s.log.Error("oauthserver: register client", "host", h.Key, "err", err)
		WriteRegistrationError(w, err)
		return
	}
	WriteRegistrationResponse(w, req.Response(id, secret, issued))
}

// errorPage renders an error page for a browser.
func (s *Server) errorPage(w http.ResponseWriter, status int, p consentui.ErrorPage) {
	if err := consentui.Render(w, status, p); err != nil {
		http.Error(w, http.StatusText(status), status)
	}
}

// render renders a page, falling back to a plain 500.
func (s *Server) render(w http.ResponseWriter, status int, page any) {
	if err := consentui.Render(w, status, page); err != nil {
		s.log.Error("oauthserver: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// internalError shows a generic error page and logs err.
// tooManySignIns answers 429 with Retry-After when err is a TooManySignInsError, and reports
// whether it did.
func (s *Server) tooManySignIns(w http.ResponseWriter, h store.Host, err error) bool {
	var tooMany TooManySignInsError
	if !errors.As(err, &tooMany) {
		return false
	}
	s.log.Info("oauthserver: sign-in throttled: too many begun from one address", "host", h.Key)
	w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64((tooMany.RetryAfter+time.Second-1)/time.Second)), 10))
	s.errorPage(w, http.StatusTooManyRequests, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Too many sign-ins",
		Message:  "Too many sign-ins were begun from your network in the last minutes.",
		WhatToDo: consentui.TooManyAttemptsMessage(tooMany.RetryAfter),
	})
	return true
}

func (s *Server) internalError(w http.ResponseWriter, h store.Host, what string, err error) {
	s.log.Error("oauthserver: "+what, "host", h.Key, "err", err)
	s.errorPage(w, http.StatusInternalServerError, consentui.ErrorPage{
		Frame:   frame(h),
		Title:   "Something went wrong",
		Message: "trustgate could not complete the request.",
		WhatToDo: "Try again from your app. If it keeps happening, tell your administrator " +
			"(the gateway's logs have the details).",
	})
}

func frame(h store.Host) consentui.Frame {
	name := h.Name
	if name == "" {
		name = h.Key
	}
	return consentui.Frame{HostName: name}
}

// authorizeRedirectWriter fixes fosite's authorization redirects: it adds iss (RFC 9207) and,
// for a request that carried no state, removes the empty state= fosite always writes.
type authorizeRedirectWriter struct {
	http.ResponseWriter
	iss       string
	dropState bool
	done      bool
}

func (w *authorizeRedirectWriter) WriteHeader(code int) {
	if !w.done {
		w.done = true
		if loc := w.Header().Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil {
				q := u.Query()
				if w.dropState && q.Get("state") == "" {
					q.Del("state")
				}
				q.Set("iss", w.iss)
				u.RawQuery = q.Encode()
				w.Header().Set("Location", u.String())
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *authorizeRedirectWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// writeAuthorizeError answers an authorization request that failed: with a redirect to the
// client when its redirect URI was validated, else with an error page (never redirect to an
// unvalidated URI).
func (s *Server) writeAuthorizeError(ctx context.Context, w http.ResponseWriter, h store.Host, ar fosite.AuthorizeRequester, err error) {
	if ar != nil && ar.IsRedirectURIValid() {
		s.provider.WriteAuthorizeError(ctx, &authorizeRedirectWriter{ResponseWriter: w, iss: s.issuer(h.Key), dropState: ar.GetState() == ""}, ar, err)
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	msg := rfc.GetDescription()
	s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "The app's sign-in request is invalid",
		Message:  msg,
		WhatToDo: "Try connecting again from your app. If it keeps happening, the app may not support this gateway; tell its developers.",
	})
}

// errInvalidTarget is RFC 8707's error for a resource the server does not protect.
func errInvalidTarget(hint string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{
		ErrorField:       "invalid_target",
		DescriptionField: "The requested resource is invalid, unknown, or malformed.",
		HintField:        hint,
		CodeField:        http.StatusBadRequest,
	}
}
