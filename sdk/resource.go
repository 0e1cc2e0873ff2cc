package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// A resource server accepts the access tokens trustgate issues to agents (ES256 JWTs, RFC
// 9068) directly, without going through the gateway's proxy: a service that agents reach with
// the token their human consented to.

// Defaults of a ResourceServer.
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultKeysMaxAge is how long fetched signing keys are used before they are fetched
	// again (a request that finds them older fetches them first).
	DefaultKeysMaxAge = 10 * time.Minute
	// DefaultKeysMinRefresh is the shortest time between two fetches of the keys: a token
	// signed by a key the cache does not know fetches them again at most this often.
	DefaultKeysMinRefresh = 10 * time.Second
)

const (
	maxBearerLen    = 8 << 10
	maxMetadataBody = 1 << 20
)

// ResourceServerConfig describes what tokens a ResourceServer accepts.
type ResourceServerConfig struct {
	// Issuer is the issuer of the tokens: the base URL of the trustgate host that issues them
	// (https://gw.example.com for the default host, https://gw.example.com/h/acme for acme).
	// The signing keys are read from its RFC 8414 metadata (jwks_uri), whose issuer must be
	// exactly this.
	Issuer string
	// Audience is the resource URL the tokens must be issued for (RFC 8707), exactly as the
	// agent's client asked for it. trustgate issues tokens for its hosts' MCP URLs, so a
	// service that agents know as the MCP server "tracker" of host acme accepts
	// https://gw.example.com/h/acme/mcp/tracker.
	Audience string
	// Host is the trustgate host (tenant) the token must belong to (its "host" claim).
	Host string
	// ResourceMetadataURL is announced in the WWW-Authenticate challenge of a refused
	// request (RFC 9728). Default: the gateway's protected resource metadata of Audience
	// (its well-known URL on the Audience's origin).
	ResourceMetadataURL string
	// HTTPClient fetches the metadata and the keys (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Leeway, KeysMaxAge and KeysMinRefresh: zero for DefaultLeeway, DefaultKeysMaxAge and
	// DefaultKeysMinRefresh.
	Leeway, KeysMaxAge, KeysMinRefresh time.Duration
}

// AccessToken is what a ResourceServer verified of an access token: whom the agent acts for and
// which agent it is. The handler behind Middleware finds it with TokenFromContext.
type AccessToken struct {
	Issuer string
	// Host is the trustgate host (tenant) of the token.
	Host string
	// Human is the id of the human the agent acts for (the token's subject).
	Human string
	// Agent is the id of the agent (trustgate's, as in the admin API and Client.Check).
	Agent string
	// ClientID is the agent's OAuth client id; Scope the granted scopes, space-separated.
	ClientID, Scope string
	Audience        []string
	// ID is the token's jti; Grant the grant (gateway session) it belongs to (claim sid).
	ID, Grant        string
	IssuedAt, Expiry time.Time
}

// ResourceServer verifies trustgate's access tokens for one resource. It is safe for
// concurrent use.
type ResourceServer struct {
	cfg       ResourceServerConfig
	challenge string // the WWW-Authenticate prefix: Bearer resource_metadata="…"
	keys      keyCache
}

// Errors of Verify, to test with errors.Is. Their messages never contain the token.
var (
	// ErrNoToken: the request has no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken: the token is malformed, not signed by the issuer's keys, expired, or
	// for another issuer, audience or host.
	ErrInvalidToken = errors.New("invalid access token")
	// ErrKeysUnavailable: the issuer's signing keys could not be fetched; nothing can be
	// verified until they can (requests are refused: fail closed).
	ErrKeysUnavailable = errors.New("the issuer's signing keys could not be fetched")
)

