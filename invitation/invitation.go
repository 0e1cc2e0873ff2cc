// Package invitation makes and checks the one-time links with which a human an admin added
// chooses a password (GET/POST <issuer>/invite/<token>).
//
// A token is a selector and a verifier, both random: the selector finds the stored invitation,
// the verifier proves the link. Only the verifier's SHA-256 is stored, and it is compared in
// constant time, so neither a copy of the database nor response timing gives a usable link.
package invitation

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// TTL is how long an invitation link works (once).
const TTL = 7 * 24 * time.Hour

// PathPrefix is the path of the invitation page under a host's issuer, followed by the token.
const PathPrefix = "/invite/"

const (
	selectorBytes = 16 // 22 base64url characters
	verifierBytes = 32 // 43 base64url characters
	selectorLen   = 22
	verifierLen   = 43
)

// Token is a new invitation: Value goes into the link (shown once), Selector and VerifierHash
// into the store.
type Token struct {
	Value        string
	Selector     string
	VerifierHash string
}

// New makes a random token.
func New() Token {
	var sel [selectorBytes]byte
	var ver [verifierBytes]byte
	_, _ = rand.Read(sel[:])
	_, _ = rand.Read(ver[:])
	s := base64.RawURLEncoding.EncodeToString(sel[:])
	v := base64.RawURLEncoding.EncodeToString(ver[:])
	return Token{Value: s + "." + v, Selector: s, VerifierHash: Hash(v)}
}

// Parse splits a link's token into its selector and verifier; ok is false for anything that
// is not a token New could have made.
func Parse(token string) (selector, verifier string, ok bool) {
	s, v, found := strings.Cut(token, ".")
	if !found || len(s) != selectorLen || len(v) != verifierLen {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(s); err != nil {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(v); err != nil {
		return "", "", false
	}
	return s, v, true
}

// Hash is the hex SHA-256 of a verifier, as stored.
func Hash(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return hex.EncodeToString(sum[:])
}

// Verify reports whether verifier matches the stored hash, in constant time.
func Verify(verifier, storedHash string) bool {
	got := Hash(verifier)
	return len(storedHash) == len(got) && subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}

// URL is the invitation link of token under a host's issuer.
func URL(issuer, token string) string {
	return strings.TrimSuffix(issuer, "/") + PathPrefix + token
}
