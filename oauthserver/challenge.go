package oauthserver

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// PKCE (RFC 7636) as OAuth 2.1 and the MCP authorization spec require it: every authorization
// request carries a code_challenge made with S256. These checks run on the authorization
// request; fosite verifies the code_verifier against the stored challenge at the token endpoint.

// PKCEMethodS256 is the only code_challenge_method trustgate accepts.
const PKCEMethodS256 = "S256"

// Bounds of a code_challenge (RFC 7636 §4.2 bounds the verifier to 43..128 characters of the
// same alphabet; an S256 challenge is always 43).
const (
	MinPKCEChallengeLen = 43
	MaxPKCEChallengeLen = 128
)

// ErrInvalidPKCE is wrapped by every error of ValidatePKCEChallenge (an OAuth invalid_request).
var ErrInvalidPKCE = errors.New("invalid PKCE parameters")

// ValidatePKCEChallenge checks the code_challenge_method and code_challenge of an
// authorization request: the method must be exactly "S256" (plain and a missing method are
// refused), and the challenge 43 to 128 characters of [A-Za-z0-9-._~].
func ValidatePKCEChallenge(method, challenge string) error {
	switch method {
	case PKCEMethodS256:
	case "":
		return fmt.Errorf("%w: code_challenge_method is missing; S256 is required", ErrInvalidPKCE)
	case "plain":
		return fmt.Errorf("%w: code_challenge_method plain is not allowed; S256 is required", ErrInvalidPKCE)
	default:
		return fmt.Errorf("%w: code_challenge_method %q is not supported; S256 is required", ErrInvalidPKCE, truncateForMessage(method, 32))
	}
	if challenge == "" {
		return fmt.Errorf("%w: code_challenge is required (PKCE with S256)", ErrInvalidPKCE)
	}
	if n := len(challenge); n < MinPKCEChallengeLen || n > MaxPKCEChallengeLen {
		return fmt.Errorf("%w: code_challenge must be %d to %d characters, got %d", ErrInvalidPKCE, MinPKCEChallengeLen, MaxPKCEChallengeLen, n)
	}
	for i := 0; i < len(challenge); i++ {
		if !isPKCEChar(challenge[i]) {
			return fmt.Errorf("%w: code_challenge may contain only A-Z, a-z, 0-9, '-', '.', '_' and '~' (base64url without padding for S256)", ErrInvalidPKCE)
		}
	}
	return nil
}

// S256Challenge is the S256 code_challenge of a code_verifier: BASE64URL(SHA256(verifier))
// without padding (RFC 7636 §4.2).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// isPKCEChar reports whether c is an RFC 7636 unreserved character: ALPHA / DIGIT / "-" / "." /
// "_" / "~".
func isPKCEChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// truncateForMessage shortens s to at most n bytes for an error message (callers quote it).
func truncateForMessage(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
