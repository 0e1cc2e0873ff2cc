package accesstoken

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenType is the JOSE "typ" of an access token (RFC 9068 §2.1).
const TokenType = "at+jwt"

// DefaultLeeway is the clock skew Verify tolerates when Expect.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// maxTokenLen bounds what Verify parses at all.
const maxTokenLen = 8 << 10

// Errors of Verify, to test with errors.Is. Their messages never contain the token.
var (
	// ErrMalformed: not a compact ES256 JWS with typ at+jwt, or claims missing or mistyped.
	// Tokens of any other algorithm ("none", HS256, RS256, ...) are ErrMalformed.
	ErrMalformed = errors.New("malformed access token")
	// ErrUnknownKey: the kid is not one of the published keys (never was, or was pruned).
	ErrUnknownKey = errors.New("access token signed by an unknown key")
	// ErrBadSignature: the signature does not verify with the key its kid names.
	ErrBadSignature = errors.New("access token signature is invalid")
	// ErrExpired: the token's exp has passed (beyond the leeway).
	ErrExpired = errors.New("access token has expired")
	// ErrNotYetValid: the token's nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("access token is not valid yet")
	// ErrWrongAudience: the token's aud does not contain the expected audience.
	ErrWrongAudience = errors.New("access token is for another audience")
	// ErrWrongIssuer: the token's iss is not the expected issuer.
	ErrWrongIssuer = errors.New("access token is from another issuer")
)

// AccessClaims are the claims of an access token (RFC 9068 §2.2).
type AccessClaims struct {
	Issuer   string
	Subject  string
	Audience []string
	ClientID string
	Scope    string // space-separated
	JTI      string
	// IssuedAt, NotBefore, Expiry have a precision of one second.
	IssuedAt, NotBefore, Expiry time.Time
	// Host is the host (tenant) whose authorization server issued the token (claim "host").
	Host string
	// AgentID is the agent the token was issued to (claim "agent_id").
	AgentID string
	// Grant names the token's grant (claim GrantClaim): its gateway session, the request id
	// every code and token of one authorization shares. Revoking the grant revokes every
	// access token carrying it.
	Grant string
	// Extra are further claims. After Verify, JSON numbers are float64, arrays []any and
	// objects map[string]any.
	Extra map[string]any
}

// Names on the wire of the claims AccessClaims has typed fields for beyond RFC 9068's.
const (
	HostClaim    = "host"
	AgentIDClaim = "agent_id"
	// GrantClaim is OpenID's "sid" (session id).
	GrantClaim = "sid"
)

// Expect is what Verify checks a token against.
type Expect struct {
	// Issuer must equal the token's iss; Audience must be one of its aud. Both are required.
	Issuer   string
	Audience string
	// Now is the time to check exp, nbf and iat against (zero: the KeySet's clock).
	Now time.Time
	// Leeway is the clock skew tolerated (zero: DefaultLeeway; negative: none).
	Leeway time.Duration
}

// registered are the claims Mint writes itself; Extra may not hold them.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", HostClaim, AgentIDClaim, GrantClaim}

// wireClaims is the JSON payload Mint writes, before the Extra claims.
type wireClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience any    `json:"aud"` // a string when there is one audience, else an array
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	NotBef   int64  `json:"nbf"`
	JTI      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Host     string `json:"host,omitempty"`
	AgentID  string `json:"agent_id,omitempty"`
	Grant    string `json:"sid,omitempty"`
}

