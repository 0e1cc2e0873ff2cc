// Package sso is the relying-party side of sign-in at external identity providers: OpenID
// Connect (any provider, and the Google and Microsoft presets) and GitHub's OAuth 2 with its
// user-emails API. It sends the person to the provider (authorization code with PKCE S256, a
// state and a nonce kept in the store, bound to the browser, single use, short-lived) and
// turns the provider's answer into a verified identity: the ID token's signature, issuer,
// audience, expiry and nonce checked, and an email the provider vouches for (email_verified;
// GitHub's primary and verified address). It never decides who the person is in trustgate:
// the OAuth server links the identity to a human.
package sso

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// Limits of a sign-in.
const (
	// StateTTL is how long the person has between leaving for the provider and coming back.
	StateTTL = 10 * time.Minute
	// fetchTimeout bounds each exchange with the provider (discovery, keys, token, API).
	fetchTimeout = 10 * time.Second
	// providerTTL is how long a discovered provider (and its keys) is reused.
	providerTTL = time.Hour
	// maxProviders bounds the discovered providers kept.
	maxProviders = 1024
	// maxParamLen bounds the state and code the callback accepts.
	maxParamLen = 2048
	// maxAPIBytes bounds an answer of GitHub's API.
	maxAPIBytes = 1 << 20
)

// Errors of Finish. Each is a reason a person is told in words and the audit log records.
var (
	// ErrState: no sign-in in progress matches the callback (unknown, used, expired, of another
	// browser, host or method).
	ErrState = errors.New("sso: no sign-in in progress matches this answer")
	// ErrDenied: the provider answered with an error (the person cancelled, or it refused).
	ErrDenied = errors.New("sso: the provider did not sign the person in")
	// ErrExchange: the provider refused the code.
	ErrExchange = errors.New("sso: the provider refused the authorization code")
	// ErrToken: the ID token is not valid for this gateway (signature, issuer, audience,
	// expiry, nonce, tenant).
	ErrToken = errors.New("sso: the provider's ID token is not valid")
	// ErrUnverifiedEmail: the provider does not vouch for an email address of the person.
	ErrUnverifiedEmail = errors.New("sso: the provider does not vouch for an email address")
	// ErrProvider: the provider could not be reached or answered something unusable.
	ErrProvider = errors.New("sso: the provider is unavailable")
)

// Store is what the package keeps in the store.
type Store interface {
	CreateSSOState(ctx context.Context, s store.SSOState) error
	TakeSSOState(ctx context.Context, hash string, now time.Time) (store.SSOState, error)
}

// Config is what New needs.
type Config struct {
	Store Store
	// Keys seal the state kept in the store.
	Keys *secrets.Keyring
	// HTTPClient reaches the providers; it must bound time and bodies and refuse what the
	// operator's network policy refuses (ssrf.NewClient).
	HTTPClient *http.Client
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Client signs people in at identity providers. It is safe for concurrent use.
type Client struct {
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	providers map[string]cachedProvider
}

type cachedProvider struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	at       time.Time
}

