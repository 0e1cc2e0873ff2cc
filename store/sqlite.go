package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver (pure Go)
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMaxConns allows WAL readers beside the one writer: a read (say, from a drain's apply
// callback) may run on another connection while a write transaction is open.
const sqliteMaxConns = 8

// sqliteBusyTimeoutMS is how long a writer waits for the write lock before failing.
const sqliteBusyTimeoutMS = 15000

// sqliteBackend is SQLite through database/sql. Every connection has foreign keys on and the
// database is in WAL mode; write transactions BEGIN IMMEDIATE (the driver's _txlock) so they take
// the write lock up front, which serialises writers and makes a read-then-write transaction
// safe without retries.
type sqliteBackend struct {
	db    *sql.DB
	stmts *stmtCache
}

func openSQLite(ctx context.Context, path string, log *slog.Logger) (*sqliteBackend, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite path %q: %w", path, err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("sqlite path %q: must not contain '?' or '#': %w", abs, ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// Per-connection settings. WAL mode is not among them: it is a property of the database
	// file, set once below.
	dsn := abs + "?" + strings.Join([]string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeoutMS),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)", // a commit the drain may already have applied to SpiceDB must survive a power loss
		"_txlock=immediate",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	mode, err := enableWAL(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: set WAL mode: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		log.Warn("sqlite database is not in WAL mode; readers will wait for writers", "path", abs, "journal_mode", mode)
	}
	return &sqliteBackend{db: db, stmts: newStmtCache(db)}, nil
}

// enableWAL switches the database file to WAL mode and returns the mode in effect. Switching
// needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without waiting out the busy
// timeout, when another connection (say, another process opening the same fresh file) holds a
// lock; so retry for as long as the busy timeout.
func enableWAL(ctx context.Context, db *sql.DB) (string, error) {
	deadline := time.Now().Add(sqliteBusyTimeoutMS * time.Millisecond)
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		if err == nil {
			return mode, nil
		}
		if !isSQLiteBusy(err) || time.Now().After(deadline) {
			return "", err
		}
		if err := sleepCtx(ctx, 10*time.Millisecond+rand.N(40*time.Millisecond)); err != nil {
			return "", err
		}
	}
}

func isSQLiteBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff // the primary result code
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

func (b *sqliteBackend) engine() string { return EngineSQLite }

func (b *sqliteBackend) q() querier { return sqlQuerier{cachedConn{cache: b.stmts}} }

func (b *sqliteBackend) writeTx(ctx context.Context, fn func(querier) error) error {
	return b.run(ctx, nil, fn)
}

func (b *sqliteBackend) readTx(ctx context.Context, fn func(querier) error) error {
	// The driver begins a read-only transaction DEFERRED: it takes no write lock and reads
	// one WAL snapshot.
	return b.run(ctx, &sql.TxOptions{ReadOnly: true}, fn)
}

// migrateTx needs no lock of its own: BEGIN IMMEDIATE already excludes every other writer.
func (b *sqliteBackend) migrateTx(ctx context.Context, fn func(querier) error) error {
	return b.run(ctx, nil, fn)
}

func (b *sqliteBackend) run(ctx context.Context, opts *sql.TxOptions, fn func(querier) error) error {
	tx, err := b.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committing := false
	defer func() {
		if !committing { // fn failed or panicked
			_ = tx.Rollback()
		}
	}()
	if err := fn(sqlQuerier{cachedConn{cache: b.stmts, tx: tx}}); err != nil {
		return err
	}
	committing = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (b *sqliteBackend) tokens() map[string]string {
	return map[string]string{
		"serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
	}
}

func (b *sqliteBackend) ping(ctx context.Context) error { return b.db.PingContext(ctx) }

// sqliteCloseWait bounds how long close waits for background statement preparations before
// closing the pool, and for the pool's connections to be closed after.
const sqliteCloseWait = 5 * time.Second

// close returns once no connection of the pool is open, so that nothing touches the database's
// files after it returns. It waits for background preparations before closing the pool: the
// pool then closes every connection itself, one after another, and the last one checkpoints the
// WAL and removes the -wal and -shm files. (Connections closed at the same moment by different
// goroutines may each see another still open, and then none of them removes the files.)
func (b *sqliteBackend) close() error {
	b.stmts.close()
	b.stmts.waitFor(sqliteCloseWait) // a preparation blocked on a connection a caller still holds fails once the pool is closed
	err := b.db.Close()
	b.stmts.wait()
	// database/sql may still be opening a connection in its own goroutine (one requested before
	// Close); it closes that connection as soon as it is made, and counts it until then.
	waitUntil(sqliteCloseWait, func() bool { return b.db.Stats().OpenConnections == 0 })
	return err
}

// waitUntil polls cond until it holds or d has passed.
func waitUntil(d time.Duration, cond func() bool) {
	deadline := time.Now().Add(d)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
