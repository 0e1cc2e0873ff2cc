package discovery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
)

// newHTTPClient returns the client the SDK transport uses: opts.HTTPClient (copied) or a default
// client dialling under opts.Policy, with a transport that adds the static headers, bounds response bodies and tells the
// observer what happened on the wire.
//
// deadline is the end of the discovery. Requests the SDK sends outside a call (the DELETE that
// ends the session, on a context of its own) are held to it as well.
func newHTTPClient(endpoint *url.URL, opts Options, obs *observer, deadline time.Time) *http.Client {
	var c http.Client
	if opts.HTTPClient != nil {
		c = *opts.HTTPClient
	} else {
		c.Timeout = opts.Timeout
	}
	base := c.Transport
	if base == nil && opts.HTTPClient == nil {
		t := opts.Policy.Transport() // one discovery's own: no connection outlives it
		t.DisableKeepAlives = true
		base = t
	} else if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &transport{base: base, endpoint: endpoint, header: opts.Header.Clone(), obs: obs, deadline: deadline}
	return &c
}

// transport wraps the real round tripper of a discovery.
type transport struct {
	base     http.RoundTripper
	endpoint *url.URL
	header   http.Header
	obs      *observer
	deadline time.Time
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := t.requestContext(req)
	req = req.Clone(ctx)
	if len(t.header) > 0 && t.sameHost(req.URL) {
		for k, vs := range t.header {
			// The SDK's own headers (content negotiation, session, protocol version) win.
			if len(req.Header.Values(k)) == 0 {
				req.Header[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
			}
		}
	}
	observed := req.Method == http.MethodPost || req.Method == http.MethodGet
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		// A cancelled request is the SDK's or the deadline's doing, not the upstream's.
		if observed && ctx.Err() == nil {
			t.obs.record(&observation{kind: ErrUnreachable, reason: netReason(err), cause: err})
		}
		cancel()
		return nil, err
	}
	if observed {
		t.inspect(req, resp)
	}
	resp.Body = &limitedBody{rc: resp.Body, remaining: MaxResponseBytes, obs: t.obs, cancel: cancel}
	return resp, nil
}

// requestContext derives the context of a request, held to the discovery's deadline. A request
// already bound by that deadline (every call) keeps its context's deadline, so that it fails
// only once the caller's or the discovery's context has ended, never a moment before on a timer
// of its own.
func (t *transport) requestContext(req *http.Request) (context.Context, context.CancelFunc) {
	if d, ok := req.Context().Deadline(); ok && !d.After(t.deadline) {
		return context.WithCancel(req.Context())
	}
	return context.WithDeadline(req.Context(), t.deadline)
}

// sameHost reports whether u is the upstream itself (or its https:// upgrade), the only place
// the static headers may go.
func (t *transport) sameHost(u *url.URL) bool {
	return u.Host == t.endpoint.Host && (u.Scheme == t.endpoint.Scheme || u.Scheme == "https")
}

// inspect records a response that shows the upstream is not (or not accessibly) an MCP server.
func (t *transport) inspect(req *http.Request, resp *http.Response) {
	code := resp.StatusCode
	status := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		t.obs.record(&observation{kind: ErrUnauthorized, status: code, reason: status})
	case code == http.StatusTooManyRequests || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		t.obs.record(&observation{kind: ErrUnreachable, reason: "it answered " + status})
	case code >= 300 && code < 400 && resp.Header.Get("Location") != "":
		// A redirect the client may follow; the final response is inspected in its turn.
	case code < 200 || code >= 300:
		t.obs.record(&observation{kind: ErrNotMCP, reason: status})
	case code == http.StatusAccepted || code == http.StatusNoContent || !expectsBody(req):
		// Notifications are answered without a body.
	default:
		ct := resp.Header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(ct)
		if mt != "application/json" && mt != "text/event-stream" {
			if ct == "" {
				ct = "(none)"
			}
			if mt != "" {
				ct = mt
			}
			t.obs.record(&observation{kind: ErrNotMCP, reason: "unexpected content type " + truncateRunes(ct, 60)})
		}
	}
}

// expectsBody reports whether req is a JSON-RPC call (a message with an id), whose answer must
// be JSON or an event stream. A GET (only sent when a redirect turned a POST into one) is
// treated as a call: its answer replaces the call's.
func expectsBody(req *http.Request) bool {
	if req.Method != http.MethodPost || req.GetBody == nil {
		return true
	}
	body, err := req.GetBody()
	if err != nil {
		return true
	}
	defer body.Close()
	var msg struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&msg); err != nil {
		return true
	}
	return len(msg.ID) > 0 && !bytes.Equal(msg.ID, []byte("null"))
}

// netReason names a transport error briefly, without the URL.
func netReason(err error) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, ssrf.ErrForbiddenAddress):
		return "its address is not on a network this server may reach (the server's network and the gateway's --upstream-allow-cidr decide)"
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Sprintf("DNS lookup of %q found no such host", dnsErr.Name)
		}
		return fmt.Sprintf("DNS lookup of %q failed", dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.As(err, &unknownCA), errors.As(err, &hostnameErr), errors.As(err, &invalidCert):
		return "its TLS certificate is not trusted"
	case errors.As(err, &recordErr):
		return "TLS handshake failed (is it an http:// server?)"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "connection timed out"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed without an answer"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	return "network error"
}

// limitedBody fails a read once more than MaxResponseBytes have been read, and releases the
// request's context when closed.
type limitedBody struct {
	rc        io.ReadCloser
	remaining int64
	obs       *observer
	cancel    context.CancelFunc
}

var errTooLarge = fmt.Errorf("response body larger than %d MiB", MaxResponseBytes>>20)

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.remaining {
		b.obs.record(&observation{kind: ErrNotMCP, reason: fmt.Sprintf("a response is larger than %d MiB", MaxResponseBytes>>20)})
		n = int(b.remaining)
		b.remaining = 0
		return n, errTooLarge
	}
	b.remaining -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// observation is a notable event on the wire.
type observation struct {
	kind   error  // ErrUnreachable, ErrUnauthorized or ErrNotMCP
	status int    // HTTP status, for ErrUnauthorized
	reason string // short and credential-free
	cause  error
}

// observer keeps the first notable event of a discovery; it is shared by the SDK's goroutines.
type observer struct {
	mu  sync.Mutex
	obs *observation
}

func (o *observer) record(ob *observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.obs == nil {
		o.obs = ob
	}
}

func (o *observer) first() *observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.obs
}
