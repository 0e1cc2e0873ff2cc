package store

import (
	"context"
	"fmt"
	"time"
)

// Identifiers used once: what a replay check needs (a SAML assertion's ID, a completed SAML
// request's ID). They live in the database, so that an identifier used at one replica is
// refused at every other one.

// UsedOnce records identifiers that may be used only once.
type UsedOnce interface {
	// UseOnce records that the host's identifier id of kind was used, until expiresAt. It is
	// ErrConflict when it is already recorded and unexpired at now (of concurrent uses exactly
	// one succeeds), ErrNotFound when the host does not exist. Expired records of every host
	// are deleted first.
	UseOnce(ctx context.Context, host, kind, id string, expiresAt, now time.Time) error
}

// Bounds of UseOnce's input.
const (
	maxUsedOnceKind = 64
	maxUsedOnceID   = 256
)

func (s *sqlStore) UseOnce(ctx context.Context, host, kind, id string, expiresAt, at time.Time) error {
	if err := firstErr(
		validHostKey(host),
		boundedText("kind", kind, maxUsedOnceKind),
		boundedText("identifier", id, maxUsedOnceID),
	); err != nil {
		return fmt.Errorf("use identifier once in %s: %w", host, err)
	}
	if !expiresAt.After(at) {
		return fmt.Errorf("use identifier once in %s: %w", host, invalid("expiry not after now"))
	}
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM used_once WHERE expires_at <= ?", toMillis(at)); err != nil {
			return fmt.Errorf("purge expired: %w", err)
		}
		used, err := exists(ctx, q, "SELECT 1 FROM used_once WHERE host_key = ? AND kind = ? AND id = ?", host, kind, id)
		if err != nil {
			return err
		}
		if used {
			return fmt.Errorf("%s %q already used: %w", kind, id, ErrConflict)
		}
		_, err = q.exec(ctx, "INSERT INTO used_once (host_key, kind, id, expires_at) VALUES (?, ?, ?, ?)",
			host, kind, id, toMillis(expiresAt))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("use identifier once in %s: %w", host, err)
	}
	return nil
}

// boundedText: 1 to max bytes of printable ASCII.
func boundedText(what, v string, max int) error {
	if v == "" || len(v) > max {
		return invalid("%s: want 1-%d characters, got %d", what, max, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return invalid("%s: want printable ASCII without spaces", what)
		}
	}
	return nil
}
