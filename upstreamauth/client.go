package upstreamauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
)

// Limits and defaults.
const (
	// StateTTL is how long an authorization at an upstream may take.
	StateTTL = 10 * time.Minute
	// RefreshBefore is how long before its expiry an access token is refreshed.
	RefreshBefore = time.Minute
	// fetchTimeout bounds each request to an upstream or its authorization server.
	fetchTimeout = 10 * time.Second
	// maxRegistrationBytes bounds a registration response.
	maxRegistrationBytes = 64 << 10
	// clientName is how the gateway names itself when it registers.
	clientName = "trustgate"
)

// Errors.
var (
	// ErrReconsent: the human has no usable upstream token (none, or its refresh was refused);
	// connecting the client again runs consent, and with it the upstream authorization.
	ErrReconsent = errors.New("upstream authorization needed again")
	// ErrNoClient: the upstream offers no dynamic registration and no client id was stored at
	// import.
	ErrNoClient = errors.New("no OAuth client for the upstream")
	// ErrState: the callback's state is unknown, used or expired.
	ErrState = errors.New("unknown or expired upstream authorization")
	// ErrExchange: the upstream's token endpoint refused the code or answered nonsense.
	ErrExchange = errors.New("upstream token exchange failed")
)

// Store is what the client needs of the store: the server it authorizes for and the
// gateway's own upstream tokens, clients and pending authorizations.
type Store interface {
	GetServer(ctx context.Context, host, key string) (store.Server, error)
	store.Upstream
}

// Config is what NewClient needs.
type Config struct {
	Store Store
	Keys  *secrets.Keyring
	// HTTPClient fetches metadata and talks to upstream token endpoints; nil means
	// ssrf.NewClient with a 10s timeout under the server's network policy (see HostNetworks).
	// It must be SSRF-safe in production; when set (tests), it serves every network.
	HTTPClient *http.Client
	// HostNetworks is what requests for a server on network "host" may reach: public
	// addresses plus the operator's prefixes (the zero value: public addresses only), over
	// https. Requests for a server on "any" (operator-approved) reach every address, over
	// http too.
	HostNetworks ssrf.Policy
	Logger       *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Client acts for the gateway at upstream authorization servers. Safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client // network "host"
	anyHTTP *http.Client // network "any"
	log     *slog.Logger
	now     func() time.Time
	refresh singleflight.Group
}

