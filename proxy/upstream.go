package proxy

import (
	"fmt"
	"net/http"
	"time"

	"github.com/trustgate/trustgate/credentials"
	"github.com/trustgate/trustgate/store"
)

// newTransport is the one upstream transport: pooled connections, no overall timeout (SSE
// streams last as long as they need; per-server timeouts are applied per request, see
// timeouts.go), and no transparent compression (it would delay SSE events and hide bodies
// from the filter).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialContext, // the server's connect timeout
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// credential unseals a server's static header credential in memory ("" when it has none).
func (p *Proxy) credential(s store.Server) (name, value string, err error) {
	if s.CredentialKind != credentials.KindNone && s.CredentialKind != credentials.KindHeader {
		return "", "", fmt.Errorf("credential kind %q is not supported by the proxy yet", s.CredentialKind)
	}
	c, err := credentials.Open(p.cfg.Keys, s)
	if err != nil {
		return "", "", err
	}
	name, value, _ = c.HeaderOf()
	return name, value, nil
}
