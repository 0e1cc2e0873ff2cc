// Package ssrf builds HTTP clients for fetching URLs that users or OAuth clients supply (Client
// ID Metadata Documents, logos, …) without letting them reach the gateway's own network.
//
// The guard is in the dialer: a net.Dialer Control hook inspects the IP address the connection
// is about to be made to — after DNS resolution, at connect time — and refuses loopback,
// private, link-local (cloud metadata services among them), CGNAT, unspecified, multicast,
// broadcast, reserved and documentation ranges, in IPv4 and IPv6 and in the IPv6 forms that
// embed an IPv4 address. Checking the resolved address at connect time defeats DNS rebinding:
// a name that resolved to a public address when it was validated and to 127.0.0.1 when it is
// dialed is still refused. The client never follows redirects, never uses a proxy from the
// environment, speaks https only unless told otherwise, and bounds response bodies.
//
// A Policy widens the guard where an operator allows it: public addresses plus given prefixes
// (the networks hosts' upstream MCP servers may be on), or every address. Its Control hook and
// Transport serve other clients that connect to upstreams (the MCP proxy, discovery).
package ssrf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Defaults.
const (
	// DefaultTimeout bounds a whole request (connect, TLS, headers, body) when Options.Timeout
	// is zero.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBodyBytes bounds a response body when Options.MaxBodyBytes is zero.
	DefaultMaxBodyBytes = 1 << 20
	// maxResponseHeaderBytes bounds the response headers.
	maxResponseHeaderBytes = 32 << 10
)

// Errors reported by the client; match them with errors.Is (they arrive wrapped in *url.Error
// and *net.OpError).
var (
	// ErrForbiddenAddress: the destination resolved to an address the client must not reach.
	ErrForbiddenAddress = errors.New("ssrf: destination address is not allowed")
	// ErrSchemeNotAllowed: the URL's scheme is not https (or http when AllowHTTP is set).
	ErrSchemeNotAllowed = errors.New("ssrf: URL scheme is not allowed")
	// ErrRedirect: the server answered with a redirect, which the client does not follow.
	ErrRedirect = errors.New("ssrf: redirects are not followed")
	// ErrBodyTooLarge: the response body is larger than the limit.
	ErrBodyTooLarge = errors.New("ssrf: response body too large")
)

// Options configure NewClient. The zero value is the production setting: https only, public
// addresses only, 5s timeout, 1 MiB bodies.
type Options struct {
	// Timeout bounds a whole request, body included (default 5s).
	Timeout time.Duration
	// MaxBodyBytes bounds every response body (default 1 MiB): reading past it fails with
	// ErrBodyTooLarge, and a response whose Content-Length exceeds it fails at once. Use
	// ReadLimited for a tighter limit on one response.
	MaxBodyBytes int64
	// AllowHTTP permits plain http:// URLs (default: https only).
	AllowHTTP bool
	// AllowPrivate disables the address guard. It exists for tests, which reach httptest
	// servers on loopback; never set it in production.
	AllowPrivate bool
	// Policy says which addresses may be dialled when AllowPrivate is false; the zero value
	// is public addresses only.
	Policy Policy
	// TLSConfig, when set, is cloned into the transport (tests: RootCAs trusting a test server).
	TLSConfig *tls.Config
}

// NewClient returns an http.Client that refuses non-public destinations (unless AllowPrivate),
// non-https URLs (unless AllowHTTP), redirects and environment proxies, and bounds bodies.
func NewClient(opts Options) *http.Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}
	if opts.AllowPrivate {
		opts.Policy = AllowAll()
	}
	dialer.Control = opts.Policy.Control
	var tlsConfig *tls.Config
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
	} else {
		tlsConfig = &tls.Config{}
	}
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	base := &http.Transport{
		Proxy:                  nil, // never from the environment: a proxy would dial for us, unguarded
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    opts.Timeout,
		ResponseHeaderTimeout:  opts.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: &guardTransport{base: base, allowHTTP: opts.AllowHTTP, policy: opts.Policy, maxBody: opts.MaxBodyBytes},
		Timeout:   opts.Timeout,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("%w (to %s)", ErrRedirect, req.URL.Redacted())
		},
	}
}

