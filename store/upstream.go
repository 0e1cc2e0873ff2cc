package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// The gateway as an OAuth client of upstream MCP servers (package upstreamauth): per-human
// upstream tokens, clients registered at upstream authorization servers, and authorizations in
// progress. Every secret arrives sealed by the caller; the store keeps it opaque.

// UpstreamToken is one human's tokens for one server.
type UpstreamToken struct {
	Host, UserID, Server string
	// Sealed holds the access and refresh tokens, sealed by the caller.
	Sealed []byte
	// ExpiresAt is when the access token expires (zero: unknown).
	ExpiresAt time.Time
	Scopes    string
	// TokenEndpoint and ClientID are what refreshes the token.
	TokenEndpoint string
	ClientID      string
	UpdatedAt     time.Time
}

// UpstreamClient is a client the gateway registered at an upstream authorization server.
type UpstreamClient struct {
	Host   string
	Issuer string // the authorization server's issuer
	ID     string
	// SealedSecret is the client secret sealed by the caller; nil for a public client.
	SealedSecret []byte
	RedirectURI  string
	CreatedAt    time.Time
}

// UpstreamAuthState is an authorization at an upstream in progress.
type UpstreamAuthState struct {
	StateHash            string // hex SHA-256 of the state parameter
	Host, UserID, Server string
	PendingRef           string // the gateway's pending consent the authorization continues
	Sealed               []byte // PKCE verifier and endpoints, sealed by the caller
	ExpiresAt            time.Time
}

// Upstream is the store's part for upstream authorization.
type Upstream interface {
	// PutUpstreamToken creates or replaces the token of (Host, UserID, Server); ErrNotFound
	// when the human or the server does not exist.
	PutUpstreamToken(ctx context.Context, t UpstreamToken) (UpstreamToken, error)
	GetUpstreamToken(ctx context.Context, host, userID, server string) (UpstreamToken, error)
	// DeleteUpstreamToken removes it; ErrNotFound when there is none.
	DeleteUpstreamToken(ctx context.Context, host, userID, server string) error

	// PutUpstreamClient creates or replaces the client of (Host, Issuer).
	PutUpstreamClient(ctx context.Context, c UpstreamClient) (UpstreamClient, error)
	GetUpstreamClient(ctx context.Context, host, issuer string) (UpstreamClient, error)

	// CreateUpstreamAuthState stores a new authorization in progress (expired ones are
	// removed on the way); ErrConflict on a duplicate hash.
	CreateUpstreamAuthState(ctx context.Context, s UpstreamAuthState) error
	// TakeUpstreamAuthState returns and removes the state of hash: a state is used at most
	// once. ErrNotFound when there is none or it expired at now.
	TakeUpstreamAuthState(ctx context.Context, hash string, now time.Time) (UpstreamAuthState, error)
}

// maxUpstreamField bounds the text fields of upstream rows.
const maxUpstreamField = 2048

func validUpstreamText(field, s string) error {
	if len(s) > maxUpstreamField {
		return invalid("%s of %d bytes: want at most %d", field, len(s), maxUpstreamField)
	}
	return nil
}

func validSealed(field string, b []byte, required bool) error {
	if required && len(b) == 0 {
		return invalid("%s is empty", field)
	}
	if len(b) > maxCredentialsLen {
		return invalid("%s of %d bytes: want at most %d", field, len(b), maxCredentialsLen)
	}
	return nil
}

const upstreamTokenColumns = "host_key, user_id, server_key, sealed, expires_at, scopes, token_endpoint, client_id, updated_at"

func scanUpstreamToken(r row) (UpstreamToken, error) {
	var t UpstreamToken
	var sealed string
	var expires, updated int64
	if err := r.Scan(&t.Host, &t.UserID, &t.Server, &sealed, &expires, &t.Scopes, &t.TokenEndpoint, &t.ClientID, &updated); err != nil {
		return UpstreamToken{}, err
	}
	b, err := decodeCredentials(sealed)
	if err != nil {
		return UpstreamToken{}, err
	}
	t.Sealed, t.ExpiresAt, t.UpdatedAt = b, fromMillisOpt(expires), fromMillis(updated)
	return t, nil
}

func (s *sqlStore) PutUpstreamToken(ctx context.Context, t UpstreamToken) (UpstreamToken, error) {
	if err := firstErr(
		validSealed("upstream token", t.Sealed, true),
		validUpstreamText("scopes", t.Scopes),
		validUpstreamText("token endpoint", t.TokenEndpoint),
		validUpstreamText("client id", t.ClientID),
	); err != nil {
		return UpstreamToken{}, fmt.Errorf("put upstream token %s/%s/%s: %w", t.Host, t.UserID, t.Server, err)
	}
	t.Sealed = bytes.Clone(t.Sealed)
	t.ExpiresAt = normTime(t.ExpiresAt)
	t.UpdatedAt = now()
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, t.Host, t.UserID); err != nil {
			return err
		}
		if err := requireServer(ctx, q, t.Host, t.Server); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM upstream_tokens WHERE host_key = ? AND user_id = ? AND server_key = ?",
			t.Host, t.UserID, t.Server); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO upstream_tokens ("+upstreamTokenColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			t.Host, t.UserID, t.Server, encodeCredentials(t.Sealed), toMillisOpt(t.ExpiresAt), t.Scopes,
			t.TokenEndpoint, t.ClientID, toMillis(t.UpdatedAt))
		return writeErr(err)
	})
	if err != nil {
		return UpstreamToken{}, fmt.Errorf("put upstream token %s/%s/%s: %w", t.Host, t.UserID, t.Server, err)
	}
	return t, nil
}

