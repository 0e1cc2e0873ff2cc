package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// One-time codes sent by email: the proof that a person reads an address's mailbox (an email
// sign-in, claiming a pre-authorized account or signing up, a password reset). The code is
// never stored: the caller hashes it with a key of its own (CodeHash) and the store compares
// hashes in constant time. A code works once, until it expires, for at most
// EmailCodeMaxFailures wrong tries; an address gets at most EmailCodeMaxSends codes and
// EmailCodeMaxAddressFailures wrong tries per EmailCodeWindow. The counts live in the
// database, so they hold across replicas.

// Limits of email codes.
const (
	// EmailCodeMaxFailures is how many wrong codes one code survives: the next try after that
	// many is refused even with the right code.
	EmailCodeMaxFailures = 5
	// EmailCodeMaxAddressFailures is how many wrong codes an address's codes (of every purpose)
	// may get per EmailCodeWindow.
	EmailCodeMaxAddressFailures = 10
	// EmailCodeMaxSends is how many codes an address may be sent per EmailCodeWindow.
	EmailCodeMaxSends = 5
	// EmailCodeWindow is the window of the per-address limits.
	EmailCodeWindow = time.Hour
)

// ErrWrongCode is UseEmailCode's answer for a code that does not match (the failure counted).
var ErrWrongCode = errors.New("wrong code")

// ErrLimited is the answer when a limit of email codes is reached: too many codes sent to
// the address, or too many wrong tries of the code or the address.
var ErrLimited = errors.New("limit reached")

// EmailCode is one code sent to an address.
type EmailCode struct {
	// ID is the code's random identifier (public: it travels in the page's form).
	ID    string
	Host  string
	Email string // lower-cased by the store
	// Purpose is what the code proves the address for ("signin", "password", ...).
	Purpose string
	// CodeHash is the lower-case hex HMAC-SHA256 of the code, made by the caller.
	CodeHash string
	// PendingRef is the pending authorization request the person continues ("" when none).
	PendingRef string
	// Failures counts the wrong codes tried.
	Failures  int
	CreatedAt time.Time
	ExpiresAt time.Time
}

// EmailCodes stores one-time codes sent by email.
type EmailCodes interface {
	// CreateEmailCode stores a new code sent at now; the live codes of the same host, address
	// and purpose stop working. ErrLimited when the address was sent EmailCodeMaxSends codes
	// or had EmailCodeMaxAddressFailures wrong tries within EmailCodeWindow; ErrNotFound when
	// the host does not exist; ErrConflict for a duplicate ID.
	CreateEmailCode(ctx context.Context, c EmailCode, now time.Time) (EmailCode, error)
	// UseEmailCode checks codeHash against the host's live code id at now and, when it
	// matches, uses it up and returns it (of concurrent uses one succeeds). ErrNotFound when
	// there is no such code, or it was used, replaced or expired; ErrLimited when the code or
	// its address had too many wrong tries (the right code is refused then too); ErrWrongCode
	// when it does not match (counted against the code and its address). With ErrWrongCode
	// and ErrLimited it returns the code too (its address and purpose, never its hash).
	UseEmailCode(ctx context.Context, host, id, codeHash string, now time.Time) (EmailCode, error)
	// DeleteEmailCode forgets a code that could not be sent (it counts against nothing).
	DeleteEmailCode(ctx context.Context, host, id string) error
	// PruneEmailCodes deletes the codes (of every host) that no longer count against any
	// limit at now: sent more than EmailCodeWindow ago and expired.
	PruneEmailCodes(ctx context.Context, now time.Time) (int, error)
}

// Bounds of an email code's fields.
const (
	maxEmailCodeID      = 64
	maxEmailCodePurpose = 32
)

func (s *sqlStore) CreateEmailCode(ctx context.Context, c EmailCode, at time.Time) (EmailCode, error) {
	email, err := normalizeEmail(c.Email)
	if err == nil {
		err = firstErr(
			validHostKey(c.Host),
			boundedText("code id", c.ID, maxEmailCodeID),
			boundedText("purpose", c.Purpose, maxEmailCodePurpose),
			validRefHash(c.CodeHash),
			validUpstreamText("pending ref", c.PendingRef),
		)
	}
	if err == nil && !c.ExpiresAt.After(at) {
		err = invalid("expiry not after now")
	}
	if err != nil {
		return EmailCode{}, fmt.Errorf("create email code in %s: %w", c.Host, err)
	}
	c.Email, c.Failures = email, 0
	c.CreatedAt, c.ExpiresAt = normTime(at), normTime(c.ExpiresAt)
	err = s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, c.Host); err != nil {
			return err
		}
		sends, failures, err := emailAddressCounts(ctx, q, c.Host, c.Email, at)
		if err != nil {
			return err
		}
		if sends >= EmailCodeMaxSends {
			return fmt.Errorf("%d codes sent to the address within %s: %w", sends, EmailCodeWindow, ErrLimited)
		}
		if failures >= EmailCodeMaxAddressFailures {
			return fmt.Errorf("%d wrong codes for the address within %s: %w", failures, EmailCodeWindow, ErrLimited)
		}
		if _, err := q.exec(ctx, "UPDATE email_codes SET closed_at = ? WHERE host_key = ? AND email = ? AND purpose = ? AND closed_at = 0",
			toMillis(at), c.Host, c.Email, c.Purpose); err != nil {
			return fmt.Errorf("replace earlier codes: %w", err)
		}
		_, err = q.exec(ctx, "INSERT INTO email_codes (id, host_key, email, purpose, code_hash, pending_ref, failures, created_at, expires_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, 0)",
			c.ID, c.Host, c.Email, c.Purpose, c.CodeHash, c.PendingRef, toMillis(c.CreatedAt), toMillis(c.ExpiresAt))
		return writeErr(err)
	})
	if err != nil {
		return EmailCode{}, fmt.Errorf("create email code in %s: %w", c.Host, err)
	}
	return c, nil
}

