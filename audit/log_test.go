package audit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/store"
)

type engine struct {
	name string
	cfg  func(testing.TB) store.Config
}

var engines = []engine{
	{"sqlite", func(t testing.TB) store.Config { return store.Config{DataDir: t.TempDir()} }},
	{"postgres", func(t testing.TB) store.Config {
		return store.Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second}
	}},
}

func openStore(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// countingStore counts the transactions of the store it wraps.
type countingStore struct {
	audit.Store
	txs atomic.Int64
}

func (c *countingStore) AppendAudit(ctx context.Context, es []audit.Entry) error {
	c.txs.Add(1)
	return c.Store.AppendAudit(ctx, es)
}

// TestLogGroupCommit: many concurrent appenders; every Append returns only once its row can be
// read, all entries are there, the chain verifies, and appends shared transactions.
func TestLogGroupCommit(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			s := openStore(t, eng.cfg(t))
			cs := &countingStore{Store: s}
			l := audit.NewLog(cs, audit.Options{})
			ctx := context.Background()
			const goroutines, each = 32, 10
			var wg sync.WaitGroup
			errs := make(chan error, goroutines*each)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						agent := fmt.Sprintf("agent-%d-%d", g, i)
						if err := l.Append(ctx, audit.Entry{Host: "acme", AgentID: agent, Decision: audit.Allowed, Tool: "t"}); err != nil {
							errs <- err
							return
						}
						got, err := s.ListAudit(ctx, audit.Filter{Host: "acme", AgentID: agent}, 0, 10)
						if err != nil || len(got) != 1 {
							errs <- fmt.Errorf("after Append returned, entry of %s reads as %d rows, %v", agent, len(got), err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			noErr(t, l.Close(ctx))
			heads, err := s.AuditHeads(ctx)
			noErr(t, err)
			sum, err := audit.Verify(ctx, s, "acme", &heads[0])
			noErr(t, err)
			if sum.Entries != goroutines*each {
				t.Fatalf("%d entries, want %d", sum.Entries, goroutines*each)
			}
			if n := cs.txs.Load(); n >= goroutines*each {
				t.Errorf("%d transactions for %d appends: no batching", n, goroutines*each)
			}
			t.Logf("%d appends in %d transactions", goroutines*each, cs.txs.Load())
			if err := l.Append(ctx, audit.Entry{Host: "acme", Decision: audit.Allowed}); !errors.Is(err, audit.ErrClosed) {
				t.Fatalf("Append after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// TestLogCloseFlushes: entries recorded without waiting are written by Close.
func TestLogCloseFlushes(t *testing.T) {
	s := openStore(t, engines[0].cfg(t))
	l := audit.NewLog(s, audit.Options{})
	for i := range 100 {
		l.Record(audit.Entry{Host: "acme", Decision: audit.Result, LatencyMS: int64(i)})
	}
	noErr(t, l.Close(context.Background()))
	got, err := s.ListAudit(context.Background(), audit.Filter{Host: "acme"}, 0, 0)
	noErr(t, err)
	if len(got) != 100 || l.Lost() != 0 {
		t.Fatalf("%d entries written, %d lost; want 100, 0", len(got), l.Lost())
	}
}

type failingStore struct{ err error }

func (f failingStore) AppendAudit(context.Context, []audit.Entry) error { return f.err }

// blockingStore holds every write until release is closed.
type blockingStore struct{ release chan struct{} }

func (b blockingStore) AppendAudit(ctx context.Context, _ []audit.Entry) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestLogFailures(t *testing.T) {
	ctx := context.Background()
	down := errors.New("database down")
	l := audit.NewLog(failingStore{down}, audit.Options{})
	if err := l.Append(ctx, audit.Entry{Host: "acme", Decision: "maybe"}); err == nil || errors.Is(err, down) {
		t.Fatalf("Append of an invalid entry = %v, want it refused before the store", err)
	}
	if err := l.Append(ctx, audit.Entry{Host: "acme", Decision: audit.Allowed}); !errors.Is(err, down) {
		t.Fatalf("Append on a failing store = %v, want its error", err)
	}
	l.Record(audit.Entry{Host: "acme", Decision: audit.Result})
	noErr(t, l.Close(ctx))
	if l.Lost() != 1 {
		t.Fatalf("Lost = %d after a failed Record, want 1", l.Lost())
	}

	// A cancelled context ends the wait; a full queue makes Record drop.
	bs := blockingStore{release: make(chan struct{})}
	l = audit.NewLog(bs, audit.Options{QueueSize: 1, MaxBatch: 1})
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Append(cctx, audit.Entry{Host: "acme", Decision: audit.Allowed}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with a store that hangs = %v, want the context's error", err)
	}
	l.Record(audit.Entry{Host: "acme", Decision: audit.Result}) // fills the queue
	l.Record(audit.Entry{Host: "acme", Decision: audit.Result}) // dropped
	if l.Lost() != 1 {
		t.Fatalf("Lost = %d with a full queue, want 1", l.Lost())
	}
	close(bs.release)
	noErr(t, l.Close(ctx))
}

// BenchmarkLogAppend measures durable appends per second and their latency with 1 and 32
// concurrent appenders.
func BenchmarkLogAppend(b *testing.B) {
	for _, eng := range engines {
		for _, conc := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/appenders=%d", eng.name, conc), func(b *testing.B) {
				s := openStore(b, eng.cfg(b))
				l := audit.NewLog(s, audit.Options{})
				defer func() { _ = l.Close(context.Background()) }()
				ctx := context.Background()
				lat := make([]time.Duration, b.N)
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range conc {
					wg.Go(func() {
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							t0 := time.Now()
							if err := l.Append(ctx, audit.Entry{Host: "acme", Decision: audit.Allowed, Tool: "search", Server: "docs", AgentID: "agent"}); err != nil {
								b.Error(err)
								return
							}
							lat[i] = time.Since(t0)
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
