package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sign-ins at external identity providers in progress (package oauthserver/sso): the state
// between the redirect to the provider and its callback. The secrets in it arrive sealed by
// the caller; the store keeps them opaque.

// SSOState is a sign-in at an identity provider in progress.
type SSOState struct {
	StateHash  string // hex SHA-256 of the state parameter
	Host       string
	Method     string // the sign-in method ("oidc", "google", ...)
	PendingRef string // the pending authorization request the sign-in continues
	Sealed     []byte // PKCE verifier, nonce and browser binding, sealed by the caller
	ExpiresAt  time.Time
}

// SSOStates is the store's part for sign-ins at identity providers.
type SSOStates interface {
	// CreateSSOState stores a new sign-in in progress (expired ones are removed on the way);
	// ErrConflict on a duplicate hash, ErrNotFound when the host does not exist.
	CreateSSOState(ctx context.Context, s SSOState) error
	// TakeSSOState returns and removes the state of hash: a state is used at most once.
	// ErrNotFound when there is none or it expired at now.
	TakeSSOState(ctx context.Context, hash string, now time.Time) (SSOState, error)
}

func (s *sqlStore) CreateSSOState(ctx context.Context, st SSOState) error {
	if err := firstErr(
		validHash("state hash", st.StateHash),
		validUpstreamText("method", st.Method),
		validUpstreamText("pending ref", st.PendingRef),
		validSealed("state", st.Sealed, true),
	); err != nil {
		return fmt.Errorf("create sign-in state: %w", err)
	}
	if st.StateHash == "" || st.Method == "" {
		return fmt.Errorf("create sign-in state: %w", invalid("state hash and method are required"))
	}
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, st.Host); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM sso_states WHERE expires_at <= ?", toMillis(at)); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO sso_states (state_hash, host_key, method, pending_ref, sealed, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
			st.StateHash, st.Host, st.Method, st.PendingRef, encodeCredentials(st.Sealed), toMillis(st.ExpiresAt))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("create sign-in state for %s/%s: %w", st.Host, st.Method, err)
	}
	return nil
}

func (s *sqlStore) TakeSSOState(ctx context.Context, hash string, at time.Time) (SSOState, error) {
	var st SSOState
	err := s.controlTx(ctx, func(q querier) error {
		var sealed string
		var expires int64
		err := q.queryRow(ctx, "SELECT state_hash, host_key, method, pending_ref, sealed, expires_at FROM sso_states WHERE state_hash = ?",
			hash).Scan(&st.StateHash, &st.Host, &st.Method, &st.PendingRef, &sealed, &expires)
		if errors.Is(err, errNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if st.Sealed, err = decodeCredentials(sealed); err != nil {
			return err
		}
		st.ExpiresAt = fromMillis(expires)
		n, err := q.exec(ctx, "DELETE FROM sso_states WHERE state_hash = ?", hash)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound // taken by a concurrent request
		}
		if !at.Before(st.ExpiresAt) {
			return fmt.Errorf("expired: %w", ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return SSOState{}, fmt.Errorf("take sign-in state: %w", err)
	}
	return st, nil
}