func (s *sqlStore) GetUpstreamToken(ctx context.Context, host, userID, server string) (UpstreamToken, error) {
	t, err := scanUpstreamToken(s.db.q().queryRow(ctx,
		"SELECT "+upstreamTokenColumns+" FROM upstream_tokens WHERE host_key = ? AND user_id = ? AND server_key = ?",
		host, userID, server))
	if errors.Is(err, errNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return UpstreamToken{}, fmt.Errorf("get upstream token %s/%s/%s: %w", host, userID, server, err)
	}
	return t, nil
}

func (s *sqlStore) DeleteUpstreamToken(ctx context.Context, host, userID, server string) error {
	n, err := s.db.q().exec(ctx, "DELETE FROM upstream_tokens WHERE host_key = ? AND user_id = ? AND server_key = ?",
		host, userID, server)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete upstream token %s/%s/%s: %w", host, userID, server, err)
	}
	return nil
}

func (s *sqlStore) PutUpstreamClient(ctx context.Context, c UpstreamClient) (UpstreamClient, error) {
	if err := firstErr(
		validUpstreamText("issuer", c.Issuer),
		validUpstreamText("client id", c.ID),
		validUpstreamText("redirect URI", c.RedirectURI),
		validSealed("client secret", c.SealedSecret, false),
	); err != nil {
		return UpstreamClient{}, fmt.Errorf("put upstream client %s %s: %w", c.Host, c.Issuer, err)
	}
	if c.Issuer == "" || c.ID == "" {
		return UpstreamClient{}, fmt.Errorf("put upstream client %s: %w", c.Host, invalid("issuer and client id are required"))
	}
	c.SealedSecret = bytes.Clone(c.SealedSecret)
	c.CreatedAt = now()
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, c.Host); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM upstream_clients WHERE host_key = ? AND issuer = ?", c.Host, c.Issuer); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO upstream_clients (host_key, issuer, client_id, sealed_secret, redirect_uri, created_at) VALUES (?, ?, ?, ?, ?, ?)",
			c.Host, c.Issuer, c.ID, encodeCredentials(c.SealedSecret), c.RedirectURI, toMillis(c.CreatedAt))
		return writeErr(err)
	})
	if err != nil {
		return UpstreamClient{}, fmt.Errorf("put upstream client %s %s: %w", c.Host, c.Issuer, err)
	}
	return c, nil
}

func (s *sqlStore) GetUpstreamClient(ctx context.Context, host, issuer string) (UpstreamClient, error) {
	var c UpstreamClient
	var secret string
	var created int64
	err := s.db.q().queryRow(ctx, "SELECT host_key, issuer, client_id, sealed_secret, redirect_uri, created_at FROM upstream_clients WHERE host_key = ? AND issuer = ?",
		host, issuer).Scan(&c.Host, &c.Issuer, &c.ID, &secret, &c.RedirectURI, &created)
	if errors.Is(err, errNoRows) {
		err = ErrNotFound
	}
	if err == nil {
		c.SealedSecret, err = decodeCredentials(secret)
	}
	if err != nil {
		return UpstreamClient{}, fmt.Errorf("get upstream client %s %s: %w", host, issuer, err)
	}
	c.CreatedAt = fromMillis(created)
	return c, nil
}

func (s *sqlStore) CreateUpstreamAuthState(ctx context.Context, st UpstreamAuthState) error {
	if err := firstErr(
		validHash("state hash", st.StateHash),
		validUpstreamText("pending ref", st.PendingRef),
		validSealed("state", st.Sealed, true),
	); err != nil {
		return fmt.Errorf("create upstream auth state: %w", err)
	}
	at := now()
	err := s.controlTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, st.Host, st.UserID); err != nil {
			return err
		}
		if err := requireServer(ctx, q, st.Host, st.Server); err != nil {
			return err
		}
		if _, err := q.exec(ctx, "DELETE FROM upstream_auth_states WHERE expires_at <= ?", toMillis(at)); err != nil {
			return err
		}
		_, err := q.exec(ctx, "INSERT INTO upstream_auth_states (state_hash, host_key, user_id, server_key, pending_ref, sealed, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			st.StateHash, st.Host, st.UserID, st.Server, st.PendingRef, encodeCredentials(st.Sealed), toMillis(st.ExpiresAt))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("create upstream auth state for %s/%s/%s: %w", st.Host, st.UserID, st.Server, err)
	}
	return nil
}

func (s *sqlStore) TakeUpstreamAuthState(ctx context.Context, hash string, at time.Time) (UpstreamAuthState, error) {
	var st UpstreamAuthState
	err := s.controlTx(ctx, func(q querier) error {
		var sealed string
		var expires int64
		err := q.queryRow(ctx, "SELECT state_hash, host_key, user_id, server_key, pending_ref, sealed, expires_at FROM upstream_auth_states WHERE state_hash = ?",
			hash).Scan(&st.StateHash, &st.Host, &st.UserID, &st.Server, &st.PendingRef, &sealed, &expires)
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
		n, err := q.exec(ctx, "DELETE FROM upstream_auth_states WHERE state_hash = ?", hash)
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
		return UpstreamAuthState{}, fmt.Errorf("take upstream auth state: %w", err)
	}
	return st, nil
}

// deleteUpstreamRows removes the upstream tokens and authorizations in progress matching where
// (columns host_key, user_id, server_key), as deleting a human, server or host does.
func deleteUpstreamRows(ctx context.Context, q querier, where string, args ...any) error {
	if _, err := q.exec(ctx, "DELETE FROM upstream_tokens WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete upstream tokens: %w", err)
	}
	if _, err := q.exec(ctx, "DELETE FROM upstream_auth_states WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete upstream authorizations: %w", err)
	}
	return nil
}