// NewClient builds a client.
func NewClient(cfg Config) (*Client, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("upstreamauth: a store and a keyring are required")
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient, anyHTTP: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now}
	if c.http == nil {
		c.http = ssrf.NewClient(ssrf.Options{Timeout: fetchTimeout, Policy: cfg.HostNetworks})
		c.anyHTTP = ssrf.NewClient(ssrf.Options{Timeout: fetchTimeout, AllowHTTP: true, Policy: ssrf.AllowAll()})
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// HTTPClient is the client's SSRF-safe HTTP client for servers on network "host".
func (c *Client) HTTPClient() *http.Client { return c.http }

type networkKey struct{}

// WithNetwork says that requests made with ctx are for a server on network
// (store.NetworkHost or store.NetworkAny): they go through the client of that network's
// policy. Without it, requests are held to network "host".
func WithNetwork(ctx context.Context, network string) context.Context {
	return context.WithValue(ctx, networkKey{}, network)
}

// httpFor is the HTTP client for the network of ctx (WithNetwork).
func (c *Client) httpFor(ctx context.Context) *http.Client {
	if n, _ := ctx.Value(networkKey{}).(string); n == store.NetworkAny && c.anyHTTP != nil {
		return c.anyHTTP
	}
	return c.http
}

// withServerNetwork marks ctx with the network of the stored server (network "host" when it
// cannot be read: fail closed).
func (c *Client) withServerNetwork(ctx context.Context, host, server string) context.Context {
	sv, err := c.cfg.Store.GetServer(ctx, host, server)
	if err != nil {
		return WithNetwork(ctx, store.NetworkHost)
	}
	return WithNetwork(ctx, sv.Network)
}

// --- probe ---

// Probe sends the server an initialize request, with the human's access token when token is
// set, and reports whether it demands (other) authorization (HTTP 401), with the challenge it
// sent. An error means the server did not answer.
func (c *Client) Probe(ctx context.Context, serverURL, token string) (required bool, ch Challenge, err error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"trustgate","version":"probe"}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, serverURL, strings.NewReader(body))
	if err != nil {
		return false, Challenge{}, fmt.Errorf("probe: invalid server URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.httpFor(ctx).Do(req)
	if err != nil {
		return false, Challenge{}, fmt.Errorf("probe %s: %w", redact(serverURL), stripURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" && resp.StatusCode == http.StatusOK {
		// End the session the probe opened (best effort).
		if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, serverURL, nil); err == nil {
			del.Header.Set("Mcp-Session-Id", id)
			if token != "" {
				del.Header.Set("Authorization", "Bearer "+token)
			}
			if r, err := c.httpFor(ctx).Do(del); err == nil {
				_ = r.Body.Close()
			}
		}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return true, ParseChallenge(resp.Header.Values("WWW-Authenticate")), nil
	}
	return false, Challenge{}, nil
}

// --- authorization ---

// BeginRequest is one human's authorization at one server's upstream.
type BeginRequest struct {
	Host   string
	UserID string
	Server store.Server
	// PendingRef is the gateway's pending consent to continue after the callback.
	PendingRef string
	// RedirectURI is the gateway's callback URL for the host.
	RedirectURI string
	Challenge   Challenge
}

// flow is an authorization in progress, sealed into the store.
type flow struct {
	Verifier      string `json:"verifier"`
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret,omitempty"`
	AuthStyle     int    `json:"auth_style"`
	Resource      string `json:"resource"`
	RedirectURI   string `json:"redirect_uri"`
	Scopes        string `json:"scopes,omitempty"`
}

// Begin prepares the authorization and returns the upstream URL to send the human to.
func (c *Client) Begin(ctx context.Context, r BeginRequest) (string, error) {
	ctx, cancel := context.WithTimeout(WithNetwork(ctx, r.Server.Network), 2*fetchTimeout)
	defer cancel()
	md, err := c.discover(ctx, r.Server.URL, r.Challenge)
	if err != nil {
		return "", err
	}
	creds, err := OpenCredentials(c.cfg.Keys, r.Server)
	if err != nil {
		return "", fmt.Errorf("server %s: stored credentials: %w", r.Server.Key, err)
	}
	id, secret, style, err := c.clientFor(ctx, r.Host, creds.OAuthClient, md, r.RedirectURI)
	if err != nil {
		return "", err
	}
	state := randomString()
	f := flow{
		Verifier: oauth2.GenerateVerifier(), Issuer: md.Issuer, TokenEndpoint: md.TokenEndpoint,
		ClientID: id, ClientSecret: secret, AuthStyle: int(style), Resource: md.Resource,
		RedirectURI: r.RedirectURI, Scopes: strings.Join(md.Scopes, " "),
	}
	plain, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("encode upstream authorization: %w", err)
	}
	hash := hashState(state)
	if err := c.cfg.Store.CreateUpstreamAuthState(ctx, store.UpstreamAuthState{
		StateHash: hash, Host: r.Host, UserID: r.UserID, Server: r.Server.Key, PendingRef: r.PendingRef,
		Sealed: c.cfg.Keys.Seal(plain, stateAAD(hash)), ExpiresAt: c.now().Add(StateTTL),
	}); err != nil {
		return "", fmt.Errorf("save upstream authorization: %w", err)
	}
	conf := f.config(md.AuthorizationEndpoint)
	return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(f.Verifier), oauth2.SetAuthURLParam("resource", f.Resource)), nil
}

