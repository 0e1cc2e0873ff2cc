package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// tokenPrefix starts every admin API token, so that secret scanners and people recognise it.
const tokenPrefix = "tgat_"

// NewTokenSecret makes a new admin API token: the secret (shown once), the hash the store
// keeps, and a short prefix for listings.
func NewTokenSecret() (secret, hash, prefix string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret = tokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return secret, HashToken(secret), secret[:len(tokenPrefix)+6]
}

// HashToken is the stored form of a token: hex SHA-256. Tokens carry 256 random bits, so a fast
// hash is enough, and lookups by hash compare in constant time inside the database index.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
