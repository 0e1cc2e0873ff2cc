package ssrf_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/trustgate/trustgate/internal/netprefix"
	"github.com/trustgate/trustgate/internal/ssrf"
)

func TestPolicyAllows(t *testing.T) {
	prefixes, err := netprefix.Parse([]string{"127.0.0.0/8,10.1.0.0/16", "fd00:1::/32", "192.168.1.5"})
	if err != nil {
		t.Fatal(err)
	}
	host := ssrf.PublicAnd(prefixes...)
	public := ssrf.Policy{}
	all := ssrf.AllowAll()
	cases := []struct {
		addr              string
		public, host, all bool
	}{
		{"93.184.216.34", true, true, true},
		{"2606:4700::1111", true, true, true},
		{"127.0.0.1", false, true, true},
		{"127.255.0.9", false, true, true},
		{"::ffff:127.0.0.1", false, true, true}, // IPv4-mapped IPv6 matches the IPv4 prefix
		{"::1", false, false, true},
		{"10.1.2.3", false, true, true},
		{"10.2.0.1", false, false, true},
		{"::ffff:10.2.0.1", false, false, true},
		{"169.254.169.254", false, false, true},
		{"::ffff:169.254.169.254", false, false, true},
		{"64:ff9b::a9fe:a9fe", false, false, true}, // NAT64 of 169.254.169.254
		{"fd00:1::5", false, true, true},
		{"fd00:2::5", false, false, true},
		{"fe80::1%eth0", false, false, true},
		{"192.168.1.5", false, true, true},
		{"192.168.1.6", false, false, true},
		{"0.0.0.0", false, false, true},
		{"::", false, false, true},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		if got := public.Allows(a); got != c.public {
			t.Errorf("public-only Allows(%s) = %v, want %v", c.addr, got, c.public)
		}
		if got := host.Allows(a); got != c.host {
			t.Errorf("public+prefixes Allows(%s) = %v, want %v", c.addr, got, c.host)
		}
		if got := all.Allows(a); got != c.all {
			t.Errorf("allow-all Allows(%s) = %v, want %v", c.addr, got, c.all)
		}
	}
	if (ssrf.Policy{}).Allows(netip.Addr{}) {
		t.Error("the invalid address is allowed")
	}
}

// An allow-list covering the unspecified address still refuses it: 0.0.0.0 dials the local
// machine.
func TestPolicyNeverAllowsUnspecified(t *testing.T) {
	p := ssrf.PublicAnd(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	for _, s := range []string{"0.0.0.0", "::", "::ffff:0.0.0.0", "224.0.0.1", "ff02::1"} {
		if p.Allows(netip.MustParseAddr(s)) {
			t.Errorf("Allows(%s) = true", s)
		}
	}
	if !p.Allows(netip.MustParseAddr("10.0.0.1")) || !p.Allows(netip.MustParseAddr("fe80::1")) {
		t.Error("a covered private address is refused")
	}
}

func TestPolicyControl(t *testing.T) {
	host := ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"))
	if err := host.Control("tcp4", "127.0.0.1:8080", nil); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
	for _, addr := range []string{"[::1]:8080", "169.254.169.254:80", "10.0.0.1:443", "0.0.0.0:80"} {
		if err := host.Control("tcp", addr, nil); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("Control(%s) = %v, want ErrForbiddenAddress", addr, err)
		}
	}
	if err := host.Control("udp", "8.8.8.8:53", nil); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Errorf("udp dial allowed: %v", err)
	}
	if err := ssrf.AllowAll().Control("tcp", "169.254.169.254:80", nil); err != nil {
		t.Errorf("allow-all refused: %v", err)
	}
	if host.Proxy() != nil {
		t.Error("a restricted policy uses the environment's proxy")
	}
	if ssrf.AllowAll().Proxy() == nil {
		t.Error("the allow-all policy ignores the environment's proxy")
	}
}