// NewResourceServer checks cfg and makes a ResourceServer. It fetches nothing yet: the keys are
// fetched at the first token.
func NewResourceServer(cfg ResourceServerConfig) (*ResourceServer, error) {
	for name, v := range map[string]string{"Issuer": cfg.Issuer, "Audience": cfg.Audience} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("resource server: %s %q: want an absolute http(s) URL without userinfo or fragment", name, v)
		}
	}
	if cfg.Host == "" {
		return nil, errors.New("resource server: Host (the trustgate host of the tokens) is required")
	}
	if cfg.ResourceMetadataURL == "" {
		u, _ := url.Parse(cfg.Audience)
		m := url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.Path, "/"), RawQuery: u.RawQuery}
		cfg.ResourceMetadataURL = m.String()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = DefaultKeysMaxAge
	}
	if cfg.KeysMinRefresh <= 0 {
		cfg.KeysMinRefresh = DefaultKeysMinRefresh
	}
	rs := &ResourceServer{cfg: cfg, challenge: `Bearer resource_metadata="` + quoteHeader(cfg.ResourceMetadataURL) + `"`}
	rs.keys.fetch = rs.fetchKeys
	rs.keys.maxAge, rs.keys.minRefresh = cfg.KeysMaxAge, cfg.KeysMinRefresh
	return rs, nil
}

// Middleware accepts requests that carry a valid access token (Authorization: Bearer) and
// passes them to next with the AccessToken in their context (TokenFromContext). Others get 401 with
// a WWW-Authenticate challenge that points at the resource's metadata, so that an MCP client
// can run the OAuth flow; when the keys cannot be fetched, 503 (fail closed).
func (rs *ResourceServer) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := rs.Verify(r.Context(), bearerOf(r))
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
			return
		case errors.Is(err, ErrKeysUnavailable):
			http.Error(w, "the service cannot verify access tokens right now; try again later", http.StatusServiceUnavailable)
			return
		case errors.Is(err, ErrNoToken):
			w.Header().Set("WWW-Authenticate", rs.challenge)
		default:
			w.Header().Set("WWW-Authenticate", rs.challenge+`, error="invalid_token", error_description="`+quoteHeader(err.Error())+`"`)
		}
		http.Error(w, "a valid access token from trustgate is required", http.StatusUnauthorized)
	})
}

type tokenKey struct{}

// TokenFromContext is the AccessToken that Middleware verified for the request.
func TokenFromContext(ctx context.Context) (*AccessToken, bool) {
	t, ok := ctx.Value(tokenKey{}).(*AccessToken)
	return t, ok
}

// bearerOf is the token of an Authorization: Bearer header ("" when there is none).
func bearerOf(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// wireToken is the payload of an access token.
type wireToken struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Host     string `json:"host"`
	AgentID  string `json:"agent_id"`
	Grant    string `json:"sid"`
}