func (f flow) config(authURL string) *oauth2.Config {
	var scopes []string
	if f.Scopes != "" {
		scopes = strings.Fields(f.Scopes)
	}
	return &oauth2.Config{
		ClientID: f.ClientID, ClientSecret: f.ClientSecret, RedirectURL: f.RedirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: authURL, TokenURL: f.TokenEndpoint, AuthStyle: oauth2.AuthStyle(f.AuthStyle)},
	}
}

// Finished is an authorization the callback completed.
type Finished struct {
	Host, UserID, Server, PendingRef string
}

// Finish completes the authorization of state with the code the upstream returned: the code
// is exchanged and the tokens stored for the human and server. userID is the human signed in
// to the browser that came back: the state must have been issued to them. It fails with
// ErrState for an unknown, used or expired state (or one of another human) and ErrExchange when
// the upstream refused the code. The state is used up either way.
func (c *Client) Finish(ctx context.Context, host, userID, state, code string) (Finished, error) {
	if state == "" || len(state) > 512 {
		return Finished{}, ErrState
	}
	hash := hashState(state)
	st, err := c.cfg.Store.TakeUpstreamAuthState(ctx, hash, c.now())
	if errors.Is(err, store.ErrNotFound) {
		return Finished{}, ErrState
	}
	if err != nil {
		return Finished{}, err
	}
	if st.Host != host || subtle.ConstantTimeCompare([]byte(st.UserID), []byte(userID)) != 1 {
		return Finished{}, ErrState
	}
	fin := Finished{Host: st.Host, UserID: st.UserID, Server: st.Server, PendingRef: st.PendingRef}
	plain, err := c.cfg.Keys.Open(st.Sealed, stateAAD(hash))
	if err != nil {
		return fin, fmt.Errorf("open upstream authorization: %w", err)
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil {
		return fin, fmt.Errorf("decode upstream authorization: %w", err)
	}
	if code == "" {
		return fin, fmt.Errorf("%w: no code", ErrExchange)
	}
	ctx = c.withServerNetwork(ctx, st.Host, st.Server)
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, c.httpFor(ctx)), fetchTimeout)
	defer cancel()
	tok, err := f.config("").Exchange(ctx, code, oauth2.VerifierOption(f.Verifier), oauth2.SetAuthURLParam("resource", f.Resource))
	if err != nil {
		return fin, fmt.Errorf("%w: %s", ErrExchange, describe(err))
	}
	if err := c.save(ctx, st.Host, st.UserID, st.Server, f, tok, ""); err != nil {
		return fin, err
	}
	return fin, nil
}

// describe is an error's text without tokens: for RetrieveError only the OAuth error fields.
func describe(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		s := re.ErrorCode
		if s == "" && re.Response != nil {
			s = fmt.Sprintf("HTTP %d", re.Response.StatusCode)
		}
		if re.ErrorDescription != "" {
			s += ": " + re.ErrorDescription
		}
		return s
	}
	return err.Error()
}

// clientFor picks the OAuth client at the upstream: oc (stored at import), registered before,
// or registered now.
func (c *Client) clientFor(ctx context.Context, host string, oc *OAuthClient, md *Metadata, redirectURI string) (id, secret string, style oauth2.AuthStyle, err error) {
	if oc != nil {
		return oc.ClientID, oc.ClientSecret, authStyle(md.TokenAuthMethods, oc.ClientSecret != ""), nil
	}
	if cl, err := c.cfg.Store.GetUpstreamClient(ctx, host, md.Issuer); err == nil && cl.RedirectURI == redirectURI {
		secret := ""
		if len(cl.SealedSecret) > 0 {
			plain, err := c.cfg.Keys.Open(cl.SealedSecret, clientAAD(host, md.Issuer, cl.ID))
			if err != nil {
				return "", "", 0, fmt.Errorf("open upstream client secret: %w", err)
			}
			secret = string(plain)
		}
		return cl.ID, secret, authStyle(md.TokenAuthMethods, secret != ""), nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", "", 0, err
	}
	if md.RegistrationEndpoint == "" {
		return "", "", 0, fmt.Errorf("%w: %s offers no dynamic client registration; an administrator must store a client id for the server", ErrNoClient, md.Issuer)
	}
	id, secret, err = c.register(ctx, md, redirectURI)
	if err != nil {
		return "", "", 0, err
	}
	var sealed []byte
	if secret != "" {
		sealed = c.cfg.Keys.Seal([]byte(secret), clientAAD(host, md.Issuer, id))
	}
	if _, err := c.cfg.Store.PutUpstreamClient(ctx, store.UpstreamClient{
		Host: host, Issuer: md.Issuer, ID: id, SealedSecret: sealed, RedirectURI: redirectURI,
	}); err != nil {
		return "", "", 0, err
	}
	return id, secret, authStyle(md.TokenAuthMethods, secret != ""), nil
}

