package upstreamauth

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// An administrator's own authorization at an upstream that requires one, so that its tools
// can be discovered and reviewed before it is imported (the dashboard's Create server). The
// client is the one humans' sign-ins use: the OAuth client the administrator gives (stored
// with the server at import), or else the gateway's registration at that authorization server
// (RFC 7591, kept per host as for consent). Nothing of the flow is kept in the store: it is
// sealed with the master key, bound to the administrator's session, and handed to the caller
// (a cookie of the browser); the token it yields is returned for the discovery and not kept.

// AdminStatePrefix starts the state of an administrator's authorization, so that the host's
// callback sends it on to the dashboard rather than to a consent.
const AdminStatePrefix = "adm."

// Inspection is what an upstream says of its authorization.
type Inspection struct {
	// Required: the server answered 401.
	Required bool
	// OAuth: it published authorization metadata the gateway can use (PKCE S256).
	OAuth bool
	// Issuer is its authorization server; Registration says it offers RFC 7591 registration.
	Issuer       string
	Registration bool
}

// Inspect probes the server at serverURL (on network: store.NetworkHost or NetworkAny) and,
// when it demands authorization, reads its authorization metadata. A server that demands
// authorization without usable metadata is Required without OAuth.
func (c *Client) Inspect(ctx context.Context, serverURL, network string) (Inspection, error) {
	ctx, cancel := context.WithTimeout(WithNetwork(ctx, network), 3*fetchTimeout)
	defer cancel()
	required, ch, err := c.Probe(ctx, serverURL, "")
	if err != nil || !required {
		return Inspection{}, err
	}
	md, err := c.discover(ctx, serverURL, ch)
	if errors.Is(err, ErrDiscovery) {
		return Inspection{Required: true}, nil
	}
	if err != nil {
		return Inspection{Required: true}, err
	}
	return Inspection{Required: true, OAuth: true, Issuer: md.Issuer, Registration: md.RegistrationEndpoint != ""}, nil
}

// AdminBegin is an administrator's authorization at the server at URL.
type AdminBegin struct {
	Host, URL, Network string
	// Client is the OAuth client to use; nil: the gateway's registration there.
	Client *OAuthClient
	// RedirectURI is the host's callback URL (the one consent uses).
	RedirectURI string
	// Binding ties the flow to the administrator's session: FinishAdmin needs it again.
	Binding string
	// Context is the caller's own data, sealed with the flow and returned by FinishAdmin.
	Context []byte
}

// adminFlow is an administrator's authorization in progress, sealed into what BeginAdmin
// returns.
type adminFlow struct {
	Flow      flow      `json:"flow"`
	StateHash string    `json:"state_hash"`
	URL       string    `json:"url"`
	Network   string    `json:"network"`
	Expires   time.Time `json:"expires"`
	Context   []byte    `json:"context,omitempty"`
}

func adminAAD(host, binding string) string { return "upstream-admin-flow:" + host + ":" + binding }

// maxAdminContext bounds the caller's data sealed with a flow.
const maxAdminContext = 8 << 10

// BeginAdmin prepares the authorization and returns the upstream URL to send the
// administrator to and the sealed flow, which FinishAdmin takes back (within StateTTL).
func (c *Client) BeginAdmin(ctx context.Context, r AdminBegin) (authURL string, sealed []byte, err error) {
	if r.Binding == "" || len(r.Context) > maxAdminContext {
		return "", nil, errors.New("upstream authorization: no session to bind it to, or too much context")
	}
	ctx, cancel := context.WithTimeout(WithNetwork(ctx, r.Network), 3*fetchTimeout)
	defer cancel()
	required, ch, err := c.Probe(ctx, r.URL, "")
	if err != nil {
		return "", nil, err
	}
	if !required {
		return "", nil, fmt.Errorf("%w: the server does not ask for authorization", ErrDiscovery)
	}
	md, err := c.discover(ctx, r.URL, ch)
	if err != nil {
		return "", nil, err
	}
	id, secret, style, err := c.clientFor(ctx, r.Host, r.Client, md, r.RedirectURI)
	if err != nil {
		return "", nil, err
	}
	state := AdminStatePrefix + randomString()
	af := adminFlow{
		Flow: flow{Verifier: oauth2.GenerateVerifier(), Issuer: md.Issuer, TokenEndpoint: md.TokenEndpoint,
			ClientID: id, ClientSecret: secret, AuthStyle: int(style), Resource: md.Resource,
			RedirectURI: r.RedirectURI, Scopes: strings.Join(md.Scopes, " ")},
		StateHash: hashState(state), URL: r.URL, Network: r.Network, Expires: c.now().Add(StateTTL), Context: r.Context,
	}
	plain, err := json.Marshal(af)
	if err != nil {
		return "", nil, fmt.Errorf("encode upstream authorization: %w", err)
	}
	conf := af.Flow.config(md.AuthorizationEndpoint)
	authURL = conf.AuthCodeURL(state, oauth2.S256ChallengeOption(af.Flow.Verifier), oauth2.SetAuthURLParam("resource", af.Flow.Resource))
	return authURL, c.cfg.Keys.Seal(plain, adminAAD(r.Host, r.Binding)), nil
}

// AdminFinished is an administrator's authorization the callback completed.
type AdminFinished struct {
	// AccessToken is the administrator's token at the upstream (not stored anywhere).
	AccessToken string
	URL         string
	Context     []byte
}

// FinishAdmin completes the sealed flow of BeginAdmin for host and binding with the state and
// code the upstream returned, and returns the token. It fails with ErrState for a flow that is
// not this session's or host's, has expired, or whose state differs, and with ErrExchange when
// the upstream refused the code.
func (c *Client) FinishAdmin(ctx context.Context, sealed []byte, host, binding, state, code string) (AdminFinished, error) {
	if binding == "" || state == "" || len(state) > 512 || len(sealed) == 0 {
		return AdminFinished{}, ErrState
	}
	plain, err := c.cfg.Keys.Open(sealed, adminAAD(host, binding))
	if err != nil {
		return AdminFinished{}, ErrState
	}
	var af adminFlow
	if err := json.Unmarshal(plain, &af); err != nil {
		return AdminFinished{}, ErrState
	}
	if subtle.ConstantTimeCompare([]byte(af.StateHash), []byte(hashState(state))) != 1 || !c.now().Before(af.Expires) {
		return AdminFinished{}, ErrState
	}
	if code == "" {
		return AdminFinished{}, fmt.Errorf("%w: no code", ErrExchange)
	}
	ctx = WithNetwork(ctx, af.Network)
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, c.httpFor(ctx)), fetchTimeout)
	defer cancel()
	tok, err := af.Flow.config("").Exchange(ctx, code, oauth2.VerifierOption(af.Flow.Verifier), oauth2.SetAuthURLParam("resource", af.Flow.Resource))
	if err != nil {
		return AdminFinished{}, fmt.Errorf("%w: %s", ErrExchange, describe(err))
	}
	if tok.AccessToken == "" {
		return AdminFinished{}, fmt.Errorf("%w: the upstream returned no access token", ErrExchange)
	}
	return AdminFinished{AccessToken: tok.AccessToken, URL: af.URL, Context: af.Context}, nil
}
