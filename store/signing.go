package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SigningKey is one key of the set that signs access tokens (package accesstoken).
// A key signs while it is the newest one not retired; a retired key stays published (in the
// JWKS) until PublishedUntil, when the last token it signed has expired, and may then be pruned.
type SigningKey struct {
	KID string
	Alg string // "ES256"
	// PrivateKey is sealed by the caller (encrypted with the master key); the store keeps it
	// opaque and never logs it.
	PrivateKey []byte
	PublicJWK  string // the public key as a JWK (JSON object)
	// CreatedAt is set by the store when zero. RetiredAt and PublishedUntil are zero while the
	// key is not retired.
	CreatedAt, RetiredAt, PublishedUntil time.Time
}

// SigningKeys keeps the access-token signing keys.
type SigningKeys interface {
	// CreateSigningKey stores a new key. A key with the same KID is ErrConflict.
	CreateSigningKey(ctx context.Context, k SigningKey) (SigningKey, error)
	// ListSigningKeys lists every stored key, newest first (ties by KID, descending).
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RetireSigningKeys retires every key except keep, publishing each until publishedUntil.
	// Keys retired before keep their own retirement and publication times. keep must exist
	// and not be retired (ErrNotFound, ErrConflict): so two rotations racing each other cannot
	// retire every key.
	RetireSigningKeys(ctx context.Context, keep string, at, publishedUntil time.Time) error
	// PruneSigningKeys deletes retired keys whose publication ended before now, and returns
	// how many it deleted.
	PruneSigningKeys(ctx context.Context, now time.Time) (int, error)
}

// Limits of a signing key's fields.
const (
	maxSigningAlgLen     = 16
	maxSigningPrivateLen = 16 << 10
	maxSigningJWKLen     = 16 << 10
)

const signingKeyColumns = "kid, alg, private_key, public_jwk, created_at, retired_at, published_until"

func scanSigningKey(r row) (SigningKey, error) {
	var k SigningKey
	var private string
	var created, retired, until int64
	if err := r.Scan(&k.KID, &k.Alg, &private, &k.PublicJWK, &created, &retired, &until); err != nil {
		return SigningKey{}, err
	}
	b, err := base64.StdEncoding.DecodeString(private)
	if err != nil {
		return SigningKey{}, fmt.Errorf("signing key %s: stored private key is not base64", k.KID)
	}
	k.PrivateKey = b
	k.CreatedAt = fromMillis(created)
	k.RetiredAt = fromMillisOpt(retired)
	k.PublishedUntil = fromMillisOpt(until)
	return k, nil
}

func validSigningKey(k SigningKey) error {
	if err := validID("signing key", k.KID); err != nil {
		return err
	}
	if len(k.Alg) < 1 || len(k.Alg) > maxSigningAlgLen {
		return invalid("signing key algorithm %q: want 1-%d characters", k.Alg, maxSigningAlgLen)
	}
	for i := 0; i < len(k.Alg); i++ {
		c := k.Alg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '+') {
			return invalid("signing key algorithm %q: want a JOSE algorithm name such as ES256", k.Alg)
		}
	}
	if len(k.PrivateKey) == 0 || len(k.PrivateKey) > maxSigningPrivateLen {
		return invalid("signing key private key of %d bytes: want 1-%d", len(k.PrivateKey), maxSigningPrivateLen)
	}
	if len(k.PublicJWK) > maxSigningJWKLen {
		return invalid("signing key public JWK of %d bytes: want at most %d", len(k.PublicJWK), maxSigningJWKLen)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(k.PublicJWK), &obj); err != nil || obj == nil {
		return invalid("signing key public JWK: want a JSON object")
	}
	if err := validText("signing key public JWK", k.PublicJWK); err != nil {
		return err
	}
	if k.RetiredAt.IsZero() != k.PublishedUntil.IsZero() {
		return invalid("signing key: retirement and publication end are set together or not at all")
	}
	if !k.RetiredAt.IsZero() && k.PublishedUntil.Before(k.RetiredAt) {
		return invalid("signing key: publication must not end before retirement")
	}
	return nil
}

func (s *sqlStore) CreateSigningKey(ctx context.Context, k SigningKey) (SigningKey, error) {
	if err := validSigningKey(k); err != nil {
		return SigningKey{}, fmt.Errorf("create signing key: %w", err)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now()
	}
	k.CreatedAt = normTime(k.CreatedAt)
	k.RetiredAt = normTime(k.RetiredAt)
	k.PublishedUntil = normTime(k.PublishedUntil)
	k.PrivateKey = append([]byte(nil), k.PrivateKey...)
	err := s.db.writeTx(ctx, func(q querier) error {
		dup, err := exists(ctx, q, "SELECT 1 FROM signing_keys WHERE kid = ?", k.KID)
		if err != nil {
			return err
		}
		if dup {
			return fmt.Errorf("signing key %q already exists: %w", k.KID, ErrConflict)
		}
		_, err = q.exec(ctx, "INSERT INTO signing_keys ("+signingKeyColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
			k.KID, k.Alg, base64.StdEncoding.EncodeToString(k.PrivateKey), k.PublicJWK,
			toMillis(k.CreatedAt), toMillisOpt(k.RetiredAt), toMillisOpt(k.PublishedUntil))
		return writeErr(err)
	})
	if err != nil {
		return SigningKey{}, fmt.Errorf("create signing key %s: %w", k.KID, err)
	}
	return k, nil
}

func (s *sqlStore) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	var out []SigningKey
	err := s.db.readTx(ctx, func(q querier) error {
		rs, err := q.query(ctx, "SELECT "+signingKeyColumns+" FROM signing_keys ORDER BY created_at DESC, kid DESC")
		if err != nil {
			return err
		}
		defer rs.Close()
		out = []SigningKey{}
		for rs.Next() {
			k, err := scanSigningKey(rs)
			if err != nil {
				return err
			}
			out = append(out, k)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return out, nil
}

func (s *sqlStore) RetireSigningKeys(ctx context.Context, keep string, at, publishedUntil time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("retire signing keys: %w", invalid("retirement time is zero"))
	}
	if publishedUntil.Before(at) {
		return fmt.Errorf("retire signing keys: %w", invalid("publication must not end before retirement"))
	}
	err := s.db.writeTx(ctx, func(q querier) error {
		var retired int64
		err := q.queryRow(ctx, "SELECT retired_at FROM signing_keys WHERE kid = ?", keep).Scan(&retired)
		if errors.Is(err, errNoRows) {
			return fmt.Errorf("signing key %q: %w", keep, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if retired != 0 {
			return fmt.Errorf("signing key %q is retired itself (a concurrent rotation?): %w", keep, ErrConflict)
		}
		_, err = q.exec(ctx, "UPDATE signing_keys SET retired_at = ?, published_until = ? WHERE kid <> ? AND retired_at = 0",
			toMillis(normTime(at)), toMillis(normTime(publishedUntil)), keep)
		return err
	})
	if err != nil {
		return fmt.Errorf("retire signing keys except %s: %w", keep, err)
	}
	return nil
}

func (s *sqlStore) PruneSigningKeys(ctx context.Context, now time.Time) (int, error) {
	if now.IsZero() {
		return 0, fmt.Errorf("prune signing keys: %w", invalid("time is zero"))
	}
	n, err := s.db.q().exec(ctx, "DELETE FROM signing_keys WHERE retired_at <> 0 AND published_until < ?", toMillis(normTime(now)))
	if err != nil {
		return 0, fmt.Errorf("prune signing keys: %w", err)
	}
	return int(n), nil
}
