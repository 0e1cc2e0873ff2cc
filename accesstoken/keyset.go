// Package accesstoken holds the ES256 keys that sign trustgate's access tokens, mints RFC 9068 JWT
// access tokens (with typed host, agent and grant claims) and verifies them, and says how an MCP
// resource challenges a client that has none (WWWAuthenticate, ProtectedResourceMetadataURL,
// and the resource of a Dynamic MCP link).
//
// The keys live in the store (store.SigningKeys), each private key sealed with the master key
// (secrets.Keyring, additional data "signing-key:<kid>"). A key signs while it is the newest
// one not retired; Rotate makes a new signing key and retires the others, which stay published
// in the JWKS until every token they signed has expired (MaxTokenLifetime, plus PublishGrace
// for the replicas that have not reloaded yet), and are then pruned.
//
// The kid of a key is its RFC 7638 JWK thumbprint (SHA-256, base64url without padding: 43
// characters), so anyone holding the JWKS can recompute it.
//
// A KeySet keeps what Verify needs — the parsed public keys by kid — in one immutable snapshot
// behind an atomic pointer: Verify never touches the store. Reload (and Run, which calls it
// periodically) re-reads the store so that a rotation made elsewhere (another replica, or
// `trustgate admin keys rotate`) is picked up.
package accesstoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// Alg is the one signature algorithm of the key set.
const Alg = "ES256"

// Defaults of Options and Run.
const (
	DefaultMaxTokenLifetime = 24 * time.Hour
	DefaultPublishGrace     = 10 * time.Minute
	DefaultReloadInterval   = 30 * time.Second
)

// minKickInterval limits the reloads an unknown kid in Verify asks Run for.
const minKickInterval = time.Second

// Options tune a KeySet. The zero value of each field means its default.
type Options struct {
	// MaxTokenLifetime is the longest lifetime of a token Mint accepts, and so how long a
	// retired key stays published (default 24h, the longest access-token lifetime a host may
	// configure).
	MaxTokenLifetime time.Duration
	// PublishGrace is added to the publication of a retired key, for the tokens that replicas
	// which have not reloaded yet still sign with it (default 10m; keep it above the reload
	// interval).
	PublishGrace time.Duration
	// VerifiedTokens bounds how many verified tokens Verify remembers (default
	// DefaultVerifiedTokens; negative: none).
	VerifiedTokens int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives reload failures and skipped keys (default: discarded).
	Logger *slog.Logger
}

// KeySet signs and verifies access tokens. It is safe for concurrent use.
type KeySet struct {
	st   store.SigningKeys
	ring *secrets.Keyring
	opts Options
	log  *slog.Logger

	cur  atomic.Pointer[snapshot]
	mu   sync.Mutex    // serialises reloads and rotations
	kick chan struct{} // an unknown kid asks Run to reload early

	verified verifiedCache
}

// snapshot is one immutable view of the key set.
type snapshot struct {
	keys   map[string]publicKey
	signer *signingKey
	jwks   []byte
	// version identifies the store rows the snapshot was built from.
	version string
	// refreshAt is when the publication of a published retired key ends (zero: none is
	// retired): the snapshot must be rebuilt then even if the store did not change.
	refreshAt time.Time
}

type publicKey struct {
	key *ecdsa.PublicKey
	// until is the end of the key's publication; zero while it is not retired.
	until time.Time
}

