package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

const apiTokenColumns = "id, host_key, name, hash, prefix, created_at, last_used_at, scope"

func scanAPIToken(r row) (APIToken, error) {
	var t APIToken
	var created, used int64
	if err := r.Scan(&t.ID, &t.Host, &t.Name, &t.Hash, &t.Prefix, &created, &used, &t.Scope); err != nil {
		return APIToken{}, err
	}
	t.CreatedAt = fromMillis(created)
	t.LastUsedAt = fromMillisOpt(used)
	return t, nil
}

// CreateAPIToken stores a new admin API token (its hash). Host "" makes a global token; another
// host must exist.
func (s *sqlStore) CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error) {
	if t.ID == "" {
		t.ID = newID("t_")
	} else if err := validID("API token", t.ID); err != nil {
		return APIToken{}, fmt.Errorf("create API token: %w", err)
	}
	if err := firstErr(validTokenName(t.Name), validTokenHash(t.Hash), validTokenPrefix(t.Prefix), validTokenScope(t.Scope)); err != nil {
		return APIToken{}, fmt.Errorf("create API token %s: %w", t.ID, err)
	}
	t.CreatedAt = now()
	t.LastUsedAt = normTime(t.LastUsedAt)
	err := s.db.writeTx(ctx, func(q querier) error {
		if t.Host != "" {
			if err := requireHost(ctx, q, t.Host); err != nil {
				return err
			}
		}
		dup, err := exists(ctx, q, "SELECT 1 FROM api_tokens WHERE id = ?", t.ID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("API token id %q already exists: %w", t.ID, ErrConflict)
		}
		dup, err = exists(ctx, q, "SELECT 1 FROM api_tokens WHERE hash = ?", t.Hash)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("an API token with this hash already exists: %w", ErrConflict)
		}
		_, err = q.exec(ctx, "INSERT INTO api_tokens ("+apiTokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			t.ID, t.Host, t.Name, t.Hash, t.Prefix, toMillis(t.CreatedAt), toMillisOpt(t.LastUsedAt), t.Scope)
		return writeErr(err)
	})
	if err != nil {
		return APIToken{}, fmt.Errorf("create API token %s: %w", t.ID, err)
	}
	return t, nil
}

// GetAPITokenByHash finds a token by the hex SHA-256 of its secret.
func (s *sqlStore) GetAPITokenByHash(ctx context.Context, hash string) (APIToken, error) {
	t, err := scanAPIToken(s.db.q().queryRow(ctx, "SELECT "+apiTokenColumns+" FROM api_tokens WHERE hash = ?", strings.ToLower(hash)))
	if errors.Is(err, errNoRows) {
		return APIToken{}, fmt.Errorf("get API token by hash: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("get API token by hash: %w", err)
	}
	return t, nil
}

// ListAPITokens lists a host's tokens, or the global ones when host is "", oldest first.
func (s *sqlStore) ListAPITokens(ctx context.Context, host string) ([]APIToken, error) {
	var out []APIToken
	err := s.db.readTx(ctx, func(q querier) error {
		if host != "" {
			if err := requireHost(ctx, q, host); err != nil {
				return err
			}
		}
		rs, err := q.query(ctx, "SELECT "+apiTokenColumns+" FROM api_tokens WHERE host_key = ? ORDER BY created_at, id", host)
		if err != nil {
			return err
		}
		defer rs.Close()
		out = []APIToken{}
		for rs.Next() {
			t, err := scanAPIToken(rs)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rs.Err()
	})
	if err != nil {
		if host == "" {
			return nil, fmt.Errorf("list global API tokens: %w", err)
		}
		return nil, fmt.Errorf("list API tokens of %s: %w", host, err)
	}
	return out, nil
}

func (s *sqlStore) DeleteAPIToken(ctx context.Context, id string) error {
	n, err := s.db.q().exec(ctx, "DELETE FROM api_tokens WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete API token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete API token %s: %w", id, ErrNotFound)
	}
	return nil
}

// TouchAPIToken records that the token was used at at (written at most once a minute).
func (s *sqlStore) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	if err := touch(ctx, s.db.q(), "api_tokens", "last_used_at", "id = ?", at, id); err != nil {
		return fmt.Errorf("touch API token %s: %w", id, err)
	}
	return nil
}
