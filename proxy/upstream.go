package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/upstreamauth"
)

// ErrCodeReconsent: the upstream MCP server needs the human's own authorization and trustgate
// holds none that works for them (never obtained, refresh refused, or the upstream refused the
// token). Stable. Reconnecting the MCP client runs consent again, which signs the human in to
// the upstream. The error's data is {server, reconnect: true}.
const ErrCodeReconsent = -31004

// UpstreamTokens gives a human's access token for a server's upstream (upstreamauth.Client):
// found is false when the human has none; an error wrapping upstreamauth.ErrReconsent means
// the human must consent again.
type UpstreamTokens interface {
	AccessToken(ctx context.Context, host, userID, server string) (token string, found bool, err error)
}

// newTransport is an upstream transport: pooled connections, no overall timeout (SSE streams
// last as long as they need; per-server timeouts are applied per request, see timeouts.go),
// and no transparent compression (it would delay SSE events and hide bodies from the filter).
// Its dialer checks every address it connects to (after DNS resolution) against policy, and
// it uses a proxy from the environment only when policy allows every address: a proxy would
// connect to the server itself, out of reach of the check.
func newTransport(policy ssrf.Policy) *http.Transport {
	return &http.Transport{
		Proxy:                 policy.Proxy(),
		DialContext:           dialContext(policy), // the server's connect timeout
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// transports are the proxy's two upstream transports: one for servers on network "host"
// (public addresses and the operator's prefixes), one for servers on "any". Two pools, so that
// a connection opened for a server on "any" is never reused for one on "host".
type transports struct {
	host, any *http.Transport
}

func newTransports(hostPolicy ssrf.Policy) *transports {
	return &transports{host: newTransport(hostPolicy), any: newTransport(ssrf.AllowAll())}
}

// RoundTrip sends the request through the transport of its server's network; a request
// without a forwarded server goes through the restricted one.
func (t *transports) RoundTrip(req *http.Request) (*http.Response, error) {
	if fw := forwardOf(req.Context()); fw != nil && fw.network == store.NetworkAny {
		return t.any.RoundTrip(req)
	}
	return t.host.RoundTrip(req)
}

func (t *transports) CloseIdleConnections() {
	t.host.CloseIdleConnections()
	t.any.CloseIdleConnections()
}

// errReconsent is a credential error the human fixes by reconnecting their client.
type errReconsent struct{ cause error }

func (e *errReconsent) Error() string { return "upstream authorization needed: " + e.cause.Error() }
func (e *errReconsent) Unwrap() error { return e.cause }

// credential is the header to send upstream for the human on the server, in memory only: the
// server's static header credential when it has one, else the human's own upstream OAuth token
// when they hold one (refreshed when due), else none (name ""). human is true when a 401 from
// the upstream is the human's to fix: their token, or no credential at all. A server set up
// with an upstream OAuth client (upstreamauth.CredentialKindOAuthClient) and no token of the human's is an
// *errReconsent.
func (p *Proxy) credential(ctx context.Context, s store.Server, userID string) (name, value string, human bool, err error) {
	if p.cfg.Upstream != nil && userID != "" && s.CredentialKind != upstreamauth.CredentialKindHeader {
		tok, found, err := p.cfg.Upstream.AccessToken(ctx, s.Host, userID, s.Key)
		switch {
		case errors.Is(err, upstreamauth.ErrReconsent):
			return "", "", false, &errReconsent{err}
		case err != nil:
			return "", "", false, err
		case found:
			return "Authorization", "Bearer " + tok, true, nil
		}
	}
	switch s.CredentialKind {
	case upstreamauth.CredentialKindNone:
		// Without a credential of its own, an upstream that refuses the call wants the human's
		// sign-in: a 401 then asks the human to reconnect (when upstream OAuth is on).
		return "", "", p.cfg.Upstream != nil, nil
	case upstreamauth.CredentialKindOAuthClient:
		return "", "", false, &errReconsent{errors.New("no upstream token for this human")}
	case upstreamauth.CredentialKindHeader:
	default:
		return "", "", false, fmt.Errorf("credential kind %q is not supported by the proxy", s.CredentialKind)
	}
	if name, value, ok := p.headers.get(s); ok {
		return name, value, false, nil
	}
	c, err := upstreamauth.OpenCredentials(p.cfg.Keys, s)
	if err != nil {
		return "", "", false, err
	}
	name, value, _ = c.HeaderOf()
	p.headers.put(s, name, value)
	return name, value, false, nil
}

// maxOpenedHeaders bounds the opened header credentials a proxy keeps; when full it starts over.
const maxOpenedHeaders = 1024

// openedHeaders keeps servers' header credentials once unsealed (an AES-GCM open and a JSON
// decode on every call otherwise), by the sealed bytes the store holds: a credential changed
// in the store is sealed anew and so is opened again, and an entry counts only for the host
// and server it was opened for (the seal is bound to them).
type openedHeaders struct {
	mu sync.Mutex
	m  map[string]openedHeader
}

type openedHeader struct{ host, server, name, value string }

func (o *openedHeaders) get(s store.Server) (name, value string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, found := o.m[string(s.Credentials)]
	if !found || h.host != s.Host || h.server != s.Key {
		return "", "", false
	}
	return h.name, h.value, true
}

func (o *openedHeaders) put(s store.Server, name, value string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil || len(o.m) >= maxOpenedHeaders {
		o.m = make(map[string]openedHeader)
	}
	o.m[string(s.Credentials)] = openedHeader{host: s.Host, server: s.Key, name: name, value: value}
}

// credentialRefusal answers a request whose upstream credential could not be had.
func credentialRefusal(fw *forward, err error) *refusal {
	if errors.As(err, new(*errReconsent)) {
		return &refusal{form: formReject, status: http.StatusBadGateway, code: ErrCodeReconsent,
			message: reconsentMessage(fw.serverName), data: reconsentData(fw.server),
			audited: audit.Error, reason: "the human's upstream sign-in is missing or expired: re-consent needed",
			logMsg: "proxy: upstream authorization needed", logLevel: slog.LevelInfo, cause: err}
	}
	return &refusal{form: formReject, status: http.StatusBadGateway, code: ErrCodeUpstream,
		message: fmt.Sprintf("the MCP server %s could not be reached: trustgate could not use its stored credentials", fw.serverName),
		audited: audit.Error, reason: "the server's stored credentials could not be used",
		logMsg: "proxy: server credentials", logLevel: slog.LevelError, cause: err}
}

func reconsentMessage(serverName string) string {
	return fmt.Sprintf("the MCP server %s needs you to sign in to it again: reconnect this app to trustgate (run its sign-in again) to renew your access", serverName)
}

func reconsentData(server string) map[string]any {
	return map[string]any{"server": server, "reconnect": true}
}
