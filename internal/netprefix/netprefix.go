// Package netprefix reads the lists of networks an operator configures (trusted reverse
// proxies, networks upstream servers may be on) into IP prefixes, one way for every flag.
package netprefix

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads CIDR prefixes or single addresses, each entry possibly a comma-separated list as
// flags give them: "10.0.0.0/8,192.168.1.7". Empty entries are ignored; an empty list gives no
// prefix. A single address is a prefix of its full length, without its zone. Prefixes are
// masked ("10.1.2.3/8" is 10.0.0.0/8), and IPv4-mapped IPv6 addresses and prefixes become
// their IPv4 form (a mapped prefix needs at least 96 bits), so that they match the unmapped
// addresses connections are compared by.
func Parse(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		for _, s := range strings.Split(e, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := parseOne(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func parseOne(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
