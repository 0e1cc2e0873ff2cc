package store

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Passkeys: the WebAuthn credentials humans registered to sign in without a password. The
// store keeps what verifying a later sign-in needs (the public key, the signature counter,
// the backup-eligible flag) and what the account page shows (a name, the authenticator model,
// when it was created and last used). The ceremonies in progress are SSOStates.

// Passkey is one registered WebAuthn credential of a human.
type Passkey struct {
	Host   string
	UserID string
	// CredentialID is the credential's raw id (1 to MaxPasskeyIDBytes bytes), unique in the
	// host.
	CredentialID []byte
	// Name is what the human calls it ("" shows the authenticator's model or the date).
	Name string
	// PublicKey is the credential's COSE public key.
	PublicKey       []byte
	AttestationType string
	// SignCount is the authenticator's signature counter at the last verified use.
	SignCount uint32
	// Transports are how the browser reaches the authenticator ("internal", "usb", "hybrid"...).
	Transports []string
	// AAGUID is the authenticator model's id (16 bytes, or none).
	AAGUID []byte
	// BackupEligible is the credential's BE flag (it never changes); BackupState its BS flag
	// at the last use (synced to a cloud account or not).
	BackupEligible bool
	BackupState    bool
	CreatedAt      time.Time
	// LastUsedAt is the last sign-in with it (zero: never).
	LastUsedAt time.Time
}

// Bounds of a passkey.
const (
	// MaxPasskeyIDBytes is WebAuthn's bound of a credential id.
	MaxPasskeyIDBytes = 1023
	// MaxPasskeysPerHuman bounds how many passkeys one human registers on a host.
	MaxPasskeysPerHuman = 20
	// MaxPasskeyNameLen bounds a passkey's name, in characters.
	MaxPasskeyNameLen        = 64
	maxPasskeyPublicKeyBytes = 2048
	maxPasskeyTransports     = 8
	maxPasskeyTextLen        = 32
	passkeyColumns           = "host_key, credential_id, user_id, name, public_key, attestation_type, sign_count, transports, aaguid, backup_eligible, backup_state, created_at, last_used_at"
)

// ErrSignCountRegressed: a passkey's signature counter did not grow, a sign of a cloned
// authenticator (UsePasskey).
var ErrSignCountRegressed = fmt.Errorf("passkey signature counter did not increase: %w", ErrConflict)

// Passkeys stores humans' passkeys.
type Passkeys interface {
	// CreatePasskey stores a new passkey (CreatedAt set by the store). ErrNotFound when the
	// human does not exist, ErrConflict when the credential id is taken in the host or the
	// human has MaxPasskeysPerHuman already, ErrInvalid when a field is out of bounds.
	CreatePasskey(ctx context.Context, p Passkey) (Passkey, error)
	// GetPasskey returns the host's passkey with credentialID; ErrNotFound when there is none.
	GetPasskey(ctx context.Context, host string, credentialID []byte) (Passkey, error)
	// ListPasskeys returns a human's passkeys, oldest first.
	ListPasskeys(ctx context.Context, host, userID string) ([]Passkey, error)
	// UsePasskey records a verified sign-in with the passkey at at: its new signature
	// counter and backup state. The counter must be larger than the stored one unless both
	// are 0 (authenticators without a counter); otherwise nothing changes and the error is
	// ErrSignCountRegressed, also when two sign-ins with the same counter race. ErrNotFound
	// when the passkey was removed.
	UsePasskey(ctx context.Context, host string, credentialID []byte, signCount uint32, backupState bool, at time.Time) error
	// DeletePasskey removes a human's passkey; ErrNotFound when the human has none with
	// credentialID.
	DeletePasskey(ctx context.Context, host, userID string, credentialID []byte) error
}

// encodePasskeyID is how a credential id is kept: base64url without padding.
func encodePasskeyID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

func validPasskeyID(id []byte) error {
	if len(id) == 0 || len(id) > MaxPasskeyIDBytes {
		return invalid("passkey credential id of %d bytes: want 1 to %d", len(id), MaxPasskeyIDBytes)
	}
	return nil
}

