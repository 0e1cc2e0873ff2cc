package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// GenerationMaxAge bounds how long a process answers ControlGeneration from memory: a
// generation read from the database is used for this long after the read began, then read
// again. A process that changes the control plane forgets its own remembered generation at
// once and returns from the change only after GenerationMaxAge has passed since the commit, so
// every process on the same database (replicas, the CLI) reads the new generation for any
// request that starts after the change returned: the hot path reads the database about every
// GenerationMaxAge instead of once per request, and never serves a decision older than a change
// acknowledged before the request began.
const GenerationMaxAge = 5 * time.Millisecond

// ControlGeneration is the control plane's generation: a number that grows with every committed
// change to hosts, humans, servers, tools, grants, agents, consents or upstream tokens (not with
// audit entries, OAuth state or outbox work). Readers cache those objects against it.
func (s *sqlStore) ControlGeneration(ctx context.Context) (int64, error) {
	return s.gen.read(ctx, func(ctx context.Context) (int64, error) {
		var n int64
		if err := s.db.q().queryRow(ctx, "SELECT n FROM control_generation WHERE id = 1").Scan(&n); err != nil {
			return 0, fmt.Errorf("read the control-plane generation: %w", err)
		}
		return n, nil
	})
}

// controlTx is writeTx for changes to the control plane's objects: the generation grows in the
// same transaction, so a reader never pairs a new generation with old data or the reverse.
func (s *sqlStore) controlTx(ctx context.Context, fn func(querier) error) error {
	return s.db.writeTx(ctx, func(q querier) error {
		if err := fn(q); err != nil {
			return err
		}
		return advanceGeneration(ctx, q)
	})
}

// advanceGeneration grows the control-plane generation, inside the transaction that changed it.
// The transaction's writeTx (generationBackend) then makes the change visible to every process
// before it returns.
func advanceGeneration(ctx context.Context, q querier) error {
	if _, err := q.exec(ctx, "UPDATE control_generation SET n = n + 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("advance the control-plane generation: %w", err)
	}
	if g, ok := q.(*generationQuerier); ok {
		g.advanced = true
	}
	return nil
}

// generationClock remembers the generation this process read last, and when that read began.
type generationClock struct {
	maxAge time.Duration
	// last is the remembered generation (nil: none).
	last atomic.Pointer[generationRead]
	// epoch grows with every change this process commits: a read that began before one is
	// not remembered.
	mu    sync.Mutex
	epoch uint64
}

type generationRead struct {
	n     int64
	began time.Time
}

func newGenerationClock(maxAge time.Duration) *generationClock {
	return &generationClock{maxAge: maxAge}
}

// read returns the remembered generation while it is younger than maxAge, else reads it with
// load (concurrent callers may each read; the youngest read is remembered).
func (c *generationClock) read(ctx context.Context, load func(context.Context) (int64, error)) (int64, error) {
	if r := c.last.Load(); r != nil && time.Since(r.began) < c.maxAge {
		return r.n, nil
	}
	c.mu.Lock()
	epoch := c.epoch
	c.mu.Unlock()
	began := time.Now()
	n, err := load(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.last.Load(); c.epoch == epoch && (r == nil || began.After(r.began)) {
		c.last.Store(&generationRead{n: n, began: began})
	}
	return n, nil
}

// changed forgets the remembered generation: this process committed a change (or may have).
func (c *generationClock) changed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.last.Store(nil)
}

// generationBackend is a backend whose write transactions that advance the control-plane
// generation are seen by every process once they return (see GenerationMaxAge).
type generationBackend struct {
	backend
	clock *generationClock
}

// generationQuerier is one attempt of a write transaction; advanceGeneration marks it.
type generationQuerier struct {
	querier
	advanced bool
}

func (b generationBackend) writeTx(ctx context.Context, fn func(querier) error) error {
	advanced := false
	err := b.backend.writeTx(ctx, func(q querier) error {
		g := &generationQuerier{querier: q}
		err := fn(g)
		advanced = advanced || g.advanced
		return err
	})
	if !advanced {
		return err
	}
	// Forgotten even when the commit failed: a failed commit may still have been applied.
	b.clock.changed()
	if err != nil {
		return err
	}
	// Every other process remembers a generation read at most maxAge ago: once maxAge has
	// passed since the commit, each reads one that includes it.
	t := time.NewTimer(b.clock.maxAge)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