// Verify checks an access token: a compact JWS signed with ES256 (typ at+jwt) by a key the
// issuer publishes, from Issuer, for Audience and Host, not expired and already valid (within
// the leeway), naming a human and an agent. It does not see revocations: a revoked token, or
// one of an agent an administrator disabled, verifies until it expires (an hour by default);
// ask Client.Check, which does, when that matters.
func (rs *ResourceServer) Verify(ctx context.Context, raw string) (*AccessToken, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	if len(raw) > maxBearerLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxBearerLen)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: not a compact ES256 JWS", ErrInvalidToken)
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), "at+jwt") {
		return nil, fmt.Errorf("%w: type is not at+jwt", ErrInvalidToken)
	}
	key, err := rs.keys.get(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	var w wireToken
	if err := tok.Claims(key, &w); err != nil {
		return nil, fmt.Errorf("%w: the signature does not verify", ErrInvalidToken)
	}
	if w.Expiry == nil || w.IssuedAt == nil || w.Subject == "" || w.AgentID == "" || w.ID == "" {
		return nil, fmt.Errorf("%w: exp, iat, sub, agent_id or jti is missing", ErrInvalidToken)
	}
	if err := w.Claims.ValidateWithLeeway(jwt.Expected{Issuer: rs.cfg.Issuer, AnyAudience: jwt.Audience{rs.cfg.Audience}, Time: time.Now()}, max(rs.cfg.Leeway, 0)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if w.Host != rs.cfg.Host {
		return nil, fmt.Errorf("%w: the token is for another host", ErrInvalidToken)
	}
	return &AccessToken{Issuer: w.Issuer, Host: w.Host, Human: w.Subject, Agent: w.AgentID, ClientID: w.ClientID, Scope: w.Scope,
		Audience: []string(w.Audience), ID: w.ID, Grant: w.Grant, IssuedAt: w.IssuedAt.Time(), Expiry: w.Expiry.Time()}, nil
}

// fetchKeys reads the issuer's metadata (RFC 8414, at the issuer's well-known URL) and the
// ES256 keys of its jwks_uri.
func (rs *ResourceServer) fetchKeys(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	iss, _ := url.Parse(rs.cfg.Issuer)
	metaURL := url.URL{Scheme: iss.Scheme, Host: iss.Host, Path: "/.well-known/oauth-authorization-server" + strings.TrimSuffix(iss.Path, "/")}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := rs.getJSON(ctx, metaURL.String(), &meta); err != nil {
		return nil, err
	}
	if meta.Issuer != rs.cfg.Issuer {
		return nil, fmt.Errorf("the metadata at %s names issuer %q, not %q", metaURL.String(), meta.Issuer, rs.cfg.Issuer)
	}
	if u, err := url.Parse(meta.JWKSURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("the metadata at %s has no usable jwks_uri", metaURL.String())
	}
	var set jose.JSONWebKeySet
	if err := rs.getJSON(ctx, meta.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		pub, ok := k.Key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || k.KeyID == "" || (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(jose.ES256)) {
			continue
		}
		keys[k.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("the key set at %s has no ES256 signing key", meta.JWKSURI)
	}
	return keys, nil
}

// getJSON fetches a JSON document of at most maxMetadataBody bytes.
func (rs *ResourceServer) getJSON(ctx context.Context, target string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rs.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBody+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	if len(body) > maxMetadataBody {
		return fmt.Errorf("GET %s: larger than %d bytes", target, maxMetadataBody)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	return nil
}

// keyCache holds the issuer's keys: fetched at first use, again when older than maxAge, and
// when a token names an unknown kid, but never twice within minRefresh. One fetch runs at a
// time and holds no lock: a token signed by a key already known is verified at once while a
// refresh runs (a stranger's token with a made-up kid cannot stall the others), and those that
// need the new keys wait for the one fetch instead of starting their own.
type keyCache struct {
	fetch              func(context.Context) (map[string]*ecdsa.PublicKey, error)
	maxAge, minRefresh time.Duration

	mu          sync.Mutex
	keys        map[string]*ecdsa.PublicKey
	fetchedAt   time.Time     // of keys
	attemptedAt time.Time     // of the last fetch, failed or not
	fetching    chan struct{} // closed when the running fetch ends; nil when none runs
}

func (c *keyCache) get(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	for {
		c.mu.Lock()
		key, known := c.keys[kid]
		stale := c.keys == nil || time.Since(c.fetchedAt) > c.maxAge
		switch {
		case known && !stale:
			c.mu.Unlock()
			return key, nil
		case c.fetching != nil:
			if known { // out of date, but still the issuer's until the refresh says otherwise
				c.mu.Unlock()
				return key, nil
			}
			wait := c.fetching
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, ctx.Err())
			}
		case c.attemptedAt.IsZero() || time.Since(c.attemptedAt) >= c.minRefresh:
			c.attemptedAt = time.Now()
			done := make(chan struct{})
			c.fetching = done
			c.mu.Unlock()
			// The fetch serves every waiting request: one caller going away does not end it
			// (the HTTP client's timeout bounds it).
			keys, err := c.fetch(context.WithoutCancel(ctx))
			c.mu.Lock()
			c.fetching = nil
			close(done)
			if err != nil && (c.keys == nil || time.Since(c.fetchedAt) > 2*c.maxAge) {
				// Without keys, or with keys long out of date, nothing is accepted.
				c.keys = nil
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
			}
			if err == nil {
				c.keys, c.fetchedAt = keys, time.Now()
			}
			key, known = c.keys[kid]
		}
		keys := c.keys
		c.mu.Unlock()
		if keys == nil {
			return nil, ErrKeysUnavailable
		}
		if !known {
			return nil, fmt.Errorf("%w: signed by a key the issuer does not publish", ErrInvalidToken)
		}
		return key, nil
	}
}

// quoteHeader makes s safe inside a quoted-string of a header: printable ASCII except '"' and
// '\', everything else replaced.
func quoteHeader(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r == '\\':
			return '\''
		case r < ' ' || r > '~':
			return '?'
		}
		return r
	}, s)
}