func normalizePasskey(p Passkey) (Passkey, error) {
	p.Name = strings.TrimSpace(p.Name)
	if err := firstErr(validHostKey(p.Host), validPasskeyID(p.CredentialID)); err != nil {
		return Passkey{}, err
	}
	switch {
	case p.UserID == "":
		return Passkey{}, invalid("a passkey needs its human")
	case len(p.PublicKey) == 0 || len(p.PublicKey) > maxPasskeyPublicKeyBytes:
		return Passkey{}, invalid("passkey public key of %d bytes: want 1 to %d", len(p.PublicKey), maxPasskeyPublicKeyBytes)
	case !utf8.ValidString(p.Name) || utf8.RuneCountInString(p.Name) > MaxPasskeyNameLen || strings.ContainsFunc(p.Name, isControl):
		return Passkey{}, invalid("passkey name: want at most %d printable characters", MaxPasskeyNameLen)
	case len(p.AAGUID) != 0 && len(p.AAGUID) != 16:
		return Passkey{}, invalid("passkey AAGUID of %d bytes: want 16 or none", len(p.AAGUID))
	case len(p.AttestationType) > maxPasskeyTextLen:
		return Passkey{}, invalid("passkey attestation type: want at most %d characters", maxPasskeyTextLen)
	case len(p.Transports) > maxPasskeyTransports:
		return Passkey{}, invalid("passkey transports: want at most %d", maxPasskeyTransports)
	}
	for _, t := range p.Transports {
		if t == "" || len(t) > maxPasskeyTextLen || strings.ContainsFunc(t, isControl) {
			return Passkey{}, invalid("passkey transport %q: want a short name", t)
		}
	}
	if p.Transports == nil {
		p.Transports = []string{}
	}
	return p, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func scanPasskey(r row) (Passkey, error) {
	var (
		p                           Passkey
		id, pub, transports, aaguid string
		count, created, used        int64
		backupEligible, backupState bool
	)
	if err := r.Scan(&p.Host, &id, &p.UserID, &p.Name, &pub, &p.AttestationType, &count, &transports, &aaguid,
		&backupEligible, &backupState, &created, &used); err != nil {
		return Passkey{}, err
	}
	var err error
	if p.CredentialID, err = base64.RawURLEncoding.DecodeString(id); err != nil {
		return Passkey{}, errors.New("stored passkey credential id is not base64url")
	}
	if p.PublicKey, err = decodeCredentials(pub); err != nil {
		return Passkey{}, err
	}
	if p.AAGUID, err = hex.DecodeString(aaguid); err != nil {
		return Passkey{}, errors.New("stored passkey AAGUID is not hex")
	}
	if len(p.AAGUID) == 0 {
		p.AAGUID = nil
	}
	if err := json.Unmarshal([]byte(transports), &p.Transports); err != nil {
		return Passkey{}, fmt.Errorf("stored passkey transports: %w", err)
	}
	p.SignCount = uint32(count)
	p.BackupEligible, p.BackupState = backupEligible, backupState
	p.CreatedAt, p.LastUsedAt = fromMillis(created), fromMillisOpt(used)
	return p, nil
}

func (s *sqlStore) CreatePasskey(ctx context.Context, in Passkey) (Passkey, error) {
	p, err := normalizePasskey(in)
	if err != nil {
		return Passkey{}, fmt.Errorf("create passkey of %s/%s: %w", in.Host, in.UserID, err)
	}
	p.CreatedAt, p.LastUsedAt = now(), normTime(p.LastUsedAt)
	transports, err := json.Marshal(p.Transports)
	if err != nil {
		return Passkey{}, fmt.Errorf("create passkey of %s/%s: %w", p.Host, p.UserID, err)
	}
	err = s.db.writeTx(ctx, func(q querier) error {
		if err := requireUser(ctx, q, p.Host, p.UserID); err != nil {
			return err
		}
		var n int64
		if err := q.queryRow(ctx, "SELECT COUNT(*) FROM passkeys WHERE host_key = ? AND user_id = ?", p.Host, p.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= MaxPasskeysPerHuman {
			return fmt.Errorf("the human has %d passkeys, the most there may be: %w", n, ErrConflict)
		}
		_, err := q.exec(ctx, "INSERT INTO passkeys ("+passkeyColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			p.Host, encodePasskeyID(p.CredentialID), p.UserID, p.Name, encodeCredentials(p.PublicKey), p.AttestationType,
			int64(p.SignCount), string(transports), hex.EncodeToString(p.AAGUID), p.BackupEligible, p.BackupState,
			toMillis(p.CreatedAt), toMillisOpt(p.LastUsedAt))
		return writeErr(err)
	})
	if err != nil {
		return Passkey{}, fmt.Errorf("create passkey of %s/%s: %w", p.Host, p.UserID, err)
	}
	return p, nil
}

func (s *sqlStore) GetPasskey(ctx context.Context, host string, credentialID []byte) (Passkey, error) {
	if validPasskeyID(credentialID) != nil {
		return Passkey{}, fmt.Errorf("get passkey in %s: %w", host, ErrNotFound)
	}
	p, err := scanPasskey(s.db.q().queryRow(ctx, "SELECT "+passkeyColumns+" FROM passkeys WHERE host_key = ? AND credential_id = ?",
		host, encodePasskeyID(credentialID)))
	if errors.Is(err, errNoRows) {
		return Passkey{}, fmt.Errorf("get passkey in %s: %w", host, ErrNotFound)
	}
	if err != nil {
		return Passkey{}, fmt.Errorf("get passkey in %s: %w", host, err)
	}
	return p, nil
}

func (s *sqlStore) ListPasskeys(ctx context.Context, host, userID string) ([]Passkey, error) {
	rs, err := s.db.q().query(ctx, "SELECT "+passkeyColumns+" FROM passkeys WHERE host_key = ? AND user_id = ?", host, userID)
	if err != nil {
		return nil, fmt.Errorf("list passkeys of %s/%s: %w", host, userID, err)
	}
	defer rs.Close()
	out := []Passkey{}
	for rs.Next() {
		p, err := scanPasskey(rs)
		if err != nil {
			return nil, fmt.Errorf("list passkeys of %s/%s: %w", host, userID, err)
		}
		out = append(out, p)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list passkeys of %s/%s: %w", host, userID, err)
	}
	slices.SortStableFunc(out, func(a, b Passkey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func (s *sqlStore) UsePasskey(ctx context.Context, host string, credentialID []byte, signCount uint32, backupState bool, at time.Time) error {
	if err := validPasskeyID(credentialID); err != nil {
		return fmt.Errorf("use passkey in %s: %w", host, err)
	}
	id := encodePasskeyID(credentialID)
	err := s.db.writeTx(ctx, func(q querier) error {
		// One statement compares and sets, so two replicas cannot both accept one counter.
		n, err := q.exec(ctx, "UPDATE passkeys SET sign_count = ?, backup_state = ?, last_used_at = ?"+
			" WHERE host_key = ? AND credential_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))",
			int64(signCount), backupState, toMillis(at), host, id, int64(signCount), int64(signCount))
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		found, err := exists(ctx, q, "SELECT 1 FROM passkeys WHERE host_key = ? AND credential_id = ?", host, id)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		return ErrSignCountRegressed
	})
	if err != nil {
		return fmt.Errorf("use passkey in %s: %w", host, err)
	}
	return nil
}

func (s *sqlStore) DeletePasskey(ctx context.Context, host, userID string, credentialID []byte) error {
	if validPasskeyID(credentialID) != nil {
		return fmt.Errorf("delete passkey of %s/%s: %w", host, userID, ErrNotFound)
	}
	n, err := s.db.q().exec(ctx, "DELETE FROM passkeys WHERE host_key = ? AND user_id = ? AND credential_id = ?", host, userID, encodePasskeyID(credentialID))
	if err != nil {
		return fmt.Errorf("delete passkey of %s/%s: %w", host, userID, err)
	}
	if n == 0 {
		return fmt.Errorf("delete passkey of %s/%s: %w", host, userID, ErrNotFound)
	}
	return nil
}
