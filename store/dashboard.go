package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The web dashboard's sign-in: the first operator's one-time setup link and admins' sessions.
// Secrets are never stored, only their hex SHA-256; the caller hashes and compares.

// DashboardSession is a signed-in admin's dashboard session: the human it belongs to (an
// operator is an admin of the default host) and when it ends.
type DashboardSession struct {
	IDHash    string // hex SHA-256 of the cookie's secret
	Host      string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Dashboard stores the dashboard's setup link and sessions.
type Dashboard interface {
	// PutDashboardSetup stores tokenHash as the setup link in place of any earlier one (which
	// stops working).
	PutDashboardSetup(ctx context.Context, tokenHash string) error
	// DashboardSetupIssued reports whether a setup link is waiting to be used.
	DashboardSetupIssued(ctx context.Context) (bool, error)
	// UseDashboardSetup deletes the setup link whose hash is tokenHash; ErrNotFound when there
	// is none (of two concurrent uses only one succeeds).
	UseDashboardSetup(ctx context.Context, tokenHash string) error

	// CreateDashboardSession stores a new session (and deletes the expired ones).
	CreateDashboardSession(ctx context.Context, s DashboardSession) error
	// GetDashboardSession returns the session whose hash is idHash; ErrNotFound when there is
	// none, it was deleted, or it expired at or before at.
	GetDashboardSession(ctx context.Context, idHash string, at time.Time) (DashboardSession, error)
	// DeleteDashboardSession ends a session (signing out); ending a missing one is not an error.
	DeleteDashboardSession(ctx context.Context, idHash string) error
}

func (s *sqlStore) PutDashboardSetup(ctx context.Context, tokenHash string) error {
	if err := validRefHash(tokenHash); err != nil {
		return fmt.Errorf("put dashboard setup link: %w", err)
	}
	err := s.db.writeTx(ctx, func(q querier) error {
		if _, err := q.exec(ctx, "DELETE FROM dashboard_setup"); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO dashboard_setup (id, token_hash, created_at) VALUES (1, ?, ?)", tokenHash, toMillis(now()))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("put dashboard setup link: %w", err)
	}
	return nil
}

func (s *sqlStore) DashboardSetupIssued(ctx context.Context) (bool, error) {
	ok, err := exists(ctx, s.db.q(), "SELECT 1 FROM dashboard_setup")
	if err != nil {
		return false, fmt.Errorf("read dashboard setup link: %w", err)
	}
	return ok, nil
}

func (s *sqlStore) UseDashboardSetup(ctx context.Context, tokenHash string) error {
	if validRefHash(tokenHash) != nil {
		return fmt.Errorf("use dashboard setup link: %w", ErrNotFound)
	}
	n, err := s.db.q().exec(ctx, "DELETE FROM dashboard_setup WHERE token_hash = ?", tokenHash)
	if err != nil {
		return fmt.Errorf("use dashboard setup link: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("use dashboard setup link: %w", ErrNotFound)
	}
	return nil
}

func (s *sqlStore) CreateDashboardSession(ctx context.Context, ds DashboardSession) error {
	if err := validRefHash(ds.IDHash); err != nil {
		return fmt.Errorf("create dashboard session: %w", err)
	}
	if ds.ExpiresAt.IsZero() {
		return fmt.Errorf("create dashboard session: %w", invalid("session without expiry"))
	}
	at := now()
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, ds.Host, ds.UserID); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM dashboard_sessions WHERE expires_at <= ?", toMillis(at)); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO dashboard_sessions (id_hash, host_key, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			ds.IDHash, ds.Host, ds.UserID, toMillis(at), toMillis(normTime(ds.ExpiresAt)))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("create dashboard session of %s/%s: %w", ds.Host, ds.UserID, err)
	}
	return nil
}

func (s *sqlStore) GetDashboardSession(ctx context.Context, idHash string, at time.Time) (DashboardSession, error) {
	if validRefHash(idHash) != nil {
		return DashboardSession{}, fmt.Errorf("get dashboard session: %w", ErrNotFound)
	}
	ds := DashboardSession{IDHash: idHash}
	var created, expires int64
	err := s.db.q().queryRow(ctx, "SELECT host_key, user_id, created_at, expires_at FROM dashboard_sessions WHERE id_hash = ? AND expires_at > ?",
		idHash, toMillis(at)).Scan(&ds.Host, &ds.UserID, &created, &expires)
	if errors.Is(err, errNoRows) {
		return DashboardSession{}, fmt.Errorf("get dashboard session: %w", ErrNotFound)
	}
	if err != nil {
		return DashboardSession{}, fmt.Errorf("get dashboard session: %w", err)
	}
	ds.CreatedAt, ds.ExpiresAt = fromMillis(created), fromMillis(expires)
	return ds, nil
}

func (s *sqlStore) DeleteDashboardSession(ctx context.Context, idHash string) error {
	if _, err := s.db.q().exec(ctx, "DELETE FROM dashboard_sessions WHERE id_hash = ?", idHash); err != nil {
		return fmt.Errorf("delete dashboard session: %w", err)
	}
	return nil
}
