// Package httplimit bounds what HTTP clients can hold of the gateway: the number of open
// connections (Listener) and the time a request body may take to arrive (BodyTimeout).
//
// Without these, a client that opens connections and sends request bodies one byte at a time
// holds a file descriptor per connection for as long as it likes, before anything has
// authenticated it; a few thousand such connections exhaust the process's descriptors and the
// gateway stops accepting connections, health checks included.
//
// The Listener keeps at most Max connections open. When a new connection arrives at the limit,
// the oldest connection that has not authenticated is closed to make room (Trust marks a
// connection as authenticated: the proxy and the admin API call it once a request's
// credentials are verified); when every open connection is authenticated, the new one is
// closed at once (it was accepted, so it does not wait in the kernel's backlog). Health checks
// and new clients therefore get in while slow unauthenticated clients are being shed.
package httplimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Listener limits the number of open connections of a net.Listener (see the package
// documentation). Give its ConnContext to the http.Server.
type Listener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*conn]struct{}
	seq   uint64

	evicted atomic.Int64 // unauthenticated connections closed to make room
	refused atomic.Int64 // new connections closed because every open one is authenticated
}

// NewListener limits l to max open connections (max ≤ 0: no limit, connections are still
// tracked so that Trust works).
func NewListener(l net.Listener, max int) *Listener {
	return &Listener{Listener: l, max: max, conns: map[*conn]struct{}{}}
}

// conn is one accepted connection.
type conn struct {
	net.Conn
	l       *Listener
	seq     uint64 // accept order
	trusted atomic.Bool
	once    sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return err
}

// Accept accepts the next connection, making room for it at the limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim *conn
		if l.max > 0 && len(l.conns) >= l.max {
			for c := range l.conns {
				if !c.trusted.Load() && (victim == nil || c.seq < victim.seq) {
					victim = c
				}
			}
			if victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				_ = nc.Close()
				continue
			}
			delete(l.conns, victim)
		}
		l.seq++
		c := &conn{Conn: nc, l: l, seq: l.seq}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			_ = victim.Close()
		}
		return c, nil
	}
}

// Open is the number of open connections.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Evicted counts the unauthenticated connections closed to make room for new ones.
func (l *Listener) Evicted() int64 { return l.evicted.Load() }

// Refused counts the new connections closed because every open connection was authenticated.
func (l *Listener) Refused() int64 { return l.refused.Load() }

type connKey struct{}

// ConnContext is the http.Server's ConnContext: it lets Trust find the request's connection.
func (l *Listener) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok { // a *tls.Conn over the Listener's
		c = tc.NetConn()
	}
	if lc, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// Trust marks the connection of the request whose context ctx is as authenticated: the
// Listener closes it to make room only if it must (never, while unauthenticated connections
// are open). Call it once a request's credentials are verified. Without a Listener it does
// nothing.
func Trust(ctx context.Context) {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		c.trusted.Store(true)
	}
}

// DefaultBodyTimeout bounds the time a request body may take to arrive.
const DefaultBodyTimeout = 10 * time.Second

// BodyTimeout bounds the time each request's body may take to arrive to timeout, counted from
// when the handler starts (the headers are bounded by the server's ReadHeaderTimeout): a body
// still arriving then fails to read and the connection is closed. Once the body is read to its
// end, the deadline is lifted, so a long response (an SSE stream) is not cut and the server
// still notices a client that goes away. Requests without a body are not affected.
func BodyTimeout(next http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(timeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline when the body has been read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
