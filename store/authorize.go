package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Pending authorization requests: what the OAuth server keeps between /authorize and the
// consent decision. They live in the database, not in a process, so that the sign-in and
// consent pages of one flow may reach any replica. The store knows nothing of their content.

// AuthorizeRequest is one pending authorization request of a host.
type AuthorizeRequest struct {
	Host string
	// RefHash is the hex SHA-256 (lower case) of the request's reference, the random value the
	// flow's pages carry: the reference itself is never stored.
	RefHash   string
	Data      string // the serialized request (JSON), opaque to the store
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthorizeRequests stores pending authorization requests.
type AuthorizeRequests interface {
	// CreateAuthorizeRequest stores a new request (CreatedAt is set by the store). It first
	// deletes every expired request (of any host) and, when the host already has
	// MaxAuthorizeRequestsPerHost unexpired ones, its oldest. ErrConflict on a duplicate
	// RefHash, ErrNotFound when the host does not exist.
	CreateAuthorizeRequest(ctx context.Context, r AuthorizeRequest) (AuthorizeRequest, error)
	// GetAuthorizeRequest returns the host's request with refHash; ErrNotFound when there is
	// none, it belongs to another host, or it expired at or before now.
	GetAuthorizeRequest(ctx context.Context, host, refHash string, now time.Time) (AuthorizeRequest, error)
	// UpdateAuthorizeRequest replaces the data of an unexpired request; ErrNotFound as Get.
	UpdateAuthorizeRequest(ctx context.Context, host, refHash, data string, now time.Time) error
	// DeleteAuthorizeRequest deletes the host's request: the request is used. ErrNotFound
	// when there is none, so that of two concurrent uses only one succeeds.
	DeleteAuthorizeRequest(ctx context.Context, host, refHash string) error
}

// MaxAuthorizeRequestsPerHost bounds a host's unexpired pending requests; creating one more
// deletes the oldest.
const MaxAuthorizeRequestsPerHost = 10_000

// maxAuthorizeRequestData bounds a request's serialized data.
const maxAuthorizeRequestData = 32 << 10

func validRefHash(h string) error {
	if len(h) != 64 {
		return invalid("reference hash: want 64 lower-case hex characters (SHA-256), got %d characters", len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return invalid("reference hash: want 64 lower-case hex characters (SHA-256)")
		}
	}
	return nil
}

func (s *sqlStore) CreateAuthorizeRequest(ctx context.Context, r AuthorizeRequest) (AuthorizeRequest, error) {
	if err := firstErr(
		validHostKey(r.Host),
		validRefHash(r.RefHash),
		validJSONText("authorization request data", r.Data, maxAuthorizeRequestData),
	); err != nil {
		return AuthorizeRequest{}, fmt.Errorf("create authorization request in %s: %w", r.Host, err)
	}
	if r.ExpiresAt.IsZero() {
		return AuthorizeRequest{}, fmt.Errorf("create authorization request in %s: %w", r.Host, invalid("no expiry"))
	}
	r.CreatedAt = now()
	r.ExpiresAt = normTime(r.ExpiresAt)
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, r.Host); err != nil {
			return err
		}
		// Lazy housekeeping: the expired requests of every host go first.
		if _, err := q.exec(ctx, "DELETE FROM authorize_requests WHERE expires_at <= ?", toMillis(r.CreatedAt)); err != nil {
			return fmt.Errorf("purge expired: %w", err)
		}
		var n int64
		if err := q.queryRow(ctx, "SELECT COUNT(*) FROM authorize_requests WHERE host_key = ?", r.Host).Scan(&n); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		if over := n - MaxAuthorizeRequestsPerHost + 1; over > 0 {
			if _, err := q.exec(ctx, "DELETE FROM authorize_requests WHERE ref_hash IN "+
				"(SELECT ref_hash FROM authorize_requests WHERE host_key = ? ORDER BY created_at, ref_hash LIMIT ?)",
				r.Host, over); err != nil {
				return fmt.Errorf("drop the oldest: %w", err)
			}
		}
		dup, err := exists(ctx, q, "SELECT 1 FROM authorize_requests WHERE ref_hash = ?", r.RefHash)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("reference already stored: %w", ErrConflict)
		}
		_, err = q.exec(ctx, "INSERT INTO authorize_requests (ref_hash, host_key, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			r.RefHash, r.Host, r.Data, toMillis(r.CreatedAt), toMillis(r.ExpiresAt))
		return writeErr(err)
	})
	if err != nil {
		return AuthorizeRequest{}, fmt.Errorf("create authorization request in %s: %w", r.Host, err)
	}
	return r, nil
}

func (s *sqlStore) GetAuthorizeRequest(ctx context.Context, host, refHash string, at time.Time) (AuthorizeRequest, error) {
	r := AuthorizeRequest{Host: host, RefHash: refHash}
	var created, expires int64
	err := s.db.q().queryRow(ctx,
		"SELECT data, created_at, expires_at FROM authorize_requests WHERE ref_hash = ? AND host_key = ? AND expires_at > ?",
		refHash, host, toMillis(at)).Scan(&r.Data, &created, &expires)
	if errors.Is(err, errNoRows) {
		return AuthorizeRequest{}, fmt.Errorf("get authorization request in %s: %w", host, ErrNotFound)
	}
	if err != nil {
		return AuthorizeRequest{}, fmt.Errorf("get authorization request in %s: %w", host, err)
	}
	r.CreatedAt, r.ExpiresAt = fromMillis(created), fromMillis(expires)
	return r, nil
}

func (s *sqlStore) UpdateAuthorizeRequest(ctx context.Context, host, refHash, data string, at time.Time) error {
	if err := validJSONText("authorization request data", data, maxAuthorizeRequestData); err != nil {
		return fmt.Errorf("update authorization request in %s: %w", host, err)
	}
	n, err := s.db.q().exec(ctx, "UPDATE authorize_requests SET data = ? WHERE ref_hash = ? AND host_key = ? AND expires_at > ?",
		data, refHash, host, toMillis(at))
	if err != nil {
		return fmt.Errorf("update authorization request in %s: %w", host, err)
	}
	if n == 0 {
		return fmt.Errorf("update authorization request in %s: %w", host, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) DeleteAuthorizeRequest(ctx context.Context, host, refHash string) error {
	n, err := s.db.q().exec(ctx, "DELETE FROM authorize_requests WHERE ref_hash = ? AND host_key = ?", refHash, host)
	if err != nil {
		return fmt.Errorf("delete authorization request in %s: %w", host, err)
	}
	if n == 0 {
		return fmt.Errorf("delete authorization request in %s: %w", host, ErrNotFound)
	}
	return nil
}
