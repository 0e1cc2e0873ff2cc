package ssrf

import (
	"errors"
	"testing"
)

// The dialer's Control hook is the check that defeats DNS rebinding (it sees the address being
// connected to); the literal-IP pre-check in the transport only gives earlier errors.
func TestControlPublicOnly(t *testing.T) {
	cases := []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp", "93.184.216.34:80", true},
		{"tcp6", "[2606:4700:4700::1111]:443", true},
		{"tcp4", "127.0.0.1:443", false},
		{"tcp6", "[::1]:443", false},
		{"tcp6", "[::ffff:127.0.0.1]:443", false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp4", "10.0.0.1:443", false},
		{"tcp6", "[fe80::1%eth0]:443", false},
		{"tcp4", "0.0.0.0:443", false},
		{"udp4", "8.8.8.8:53", false},
		{"tcp", "example.com:443", false},
		{"tcp", "", false},
	}
	for _, c := range cases {
		err := Policy{}.Control(c.network, c.address, nil)
		if c.ok && err != nil {
			t.Errorf("controlPublicOnly(%s, %s) = %v, want nil", c.network, c.address, err)
		}
		if !c.ok && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("controlPublicOnly(%s, %s) = %v, want ErrForbiddenAddress", c.network, c.address, err)
		}
	}
}
