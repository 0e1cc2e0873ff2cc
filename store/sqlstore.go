package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// sqlStore implements Store once, over any backend.
type sqlStore struct {
	db  backend
	gen *generationClock
}

// newSQLStore is the store over b, its control-plane generation remembered for GenerationMaxAge.
func newSQLStore(b backend) *sqlStore {
	clock := newGenerationClock(GenerationMaxAge)
	return &sqlStore{db: generationBackend{backend: b, clock: clock}, gen: clock}
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Engine() string { return s.db.engine() }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.db.engine(), err)
	}
	return nil
}

func (s *sqlStore) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, s.db.q())
}

func (s *sqlStore) Close() error { return s.db.close() }

// now is the store's clock: UTC, at the millisecond precision of the columns, so that what a
// method returns equals what a later read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func toMillis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Optional timestamps (LastActiveAt, LastUsedAt) keep the zero time as 0.

func toMillisOpt(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillisOpt(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return fromMillis(ms)
}

// normTime is t as a read gives it back: UTC at millisecond precision, the zero time kept.
func normTime(t time.Time) time.Time { return fromMillisOpt(toMillisOpt(t)) }

// exists runs a query selecting at most one row and reports whether it found one.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int64
	err := q.queryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, errNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// requireHost returns ErrNotFound naming the host when it does not exist.
func requireHost(ctx context.Context, q querier, host string) error {
	ok, err := exists(ctx, q, "SELECT 1 FROM hosts WHERE host_key = ?", host)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("host %q: %w", host, ErrNotFound)
	}
	return nil
}

func requireServer(ctx context.Context, q querier, host, server string) error {
	ok, err := exists(ctx, q, "SELECT 1 FROM servers WHERE host_key = ? AND server_key = ?", host, server)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("server %s/%s: %w", host, server, ErrNotFound)
	}
	return nil
}

func requireUser(ctx context.Context, q querier, host, userID string) error {
	ok, err := exists(ctx, q, "SELECT 1 FROM users WHERE host_key = ? AND id = ?", host, userID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("user %s/%s: %w", host, userID, ErrNotFound)
	}
	return nil
}

func requireAgent(ctx context.Context, q querier, host, agentID string) error {
	ok, err := exists(ctx, q, "SELECT 1 FROM agents WHERE host_key = ? AND id = ?", host, agentID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("agent %s/%s: %w", host, agentID, ErrNotFound)
	}
	return nil
}

// writeErr maps the constraint violations a concurrent writer can still cause past the store's
// own checks to the typed errors.
func writeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case isForeignKeyViolation(err):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
