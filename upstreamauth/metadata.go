package upstreamauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/internal/ssrf"
)

// maxMetadataBytes bounds a fetched metadata document.
const maxMetadataBytes = 64 << 10

// ErrDiscovery: the upstream's authorization metadata could not be found or is unusable.
var ErrDiscovery = errors.New("upstream authorization discovery failed")

// Challenge is what an upstream's 401 said (RFC 6750 and RFC 9728 parameters).
type Challenge struct {
	// ResourceMetadata is the URL of the protected resource metadata, when given.
	ResourceMetadata string
	// Scope is the scope the upstream asks for, when given.
	Scope string
}

// Metadata is what the gateway needs to know to authorize at an upstream.
type Metadata struct {
	// Resource is the RFC 8707 resource to ask tokens for: the upstream's MCP URL.
	Resource string
	Scopes   []string
	// Issuer and the endpoints are the authorization server's (RFC 8414).
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	RegistrationEndpoint  string // "" when the server offers no dynamic registration
	TokenAuthMethods      []string
}

type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

type serverMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
}

// discover finds the upstream's authorization metadata.
func (c *Client) discover(ctx context.Context, serverURL string, ch Challenge) (*Metadata, error) {
	su, err := url.Parse(serverURL)
	if err != nil || su.Host == "" {
		return nil, fmt.Errorf("%w: invalid server URL", ErrDiscovery)
	}
	md := &Metadata{Resource: serverURL}
	var issuer string
	prm, err := c.resourceMetadata(ctx, su, ch)
	switch {
	case err == nil:
		if prm.Resource != "" {
			ru, perr := url.Parse(prm.Resource)
			if perr != nil || ru.Scheme != su.Scheme || ru.Host != su.Host {
				return nil, fmt.Errorf("%w: the protected resource metadata names another resource (%q)", ErrDiscovery, prm.Resource)
			}
			md.Resource = prm.Resource
		}
		if len(prm.AuthorizationServers) == 0 {
			return nil, fmt.Errorf("%w: the protected resource metadata names no authorization server", ErrDiscovery)
		}
		issuer = prm.AuthorizationServers[0]
		md.Scopes = prm.ScopesSupported
	case errors.Is(err, errNotFound):
		// Before RFC 9728 (MCP 2025-03-26): the authorization server is the server's origin.
		issuer = (&url.URL{Scheme: su.Scheme, Host: su.Host}).String()
	default:
		return nil, err
	}
	asm, err := c.serverMetadata(ctx, issuer)
	if err != nil {
		return nil, err
	}
	md.Issuer = asm.Issuer
	md.AuthorizationEndpoint = asm.AuthorizationEndpoint
	md.TokenEndpoint = asm.TokenEndpoint
	md.RegistrationEndpoint = asm.RegistrationEndpoint
	md.TokenAuthMethods = asm.TokenEndpointAuthMethodsSupported
	if ch.Scope != "" {
		md.Scopes = strings.Fields(ch.Scope)
	} else if len(md.Scopes) == 0 {
		md.Scopes = asm.ScopesSupported
	}
	return md, nil
}

var errNotFound = errors.New("not found")

// resourceMetadata fetches RFC 9728 metadata: the challenge's URL, else the path-inserted
// well-known URL, else the root one.
func (c *Client) resourceMetadata(ctx context.Context, su *url.URL, ch Challenge) (*resourceMetadata, error) {
	var candidates []string
	if ch.ResourceMetadata != "" {
		candidates = append(candidates, ch.ResourceMetadata)
	}
	origin := su.Scheme + "://" + su.Host
	if p := strings.TrimSuffix(su.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, origin+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin+"/.well-known/oauth-protected-resource")
	for _, u := range candidates {
		var prm resourceMetadata
		err := c.getJSON(ctx, u, &prm)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &prm, nil
	}
	return nil, errNotFound
}

// serverMetadata fetches RFC 8414 metadata of issuer (OpenID Connect discovery as fallback)
// and checks it: the issuer matches, PKCE S256 is supported, the endpoints are there.
func (c *Client) serverMetadata(ctx context.Context, issuer string) (*serverMetadata, error) {
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" || (iu.Scheme != "https" && iu.Scheme != "http") || iu.RawQuery != "" || iu.Fragment != "" {
		return nil, fmt.Errorf("%w: invalid authorization server %q", ErrDiscovery, issuer)
	}
	origin := iu.Scheme + "://" + iu.Host
	p := strings.TrimSuffix(iu.EscapedPath(), "/")
	candidates := []string{
		origin + "/.well-known/oauth-authorization-server" + p,
		origin + "/.well-known/openid-configuration" + p,
	}
	if p != "" {
		candidates = append(candidates, origin+p+"/.well-known/openid-configuration")
	}
	for _, u := range candidates {
		var m serverMetadata
		err := c.getJSON(ctx, u, &m)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSuffix(m.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("%w: the metadata's issuer %q is not %q", ErrDiscovery, m.Issuer, issuer)
		}
		if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
			return nil, fmt.Errorf("%w: the authorization server's metadata lacks an authorization or token endpoint", ErrDiscovery)
		}
		if !slices.Contains(m.CodeChallengeMethodsSupported, "S256") {
			return nil, fmt.Errorf("%w: the authorization server does not support PKCE S256", ErrDiscovery)
		}
		for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.RegistrationEndpoint} {
			if e == "" {
				continue
			}
			if eu, err := url.Parse(e); err != nil || eu.Host == "" || (eu.Scheme != "https" && eu.Scheme != "http") {
				return nil, fmt.Errorf("%w: the authorization server's metadata has an invalid endpoint", ErrDiscovery)
			}
		}
		return &m, nil
	}
	return nil, fmt.Errorf("%w: no authorization server metadata for %q", ErrDiscovery, issuer)
}

// getJSON fetches a JSON document; 404 (and other 4xx) is errNotFound.
func (c *Client) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: invalid metadata URL", ErrDiscovery)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpFor(ctx).Do(req)
	if err != nil {
		return fmt.Errorf("%w: fetch %s: %w", ErrDiscovery, redact(u), stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered HTTP %d", ErrDiscovery, redact(u), resp.StatusCode)
	}
	data, err := ssrf.ReadLimited(resp, maxMetadataBytes)
	if err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrDiscovery, redact(u), err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s is not a JSON metadata document", ErrDiscovery, redact(u))
	}
	return nil
}

// redact drops a URL's query (it may carry anything) for error text.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	pu.RawQuery, pu.Fragment, pu.User = "", "", nil
	return pu.String()
}

// ParseChallenge reads the Bearer challenge of a WWW-Authenticate header value.
func ParseChallenge(values []string) Challenge {
	var ch Challenge
	for _, v := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		params := parseAuthParams(rest)
		ch.ResourceMetadata = params["resource_metadata"]
		ch.Scope = params["scope"]
		return ch
	}
	return ch
}

// parseAuthParams parses RFC 9110 auth-params: name=token or name="quoted string", comma
// separated. Malformed input ends the parse.
func parseAuthParams(s string) map[string]string {
	out := map[string]string{}
	for len(out) < 32 {
		s = strings.TrimLeft(s, " \t,")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return out
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return out
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		if _, dup := out[name]; !dup {
			out[name] = val
		}
	}
	return out
}
