package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Invitations: the one-time links with which a human an admin added chooses a password. The
// link's secret part is never stored, only its hash (see package invitation); the caller
// compares it.

// Invitation is a human's pending invitation.
type Invitation struct {
	Host   string
	UserID string
	// Selector finds the invitation; VerifierHash is the hex SHA-256 of the link's secret.
	Selector     string
	VerifierHash string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// Invitations stores invitations and the first use of OAuth clients.
type Invitations interface {
	// PutInvitation stores the human's invitation in place of any earlier one (which stops
	// working). ErrNotFound when the human does not exist.
	PutInvitation(ctx context.Context, inv Invitation) (Invitation, error)
	// GetInvitation returns the host's invitation with selector; ErrNotFound when there is
	// none, it was used or replaced, or it expired at or before now.
	GetInvitation(ctx context.Context, host, selector string, now time.Time) (Invitation, error)
	// AcceptInvitation uses the invitation: in one transaction it deletes it and stores phc as
	// its human's password hash. ErrNotFound as GetInvitation (of two concurrent uses only
	// one succeeds).
	AcceptInvitation(ctx context.Context, host, selector, phc string, now time.Time) (Invitation, error)

	// MarkOAuthClientUsed records the first time a client was issued an authorization code.
	MarkOAuthClientUsed(ctx context.Context, host, id string, at time.Time) error
	// PruneUnusedOAuthClients deletes the dynamically registered clients (of every host)
	// created before cutoff that were never used: no first use recorded, no agent and no
	// token. It returns how many it deleted.
	PruneUnusedOAuthClients(ctx context.Context, cutoff time.Time) (int, error)
}

const maxSelectorLen = 64

func validInvitation(inv Invitation) error {
	switch {
	case inv.Selector == "" || len(inv.Selector) > maxSelectorLen:
		return invalid("invitation selector: 1 to %d characters", maxSelectorLen)
	case len(inv.VerifierHash) != 64:
		return invalid("invitation verifier hash: want 64 hex characters")
	case inv.ExpiresAt.IsZero():
		return invalid("invitation without expiry")
	}
	return validRefHash(inv.VerifierHash)
}

func (s *sqlStore) PutInvitation(ctx context.Context, inv Invitation) (Invitation, error) {
	if err := validInvitation(inv); err != nil {
		return Invitation{}, fmt.Errorf("put invitation of %s/%s: %w", inv.Host, inv.UserID, err)
	}
	inv.CreatedAt = now()
	inv.ExpiresAt = normTime(inv.ExpiresAt)
	err := s.db.writeTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, inv.Host, inv.UserID); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM invitations WHERE host_key = ? AND user_id = ?", inv.Host, inv.UserID); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
		_, err := q.exec(ctx, "INSERT INTO invitations (selector, host_key, user_id, verifier_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
			inv.Selector, inv.Host, inv.UserID, inv.VerifierHash, toMillis(inv.CreatedAt), toMillis(inv.ExpiresAt))
		return writeErr(err)
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("put invitation of %s/%s: %w", inv.Host, inv.UserID, err)
	}
	return inv, nil
}

func selectInvitation(ctx context.Context, q querier, host, selector string, at time.Time) (Invitation, error) {
	inv := Invitation{Host: host, Selector: selector}
	var created, expires int64
	err := q.queryRow(ctx, "SELECT user_id, verifier_hash, created_at, expires_at FROM invitations WHERE selector = ? AND host_key = ? AND expires_at > ?",
		selector, host, toMillis(at)).Scan(&inv.UserID, &inv.VerifierHash, &created, &expires)
	if errors.Is(err, errNoRows) {
		return Invitation{}, ErrNotFound
	}
	if err != nil {
		return Invitation{}, err
	}
	inv.CreatedAt, inv.ExpiresAt = fromMillis(created), fromMillis(expires)
	return inv, nil
}

func (s *sqlStore) GetInvitation(ctx context.Context, host, selector string, at time.Time) (Invitation, error) {
	if selector == "" || len(selector) > maxSelectorLen {
		return Invitation{}, fmt.Errorf("get invitation in %s: %w", host, ErrNotFound)
	}
	inv, err := selectInvitation(ctx, s.db.q(), host, selector, at)
	if err != nil {
		return Invitation{}, fmt.Errorf("get invitation in %s: %w", host, err)
	}
	return inv, nil
}

func (s *sqlStore) AcceptInvitation(ctx context.Context, host, selector, phc string, at time.Time) (Invitation, error) {
	if phc == "" || len(phc) > maxPasswordHashLen {
		return Invitation{}, fmt.Errorf("accept invitation in %s: %w", host, invalid("password hash: 1 to %d bytes", maxPasswordHashLen))
	}
	var inv Invitation
	err := s.db.writeTx(ctx, func(q querier) error {
		var err error
		if inv, err = selectInvitation(ctx, q, host, selector, at); err != nil {
			return err
		}
		n, err := q.exec(ctx, "DELETE FROM invitations WHERE selector = ? AND host_key = ?", selector, host)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound // used concurrently
		}
		n, err = q.exec(ctx, "UPDATE users SET password_hash = ? WHERE host_key = ? AND id = ?", phc, host, inv.UserID)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound // the human was deleted
		}
		return nil
	})
	if err != nil {
		return Invitation{}, fmt.Errorf("accept invitation in %s: %w", host, err)
	}
	return inv, nil
}

// deleteInvitations removes the invitations matching where (a human or a host deleted).
func deleteInvitations(ctx context.Context, q querier, where string, args ...any) error {
	if _, err := q.exec(ctx, "DELETE FROM invitations WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete invitations: %w", err)
	}
	return nil
}

func (s *sqlStore) MarkOAuthClientUsed(ctx context.Context, host, id string, at time.Time) error {
	if _, err := s.db.q().exec(ctx, "UPDATE oauth_clients SET first_used_at = ? WHERE host_key = ? AND id = ? AND first_used_at = 0",
		max(1, toMillis(at)), host, id); err != nil {
		return fmt.Errorf("mark OAuth client %s/%s used: %w", host, id, err)
	}
	return nil
}

func (s *sqlStore) PruneUnusedOAuthClients(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := s.db.q().exec(ctx, "DELETE FROM oauth_clients WHERE kind = ? AND first_used_at = 0 AND created_at < ?"+
		" AND NOT EXISTS (SELECT 1 FROM agents WHERE agents.host_key = oauth_clients.host_key AND agents.client_id = oauth_clients.id)"+
		" AND NOT EXISTS (SELECT 1 FROM oauth_requests WHERE oauth_requests.host_key = oauth_clients.host_key AND oauth_requests.client_id = oauth_clients.id)",
		string(OAuthClientDCR), toMillis(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune unused OAuth clients: %w", err)
	}
	return int(n), nil
}
