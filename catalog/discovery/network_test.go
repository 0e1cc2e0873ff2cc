package discovery

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// Without an HTTP client of the caller's, discovery dials under Options.Policy, public
// addresses only by default. The check is on the address dialled, after DNS resolution: a name
// (localhost) that resolves to loopback is refused like the literal address.
func TestDiscoverDialsUnderThePolicy(t *testing.T) {
	up := mcpserver.Start(t, "")
	byName := strings.Replace(up.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{up.URL, byName} {
		_, err := Discover(context.Background(), u, Options{Timeout: 5 * time.Second})
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Fatalf("discovery of %s with the default policy: %v, want unreachable (forbidden address)", u, err)
		}
	}
	allowed := Options{Timeout: 5 * time.Second, Policy: ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))}
	for _, u := range []string{up.URL, byName} {
		res, err := Discover(context.Background(), u, allowed)
		if err != nil || len(res.Tools) != 3 {
			t.Fatalf("discovery of %s with loopback allowed: %v", u, err)
		}
	}
}
