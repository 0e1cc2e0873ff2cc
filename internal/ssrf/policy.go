package ssrf

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Policy says which addresses a connection may be made to: every address (AllowAll), or
// public unicast addresses plus the prefixes in Allow. The zero value is public addresses
// only. Unspecified (0.0.0.0, ::) and multicast addresses are refused even when a prefix of
// Allow covers them: dialling 0.0.0.0 reaches the local machine.
type Policy struct {
	all   bool
	allow []netip.Prefix
}

// AllowAll is the policy that lets every address through.
func AllowAll() Policy { return Policy{all: true} }

// PublicAnd is public addresses plus the given prefixes (IPv4 prefixes also match the
// IPv4-mapped IPv6 form of their addresses).
func PublicAnd(prefixes ...netip.Prefix) Policy {
	out := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return Policy{allow: out}
}

// AllowsAll reports whether the policy lets every address through.
func (p Policy) AllowsAll() bool { return p.all }

// Prefixes are the extra prefixes of a public-and policy.
func (p Policy) Prefixes() []netip.Prefix { return append([]netip.Prefix(nil), p.allow...) }

// Allows reports whether a connection to addr is allowed.
func (p Policy) Allows(addr netip.Addr) bool {
	if p.all {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	if !IsForbiddenAddr(addr) {
		return true
	}
	addr = addr.WithZone("")
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return false
	}
	for _, pr := range p.allow {
		if pr.Contains(addr) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control hook enforcing the policy on the address about to be
// dialled, after DNS resolution.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	if p.all {
		return nil
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address and port", ErrForbiddenAddress, address)
	}
	if !p.Allows(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// Proxy is the proxy function of a transport under the policy: the environment's
// (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) when every address is allowed, none otherwise, since a
// proxy would make the connection to the destination itself, out of reach of the dial check.
func (p Policy) Proxy() func(*http.Request) (*url.URL, error) {
	if p.all {
		return http.ProxyFromEnvironment
	}
	return nil
}

// Dialer returns a dialer with the policy's Control hook.
func (p Policy) Dialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !p.all {
		d.Control = p.Control
	}
	return d
}

// Transport returns an HTTP transport like http.DefaultTransport that dials under the
// policy and, unless it allows everything, never uses an environment proxy.
func (p Policy) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = p.Proxy()
	t.DialContext = p.Dialer(30 * time.Second).DialContext
	return t
}