// New makes a client.
func New(cfg Config) (*Client, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.HTTPClient == nil {
		return nil, errors.New("sso: a store, keys and an HTTP client are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{cfg: cfg, now: now, providers: map[string]cachedProvider{}}, nil
}

// Method is one host's configured sign-in method.
type Method struct {
	Name     string // MethodOIDC, MethodGoogle, MethodMicrosoft, MethodGitHub
	Settings Settings
	Secret   string // the client secret, opened from its sealed form
}

// Identity is a person as the provider vouches for them.
type Identity struct {
	Method  string
	Subject string // the provider's stable id of the person (sub; GitHub's numeric user id)
	Email   string // an address the provider verified
	// Issuer is who vouched: the ID token's issuer (the tenant's, for Microsoft), or GitHub's
	// API URL.
	Issuer string
}

// BeginRequest starts a sign-in.
type BeginRequest struct {
	Host       string
	Method     Method
	PendingRef string // the pending authorization request the sign-in continues
	// RedirectURI is the method's callback URL: <issuer>/auth/<method>/callback.
	RedirectURI string
	// LoginHint, when set, is the email the person typed (providers prefill it).
	LoginHint string
}

// Begun is a started sign-in: send the browser to URL, with Binding in a cookie only it
// sends back to the callback.
type Begun struct {
	URL     string
	Binding string
}

// flow is what the store keeps of a sign-in, sealed.
type flow struct {
	Verifier    string `json:"verifier"`
	Nonce       string `json:"nonce,omitempty"`
	BindingHash string `json:"binding_hash"`
	RedirectURI string `json:"redirect_uri"`
	ClientID    string `json:"client_id"`
}

// Begin prepares a sign-in and returns where to send the person.
func (c *Client) Begin(ctx context.Context, r BeginRequest) (Begun, error) {
	if err := r.Method.Settings.Check(r.Method.Name); err != nil {
		return Begun{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*fetchTimeout)
	defer cancel()
	endpoint, scopes, err := c.endpoint(ctx, r.Method)
	if err != nil {
		return Begun{}, err
	}
	state, binding := randomString(), randomString()
	f := flow{Verifier: oauth2.GenerateVerifier(), BindingHash: hashString(binding), RedirectURI: r.RedirectURI, ClientID: r.Method.Settings.ClientID}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier)}
	if r.Method.Name != MethodGitHub {
		f.Nonce = randomString()
		opts = append(opts, oidc.Nonce(f.Nonce))
	}
	if r.LoginHint != "" && len(r.LoginHint) <= 320 {
		name := "login_hint"
		if r.Method.Name == MethodGitHub {
			name = "login"
		}
		opts = append(opts, oauth2.SetAuthURLParam(name, r.LoginHint))
	}
	plain, err := json.Marshal(f)
	if err != nil {
		return Begun{}, fmt.Errorf("encode sign-in: %w", err)
	}
	hash := hashString(state)
	if err := c.cfg.Store.CreateSSOState(ctx, store.SSOState{
		StateHash: hash, Host: r.Host, Method: r.Method.Name, PendingRef: r.PendingRef,
		Sealed: c.cfg.Keys.Seal(plain, stateAAD(hash)), ExpiresAt: c.now().Add(StateTTL),
	}); err != nil {
		return Begun{}, fmt.Errorf("save sign-in: %w", err)
	}
	conf := oauth2.Config{ClientID: r.Method.Settings.ClientID, ClientSecret: r.Method.Secret, RedirectURL: r.RedirectURI, Endpoint: endpoint, Scopes: scopes}
	return Begun{URL: conf.AuthCodeURL(state, opts...), Binding: binding}, nil
}

// FinishRequest is the provider's answer at the callback.
type FinishRequest struct {
	Host   string
	Method Method
	// State, Code and Error are the callback's query parameters.
	State, Code, Error string
	// Binding is the value of Begun.Binding the browser sent back ("" when it sent none).
	Binding string
}

// Finished is a completed sign-in.
type Finished struct {
	Identity   Identity
	PendingRef string
}

// Finish completes the sign-in the callback answers: the state is taken (used up whatever
// happens next) and must have been issued to this browser, host and method; the code is
// exchanged with the PKCE verifier; the identity is read and checked. On an error other than
// ErrState, PendingRef is still that of the sign-in.
func (c *Client) Finish(ctx context.Context, r FinishRequest) (Finished, error) {
	if r.State == "" || len(r.State) > maxParamLen || len(r.Code) > maxParamLen || r.Binding == "" || len(r.Binding) > maxParamLen {
		return Finished{}, ErrState
	}
	hash := hashString(r.State)
	st, err := c.cfg.Store.TakeSSOState(ctx, hash, c.now())
	if errors.Is(err, store.ErrNotFound) {
		return Finished{}, ErrState
	}
	if err != nil {
		return Finished{}, err
	}
	plain, err := c.cfg.Keys.Open(st.Sealed, stateAAD(hash))
	if err != nil {
		return Finished{}, fmt.Errorf("open sign-in: %w", err)
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil {
		return Finished{}, fmt.Errorf("decode sign-in: %w", err)
	}
	if st.Host != r.Host || st.Method != r.Method.Name ||
		subtle.ConstantTimeCompare([]byte(f.BindingHash), []byte(hashString(r.Binding))) != 1 {
		return Finished{}, ErrState
	}
	fin := Finished{PendingRef: st.PendingRef}
	if r.Error != "" || r.Code == "" {
		return fin, ErrDenied
	}
	if f.ClientID != r.Method.Settings.ClientID {
		return fin, fmt.Errorf("%w: the method's client changed during the sign-in", ErrState)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*fetchTimeout)
	defer cancel()
	endpoint, scopes, err := c.endpoint(ctx, r.Method)
	if err != nil {
		return fin, err
	}
	conf := oauth2.Config{ClientID: r.Method.Settings.ClientID, ClientSecret: r.Method.Secret, RedirectURL: f.RedirectURI, Endpoint: endpoint, Scopes: scopes}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.cfg.HTTPClient), r.Code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return fin, fmt.Errorf("%w: %s", ErrExchange, describe(err))
	}
	if r.Method.Name == MethodGitHub {
		fin.Identity, err = c.githubIdentity(ctx, r.Method.Settings, tok)
	} else {
		fin.Identity, err = c.oidcIdentity(ctx, r.Method, tok, f.Nonce)
	}
	return fin, err
}

