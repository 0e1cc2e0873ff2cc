// Package tenant maps requests to hosts (tenants) and hosts to their public URLs. A host is
// reached by its subdomain of the public URL's host (acme.gateway.example), or by the path
// prefix /h/{host}/… where wildcard DNS is not available; the default host is the bare public URL.
package tenant

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
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

// Resolve finds the host a request is for and the path within that host. It never consults
// the store: the caller checks that the host exists.
func (u URLs) Resolve(r *http.Request) (host, path string) {
	path = r.URL.Path
	// RFC 8414 and RFC 9728 insert the well-known segment before the issuer's or resource's
	// path: /.well-known/oauth-authorization-server/h/acme is host acme's metadata.
	if rest, ok := strings.CutPrefix(path, "/.well-known/"); ok {
		name, tail, _ := strings.Cut(rest, "/")
		if after, ok := strings.CutPrefix("/"+tail, pathPrefix); ok && name != "" {
			key, sub, _ := strings.Cut(after, "/")
			return key, strings.TrimSuffix("/.well-known/"+name+"/"+sub, "/")
		}
	}
	if rest, ok := strings.CutPrefix(path, pathPrefix); ok {
		key, sub, _ := strings.Cut(rest, "/")
		return key, "/" + sub
	}
	if u.Subdomains {
		reqHost := r.Host
		if h, _, err := net.SplitHostPort(reqHost); err == nil {
			reqHost = h
		}
		publicHost := u.Public.Hostname()
		if sub, ok := strings.CutSuffix(strings.ToLower(reqHost), "."+strings.ToLower(publicHost)); ok && !strings.Contains(sub, ".") {
			return sub, path
		}
	}
	return DefaultHost, path
}

type hostKey struct{}

// WithHost records the resolved host in the context.
func WithHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}

// FromContext is the host a request was resolved to ("" when none).
func FromContext(ctx context.Context) string {
	h, _ := ctx.Value(hostKey{}).(string)
	return h
}