// guardTransport checks the scheme (and IP literals, for an early, clear error) before the
// request and bounds the body after it. The address check that matters is in the dialer,
// where the resolved IP is known.
type guardTransport struct {
	base      http.RoundTripper
	allowHTTP bool
	policy    Policy
	maxBody   int64
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "https":
	case "http":
		if !t.allowHTTP {
			closeRequestBody(req)
			return nil, fmt.Errorf("%w: %q (https is required)", ErrSchemeNotAllowed, req.URL.Scheme)
		}
	default:
		closeRequestBody(req)
		return nil, fmt.Errorf("%w: %q", ErrSchemeNotAllowed, req.URL.Scheme)
	}
	if addr, err := netip.ParseAddr(req.URL.Hostname()); err == nil && !t.policy.Allows(addr) {
		closeRequestBody(req)
		return nil, fmt.Errorf("%w: %s", ErrForbiddenAddress, addr)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.maxBody {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, resp.ContentLength, t.maxBody)
	}
	resp.Body = &limitedBody{rc: resp.Body, remaining: t.maxBody, limit: t.maxBody}
	return resp, nil
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// limitedBody reads at most limit bytes and fails with ErrBodyTooLarge if there are more.
type limitedBody struct {
	rc        io.ReadCloser
	remaining int64 // bytes still allowed
	limit     int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.remaining < 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, b.limit)
	}
	// Read one byte beyond the allowance so that a body of exactly limit bytes succeeds and a
	// longer one is detected.
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.rc.Read(p)
	b.remaining -= int64(n)
	if b.remaining < 0 {
		return n + int(b.remaining), fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, b.limit)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ReadLimited reads resp.Body up to max bytes (max ≤ 0 means DefaultMaxBodyBytes) and fails
// with ErrBodyTooLarge when the body is longer, or when Content-Length announces more. It does
// not close the body.
func ReadLimited(resp *http.Response, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, max)
	}
	return data, nil
}

// Ranges no fetch may reach. IPv4 ranges are also checked for IPv4 addresses embedded in IPv6
// (IPv4-mapped, NAT64).
var (
	forbiddenV4 = mustPrefixes(
		"0.0.0.0/8",          // "this network", includes the unspecified 0.0.0.0
		"10.0.0.0/8",         // RFC 1918
		"100.64.0.0/10",      // CGNAT shared address space (RFC 6598)
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",      // RFC 1918
		"192.0.0.0/24",       // IETF protocol assignments (incl. 192.0.0.192 Oracle metadata)
		"192.0.2.0/24",       // TEST-NET-1
		"192.88.99.0/24",     // 6to4 relay anycast (deprecated)
		"192.168.0.0/16",     // RFC 1918
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // TEST-NET-2
		"203.0.113.0/24",     // TEST-NET-3
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved, incl. broadcast 255.255.255.255
		"255.255.255.255/32", // limited broadcast (inside 240/4; listed for clarity)
	)
	forbiddenV6 = mustPrefixes(
		"::/96",          // unspecified, loopback ::1 and deprecated IPv4-compatible addresses
		"::ffff:0:0/96",  // IPv4-mapped: checked through Unmap, listed as a backstop
		"64:ff9b:1::/48", // local-use NAT64 (RFC 8215)
		"100::/64",       // discard-only
		"2001::/23",      // IETF protocol assignments, incl. Teredo 2001::/32
		"2001:db8::/32",  // documentation
		"2002::/16",      // 6to4 (embeds IPv4 addresses; deprecated)
		"3fff::/20",      // documentation (RFC 9637)
		"5f00::/16",      // SRv6 SIDs
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"fec0::/10",      // site-local (deprecated)
		"ff00::/8",       // multicast
	)
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: last 32 bits are IPv4
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IsForbiddenAddr reports whether a fetch must not connect to addr: anything but a public
// unicast address. Invalid addresses are forbidden.
func IsForbiddenAddr(addr netip.Addr) bool {
	if !addr.IsValid() {
		return true
	}
	addr = addr.WithZone("") // netip.Prefix.Contains never matches a zoned address
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.Is6() && nat64WellKnown.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return true
	}
	prefixes := forbiddenV6
	if addr.Is4() {
		prefixes = forbiddenV4
	}
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// CheckHost resolves host with the default resolver and reports an error wrapping
// ErrForbiddenAddress if any of its addresses is forbidden. It is a fast pre-check for nicer
// error messages at input time (e.g. when a URL is registered); the dialer's own check at
// connect time is what actually protects, since DNS can change between the two.
func CheckHost(ctx context.Context, host string) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		if IsForbiddenAddr(addr) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, addr)
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if IsForbiddenAddr(a) {
			return fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddress, host, a)
		}
	}
	return nil
}