// endpoint is the method's authorization and token endpoints and the scopes it asks for.
func (c *Client) endpoint(ctx context.Context, m Method) (oauth2.Endpoint, []string, error) {
	if m.Name == MethodGitHub {
		auth, token, _ := m.Settings.github()
		return oauth2.Endpoint{AuthURL: auth, TokenURL: token, AuthStyle: oauth2.AuthStyleInParams}, []string{"read:user", "user:email"}, nil
	}
	p, err := c.provider(ctx, m)
	if err != nil {
		return oauth2.Endpoint{}, nil, err
	}
	return p.provider.Endpoint(), []string{oidc.ScopeOpenID, "email", "profile"}, nil
}

// provider discovers (or reuses) the OpenID provider of an OIDC method.
func (c *Client) provider(ctx context.Context, m Method) (cachedProvider, error) {
	issuer, discovery := m.Settings.issuer(m.Name), m.Settings.discovery(m.Name)
	key := m.Name + " " + discovery + " " + issuer + " " + m.Settings.ClientID
	c.mu.Lock()
	p, ok := c.providers[key]
	c.mu.Unlock()
	if ok && c.now().Sub(p.at) < providerTTL {
		return p, nil
	}
	// The provider outlives this request: its key set fetches keys later with the same
	// client, bounded by the client's own timeout.
	pctx := oidc.ClientContext(context.WithoutCancel(ctx), c.cfg.HTTPClient)
	multi := m.Settings.multiTenant(m.Name)
	if multi {
		// Microsoft's multi-tenant documents name the template issuer; every token's issuer
		// is checked against it with the token's own tid (see checkTenant).
		pctx = oidc.InsecureIssuerURLContext(pctx, issuer)
	}
	dctx, cancel := context.WithTimeout(pctx, fetchTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(dctx, discovery)
	if err != nil {
		return cachedProvider{}, fmt.Errorf("%w: discovery at %s: %s", ErrProvider, discovery, describe(err))
	}
	if multi {
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := provider.Claims(&doc); err != nil || doc.Issuer != issuer {
			return cachedProvider{}, fmt.Errorf("%w: discovery at %s names issuer %q, want %q", ErrProvider, discovery, doc.Issuer, issuer)
		}
	}
	p = cachedProvider{
		provider: provider,
		verifier: provider.VerifierContext(pctx, &oidc.Config{ClientID: m.Settings.ClientID, Now: c.now, SkipIssuerCheck: multi}),
		at:       c.now(),
	}
	c.mu.Lock()
	if len(c.providers) >= maxProviders {
		clear(c.providers)
	}
	c.providers[key] = p
	c.mu.Unlock()
	return p, nil
}

// idClaims are the ID token's claims read here beyond go-oidc's checks.
type idClaims struct {
	Issuer          string          `json:"iss"`
	AuthorizedParty string          `json:"azp"`
	Email           string          `json:"email"`
	EmailVerified   json.RawMessage `json:"email_verified"`
	// Microsoft: the tenant, and whether the email's domain is verified by its tenant.
	TenantID            string          `json:"tid"`
	EmailDomainVerified json.RawMessage `json:"xms_edov"`
}

func (c *Client) oidcIdentity(ctx context.Context, m Method, tok *oauth2.Token, nonce string) (Identity, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: the token response has no ID token", ErrToken)
	}
	p, err := c.provider(ctx, m)
	if err != nil {
		return Identity{}, err
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s", ErrToken, describe(err))
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, fmt.Errorf("%w: the nonce is not this sign-in's", ErrToken)
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %s", ErrToken, describe(err))
	}
	// A token for several audiences must name this client as the party it was issued to.
	if len(idt.Audience) > 1 && cl.AuthorizedParty != m.Settings.ClientID {
		return Identity{}, fmt.Errorf("%w: a token for several audiences not authorized to this client (azp %q)", ErrToken, cl.AuthorizedParty)
	}
	if m.Name == MethodMicrosoft {
		if err := checkTenant(m.Settings, cl); err != nil {
			return Identity{}, err
		}
	}
	if idt.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no subject", ErrToken)
	}
	verified := isTrue(cl.EmailVerified) || (m.Name == MethodMicrosoft && isTrue(cl.EmailDomainVerified))
	email := strings.TrimSpace(cl.Email)
	if email == "" || !verified || !looksLikeEmail(email) {
		return Identity{}, ErrUnverifiedEmail
	}
	return Identity{Method: m.Name, Subject: idt.Subject, Email: email, Issuer: idt.Issuer}, nil
}

