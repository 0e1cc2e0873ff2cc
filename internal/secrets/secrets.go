// Package secrets seals credentials at rest with the gateway's master key (AES-256-GCM). A
// sealed value names the key that sealed it, so keys can be rotated without re-encrypting
// everything at once.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the master key's length in bytes.
const KeySize = 32

// KeyFile is where a generated master key is kept inside the data directory.
const KeyFile = "master.key"

// ErrNoKey is returned by Load when no master key is given and the data directory holds none.
var ErrNoKey = errors.New("no master key")

// version prefixes every sealed value.
const version = byte(1)

// ErrOpen is returned when a sealed value cannot be opened: wrong key, or tampered data.
var ErrOpen = errors.New("sealed value cannot be opened (wrong master key or tampered data)")

// Keyring seals with its primary key and opens with any key it holds.
type Keyring struct {
	primary    keyEntry
	primaryRaw []byte
	byID       map[string]cipher.AEAD
}

type keyEntry struct {
	id   string
	aead cipher.AEAD
}

// NewKeyring makes a keyring from raw keys; the first one seals.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("a keyring needs at least one key")
	}
	k := &Keyring{byID: map[string]cipher.AEAD{}}
	for i, raw := range keys {
		if len(raw) != KeySize {
			return nil, fmt.Errorf("master key %d is %d bytes, want %d", i+1, len(raw), KeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("master key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("master key %d: %w", i+1, err)
		}
		id := keyID(raw)
		k.byID[id] = aead
		if i == 0 {
			k.primary = keyEntry{id: id, aead: aead}
			k.primaryRaw = append([]byte(nil), raw...)
		}
	}
	return k, nil
}

// keyID names a key without revealing it: the first 8 hex digits of its SHA-256.
func keyID(raw []byte) string {
	sum := sha256.Sum256(append([]byte("trustgate master key id:"), raw...))
	return hex.EncodeToString(sum[:4])
}

// Derive returns a 32-byte secret for one purpose (HMAC-SHA256 of the label under the primary
// key): stable across restarts and equal on every replica holding the same master key, and
// independent for each label. Rotating the primary key changes every derived secret.
func (k *Keyring) Derive(label string) []byte {
	m := hmac.New(sha256.New, k.primaryRaw)
	m.Write([]byte("trustgate derived secret:" + label))
	return m.Sum(nil)
}

// Seal encrypts plaintext; aad binds the result to its context (e.g. "server:acme/linear"), so
// a sealed value copied to another row does not open there.
func (k *Keyring) Seal(plaintext []byte, aad string) []byte {
	nonce := make([]byte, k.primary.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := []byte{version}
	out = append(out, k.primary.id...)
	out = append(out, nonce...)
	return k.primary.aead.Seal(out, nonce, plaintext, []byte(aad))
}

// Open decrypts a value made by Seal with the same aad.
func (k *Keyring) Open(sealed []byte, aad string) ([]byte, error) {
	const idLen = 8
	if len(sealed) < 1+idLen || sealed[0] != version {
		return nil, ErrOpen
	}
	aead, ok := k.byID[string(sealed[1:1+idLen])]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with key %s, which this gateway does not hold", ErrOpen, sealed[1:1+idLen])
	}
	rest := sealed[1+idLen:]
	if len(rest) < aead.NonceSize() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// ParseKey reads a master key given as base64 (standard or URL alphabet) or hex.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("master key must be %d bytes in base64 or hex (generate one with: openssl rand -base64 32)", KeySize)
}

// LoadOrCreate returns the keyring for the given master key (base64 or hex; further keys,
// comma-separated, only open). With no key it uses the key file in dataDir, creating it with a
// fresh random key (mode 0600) on first use — fine for one gateway; replicas must share a key
// given explicitly.
func LoadOrCreate(masterKey, dataDir string) (_ *Keyring, generated bool, _ error) {
	k, err := Load(masterKey, dataDir)
	if !errors.Is(err, ErrNoKey) {
		return k, false, err
	}
	return create(dataDir)
}

// Load is LoadOrCreate without the create: with no key given and no key file it returns an
// error wrapping ErrNoKey. Tools that seal data the gateways must open use it, so that they
// never seal with a key the gateways do not hold.
func Load(masterKey, dataDir string) (*Keyring, error) {
	if masterKey != "" {
		var keys [][]byte
		for _, part := range strings.Split(masterKey, ",") {
			raw, err := ParseKey(part)
			if err != nil {
				return nil, err
			}
			keys = append(keys, raw)
		}
		return NewKeyring(keys...)
	}
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: none given and no key file %s", ErrNoKey, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	raw, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return NewKeyring(raw)
}

// create makes a new master key file in dataDir (mode 0600), or loads the one another process
// created first.
func create(dataDir string) (_ *Keyring, generated bool, _ error) {
	path := filepath.Join(dataDir, KeyFile)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory for the master key: %w", err)
	}
	raw := make([]byte, KeySize)
	_, _ = rand.Read(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreate("", dataDir) // another process created it first
	}
	if err != nil {
		return nil, false, fmt.Errorf("create master key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write master key file: %w", err)
	}
	k, err := NewKeyring(raw)
	return k, true, err
}
