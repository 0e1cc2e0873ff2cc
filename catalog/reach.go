package catalog

import (
	"context"
	"fmt"
	"net/http"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// reach is how the catalog reaches upstream servers to discover their tools: one transport per
// network policy, so that a connection pooled for a server on "any" is never reused for one on
// "host".
type reach struct {
	opts          discovery.Options
	hostTransport http.RoundTripper
	anyTransport  http.RoundTripper
}

func newReach(opts discovery.Options, hostNetworks ssrf.Policy) reach {
	return reach{opts: opts, hostTransport: hostNetworks.Transport(), anyTransport: ssrf.AllowAll().Transport()}
}

// discoveryOptions are the discovery options for a server on network: an HTTP client whose
// dialer checks every address it connects to against the network's policy (after DNS
// resolution, so a name that changes what it resolves to is still checked), and that uses no
// proxy from the environment unless the network is "any".
func (c *Catalog) discoveryOptions(network string) discovery.Options {
	opts := c.reach.opts
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = discovery.DefaultTimeout
	}
	t := c.reach.hostTransport
	if network == store.NetworkAny {
		t = c.reach.anyTransport
	}
	opts.HTTPClient = &http.Client{Transport: t, Timeout: timeout}
	return opts
}

// Discover lists the tools of the server at rawURL, reached under network's policy, sending
// header (nil: none) with every request, and comparing what clients without the roots,
// sampling and elicitation capabilities are listed.
func (c *Catalog) Discover(ctx context.Context, rawURL, network string, header http.Header) (*discovery.Result, error) {
	opts := c.discoveryOptions(network)
	opts.CompareClients = true
	if header != nil {
		opts.Header = header
	}
	return discovery.Discover(ctx, rawURL, opts)
}

// DiscoverServer lists the tools of a stored server, reached under its network's policy with
// its header credential (unsealed in memory only).
func (c *Catalog) DiscoverServer(ctx context.Context, s store.Server) (*discovery.Result, error) {
	header := http.Header{}
	creds, err := upstreamauth.OpenCredentials(c.keys, s)
	if err != nil {
		return nil, fmt.Errorf("server %s: stored credentials: %w", s.Key, err)
	}
	if name, value, ok := creds.HeaderOf(); ok {
		header.Set(name, value)
	}
	return c.Discover(ctx, s.URL, s.Network, header)
}