// Mint signs an access token with the current signing key. Issuer, Subject, ClientID, at least
// one Audience and Expiry are required; IssuedAt defaults to now, NotBefore to IssuedAt, and
// JTI to 128 random bits. Expiry may not be more than MaxTokenLifetime away, since that is how
// long a retired key stays published.
func (k *KeySet) Mint(c AccessClaims) (string, error) {
	now := k.now()
	if c.Issuer == "" || c.Subject == "" || c.ClientID == "" {
		return "", errors.New("mint access token: issuer, subject and client_id are required")
	}
	if len(c.Audience) == 0 || slices.Contains(c.Audience, "") {
		return "", errors.New("mint access token: at least one audience is required, none empty")
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	switch {
	case c.Expiry.IsZero():
		return "", errors.New("mint access token: expiry is required")
	case !c.Expiry.After(c.IssuedAt) || !c.Expiry.After(c.NotBefore):
		return "", errors.New("mint access token: expiry must come after issued-at and not-before")
	case c.Expiry.Sub(now) > k.opts.MaxTokenLifetime:
		return "", fmt.Errorf("mint access token: lifetime above the maximum of %s", k.opts.MaxTokenLifetime)
	}
	if c.JTI == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		c.JTI = base64.RawURLEncoding.EncodeToString(b[:])
	}
	w := wireClaims{
		Issuer: c.Issuer, Subject: c.Subject, Expiry: c.Expiry.Unix(), IssuedAt: c.IssuedAt.Unix(),
		NotBef: c.NotBefore.Unix(), JTI: c.JTI, ClientID: c.ClientID, Scope: c.Scope,
		Host: c.Host, AgentID: c.AgentID, Grant: c.Grant,
	}
	if len(c.Audience) == 1 {
		w.Audience = c.Audience[0]
	} else {
		w.Audience = c.Audience
	}
	payload, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("mint access token: %w", err)
	}
	if len(c.Extra) > 0 {
		for name := range c.Extra {
			if slices.Contains(registered, name) {
				return "", fmt.Errorf("mint access token: extra claim %q is a registered claim; set its field instead", name)
			}
		}
		extra, err := json.Marshal(c.Extra)
		if err != nil {
			return "", fmt.Errorf("mint access token: extra claims: %w", err)
		}
		// {"iss":…} + {"level":…} → {"iss":…,"level":…}
		payload = append(append(payload[:len(payload)-1], ','), extra[1:]...)
	}
	jws, err := k.cur.Load().signer.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("mint access token: %w", err)
	}
	return jws.CompactSerialize()
}

// es256Only is the one algorithm Verify parses.
var es256Only = []jose.SignatureAlgorithm{jose.ES256}

// Verify checks an access token and returns its claims: a compact JWS signed with ES256 by the
// published key its kid names (no other key is tried), with typ "at+jwt" (or
// "application/at+jwt"), not expired and already valid (with leeway), from want.Issuer and
// for want.Audience, with the claims RFC 9068 requires (iss, sub, aud, exp, iat, jti,
// client_id). It never touches the store; an unknown kid makes a running Run reload soon.
//
// Tokens whose signature verified are remembered (see verifiedCache), keyed by the SHA-256 of
// the whole token, so that an agent's repeated calls skip the ECDSA verification. Everything
// else is checked again at every use: the key named by the kid must still be published and be
// the same key, and exp, nbf, iat, issuer and audience are checked against this call's want. A
// token is so never accepted past its exp, nor after its signing key stopped being published.
func (k *KeySet) Verify(token string, want Expect) (AccessClaims, error) {
	if want.Issuer == "" {
		return AccessClaims{}, fmt.Errorf("%w: no expected issuer given", ErrWrongIssuer)
	}
	if want.Audience == "" {
		return AccessClaims{}, fmt.Errorf("%w: no expected audience given", ErrWrongAudience)
	}
	if len(token) == 0 || len(token) > maxTokenLen {
		return AccessClaims{}, fmt.Errorf("%w: empty or too long", ErrMalformed)
	}
	now := want.Now
	if now.IsZero() {
		now = k.now()
	}
	digest := sha256.Sum256([]byte(token))
	if v, ok := k.verified.get(digest); ok {
		// The remembered key is the published one itself while it is published (the same
		// pointer: no comparison of the curve points, which allocates); a key published
		// again under the same id is compared.
		if pub, ok := k.cur.Load().keys[v.kid]; ok && (pub.key == v.key || pub.key.Equal(v.key)) && (pub.until.IsZero() || now.Before(pub.until)) {
			if err := checkClaims(v.claims, want, now); err != nil {
				return AccessClaims{}, err
			}
			c := v.claims
			c.Audience = slices.Clone(c.Audience)
			c.Extra = maps.Clone(c.Extra)
			return c, nil
		}
		k.verified.remove(digest) // the key was retired or replaced: verify from scratch
	}
	c, kid, key, err := k.verifySignature(token, now)
	if err != nil {
		return AccessClaims{}, err
	}
	if err := checkClaims(c, want, now); err != nil {
		return AccessClaims{}, err
	}
	cached := c
	cached.Audience = slices.Clone(c.Audience)
	cached.Extra = maps.Clone(c.Extra)
	k.verified.put(digest, verifiedToken{kid: kid, key: key, claims: cached}, now)
	return c, nil
}