type signingKey struct {
	kid    string
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

// Open loads the key set from the store, creating the first key when there is no key that may
// sign. Replicas starting together on an empty store may each create one: the newest signs
// and every one is published, and Reload makes all replicas agree on the newest.
func Open(ctx context.Context, st store.SigningKeys, keys *secrets.Keyring, opts Options) (*KeySet, error) {
	if st == nil || keys == nil {
		return nil, errors.New("accesstoken: a store and a master keyring are required")
	}
	if opts.MaxTokenLifetime <= 0 {
		opts.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if opts.PublishGrace <= 0 {
		opts.PublishGrace = DefaultPublishGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeySet{st: st, ring: keys, opts: opts, log: log, kick: make(chan struct{}, 1)}
	k.verified.max = opts.VerifiedTokens
	if k.verified.max == 0 {
		k.verified.max = DefaultVerifiedTokens
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx, true); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeySet) now() time.Time { return k.opts.Now() }

// JWKS is the public key set as a JSON document, {"keys":[...]}, newest key first. The bytes
// are shared: do not modify them.
func (k *KeySet) JWKS() []byte { return k.cur.Load().jwks }

// SigningKID is the kid Mint signs with.
func (k *KeySet) SigningKID() string { return k.cur.Load().signer.kid }

// Reload re-reads the keys from the store, so that a rotation made elsewhere takes effect. It
// is a cheap no-op (one query) when nothing changed. On error the key set stays as it was.
func (k *KeySet) Reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx, false)
}

// Run calls Reload every interval (DefaultReloadInterval when every <= 0), and soon after
// Verify met an unknown kid (a rotation made by another replica), until ctx ends. Failures
// are logged; the key set stays as it was.
func (k *KeySet) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultReloadInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-k.kick:
			if time.Since(last) < minKickInterval {
				continue
			}
		}
		last = time.Now()
		if err := k.Reload(ctx); err != nil && ctx.Err() == nil {
			k.log.Error("reload access-token signing keys", "err", err)
		}
	}
}

// Rotate makes a new signing key and retires every other key, publishing each until
// now+MaxTokenLifetime+PublishGrace, then prunes the keys whose publication has ended. Other
// replicas switch to the new key when they reload.
func (k *KeySet) Rotate(ctx context.Context) (newKID string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	kid, err := k.createKey(ctx, now)
	if err != nil {
		return "", err
	}
	if err := k.st.RetireSigningKeys(ctx, kid, now, now.Add(k.opts.MaxTokenLifetime+k.opts.PublishGrace)); err != nil {
		return "", fmt.Errorf("rotate signing keys: %w", err)
	}
	if n, err := k.st.PruneSigningKeys(ctx, now); err != nil {
		k.log.Warn("prune expired signing keys", "err", err)
	} else if n > 0 {
		k.log.Info("pruned expired signing keys", "count", n)
	}
	if err := k.reloadLocked(ctx, false); err != nil {
		return "", fmt.Errorf("rotate signing keys: %w", err)
	}
	return kid, nil
}

// reloadLocked reads the store and installs a new snapshot when the rows changed or a
// publication ended. With create, a key is created when none may sign. k.mu is held.
func (k *KeySet) reloadLocked(ctx context.Context, create bool) error {
	rows, err := k.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if create && !hasActive(rows) {
		if _, err := k.createKey(ctx, k.now()); err != nil {
			return err
		}
		// Read again: another replica may have created one meanwhile.
		if rows, err = k.st.ListSigningKeys(ctx); err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
	}
	now := k.now()
	version := rowsVersion(rows)
	prev := k.cur.Load()
	if prev != nil && prev.version == version && (prev.refreshAt.IsZero() || now.Before(prev.refreshAt)) {
		return nil
	}
	s, err := k.build(rows, now, prev)
	if err != nil {
		return err
	}
	k.cur.Store(s)
	if prev != nil && prev.signer.kid != s.signer.kid {
		k.log.Info("access tokens are now signed with a new key", "kid", s.signer.kid, "previous", prev.signer.kid)
	}
	return nil
}

func hasActive(rows []store.SigningKey) bool {
	for _, r := range rows {
		if r.Alg == Alg && r.RetiredAt.IsZero() {
			return true
		}
	}
	return false
}