// authStyle is how to authenticate at the token endpoint.
func authStyle(methods []string, confidential bool) oauth2.AuthStyle {
	if !confidential {
		return oauth2.AuthStyleInParams
	}
	if len(methods) == 0 || slices.Contains(methods, "client_secret_basic") {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

// register is RFC 7591 dynamic client registration at the upstream: a public client when the
// server allows "none", else a confidential one.
func (c *Client) register(ctx context.Context, md *Metadata, redirectURI string) (id, secret string, err error) {
	method := "none"
	if len(md.TokenAuthMethods) > 0 && !slices.Contains(md.TokenAuthMethods, "none") {
		method = "client_secret_basic"
		if !slices.Contains(md.TokenAuthMethods, method) {
			method = "client_secret_post"
		}
	}
	reqBody := map[string]any{
		"client_name":                clientName,
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
	}
	if len(md.Scopes) > 0 {
		reqBody["scope"] = strings.Join(md.Scopes, " ")
	}
	b, _ := json.Marshal(reqBody)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.RegistrationEndpoint, bytes.NewReader(b))
	if err != nil {
		return "", "", fmt.Errorf("%w: invalid registration endpoint", ErrDiscovery)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpFor(ctx).Do(req)
	if err != nil {
		return "", "", fmt.Errorf("register at %s: %w", md.Issuer, stripURL(err))
	}
	defer resp.Body.Close()
	data, err := ssrf.ReadLimited(resp, maxRegistrationBytes)
	if err != nil {
		return "", "", fmt.Errorf("register at %s: %w", md.Issuer, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(data, &e)
		return "", "", fmt.Errorf("register at %s: HTTP %d %s %s", md.Issuer, resp.StatusCode, e.Error, e.Description)
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.ClientID == "" {
		return "", "", fmt.Errorf("register at %s: the response has no client_id", md.Issuer)
	}
	return out.ClientID, out.ClientSecret, nil
}

// --- tokens ---

// sealedToken is what upstream_tokens.sealed holds.
type sealedToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
	// The client that refreshes (a client secret, when there is one, is sealed with it).
	ClientSecret string `json:"client_secret,omitempty"`
	AuthStyle    int    `json:"auth_style"`
	Resource     string `json:"resource,omitempty"`
}

func (c *Client) save(ctx context.Context, host, userID, server string, f flow, tok *oauth2.Token, oldRefresh string) error {
	if tok.AccessToken == "" {
		return fmt.Errorf("%w: the upstream returned no access token", ErrExchange)
	}
	st := sealedToken{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		ClientSecret: f.ClientSecret, AuthStyle: f.AuthStyle, Resource: f.Resource}
	if st.RefreshToken == "" {
		st.RefreshToken = oldRefresh // the server kept the refresh token
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode upstream token: %w", err)
	}
	var expires time.Time
	if tok.ExpiresIn > 0 {
		expires = c.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	scopes := f.Scopes
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		scopes = s
	}
	if _, err := c.cfg.Store.PutUpstreamToken(ctx, store.UpstreamToken{
		Host: host, UserID: userID, Server: server, Sealed: c.cfg.Keys.Seal(plain, tokenAAD(host, userID, server)),
		ExpiresAt: expires, Scopes: scopes, TokenEndpoint: f.TokenEndpoint, ClientID: f.ClientID,
	}); err != nil {
		return fmt.Errorf("save upstream token: %w", err)
	}
	return nil
}

func (c *Client) open(t store.UpstreamToken) (sealedToken, error) {
	plain, err := c.cfg.Keys.Open(t.Sealed, tokenAAD(t.Host, t.UserID, t.Server))
	if err != nil {
		return sealedToken{}, fmt.Errorf("open upstream token: %w", err)
	}
	var st sealedToken
	if err := json.Unmarshal(plain, &st); err != nil || st.AccessToken == "" {
		return sealedToken{}, errors.New("stored upstream token is malformed")
	}
	return st, nil
}

// AccessToken returns the human's access token for the server, refreshed first when it
// expires within RefreshBefore. found is false when the human has no token for the server.
// A refresh that fails is ErrReconsent (and the token is dropped when the upstream refused
// it); only one refresh per token runs at a time in this process, the other callers wait for
// its result.
func (c *Client) AccessToken(ctx context.Context, host, userID, server string) (token string, found bool, err error) {
	t, err := c.cfg.Store.GetUpstreamToken(ctx, host, userID, server)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if c.fresh(t) {
		st, err := c.open(t)
		if err != nil {
			return "", true, err
		}
		return st.AccessToken, true, nil
	}
	key := host + "\x00" + userID + "\x00" + server
	v, err, _ := c.refresh.Do(key, func() (any, error) {
		// Detached from the first caller: the refresh finishes (and is stored) for the others
		// even when that caller goes away.
		return c.refreshToken(context.WithoutCancel(ctx), host, userID, server)
	})
	if err != nil {
		return "", true, err
	}
	return v.(string), true, nil
}

func (c *Client) fresh(t store.UpstreamToken) bool {
	return t.ExpiresAt.IsZero() || c.now().Add(RefreshBefore).Before(t.ExpiresAt)
}

func (c *Client) refreshToken(ctx context.Context, host, userID, server string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	// Read again: a refresh that finished just before this one started already stored it.
	t, err := c.cfg.Store.GetUpstreamToken(ctx, host, userID, server)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrReconsent
	}
	if err != nil {
		return "", err
	}
	st, err := c.open(t)
	if err != nil {
		return "", err
	}
	if c.fresh(t) {
		return st.AccessToken, nil
	}
	if st.RefreshToken == "" {
		return "", fmt.Errorf("%w: the upstream token expired and there is no refresh token", ErrReconsent)
	}
	f := flow{TokenEndpoint: t.TokenEndpoint, ClientID: t.ClientID, ClientSecret: st.ClientSecret,
		AuthStyle: st.AuthStyle, Resource: st.Resource, Scopes: t.Scopes}
	ctx = c.withServerNetwork(ctx, host, server)
	hctx := context.WithValue(ctx, oauth2.HTTPClient, c.httpFor(ctx))
	tok, err := f.config("").TokenSource(hctx, &oauth2.Token{RefreshToken: st.RefreshToken}).Token()
	if err != nil {
		c.log.Info("upstreamauth: refresh refused", "host", host, "user", userID, "server", server, "err", describe(err))
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			if derr := c.cfg.Store.DeleteUpstreamToken(ctx, host, userID, server); derr != nil && !errors.Is(derr, store.ErrNotFound) {
				c.log.Warn("upstreamauth: drop refused token", "host", host, "server", server, "err", derr)
			}
		}
		return "", fmt.Errorf("%w: the upstream refused to refresh the token (%s)", ErrReconsent, describe(err))
	}
	if err := c.save(ctx, host, userID, server, f, tok, st.RefreshToken); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// --- helpers ---

// stripURL drops the URL an *url.Error quotes (its query may carry anything) and keeps the
// cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

func stateAAD(hash string) string { return "upstream-auth-state:" + hash }

func tokenAAD(host, userID, server string) string {
	return "upstream-token:" + host + "/" + userID + "/" + server
}

func clientAAD(host, issuer, id string) string {
	return "upstream-client:" + host + "/" + url.QueryEscape(issuer) + "/" + id
}
