// Package forwarded is the one place that decides whether a request's X-Forwarded-For,
// X-Forwarded-Proto and X-Forwarded-Host headers are believed. They are written by whoever sends
// the request, so they are read only when the connection comes from a reverse proxy the
// operator trusts (--trusted-proxies); by default none is trusted and the headers are ignored.
//
// Trust answers three questions about a request: the client's address (rate limits, the audit
// log), the scheme the client used (HSTS, Secure cookies) and the host name it asked for
// (subdomain routing behind a proxy that rewrites Host). The gateway's issuer and public URL
// never come from these headers: they are fixed by --public-url.
package forwarded

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxHops bounds how many X-Forwarded-For entries ClientAddr reads.
const maxHops = 32

// maxHostLen bounds a forwarded host name (with its port).
const maxHostLen = 255

// Trust is the set of reverse proxies whose forwarding headers are believed. The zero value
// trusts none.
type Trust struct {
	proxies []netip.Prefix
}

// New trusts the proxies in prefixes (see internal/netprefix for reading them from flags).
func New(prefixes []netip.Prefix) Trust {
	return Trust{proxies: append([]netip.Prefix(nil), prefixes...)}
}

// FromPeer reports whether r's connection comes from a trusted proxy.
func (t Trust) FromPeer(r *http.Request) bool {
	a, ok := peerAddr(r)
	return ok && t.contains(a)
}

// ClientAddr returns the address of the client that sent r. Without a trusted proxy it is the
// host of r.RemoteAddr. When r.RemoteAddr is a trusted proxy (one that appends the address it
// saw to X-Forwarded-For), the header is read from its right end, skipping the addresses of
// further trusted proxies: the first address that is not a trusted proxy is the client. Entries
// left of it were written by the client and are never used; an entry that is not an IP address
// ends the walk at the last trusted hop. Addresses are returned in canonical form (IPv4-mapped
// IPv6 unmapped, zones dropped).
func (t Trust) ClientAddr(r *http.Request) string {
	remote, ok := peerAddr(r)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	if !t.contains(remote) {
		return remote.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := remote
	for i := len(hops) - 1; i >= 0 && len(hops)-i <= maxHops; i-- {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		client = a
		if !t.contains(a) {
			break
		}
	}
	return client.String()
}

// Scheme returns "https" when the client reached the gateway over TLS: the connection is TLS,
// or a trusted proxy says so in X-Forwarded-Proto (its last value, the one the nearest proxy
// wrote). Otherwise "http".
func (t Trust) Scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if t.FromPeer(r) {
		if v := lastValue(r.Header.Values("X-Forwarded-Proto")); strings.EqualFold(v, "https") {
			return "https"
		}
	}
	return "http"
}

// Host returns the host (and port) the client asked for: a trusted proxy's X-Forwarded-Host
// (its last value) when it is a valid host name or address, else r.Host.
func (t Trust) Host(r *http.Request) string {
	if !t.FromPeer(r) {
		return r.Host
	}
	if v := lastValue(r.Header.Values("X-Forwarded-Host")); validHost(v) {
		return v
	}
	return r.Host
}

// Middleware believes a trusted proxy's headers for everything behind it: the request's Host
// becomes the forwarded host, and the client's address is put in the context (ClientAddrFrom)
// for every request. Requests from anyone else pass unchanged but for that address.
func (t Trust) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), clientKey{}, t.ClientAddr(r))
		if len(t.proxies) > 0 {
			if h := t.Host(r); h != r.Host {
				r = r.Clone(ctx)
				r.Host = h
				next.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type clientKey struct{}

// ClientAddrFrom returns the client address Middleware put in ctx ("" when none).
func ClientAddrFrom(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}

// WithClientAddr returns ctx carrying addr as the client address (for callers outside HTTP).
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientKey{}, addr)
}

func (t Trust) contains(a netip.Addr) bool {
	for _, p := range t.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return parseAddr(host)
}

// parseAddr reads an IP address, optionally with a port ("1.2.3.4:5", "[::1]:5").
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// lastValue is the last comma-separated entry of a header's values, trimmed.
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// validHost accepts a DNS name or an IP address, with an optional port: letters, digits, '-',
// '.', and for IPv6 in brackets ':' — nothing that could smuggle a path, user info or a
// second header value.
func validHost(h string) bool {
	if h == "" || len(h) > maxHostLen {
		return false
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if _, err := netip.ParseAddr(h[1:end]); err != nil {
			return false
		}
		name, port = "", h[end+1:]
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i:]
	}
	if port != "" {
		if len(port) < 2 || len(port) > 6 || port[0] != ':' {
			return false
		}
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