// rowsVersion identifies the rows by what a snapshot depends on.
func rowsVersion(rows []store.SigningKey) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.KID)
		b.WriteByte(' ')
		b.WriteString(r.Alg)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(r.RetiredAt.UnixMilli(), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(r.PublishedUntil.UnixMilli(), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// build makes a snapshot of the rows (newest first) at now, reusing what prev already parsed.
func (k *KeySet) build(rows []store.SigningKey, now time.Time, prev *snapshot) (*snapshot, error) {
	s := &snapshot{keys: make(map[string]publicKey, len(rows)), version: rowsVersion(rows)}
	var jwks []json.RawMessage
	var signerRow *store.SigningKey
	for i := range rows {
		r := &rows[i]
		if r.Alg != Alg {
			k.log.Warn("skipping a signing key of an unsupported algorithm", "kid", r.KID, "alg", r.Alg)
			continue
		}
		retired := !r.RetiredAt.IsZero()
		if retired && !now.Before(r.PublishedUntil) {
			continue // its publication has ended
		}
		var pub *ecdsa.PublicKey
		if prev != nil {
			if p, ok := prev.keys[r.KID]; ok {
				pub = p.key
			}
		}
		if pub == nil {
			var err error
			if pub, err = parsePublicJWK(r.PublicJWK); err != nil {
				if !retired && signerRow == nil {
					return nil, fmt.Errorf("signing key %s: %w", r.KID, err)
				}
				k.log.Error("skipping a signing key whose public key does not parse", "kid", r.KID, "err", err)
				continue
			}
		}
		var until time.Time
		if retired {
			until = r.PublishedUntil
			if s.refreshAt.IsZero() || until.Before(s.refreshAt) {
				s.refreshAt = until
			}
		}
		s.keys[r.KID] = publicKey{key: pub, until: until}
		jwk, err := publicJWK(r.KID, pub)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.KID, err)
		}
		jwks = append(jwks, jwk)
		if !retired && signerRow == nil {
			signerRow = r
		}
	}
	if signerRow == nil {
		return nil, errors.New("load signing keys: no key may sign (every key is retired)")
	}
	if prev != nil && prev.signer.kid == signerRow.KID {
		s.signer = prev.signer
	} else {
		sk, err := k.openSigner(signerRow, s.keys[signerRow.KID].key)
		if err != nil {
			return nil, err
		}
		s.signer = sk
	}
	if jwks == nil {
		jwks = []json.RawMessage{}
	}
	doc, err := json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{jwks})
	if err != nil {
		return nil, fmt.Errorf("render JWKS: %w", err)
	}
	s.jwks = doc
	return s, nil
}

// openSigner unseals a signing key and checks it against its published public key.
func (k *KeySet) openSigner(r *store.SigningKey, pub *ecdsa.PublicKey) (*signingKey, error) {
	der, err := k.ring.Open(r.PrivateKey, sealAAD(r.KID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s cannot be opened with this master key: %w", r.KID, err)
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: private key does not parse", r.KID)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %s: not a P-256 ECDSA key", r.KID)
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("signing key %s: private key does not match its published public key", r.KID)
	}
	signer, err := newSigner(r.KID, priv)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.KID, err)
	}
	return &signingKey{kid: r.KID, key: priv, signer: signer}, nil
}

func newSigner(kid string, priv *ecdsa.PrivateKey) (jose.Signer, error) {
	return jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: Alg}},
		(&jose.SignerOptions{}).WithType(TokenType))
}

// createKey generates a key, seals it and stores it; it returns its kid.
func (k *KeySet) createKey(ctx context.Context, now time.Time) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	kid, err := KID(&priv.PublicKey)
	if err != nil {
		return "", err
	}
	jwk, err := publicJWK(kid, &priv.PublicKey)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode signing key: %w", err)
	}
	sealed := k.ring.Seal(der, sealAAD(kid))
	clear(der)
	if _, err := k.st.CreateSigningKey(ctx, store.SigningKey{
		KID: kid, Alg: Alg, PrivateKey: sealed, PublicJWK: string(jwk), CreatedAt: now,
	}); err != nil {
		return "", fmt.Errorf("store new signing key: %w", err)
	}
	k.log.Info("created an access-token signing key", "kid", kid)
	return kid, nil
}

// sealAAD binds a sealed private key to its kid.
func sealAAD(kid string) string { return "signing-key:" + kid }

// KID is the kid of a public key: its RFC 7638 JWK thumbprint (SHA-256), base64url without
// padding.
func KID(pub *ecdsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// publicJWK renders a public key as the JWK the JWKS publishes: kty, crv, x, y, kid, alg, use.
func publicJWK(kid string, pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: Alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("render public JWK: %w", err)
	}
	return b, nil
}

// parsePublicJWK reads a stored public JWK: a P-256 public key and nothing private.
func parsePublicJWK(s string) (*ecdsa.PublicKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(s)); err != nil {
		return nil, fmt.Errorf("public JWK: %w", err)
	}
	pub, ok := jwk.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("public JWK: not a P-256 EC public key")
	}
	return pub, nil
}
