package store

import (
	"crypto/rand"
	"encoding/base32"
)

// idEncoding is lower-case base32 without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix followed by 20 random lower-case base32 characters (100 bits).
func newID(prefix string) string {
	var b [13]byte         // 104 bits: 21 characters, of which 20 are kept
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + idEncoding.EncodeToString(b[:])[:20]
}
