// Package tenant maps requests to hosts (tenants) and hosts to their public URLs. A host is
// reached by its subdomain of the public URL's host (acme.gateway.example), or by the path
// prefix /h/{host}/… where wildcard DNS is not available; the default host is the bare public URL.
// Mount registers the same routes under each of these forms (routes.go).
package tenant

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/trustgate/trustgate/store"
)

// DefaultHost is the key of the host that exists from the first start and is served at the bare
// public URL.
const DefaultHost = "default"

// pathPrefix introduces a host in the path: /h/{host}/….
const pathPrefix = "/h/"

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidKey reports whether key is a DNS label (what host keys must be).
func ValidKey(key string) bool { return dnsLabel.MatchString(key) }

// URLs builds hosts' public URLs.
type URLs struct {
	// Public is the gateway's public URL (scheme://host[:port], no trailing slash).
	Public *url.URL
	// Subdomains makes host URLs subdomains of the public host instead of /h/{host} paths.
	Subdomains bool
}

// NewURLs parses the public URL.
func NewURLs(public string, subdomains bool) (URLs, error) {
	u, err := url.Parse(strings.TrimSuffix(public, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return URLs{}, fmt.Errorf("public URL %q must be an absolute http(s) URL", public)
	}
	u.Path, u.RawQuery, u.Fragment = strings.TrimSuffix(u.Path, "/"), "", ""
	return URLs{Public: u, Subdomains: subdomains}, nil
}

// Base is the base URL of a host: the issuer of its OAuth server and the root of its MCP paths.
func (u URLs) Base(host string) string {
	if host == DefaultHost || host == "" {
		return u.Public.String()
	}
	if u.Subdomains {
		b := *u.Public
		b.Host = host + "." + u.Public.Host
		return b.String()
	}
	return u.Public.String() + pathPrefix + host
}

// MCP is the URL MCP clients connect to for a host.
func (u URLs) MCP(host string) string { return u.Base(host) + "/mcp" }

// HostOfMCP is the host whose MCP URL resource is, or is under (…/mcp/<server>, …/mcp?<query>),
// spelled exactly as MCP builds it; false when resource names no host's. Whether the host
// exists is not checked.
func (u URLs) HostOfMCP(resource string) (string, bool) {
	var key string
	public := u.Public.String()
	if rest, ok := strings.CutPrefix(resource, public+pathPrefix); ok && !u.Subdomains {
		key, _, _ = strings.Cut(rest, "/")
	} else if strings.HasPrefix(resource, public+"/mcp") {
		key = DefaultHost
	} else if scheme, rest, ok := strings.Cut(resource, "://"); ok && u.Subdomains && scheme == u.Public.Scheme {
		authority, _, _ := strings.Cut(rest, "/")
		key, _ = strings.CutSuffix(authority, "."+u.Public.Host)
	}
	if !ValidKey(key) {
		return "", false
	}
	after, ok := strings.CutPrefix(resource, u.MCP(key))
	if !ok || (after != "" && after[0] != '/' && after[0] != '?') {
		return "", false
	}
	return key, true
}

type hostKey struct{}

// routed is the host of a request: its key, and its stored record when it was read.
type routed struct {
	key    string
	stored store.Host
	found  bool
}

// WithHost records the host a request was routed to in the context.
func WithHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, &routed{key: host})
}

// WithStoredHost records the host a request was routed to with its stored record, so that
// handlers need not read it again.
func WithStoredHost(ctx context.Context, h store.Host) context.Context {
	return context.WithValue(ctx, hostKey{}, &routed{key: h.Key, stored: h, found: true})
}

// FromContext is the host a request was routed to ("" when none).
func FromContext(ctx context.Context) string {
	if h, ok := ctx.Value(hostKey{}).(*routed); ok {
		return h.key
	}
	return ""
}

type originKey struct{}

// AtOrigin reports whether the request was addressed to the bare public URL rather than to a
// host's own URL (/h/{host}…, {host}.<public host>). Such a request is the default host's; an
// endpoint may serve it for another host when the request itself names that host (as the OAuth
// server's origin-level fallbacks do).
func AtOrigin(ctx context.Context) bool {
	v, _ := ctx.Value(originKey{}).(bool)
	return v
}

// StoredHost is the stored record of the host a request was routed to, when it was read while
// routing.
func StoredHost(ctx context.Context) (store.Host, bool) {
	if h, ok := ctx.Value(hostKey{}).(*routed); ok && h.found {
		return h.stored, true
	}
	return store.Host{}, false
}
