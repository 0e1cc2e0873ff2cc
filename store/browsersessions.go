package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Browser sessions: the server's record of each signed-in browser of a human, so that signing
// out (or changing the password) ends it even though the cookie still exists. The session id is
// random and never stored: only its hex SHA-256 (IDHash), which the caller computes.

// BrowserSession is one signed-in browser.
type BrowserSession struct {
	Host   string
	UserID string
	// IDHash is the hex SHA-256 of the session id the cookie carries.
	IDHash string
	// Method is how the human signed in ("password", "oidc", ...).
	Method    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// BrowserSessions stores browser sessions.
type BrowserSessions interface {
	// CreateBrowserSession stores a new session; ErrNotFound when the human does not exist.
	CreateBrowserSession(ctx context.Context, s BrowserSession) error
	// GetBrowserSession returns the host's session with idHash; ErrNotFound when there is
	// none, it was ended, or it expired at or before now.
	GetBrowserSession(ctx context.Context, host, idHash string, now time.Time) (BrowserSession, error)
	// DeleteBrowserSession ends a session (nothing when there is none).
	DeleteBrowserSession(ctx context.Context, host, idHash string) error
	// DeleteUserBrowserSessions ends every session of the human but the one with exceptHash
	// ("" ends all), and returns how many it ended.
	DeleteUserBrowserSessions(ctx context.Context, host, userID, exceptHash string) (int, error)
	// PruneBrowserSessions deletes the sessions (of every host) that expired before cutoff.
	PruneBrowserSessions(ctx context.Context, cutoff time.Time) (int, error)
}

func (s *sqlStore) CreateBrowserSession(ctx context.Context, bs BrowserSession) error {
	if len(bs.IDHash) != 64 || bs.ExpiresAt.IsZero() || len(bs.Method) > 32 {
		return fmt.Errorf("create browser session: %w", invalid("want a 64-character id hash, an expiry and a short method"))
	}
	if err := validRefHash(bs.IDHash); err != nil {
		return fmt.Errorf("create browser session: %w", err)
	}
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, bs.Host, bs.UserID); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO browser_sessions (id_hash, host_key, user_id, method, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
			bs.IDHash, bs.Host, bs.UserID, bs.Method, toMillis(now()), toMillis(normTime(bs.ExpiresAt)))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("create browser session of %s/%s: %w", bs.Host, bs.UserID, err)
	}
	return nil
}

func (s *sqlStore) GetBrowserSession(ctx context.Context, host, idHash string, at time.Time) (BrowserSession, error) {
	bs := BrowserSession{Host: host, IDHash: idHash}
	if len(idHash) != 64 {
		return BrowserSession{}, fmt.Errorf("get browser session in %s: %w", host, ErrNotFound)
	}
	var created, expires int64
	err := s.db.q().queryRow(ctx, "SELECT user_id, method, created_at, expires_at FROM browser_sessions WHERE id_hash = ? AND host_key = ? AND expires_at > ?",
		idHash, host, toMillis(at)).Scan(&bs.UserID, &bs.Method, &created, &expires)
	if errors.Is(err, errNoRows) {
		return BrowserSession{}, fmt.Errorf("get browser session in %s: %w", host, ErrNotFound)
	}
	if err != nil {
		return BrowserSession{}, fmt.Errorf("get browser session in %s: %w", host, err)
	}
	bs.CreatedAt, bs.ExpiresAt = fromMillis(created), fromMillis(expires)
	return bs, nil
}

func (s *sqlStore) DeleteBrowserSession(ctx context.Context, host, idHash string) error {
	if _, err := s.db.q().exec(ctx, "DELETE FROM browser_sessions WHERE id_hash = ? AND host_key = ?", idHash, host); err != nil {
		return fmt.Errorf("delete browser session in %s: %w", host, err)
	}
	return nil
}

func (s *sqlStore) DeleteUserBrowserSessions(ctx context.Context, host, userID, exceptHash string) (int, error) {
	n, err := s.db.q().exec(ctx, "DELETE FROM browser_sessions WHERE host_key = ? AND user_id = ? AND id_hash <> ?", host, userID, exceptHash)
	if err != nil {
		return 0, fmt.Errorf("delete browser sessions of %s/%s: %w", host, userID, err)
	}
	return int(n), nil
}

func (s *sqlStore) PruneBrowserSessions(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := s.db.q().exec(ctx, "DELETE FROM browser_sessions WHERE expires_at < ?", toMillis(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune browser sessions: %w", err)
	}
	return int(n), nil
}