// verifySignature parses the token and verifies its signature with the published key its kid
// names; it returns the claims and that key.
func (k *KeySet) verifySignature(token string, now time.Time) (AccessClaims, string, *ecdsa.PublicKey, error) {
	tok, err := jwt.ParseSigned(token, es256Only)
	if err != nil || len(tok.Headers) != 1 {
		return AccessClaims{}, "", nil, fmt.Errorf("%w: not a compact ES256 JWS", ErrMalformed)
	}
	h := &tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return AccessClaims{}, "", nil, fmt.Errorf("%w: type is not at+jwt", ErrMalformed)
	}
	pub, ok := k.cur.Load().keys[h.KeyID]
	if !ok {
		select {
		case k.kick <- struct{}{}:
		default:
		}
		return AccessClaims{}, "", nil, ErrUnknownKey
	}
	if !pub.until.IsZero() && !now.Before(pub.until) {
		return AccessClaims{}, "", nil, ErrUnknownKey // retired and no longer published
	}
	var m map[string]any
	if err := tok.Claims(pub.key, &m); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return AccessClaims{}, "", nil, ErrBadSignature
		}
		return AccessClaims{}, "", nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	c, err := claimsOf(m)
	if err != nil {
		return AccessClaims{}, "", nil, err
	}
	return c, h.KeyID, pub.key, nil
}

// checkClaims checks the times (with want's leeway) and the issuer and audience of verified claims.
func checkClaims(c AccessClaims, want Expect, now time.Time) error {
	leeway := want.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	} else if leeway < 0 {
		leeway = 0
	}
	switch {
	case !now.Before(c.Expiry.Add(leeway)):
		return ErrExpired
	case !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore):
		return ErrNotYetValid
	case now.Add(leeway).Before(c.IssuedAt):
		return fmt.Errorf("%w: issued in the future", ErrNotYetValid)
	case c.Issuer != want.Issuer:
		return ErrWrongIssuer
	case !slices.Contains(c.Audience, want.Audience):
		return ErrWrongAudience
	}
	return nil
}

// isAccessTokenType: "at+jwt" or "application/at+jwt", in any case (RFC 9068 §2.1, RFC 7515
// §4.1.9).
func isAccessTokenType(typ string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, TokenType)
}

// claimsOf takes the registered claims and those with typed fields out of a verified payload;
// what remains is Extra.
func claimsOf(m map[string]any) (AccessClaims, error) {
	if m == nil {
		return AccessClaims{}, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	var c AccessClaims
	var err error
	str := func(name string, required bool) string {
		v, ok := m[name]
		delete(m, name)
		s, isStr := v.(string)
		if err == nil && (ok && !isStr || required && s == "") {
			err = fmt.Errorf("%w: claim %s missing or not a string", ErrMalformed, name)
		}
		return s
	}
	date := func(name string, required bool) time.Time {
		v, ok := m[name]
		delete(m, name)
		if !ok {
			if required && err == nil {
				err = fmt.Errorf("%w: claim %s missing", ErrMalformed, name)
			}
			return time.Time{}
		}
		f, isNum := v.(float64)
		if !isNum || f < 0 || f > 1<<40 || math.IsNaN(f) {
			if err == nil {
				err = fmt.Errorf("%w: claim %s is not a date", ErrMalformed, name)
			}
			return time.Time{}
		}
		sec := math.Floor(f)
		return time.Unix(int64(sec), int64((f-sec)*1e9)).UTC()
	}
	c.Issuer = str("iss", true)
	c.Subject = str("sub", true)
	c.ClientID = str("client_id", true)
	c.JTI = str("jti", true)
	c.Scope = str("scope", false)
	c.Host = str(HostClaim, false)
	c.AgentID = str(AgentIDClaim, false)
	c.Grant = str(GrantClaim, false)
	c.Expiry = date("exp", true)
	c.IssuedAt = date("iat", true)
	c.NotBefore = date("nbf", false)
	switch aud := m["aud"].(type) {
	case string:
		if aud != "" {
			c.Audience = []string{aud}
		}
	case []any:
		c.Audience = make([]string, 0, len(aud))
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				c.Audience = nil
				break
			}
			c.Audience = append(c.Audience, s)
		}
	}
	delete(m, "aud")
	if err == nil && len(c.Audience) == 0 {
		err = fmt.Errorf("%w: claim aud missing or not a string or array of strings", ErrMalformed)
	}
	if err != nil {
		return AccessClaims{}, err
	}
	if len(m) > 0 {
		c.Extra = m
	}
	return c, nil
}
