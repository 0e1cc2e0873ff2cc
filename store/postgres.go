package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	crdbpgx "github.com/cockroachdb/cockroach-go/v2/crdb/crdbpgxv5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises migrations across processes
// ("trustgat" in ASCII).
const migrationLockKey int64 = 0x7472757374676174

// pgMaxTxAttempts bounds the retries of a PostgreSQL transaction that keeps failing with a
// serialization failure or a deadlock.
const pgMaxTxAttempts = 50

// pgBackend is PostgreSQL or CockroachDB through pgxpool: the same SQL, different transaction
// runners.
//
// CockroachDB transactions go through crdbpgx.ExecuteTx, which retries serialization failures
// inside the transaction with CockroachDB's "SAVEPOINT cockroach_restart" protocol (where the
// RELEASE is the real commit).
//
// PostgreSQL transactions do NOT: on PostgreSQL that protocol is wrong twice over. A
// SERIALIZABLE transaction keeps its snapshot across ROLLBACK TO SAVEPOINT, so the retried
// attempt fails again the same way; and ExecuteTx discards the error of the final COMMIT, which
// is exactly where PostgreSQL reports many serialization failures, so a lost write would be
// reported as success. PostgreSQL instead retries the whole transaction, in a new one, on
// SQLSTATE 40001 and 40P01, and checks the COMMIT.
type pgBackend struct {
	pool *pgxpool.Pool
	crdb bool
}

func openPostgres(ctx context.Context, engine, connURL string, timeout time.Duration, log *slog.Logger) (*pgBackend, error) {
	red := newRedactor(connURL)
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		return nil, red.err(fmt.Errorf("parse database URL %s: %w", redactURL(connURL), err))
	}
	addr := pgAddr(cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return nil, red.err(fmt.Errorf("%s at %s: %w", engine, addr, err))
	}
	if err := connectWithRetry(ctx, engine, addr, timeout, log, red, pool.Ping); err != nil {
		pool.Close()
		return nil, err
	}
	var version string
	if err := pool.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		pool.Close()
		return nil, red.err(fmt.Errorf("%s at %s: read server version: %w", engine, addr, err))
	}
	isCRDB := isCockroachVersion(version)
	if engine == EngineCockroachDB && !isCRDB {
		log.Warn("cockroachdb:// URL points at a server that does not say it is CockroachDB; using CockroachDB transactions anyway",
			"addr", addr, "version", version)
		isCRDB = true
	}
	log.Debug("connected to database", "addr", addr, "version", version)
	return &pgBackend{pool: pool, crdb: isCRDB}, nil
}

// isCockroachVersion reports whether the answer to SELECT version() comes from CockroachDB, which
// speaks PostgreSQL's protocol under postgres:// URLs too.
func isCockroachVersion(version string) bool { return strings.Contains(version, "CockroachDB") }