// checkTenant checks a Microsoft token's issuer: it must be the configured tenant's, or for
// the multi-tenant names the template filled in with the token's own tid (a GUID), whose kind
// the name allows (organizations: not the personal accounts' tenant; consumers: only it).
func checkTenant(s Settings, cl idClaims) error {
	tid := strings.ToLower(cl.TenantID)
	if !guidRE.MatchString(tid) {
		return fmt.Errorf("%w: no tenant (tid) in the token", ErrToken)
	}
	template := s.issuer(MethodMicrosoft)
	if !s.multiTenant(MethodMicrosoft) {
		if tid != strings.ToLower(s.Tenant) || cl.Issuer != template {
			return fmt.Errorf("%w: issuer %q or tenant %q is not the configured tenant's", ErrToken, cl.Issuer, tid)
		}
		return nil
	}
	if cl.Issuer != strings.Replace(template, "{tenantid}", tid, 1) {
		return fmt.Errorf("%w: issuer %q is not that of the token's tenant %q", ErrToken, cl.Issuer, tid)
	}
	switch s.Tenant {
	case TenantOrganizations:
		if tid == consumersTenantID {
			return fmt.Errorf("%w: a personal Microsoft account where only organizations' are allowed", ErrToken)
		}
	case TenantConsumers:
		if tid != consumersTenantID {
			return fmt.Errorf("%w: an organization's account where only personal Microsoft accounts are allowed", ErrToken)
		}
	}
	return nil
}

// isTrue reads a boolean claim: true, or the string "true" some providers send.
func isTrue(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "true" || s == `"true"`
}

func looksLikeEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && len(s) <= 320 && !strings.ContainsAny(s, " \t\r\n")
}

// describe is an error's text without anything a provider sent back beyond its error code.
func describe(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return "the provider answered " + re.ErrorCode
		}
		return fmt.Sprintf("the provider answered HTTP %d", re.Response.StatusCode)
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func stateAAD(hash string) string { return "sso-state:" + hash }
