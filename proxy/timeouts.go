package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/store"
)

// Per-server upstream timeouts. The proxy keeps one pooled transport per network policy (a
// connection pool per upstream host; see transports in upstream.go) and applies each server's timeouts per request instead of building a
// transport per server: the dial reads the connect timeout from the request's context, a
// timer bounds the wait for the response header, and the response body ends an idle stream.
// A transport per server would split the pool, leak idle connections when servers change,
// and still need per-request state for streams.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultFirstByteTimeout = 60 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
)

// timeouts of one server (defaults filled in).
type timeouts struct {
	connect, firstByte, idle time.Duration
}

func timeoutsOf(s store.Server) timeouts {
	t := timeouts{connect: s.ConnectTimeout, firstByte: s.FirstByteTimeout, idle: s.IdleTimeout}
	if t.connect <= 0 {
		t.connect = DefaultConnectTimeout
	}
	if t.firstByte <= 0 {
		t.firstByte = DefaultFirstByteTimeout
	}
	if t.idle <= 0 {
		t.idle = DefaultIdleTimeout
	}
	return t
}

var (
	errFirstByte = errors.New("first-byte timeout")
	errIdle      = errors.New("idle stream timeout")
)

// timeoutError: the upstream did not answer in time.
type timeoutError struct {
	what  string // "connect", "first-byte"
	after time.Duration
}

func (e *timeoutError) Error() string { return fmt.Sprintf("%s timeout after %s", e.what, e.after) }

// dialContext dials with the connect timeout of the request's server, under policy.
func dialContext(policy ssrf.Policy) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := policy.Dialer(DefaultConnectTimeout)
		if fw := forwardOf(ctx); fw != nil && fw.timeouts.connect > 0 {
			d.Timeout = fw.timeouts.connect
		}
		conn, err := d.DialContext(ctx, network, addr)
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %w", &timeoutError{"connect", d.Timeout}, err)
		}
		return conn, err
	}
}

// timeoutTransport bounds the wait for the response header and the silence of a response
// body by the forwarded request's server timeouts.
type timeoutTransport struct{ next http.RoundTripper }

func (t timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	fw := forwardOf(req.Context())
	if fw == nil {
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(fw.timeouts.firstByte, func() { cancel(errFirstByte) })
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	fired := !timer.Stop()
	if err == nil && fired {
		_ = resp.Body.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		if errors.Is(context.Cause(ctx), errFirstByte) {
			err = &timeoutError{"first-byte", fw.timeouts.firstByte}
		}
		cancel(nil)
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, fw.timeouts.idle, cancel, ctx, idleTail(resp, fw))
	return resp, nil
}

// idleTail is what an SSE response stream to a request ends with when the upstream falls
// silent: a JSON-RPC error answering the request. Other bodies just end (nil). The tail is
// made only when the stream does fall silent, not for every answer.
func idleTail(resp *http.Response, fw *forward) func() []byte {
	if mediaTypeOf(resp.Header.Get("Content-Type")) != "text/event-stream" {
		return nil
	}
	if fw.msg == nil || fw.msg.kind != kindRequest {
		return func() []byte { return []byte{} } // a GET stream: end it cleanly, the client opens a new one
	}
	return func() []byte { return requestIdleTail(fw) }
}

// requestIdleTail is the idle tail of the stream answering fw's request.
func requestIdleTail(fw *forward) []byte {
	data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": fw.msg.id, "error": map[string]any{
		"code":    ErrCodeUpstream,
		"message": fmt.Sprintf("the MCP server %s sent nothing for %s; trustgate ended the stream", fw.serverName, fw.timeouts.idle),
	}})
	if err != nil {
		return []byte{}
	}
	// "\n\n" first ends whatever partial line or event came before.
	return sse.AppendEvent([]byte("\n\n"), sse.Event{Type: "message", Data: data})
}

// idleBody ends a response body on which nothing arrived for idle: with makeTail's tail and
// EOF when makeTail is non-nil, else with the error.
type idleBody struct {
	body     io.ReadCloser
	idle     time.Duration
	timer    *time.Timer
	cancel   context.CancelCauseFunc
	ctx      context.Context
	makeTail func() []byte
	tail     []byte // made once the timeout hit

	mu    sync.Mutex
	ended bool // the idle timeout hit: hand out the tail, then EOF
}

func newIdleBody(body io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc, ctx context.Context, makeTail func() []byte) *idleBody {
	b := &idleBody{body: body, idle: idle, cancel: cancel, ctx: ctx, makeTail: makeTail}
	b.timer = time.AfterFunc(idle, func() { cancel(errIdle) })
	b.timer.Stop() // runs only while a Read waits
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	ended := b.ended
	b.mu.Unlock()
	if ended {
		return b.readTail(p)
	}
	// Only the time spent waiting for the upstream counts: a slow client (back-pressure) is
	// not an idle upstream.
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && endsStreamCleanly(context.Cause(b.ctx)) {
		// A GET stream closed at shutdown or because its token no longer stands: end it as if
		// the upstream had (cleanly, so that the client reconnects rather than reporting a
		// broken connection).
		b.mu.Lock()
		b.ended, b.tail = true, nil
		b.mu.Unlock()
		return n, io.EOF
	}
	if err != nil && errors.Is(context.Cause(b.ctx), errIdle) {
		if b.makeTail == nil {
			return n, fmt.Errorf("upstream stream: %w after %s", errIdle, b.idle)
		}
		b.mu.Lock()
		b.ended, b.tail = true, b.makeTail()
		b.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		return b.readTail(p)
	}
	return n, err
}

func (b *idleBody) readTail(p []byte) (int, error) {
	if len(b.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.tail)
	b.tail = b.tail[n:]
	return n, nil
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}