// emailAddressCounts counts the codes sent to an address of host within EmailCodeWindow
// before at, and the wrong codes tried against them.
func emailAddressCounts(ctx context.Context, q querier, host, email string, at time.Time) (sends, failures int, err error) {
	var sum int64
	err = q.queryRow(ctx, "SELECT COUNT(*), COALESCE(SUM(failures), 0) FROM email_codes WHERE host_key = ? AND email = ? AND created_at > ?",
		host, email, toMillis(at.Add(-EmailCodeWindow))).Scan(&sends, &sum)
	if err != nil {
		return 0, 0, fmt.Errorf("count the address's codes: %w", err)
	}
	return sends, int(sum), nil
}

func (s *sqlStore) UseEmailCode(ctx context.Context, host, id, codeHash string, at time.Time) (EmailCode, error) {
	if err := firstErr(boundedText("code id", id, maxEmailCodeID), validRefHash(codeHash)); err != nil {
		// A malformed id names no code: the same answer as an unknown one.
		return EmailCode{}, fmt.Errorf("use email code in %s: %w", host, ErrNotFound)
	}
	var c EmailCode
	var outcome error
	err := s.db.writeTx(ctx, func(q querier) error {
		outcome = nil
		var created, expires, closed int64
		err := q.queryRow(ctx, "SELECT email, purpose, code_hash, pending_ref, failures, created_at, expires_at, closed_at FROM email_codes WHERE id = ? AND host_key = ?",
			id, host).Scan(&c.Email, &c.Purpose, &c.CodeHash, &c.PendingRef, &c.Failures, &created, &expires, &closed)
		if errors.Is(err, errNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		c.ID, c.Host, c.CreatedAt, c.ExpiresAt = id, host, fromMillis(created), fromMillis(expires)
		if closed != 0 || !at.Before(c.ExpiresAt) {
			return ErrNotFound
		}
		_, failures, err := emailAddressCounts(ctx, q, host, c.Email, at)
		if err != nil {
			return err
		}
		if c.Failures >= EmailCodeMaxFailures || failures >= EmailCodeMaxAddressFailures {
			return fmt.Errorf("too many wrong codes: %w", ErrLimited)
		}
		if subtle.ConstantTimeCompare([]byte(c.CodeHash), []byte(codeHash)) == 1 {
			n, err := q.exec(ctx, "UPDATE email_codes SET closed_at = ? WHERE id = ? AND closed_at = 0", toMillis(at), id)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrNotFound // used by a concurrent request
			}
			return nil
		}
		c.Failures++
		// The failure is committed: the caller learns of it after the transaction.
		outcome = ErrWrongCode
		_, err = q.exec(ctx, "UPDATE email_codes SET failures = failures + 1 WHERE id = ?", id)
		return err
	})
	if err == nil {
		err = outcome
	}
	c.CodeHash = ""
	if errors.Is(err, ErrWrongCode) || errors.Is(err, ErrLimited) {
		return c, fmt.Errorf("use email code in %s: %w", host, err)
	}
	if err != nil {
		return EmailCode{}, fmt.Errorf("use email code in %s: %w", host, err)
	}
	return c, nil
}

func (s *sqlStore) DeleteEmailCode(ctx context.Context, host, id string) error {
	if _, err := s.db.q().exec(ctx, "DELETE FROM email_codes WHERE id = ? AND host_key = ?", id, host); err != nil {
		return fmt.Errorf("delete email code in %s: %w", host, err)
	}
	return nil
}

func (s *sqlStore) PruneEmailCodes(ctx context.Context, at time.Time) (int, error) {
	n, err := s.db.q().exec(ctx, "DELETE FROM email_codes WHERE created_at <= ? AND expires_at <= ?",
		toMillis(at.Add(-EmailCodeWindow)), toMillis(at))
	if err != nil {
		return 0, fmt.Errorf("prune email codes: %w", err)
	}
	return int(n), nil
}
