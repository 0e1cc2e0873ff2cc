package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// maxCachedStatements bounds the prepared statements kept per database: queries built at run
// time (lists with filters, multi-row inserts) are prepared once they are seen, up to the bound.
const maxCachedStatements = 512

// stmtCache keeps prepared statements of one database/sql pool, so that the hot path's
// queries are parsed and planned once, not on every call (SQLite spends more time preparing a
// point query than running it). database/sql re-prepares a statement on each connection that
// needs it and, inside a transaction, reuses the connection's copy.
type stmtCache struct {
	db *sql.DB

	mu        sync.Mutex
	stmts     map[string]*sql.Stmt
	preparing map[string]struct{}
	closed    bool
	// inflight counts background preparations (prepareLater): close waits for them, so that
	// none opens a connection after the pool is closed (with SQLite, a connection opened then
	// recreates the -wal and -shm files of a database that is being removed).
	inflight sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}, preparing: map[string]struct{}{}}
}

// get returns the prepared statement of query, preparing it on the pool when it is new, or nil
// when it cannot be prepared or the cache is full (the caller then runs the query unprepared,
// which reports any error itself). Only for callers that hold no connection of the pool: the
// preparation may need one.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	s, ok, full := c.lookup(query)
	if ok || full {
		return s
	}
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	return c.keep(query, s)
}

func (c *stmtCache) lookup(query string) (s *sql.Stmt, ok, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok = c.stmts[query]
	return s, ok, len(c.stmts)+len(c.preparing) >= maxCachedStatements
}

func (c *stmtCache) keep(query string, s *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[query]; ok { // prepared meanwhile by another caller
		_ = s.Close()
		return prev
	}
	c.stmts[query] = s
	return s
}

// prepareLater prepares query on the pool in the background, for a caller inside a transaction:
// it holds a connection, and preparing on the pool now could wait for one forever (every
// connection held by a transaction doing the same).
func (c *stmtCache) prepareLater(query string) {
	c.mu.Lock()
	if _, busy := c.preparing[query]; busy || c.closed {
		c.mu.Unlock()
		return
	}
	c.preparing[query] = struct{}{}
	c.inflight.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.inflight.Done()
		s, err := c.db.PrepareContext(context.Background(), query)
		c.mu.Lock()
		delete(c.preparing, query)
		closed := c.closed
		c.mu.Unlock()
		if err != nil {
			return
		}
		if closed {
			_ = s.Close()
			return
		}
		c.keep(query, s)
	}()
}

// close closes the cached statements; a background preparation that finishes later closes its
// statement at once. Call it before closing the pool, and wait after closing the pool.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	for q, s := range c.stmts {
		_ = s.Close()
		delete(c.stmts, q)
	}
	c.mu.Unlock()
}

// wait returns once no background preparation runs. Called after the pool is closed, it does
// not block on a connection: a preparation still waiting for one fails at once, and one that
// holds one has closed it when PrepareContext returns.
func (c *stmtCache) wait() { c.inflight.Wait() }

// waitFor is wait bounded by d; it reports whether every background preparation finished.
func (c *stmtCache) waitFor(d time.Duration) bool {
	finished := make(chan struct{})
	go func() { c.inflight.Wait(); close(finished) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-finished:
		return true
	case <-t.C:
		return false
	}
}

// cachedConn runs statements on the pool (tx nil) or in tx through the cache.
type cachedConn struct {
	cache *stmtCache
	tx    *sql.Tx
}

func (c cachedConn) stmt(ctx context.Context, query string) *sql.Stmt {
	if c.tx == nil {
		return c.cache.get(ctx, query)
	}
	s, ok, full := c.cache.lookup(query)
	if !ok {
		if !full {
			c.cache.prepareLater(query)
		}
		return nil
	}
	// The transaction's own copy, prepared on its connection (no other connection needed).
	return c.tx.StmtContext(ctx, s)
}

func (c cachedConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := c.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.ExecContext(ctx, query, args...)
	}
	return c.cache.db.ExecContext(ctx, query, args...)
}

func (c cachedConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := c.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.QueryContext(ctx, query, args...)
	}
	return c.cache.db.QueryContext(ctx, query, args...)
}

func (c cachedConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := c.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	if c.tx != nil {
		return c.tx.QueryRowContext(ctx, query, args...)
	}
	return c.cache.db.QueryRowContext(ctx, query, args...)
}
