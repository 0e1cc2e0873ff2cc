package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/forwarded"
)

// Appender is what the proxy and the admin API write entries through.
type Appender interface {
	// Append returns once e is durable in the store, or with the reason it is not.
	Append(ctx context.Context, e Entry) error
	// Record queues e without waiting. An entry that cannot be written is logged as lost.
	Record(e Entry)
}

// Store is what Log needs of the store: AppendAudit writes the entries in one transaction,
// assigning each its host's next sequence number and chaining its hash (see Chain).
type Store interface {
	AppendAudit(ctx context.Context, entries []Entry) error
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log is closed")

// Options tune a Log. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the entries waiting to be written (default 4096). Append waits for
	// room; Record drops (and logs) an entry when the queue is full.
	QueueSize int
	// MaxBatch bounds the entries of one transaction (default 512).
	MaxBatch int
	// WriteTimeout bounds one transaction (default 10s).
	WriteTimeout time.Duration
	Logger       *slog.Logger
}

// Log makes entries durable with group commit: one goroutine takes whatever is waiting, writes
// it in one transaction, and wakes every waiter; concurrent appends share a commit.
type Log struct {
	store Store
	opts  Options
	log   *slog.Logger

	mu     sync.RWMutex // held for reading while sending to queue; for writing by Close
	closed bool
	queue  chan request
	done   chan struct{}
	lost   atomic.Int64
}

type request struct {
	e    Entry
	done chan error // nil for Record
}

// NewLog starts the writer goroutine; Close stops it.
func NewLog(s Store, opts Options) *Log {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{store: s, opts: opts, log: opts.Logger, queue: make(chan request, opts.QueueSize), done: make(chan struct{})}
	go l.run()
	return l
}

var _ Appender = (*Log)(nil)

// Append queues e and waits until its transaction committed. When ctx ends first, Append
// returns ctx's error; the entry may still be written.
//
// An entry without a client address gets the one the request's context carries (see
// internal/forwarded), so that every change made over HTTP names where it came from.
func (l *Log) Append(ctx context.Context, e Entry) error {
	if e.ClientAddr == "" {
		e.ClientAddr = forwarded.ClientAddrFrom(ctx)
	}
	if err := e.check(); err != nil {
		return err
	}
	done := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- request{e: e, done: done}:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Record queues e without waiting. When the queue is full, the log is closed or the write
// fails, the entry is lost: that is logged at error level and counted (Lost).
func (l *Log) Record(e Entry) {
	if err := e.check(); err != nil {
		l.lose(e, err)
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.lose(e, ErrClosed)
		return
	}
	select {
	case l.queue <- request{e: e}:
	default:
		l.lose(e, errors.New("audit queue full"))
	}
}

// check refuses an entry the store would refuse, before it can fail a whole batch.
func (e Entry) check() error {
	if e.Host == "" || len(e.Host) > maxShort {
		return fmt.Errorf("audit entry: host %q: want a host key", e.Host)
	}
	if !e.Decision.Valid() {
		return fmt.Errorf("audit entry: decision %q: want allowed, denied, error, admin, result or identity", e.Decision)
	}
	return nil
}

// Lost counts the entries Record could not write.
func (l *Log) Lost() int64 { return l.lost.Load() }

func (l *Log) lose(e Entry, err error) {
	l.lost.Add(1)
	l.log.Error("audit entry lost", "host", e.Host, "decision", e.Decision, "server", e.Server,
		"tool", e.Tool, "method", e.Method, "agent", e.AgentID, "request_id", e.RequestID, "err", err)
}

// Close stops taking entries, writes those already queued, and returns when they are written
// or ctx ends.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the group commit loop.
func (l *Log) run() {
	defer close(l.done)
	batch := make([]request, 0, l.opts.MaxBatch)
	entries := make([]Entry, 0, l.opts.MaxBatch)
	for {
		r, ok := <-l.queue
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < l.opts.MaxBatch {
			select {
			case r, ok := <-l.queue:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		entries = entries[:0]
		for _, r := range batch {
			entries = append(entries, r.e)
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.opts.WriteTimeout)
		err := l.store.AppendAudit(ctx, entries)
		cancel()
		if err != nil {
			l.log.Error("audit: write failed", "entries", len(entries), "err", err)
		}
		for _, r := range batch {
			if r.done != nil {
				r.done <- err
			} else if err != nil {
				l.lose(r.e, err)
			}
		}
	}
}
