package proxy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/trustgate/trustgate/internal/ssrf"
)

// A server on network "host" is never reached through a proxy from the environment (the
// proxy would dial the server itself, past the address check); one on "any" may be.
func TestRestrictedServersBypassEnvironmentProxies(t *testing.T) {
	tr := newTransports(ssrf.PublicAnd(netip.MustParsePrefix("10.0.0.0/8")))
	if tr.host.Proxy != nil {
		t.Error("the transport of servers on network host uses a proxy")
	}
	if tr.any.Proxy == nil {
		t.Error("the transport of servers on network any ignores HTTP_PROXY/HTTPS_PROXY")
	}
	if tr.host == tr.any {
		t.Error("one connection pool for both networks")
	}
	req, _ := http.NewRequest(http.MethodPost, "http://169.254.169.254/mcp", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Error("a request without a forwarded server reached 169.254.169.254")
	}
}