// pgAddr names the server for messages: host:port, or the socket directory.
func pgAddr(c pgconn.Config) string {
	if strings.HasPrefix(c.Host, "/") {
		return fmt.Sprintf("%s (unix socket, port %d)", c.Host, c.Port)
	}
	if strings.Contains(c.Host, ":") { // IPv6 literal
		return fmt.Sprintf("[%s]:%d", c.Host, c.Port)
	}
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

func (b *pgBackend) engine() string {
	if b.crdb {
		return EngineCockroachDB
	}
	return EnginePostgres
}

func (b *pgBackend) q() querier { return pgxQuerier{b.pool} }

func (b *pgBackend) writeTx(ctx context.Context, fn func(querier) error) error {
	return b.run(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
}

func (b *pgBackend) readTx(ctx context.Context, fn func(querier) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}
	if !b.crdb {
		// A read-only REPEATABLE READ transaction reads one consistent snapshot without taking
		// part in SSI's conflict tracking, where it could only make writers fail.
		opts.IsoLevel = pgx.RepeatableRead
	}
	return b.run(ctx, b.pool, opts, fn)
}

// migrateTx holds pg_advisory_xact_lock on PostgreSQL, so that processes starting together apply
// each migration once. It runs READ COMMITTED there: every statement after the lock sees what the
// previous lock holder committed. CockroachDB takes no lock (it does not implement PostgreSQL's
// advisory locks); there migrate tolerates a concurrent starter applying a migration first. On CockroachDB the
// session also gets serial_normalization = sql_sequence, so that SERIAL columns draw from a real
// sequence, strictly increasing like PostgreSQL's, rather than unique_rowid(), which two nodes'
// clocks may order differently from the commits (the outbox relies on the order of its ids).
func (b *pgBackend) migrateTx(ctx context.Context, fn func(querier) error) error {
	if !b.crdb {
		return b.run(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(q querier) error {
			if _, err := q.exec(ctx, "SELECT pg_advisory_xact_lock(?)", migrationLockKey); err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
			return fn(q)
		})
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET serial_normalization = 'sql_sequence'"); err != nil {
		return fmt.Errorf("set serial_normalization: %w", err)
	}
	return b.run(ctx, conn, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
}

// run runs fn in one transaction on conn (the pool or one connection), retrying as the engine
// requires.
func (b *pgBackend) run(ctx context.Context, conn crdbpgx.Conn, opts pgx.TxOptions, fn func(querier) error) error {
	if b.crdb {
		rec := &commitRecorder{conn: conn}
		err := crdbpgx.ExecuteTx(ctx, rec, opts, func(tx pgx.Tx) error { return fn(pgxQuerier{tx}) })
		if err == nil && rec.commitErr != nil {
			err = fmt.Errorf("commit: %w", rec.commitErr)
		}
		return err
	}
	constraintRetries := 0
	for attempt := 1; ; attempt++ {
		err := runPgTxOnce(ctx, conn, opts, fn)
		if err == nil || attempt >= pgMaxTxAttempts {
			return err
		}
		if !isRetryablePg(err) {
			// A unique or foreign-key violation can come from a concurrent transaction that
			// committed after this one's snapshot was taken: an upsert that found no row while
			// another inserted it, a child whose parent another deleted. PostgreSQL reports it as
			// such rather than as a serialization failure. Run again once or twice: the new
			// snapshot sees the other commit, and the store's own checks then take the update
			// path or return ErrConflict / ErrNotFound. An upsert must not instead fall back to
			// ON CONFLICT DO UPDATE: its outbox entries depend on the old row it read.
			if !(isUniqueViolation(err) || isForeignKeyViolation(err)) || constraintRetries >= 2 {
				return err
			}
			constraintRetries++
		}
		// Jittered backoff: 0..min(2^attempt ms, 100ms).
		maxWait := min(time.Millisecond<<min(attempt, 10), 100*time.Millisecond)
		if err := sleepCtx(ctx, rand.N(maxWait)+time.Microsecond); err != nil {
			return err
		}
	}
}

func runPgTxOnce(ctx context.Context, conn crdbpgx.Conn, opts pgx.TxOptions, fn func(querier) error) error {
	tx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committing := false
	defer func() {
		if !committing { // fn failed or panicked
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(pgxQuerier{tx}); err != nil {
		return err
	}
	committing = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isRetryablePg reports a serialization failure or a deadlock: the transaction may succeed if
// run again from the start.
func isRetryablePg(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "40P01"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// commitRecorder hands crdbpgx.ExecuteTx transactions whose Commit error is kept: ExecuteTx
// itself discards it.
type commitRecorder struct {
	conn      crdbpgx.Conn
	commitErr error
}

func (r *commitRecorder) Begin(ctx context.Context) (pgx.Tx, error) {
	return r.BeginTx(ctx, pgx.TxOptions{})
}

func (r *commitRecorder) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	tx, err := r.conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &recordingTx{Tx: tx, rec: r}, nil
}

type recordingTx struct {
	pgx.Tx
	rec *commitRecorder
}

func (t *recordingTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.rec.commitErr = err
	return err
}

func (b *pgBackend) tokens() map[string]string {
	return map[string]string{
		"serial_pk": "BIGSERIAL PRIMARY KEY",
	}
}

func (b *pgBackend) ping(ctx context.Context) error { return b.pool.Ping(ctx) }

func (b *pgBackend) close() error {
	b.pool.Close()
	return nil
}
