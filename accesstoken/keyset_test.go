package accesstoken_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/store"
)

var ctx = context.Background()

const (
	issuer   = "https://gw.example.com/h/acme"
	audience = "https://gw.example.com/h/acme/mcp"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// forEachEngine runs fn against a fresh store of every engine available: SQLite always,
// PostgreSQL when TRUSTGATE_TEST_POSTGRES is set.
func forEachEngine(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, e := range []struct {
		name string
		cfg  func(t *testing.T) store.Config
	}{
		{"sqlite", func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} }},
		{"postgres", func(t *testing.T) store.Config {
			return store.Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second}
		}},
	} {
		t.Run(e.name, func(t *testing.T) { fn(t, openStore(t, e.cfg(t))) })
	}
}

func openStore(t testing.TB, cfg store.Config) store.Store {
	t.Helper()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newRing(t testing.TB) *secrets.Keyring {
	t.Helper()
	raw := make([]byte, secrets.KeySize)
	_, _ = rand.Read(raw)
	ring, err := secrets.NewKeyring(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func openKeySet(t testing.TB, st store.SigningKeys, ring *secrets.Keyring, clk *clock) *accesstoken.KeySet {
	t.Helper()
	ks, err := accesstoken.Open(ctx, st, ring, accesstoken.Options{Now: clk.Now, Logger: discard})
	if err != nil {
		t.Fatalf("open key set: %v", err)
	}
	return ks
}

func claims(clk *clock) accesstoken.AccessClaims {
	now := clk.Now()
	return accesstoken.AccessClaims{
		Issuer: issuer, Subject: "u_alice", Audience: []string{audience}, ClientID: "client-1",
		Scope: "mcp", IssuedAt: now, Expiry: now.Add(time.Hour),
		Host: "acme", AgentID: "a_123", Grant: "grant-1",
		Extra: map[string]any{"level": "2"},
	}
}

func expect(clk *clock) accesstoken.Expect {
	return accesstoken.Expect{Issuer: issuer, Audience: audience, Now: clk.Now()}
}

func mint(t testing.TB, ks *accesstoken.KeySet, c accesstoken.AccessClaims) string {
	t.Helper()
	tok, err := ks.Mint(c)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// header decodes a token's protected header.
func header(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	noErr(t, "decode header", err)
	var h map[string]any
	noErr(t, "parse header", json.Unmarshal(b, &h))
	return h
}

// payload decodes a token's payload without verifying it.
func payload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	noErr(t, "decode payload", err)
	var p map[string]any
	noErr(t, "parse payload", json.Unmarshal(b, &p))
	return p
}

type jwks struct {
	Keys []map[string]any `json:"keys"`
}

func parseJWKS(t *testing.T, b []byte) jwks {
	t.Helper()
	var s jwks
	noErr(t, "parse JWKS", json.Unmarshal(b, &s))
	return s
}

func jwksKIDs(t *testing.T, ks *accesstoken.KeySet) []string {
	t.Helper()
	var out []string
	for _, k := range parseJWKS(t, ks.JWKS()).Keys {
		out = append(out, k["kid"].(string))
	}
	return out
}

// privateKey unseals a stored signing key, as only a holder of the master key can.
func privateKey(t *testing.T, st store.SigningKeys, ring *secrets.Keyring, kid string) *ecdsa.PrivateKey {
	t.Helper()
	keys, err := st.ListSigningKeys(ctx)
	noErr(t, "list keys", err)
	for _, k := range keys {
		if k.KID == kid {
			der, err := ring.Open(k.PrivateKey, "signing-key:"+kid)
			noErr(t, "unseal", err)
			priv, err := x509.ParsePKCS8PrivateKey(der)
			noErr(t, "parse PKCS#8", err)
			return priv.(*ecdsa.PrivateKey)
		}
	}
	t.Fatalf("no stored key %s", kid)
	return nil
}

// forge builds a compact JWS from any header and payload with the given signature function.
func forge(t *testing.T, hdr, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	noErr(t, "marshal header", err)
	p, err := json.Marshal(claims)
	noErr(t, "marshal payload", err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func es256(priv *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		sum := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
		if err != nil {
			panic(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
}

func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

func validClaims(clk *clock) map[string]any {
	now := clk.Now().Unix()
	return map[string]any{
		"iss": issuer, "sub": "u_alice", "aud": audience, "client_id": "client-1", "jti": "j1",
		"iat": now, "nbf": now, "exp": now + 3600,
	}
}

func TestOpenCreatesOneKey(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		ks := openKeySet(t, st, ring, clk)
		rows, err := st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		if len(rows) != 1 {
			t.Fatalf("after the first Open, %d keys are stored, want 1", len(rows))
		}
		row := rows[0]
		if row.KID != ks.SigningKID() || row.Alg != "ES256" || !row.RetiredAt.IsZero() || !row.CreatedAt.Equal(clk.Now()) {
			t.Fatalf("stored key = %s %s created %v retired %v; want the signing kid %s, ES256, created now, not retired",
				row.KID, row.Alg, row.CreatedAt, row.RetiredAt, ks.SigningKID())
		}

		// The kid is the RFC 7638 thumbprint of the published key.
		set := parseJWKS(t, ks.JWKS())
		if len(set.Keys) != 1 {
			t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), ks.JWKS())
		}
		jwk := set.Keys[0]
		var names []string
		for name := range jwk {
			names = append(names, name)
		}
		for name, want := range map[string]string{"kid": row.KID, "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig"} {
			if jwk[name] != want {
				t.Errorf("JWKS key %s = %v, want %q", name, jwk[name], want)
			}
		}
		if len(jwk) != 7 || jwk["x"] == nil || jwk["y"] == nil {
			t.Errorf("JWKS key has members %v, want exactly kid, kty, crv, x, y, alg, use", names)
		}
		var parsed jose.JSONWebKey
		b, _ := json.Marshal(jwk)
		noErr(t, "parse JWK", parsed.UnmarshalJSON(b))
		thumb, err := parsed.Thumbprint(crypto.SHA256)
		noErr(t, "thumbprint", err)
		if got := base64.RawURLEncoding.EncodeToString(thumb); got != row.KID {
			t.Errorf("kid = %s, want the RFC 7638 thumbprint %s", row.KID, got)
		}
		if kid, err := accesstoken.KID(parsed.Key.(*ecdsa.PublicKey)); err != nil || kid != row.KID {
			t.Errorf("accesstoken.KID = %s, %v; want %s", kid, err, row.KID)
		}

		// A second Open (a restart, or another replica) reuses the key.
		ks2 := openKeySet(t, st, ring, clk)
		rows, err = st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		if len(rows) != 1 || ks2.SigningKID() != ks.SigningKID() {
			t.Fatalf("after a second Open: %d keys, signing with %s; want 1 key, %s", len(rows), ks2.SigningKID(), ks.SigningKID())
		}
		if !bytes.Equal(ks2.JWKS(), ks.JWKS()) {
			t.Fatalf("JWKS differ between two key sets on one store:\n%s\n%s", ks.JWKS(), ks2.JWKS())
		}
	})
}

func TestMintVerifyRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk := newClock()
		ks := openKeySet(t, st, newRing(t), clk)
		now := clk.Now()
		in := accesstoken.AccessClaims{
			Issuer: issuer, Subject: "u_alice", Audience: []string{audience, "https://other.example.com"},
			ClientID: "client-1", Scope: "mcp offline_access", JTI: "jti-1",
			IssuedAt: now.Add(-time.Minute), NotBefore: now.Add(-30 * time.Second), Expiry: now.Add(time.Hour),
			Host: "acme", AgentID: "a_123", Grant: "grant-1",
			Extra: map[string]any{"level": 2, "tags": []string{"x"}},
		}
		tok := mint(t, ks, in)
		h := header(t, tok)
		if h["alg"] != "ES256" || h["kid"] != ks.SigningKID() || h["typ"] != "at+jwt" || len(h) != 3 {
			t.Fatalf("header = %v, want exactly alg ES256, kid %s, typ at+jwt", h, ks.SigningKID())
		}
		p := payload(t, tok)
		for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "agent_id", "host", "sid"} {
			if _, ok := p[name]; !ok {
				t.Errorf("payload lacks %s: %v", name, p)
			}
		}

		got, err := ks.Verify(tok, expect(clk))
		noErr(t, "verify", err)
		want := in
		want.Extra = map[string]any{"level": float64(2), "tags": []any{"x"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Verify =\n  %+v\nwant\n  %+v", got, want)
		}
		// The other audience is accepted too.
		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Audience: "https://other.example.com", Now: now})
		noErr(t, "verify for the second audience", err)

		// Defaults: iat now, nbf = iat, a random 128-bit jti; one audience is a string.
		c := accesstoken.AccessClaims{Issuer: issuer, Subject: "u_bob", Audience: []string{audience}, ClientID: "c", Expiry: now.Add(time.Minute)}
		tok1, tok2 := mint(t, ks, c), mint(t, ks, c)
		p = payload(t, tok1)
		if p["aud"] != audience || p["iat"] != float64(now.Unix()) || p["nbf"] != p["iat"] {
			t.Errorf("defaults: aud %v iat %v nbf %v; want aud a string, iat now, nbf = iat", p["aud"], p["iat"], p["nbf"])
		}
		if _, ok := p["scope"]; ok {
			t.Errorf("an empty scope is written: %v", p)
		}
		jti, _ := p["jti"].(string)
		if b, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(b) != 16 || jti == payload(t, tok2)["jti"] {
			t.Errorf("default jti %q (of the next token: %v): want 16 random bytes, base64url", jti, payload(t, tok2)["jti"])
		}
		got, err = ks.Verify(tok1, expect(clk))
		noErr(t, "verify defaults", err)
		if got.Extra != nil || got.Scope != "" || got.Host != "" || got.AgentID != "" || got.Grant != "" || !got.NotBefore.Equal(now) || got.JTI != jti {
			t.Errorf("Verify of a plain token = %+v", got)
		}
	})
}

// The claims with typed fields keep their names on the wire: a token minted before they had
// fields (when they were Extra claims, written after the registered ones) verifies into the
// fields, and Mint writes them under the same names, as strings.
func TestTypedClaimsWireFormat(t *testing.T) {
	clk := newClock()
	ks := openKeySet(t, openStore(t, store.Config{DataDir: t.TempDir()}), newRing(t), clk)
	now := clk.Now().Unix()
	old := fmt.Sprintf(`{"iss":%q,"sub":"u_alice","aud":%q,"exp":%d,"iat":%d,"nbf":%d,"jti":"jti-1","client_id":"client-1","scope":"mcp","agent_id":"a_123","host":"acme","sid":"grant-1"}`,
		issuer, audience, now+3600, now, now)
	tok, err := accesstoken.SignPayload(ks, []byte(old))
	noErr(t, "sign a payload of the former layout", err)
	got, err := ks.Verify(tok, expect(clk))
	noErr(t, "verify a token of the former layout", err)
	if got.AgentID != "a_123" || got.Host != "acme" || got.Grant != "grant-1" || got.Extra != nil {
		t.Fatalf("Verify of a token of the former layout = %+v, want the typed fields set and no Extra", got)
	}

	p := payload(t, mint(t, ks, claims(clk)))
	for name, want := range map[string]string{"agent_id": "a_123", "host": "acme", "sid": "grant-1"} {
		if p[name] != want {
			t.Errorf("payload claim %s = %#v, want %q", name, p[name], want)
		}
	}

	// A typed claim of the wrong JSON type makes the token malformed.
	bad := strings.Replace(old, `"agent_id":"a_123"`, `"agent_id":123`, 1)
	tok, err = accesstoken.SignPayload(ks, []byte(bad))
	noErr(t, "sign", err)
	_, err = ks.Verify(tok, expect(clk))
	wantErr(t, "agent_id a number", err, accesstoken.ErrMalformed)
}

func TestMintRefusesBadClaims(t *testing.T) {
	clk := newClock()
	ks := openKeySet(t, openStore(t, store.Config{DataDir: t.TempDir()}), newRing(t), clk)
	for name, mutate := range map[string]func(*accesstoken.AccessClaims){
		"no issuer":                    func(c *accesstoken.AccessClaims) { c.Issuer = "" },
		"no subject":                   func(c *accesstoken.AccessClaims) { c.Subject = "" },
		"no client_id":                 func(c *accesstoken.AccessClaims) { c.ClientID = "" },
		"no audience":                  func(c *accesstoken.AccessClaims) { c.Audience = nil },
		"empty audience":               func(c *accesstoken.AccessClaims) { c.Audience = []string{audience, ""} },
		"no expiry":                    func(c *accesstoken.AccessClaims) { c.Expiry = time.Time{} },
		"expiry before issued-at":      func(c *accesstoken.AccessClaims) { c.Expiry = c.IssuedAt.Add(-time.Second) },
		"expiry before not-before":     func(c *accesstoken.AccessClaims) { c.NotBefore = c.Expiry.Add(time.Second) },
		"longer than the max lifetime": func(c *accesstoken.AccessClaims) { c.Expiry = clk.Now().Add(25 * time.Hour) },
		"registered claim in Extra":    func(c *accesstoken.AccessClaims) { c.Extra = map[string]any{"aud": "evil"} },
		"typed claim in Extra":         func(c *accesstoken.AccessClaims) { c.Extra = map[string]any{"agent_id": "a_evil"} },
		"unmarshalable Extra":          func(c *accesstoken.AccessClaims) { c.Extra = map[string]any{"f": func() {}} },
	} {
		c := claims(clk)
		mutate(&c)
		if tok, err := ks.Mint(c); err == nil {
			t.Errorf("%s: Mint = %s, want an error", name, tok)
		}
	}
	c := claims(clk)
	c.Expiry = clk.Now().Add(24 * time.Hour)
	mint(t, ks, c) // exactly the maximum is fine
}

func TestVerifyTimesAndContext(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		ks := openKeySet(t, st, ring, clk)
		now := clk.Now()
		tok := mint(t, ks, claims(clk)) // valid [now, now+1h)
		at := func(d time.Duration, leeway time.Duration) accesstoken.Expect {
			return accesstoken.Expect{Issuer: issuer, Audience: audience, Now: now.Add(d), Leeway: leeway}
		}
		_, err := ks.Verify(tok, at(time.Hour+29*time.Second, 0))
		noErr(t, "within the default leeway after exp", err)
		_, err = ks.Verify(tok, at(time.Hour+30*time.Second, 0))
		wantErr(t, "at exp + default leeway", err, accesstoken.ErrExpired)
		_, err = ks.Verify(tok, at(time.Hour, -1))
		wantErr(t, "at exp without leeway", err, accesstoken.ErrExpired)
		_, err = ks.Verify(tok, at(time.Hour+time.Minute, 2*time.Minute))
		noErr(t, "within a larger leeway", err)
		_, err = ks.Verify(tok, at(-29*time.Second, 0))
		noErr(t, "within the default leeway before nbf", err)
		_, err = ks.Verify(tok, at(-31*time.Second, 0))
		wantErr(t, "before nbf", err, accesstoken.ErrNotYetValid)

		// nbf in the future; and iat in the future without nbf.
		c := claims(clk)
		c.NotBefore = now.Add(10 * time.Minute)
		_, err = ks.Verify(mint(t, ks, c), expect(clk))
		wantErr(t, "nbf in the future", err, accesstoken.ErrNotYetValid)
		future := validClaims(clk)
		delete(future, "nbf")
		future["iat"] = now.Add(10 * time.Minute).Unix()
		_, err = ks.Verify(forge(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": ks.SigningKID()}, future,
			es256(privateKey(t, st, ring, ks.SigningKID()))), expect(clk))
		wantErr(t, "iat in the future", err, accesstoken.ErrNotYetValid)

		// Zero Expect.Now is the key set's clock.
		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Audience: audience})
		noErr(t, "with the key set's clock", err)
		clk.Add(2 * time.Hour)
		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Audience: audience})
		wantErr(t, "with the key set's clock, later", err, accesstoken.ErrExpired)
		clk.Add(-2 * time.Hour)

		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: "https://gw.example.com/h/other", Audience: audience, Now: now})
		wantErr(t, "another issuer", err, accesstoken.ErrWrongIssuer)
		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Audience: "https://gw.example.com/h/other/mcp", Now: now})
		wantErr(t, "another audience", err, accesstoken.ErrWrongAudience)
		_, err = ks.Verify(tok, accesstoken.Expect{Audience: audience, Now: now})
		wantErr(t, "no expected issuer", err, accesstoken.ErrWrongIssuer)
		_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Now: now})
		wantErr(t, "no expected audience", err, accesstoken.ErrWrongAudience)
	})
}

func TestVerifyRefusesForgeries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		ks := openKeySet(t, st, ring, clk)
		kid := ks.SigningKID()
		real := privateKey(t, st, ring, kid)
		good := validClaims(clk)
		hdr := func(alg, typ string) map[string]any {
			h := map[string]any{"alg": alg, "kid": kid}
			if typ != "" {
				h["typ"] = typ
			}
			return h
		}
		jwk := parseJWKS(t, ks.JWKS()).Keys[0]
		x, err := base64.RawURLEncoding.DecodeString(jwk["x"].(string))
		noErr(t, "decode x", err)
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		noErr(t, "generate", err)
		otherKID, err := accesstoken.KID(&other.PublicKey)
		noErr(t, "kid", err)
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		noErr(t, "generate RSA", err)
		rs256 := func(input []byte) []byte {
			sum := sha256.Sum256(input)
			sig, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, sum[:])
			noErr(t, "RSA sign", err)
			return sig
		}

		// Signed with the real key and every header right: accepted, also with the media type
		// form and in upper case.
		for _, typ := range []string{"at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"} {
			_, err := ks.Verify(forge(t, hdr("ES256", typ), good, es256(real)), expect(clk))
			noErr(t, "typ "+typ, err)
		}

		valid := mint(t, ks, claims(clk))
		parts := strings.Split(valid, ".")
		tamperedClaims := payload(t, valid)
		tamperedClaims["sub"] = "u_mallory"
		tp, _ := json.Marshal(tamperedClaims)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tp) + "." + parts[2]
		// A valid signature of another token.
		swapped := parts[0] + "." + parts[1] + "." + strings.Split(forge(t, hdr("ES256", "at+jwt"), good, es256(real)), ".")[2]

		noneTok := func() string {
			h, _ := json.Marshal(hdr("none", "at+jwt"))
			p, _ := json.Marshal(good)
			return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
		}()

		for _, tc := range []struct {
			name  string
			token string
			want  error
		}{
			{"alg none", noneTok, accesstoken.ErrMalformed},
			{"alg none with a signature", forge(t, hdr("none", "at+jwt"), good, es256(real)), accesstoken.ErrMalformed},
			{"HS256 keyed with the JWK's x", forge(t, hdr("HS256", "at+jwt"), good, hs256(x)), accesstoken.ErrMalformed},
			{"HS256 keyed with the JWK's x text", forge(t, hdr("HS256", "at+jwt"), good, hs256([]byte(jwk["x"].(string)))), accesstoken.ErrMalformed},
			{"HS256 keyed with the JWKS", forge(t, hdr("HS256", "at+jwt"), good, hs256(ks.JWKS())), accesstoken.ErrMalformed},
			{"RS256", forge(t, hdr("RS256", "at+jwt"), good, rs256), accesstoken.ErrMalformed},
			{"ES384 label", forge(t, hdr("ES384", "at+jwt"), good, es256(real)), accesstoken.ErrMalformed},
			{"tampered payload", tampered, accesstoken.ErrBadSignature},
			{"another token's signature", swapped, accesstoken.ErrBadSignature},
			{"truncated signature", valid[:len(valid)-4], accesstoken.ErrBadSignature},
			{"foreign key, foreign kid", forge(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": otherKID}, good, es256(other)), accesstoken.ErrUnknownKey},
			{"foreign key, our kid", forge(t, hdr("ES256", "at+jwt"), good, es256(other)), accesstoken.ErrBadSignature},
			{"no kid", forge(t, map[string]any{"alg": "ES256", "typ": "at+jwt"}, good, es256(real)), accesstoken.ErrUnknownKey},
			{"foreign key embedded as jwk", forge(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "jwk": map[string]any{
				"kty": "EC", "crv": "P-256", "x": b64coord(t, other, 0), "y": b64coord(t, other, 1)}}, good, es256(other)), accesstoken.ErrUnknownKey},
			{"typ JWT", forge(t, hdr("ES256", "JWT"), good, es256(real)), accesstoken.ErrMalformed},
			{"no typ", forge(t, hdr("ES256", ""), good, es256(real)), accesstoken.ErrMalformed},
			{"typ application/jwt", forge(t, hdr("ES256", "application/jwt"), good, es256(real)), accesstoken.ErrMalformed},
			{"empty", "", accesstoken.ErrMalformed},
			{"garbage", "not a token", accesstoken.ErrMalformed},
			{"two parts", parts[0] + "." + parts[1], accesstoken.ErrMalformed},
			{"JWE shape", "a.b.c.d.e", accesstoken.ErrMalformed},
			{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, accesstoken.ErrMalformed},
			{"oversized", valid + strings.Repeat("A", 9000), accesstoken.ErrMalformed},
		} {
			got, err := ks.Verify(tc.token, expect(clk))
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: Verify = %+v, %v; want an error wrapping %q", tc.name, got, err, tc.want)
				continue
			}
			if strings.Contains(err.Error(), parts[1]) || strings.Contains(err.Error(), parts[2]) {
				t.Errorf("%s: the error quotes the token: %v", tc.name, err)
			}
		}

		// Signed by the real key, but the claims are not an RFC 9068 access token.
		for name, mutate := range map[string]func(map[string]any){
			"no exp":           func(c map[string]any) { delete(c, "exp") },
			"no iat":           func(c map[string]any) { delete(c, "iat") },
			"no sub":           func(c map[string]any) { delete(c, "sub") },
			"no iss":           func(c map[string]any) { delete(c, "iss") },
			"no aud":           func(c map[string]any) { delete(c, "aud") },
			"no jti":           func(c map[string]any) { delete(c, "jti") },
			"no client_id":     func(c map[string]any) { delete(c, "client_id") },
			"exp a string":     func(c map[string]any) { c["exp"] = "tomorrow" },
			"exp negative":     func(c map[string]any) { c["exp"] = -1 },
			"exp huge":         func(c map[string]any) { c["exp"] = 1e300 },
			"iss a number":     func(c map[string]any) { c["iss"] = 1 },
			"aud a number":     func(c map[string]any) { c["aud"] = 1 },
			"aud mixed":        func(c map[string]any) { c["aud"] = []any{audience, 1} },
			"aud empty array":  func(c map[string]any) { c["aud"] = []any{} },
			"scope an array":   func(c map[string]any) { c["scope"] = []any{"mcp"} },
			"nbf a string":     func(c map[string]any) { c["nbf"] = "now" },
			"client_id empty":  func(c map[string]any) { c["client_id"] = "" },
			"client_id object": func(c map[string]any) { c["client_id"] = map[string]any{} },
		} {
			c := validClaims(clk)
			mutate(c)
			_, err := ks.Verify(forge(t, hdr("ES256", "at+jwt"), c, es256(real)), expect(clk))
			if !errors.Is(err, accesstoken.ErrMalformed) {
				t.Errorf("%s: Verify error %v, want ErrMalformed", name, err)
			}
		}
		for name, p := range map[string]string{"array payload": `["x"]`, "null payload": `null`, "not JSON": `{`} {
			h, _ := json.Marshal(hdr("ES256", "at+jwt"))
			input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString([]byte(p))
			tok := input + "." + base64.RawURLEncoding.EncodeToString(es256(real)([]byte(input)))
			if _, err := ks.Verify(tok, expect(clk)); !errors.Is(err, accesstoken.ErrMalformed) {
				t.Errorf("%s: Verify error %v, want ErrMalformed", name, err)
			}
		}
		// An array audience holding ours is fine.
		c := validClaims(clk)
		c["aud"] = []any{"https://elsewhere.example.com", audience}
		_, err = ks.Verify(forge(t, hdr("ES256", "at+jwt"), c, es256(real)), expect(clk))
		noErr(t, "aud array", err)
	})
}

// b64coord is the base64url of a public key's x (i=0) or y (i=1) coordinate.
func b64coord(t *testing.T, k *ecdsa.PrivateKey, i int) string {
	t.Helper()
	raw, err := k.PublicKey.Bytes() // 0x04 || x || y
	noErr(t, "public key bytes", err)
	return base64.RawURLEncoding.EncodeToString(raw[1+32*i : 1+32*(i+1)])
}

func TestRotation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		ks := openKeySet(t, st, ring, clk)
		oldKID := ks.SigningKID()
		c := claims(clk)
		c.Expiry = clk.Now().Add(24 * time.Hour) // the longest lifetime there is
		oldTok := mint(t, ks, c)

		clk.Add(time.Minute)
		newKID, err := ks.Rotate(ctx)
		noErr(t, "rotate", err)
		if newKID == oldKID || ks.SigningKID() != newKID {
			t.Fatalf("Rotate = %s (signing with %s), old key %s: want a new signing key", newKID, ks.SigningKID(), oldKID)
		}
		rotatedAt := clk.Now()
		if got := jwksKIDs(t, ks); !reflect.DeepEqual(got, []string{newKID, oldKID}) {
			t.Fatalf("JWKS kids after rotation = %v, want [new old] = [%s %s]", got, newKID, oldKID)
		}
		rows, err := st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		wantUntil := rotatedAt.Add(accesstoken.DefaultMaxTokenLifetime + accesstoken.DefaultPublishGrace)
		if len(rows) != 2 || rows[0].KID != newKID || !rows[0].RetiredAt.IsZero() ||
			rows[1].KID != oldKID || !rows[1].RetiredAt.Equal(rotatedAt) || !rows[1].PublishedUntil.Equal(wantUntil) {
			t.Fatalf("stored keys after rotation: %+v; want the new one active and the old one retired now, published until %v", rows, wantUntil)
		}

		// The old token still verifies; new tokens carry the new kid and verify.
		_, err = ks.Verify(oldTok, expect(clk))
		noErr(t, "old token after rotation", err)
		newTok := mint(t, ks, claims(clk))
		if kid := header(t, newTok)["kid"]; kid != newKID {
			t.Fatalf("new token's kid = %v, want %s", kid, newKID)
		}
		_, err = ks.Verify(newTok, expect(clk))
		noErr(t, "new token", err)

		// The old token's last second: still published and valid.
		clk.Add(24*time.Hour - time.Minute - time.Second)
		_, err = ks.Verify(oldTok, accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: -1})
		noErr(t, "old token just before it expires", err)

		// After the publication window: gone from the JWKS (on reload) and from Verify, even
		// before a rotation prunes it from the store.
		clk.Add(accesstoken.DefaultPublishGrace + time.Minute + time.Second) // rotated at +1m: published until +24h+1m+grace
		_, err = ks.Verify(oldTok, accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: time.Hour})
		wantErr(t, "old token after the publication window", err, accesstoken.ErrUnknownKey)
		noErr(t, "reload", ks.Reload(ctx))
		if got := jwksKIDs(t, ks); !reflect.DeepEqual(got, []string{newKID}) {
			t.Fatalf("JWKS kids after the publication window = %v, want [%s]", got, newKID)
		}

		// The next rotation prunes it from the store.
		clk.Add(time.Second)
		thirdKID, err := ks.Rotate(ctx)
		noErr(t, "rotate again", err)
		rows, err = st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		if len(rows) != 2 || rows[0].KID != thirdKID || rows[1].KID != newKID {
			t.Fatalf("stored keys after the second rotation: %v, want [%s %s]", kidsOf(rows), thirdKID, newKID)
		}
		_, err = ks.Verify(oldTok, accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: time.Hour})
		wantErr(t, "old token after pruning", err, accesstoken.ErrUnknownKey)
		_, err = ks.Verify(newTok, accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: time.Hour * 48})
		noErr(t, "second key's token (leeway covers its expiry)", err)
	})
}

func kidsOf(rows []store.SigningKey) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.KID)
	}
	return out
}

func TestReplicaPicksUpRotation(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		a := openKeySet(t, st, ring, clk)
		b := openKeySet(t, st, ring, clk)
		oldTok := mint(t, b, claims(clk))

		// Reload with nothing changed keeps the very same snapshot.
		before := b.JWKS()
		noErr(t, "reload unchanged", b.Reload(ctx))
		if &before[0] != &b.JWKS()[0] {
			t.Error("Reload with nothing changed rebuilt the key set")
		}

		newKID, err := a.Rotate(ctx)
		noErr(t, "rotate on replica a", err)
		newTok := mint(t, a, claims(clk))
		_, err = b.Verify(newTok, expect(clk))
		wantErr(t, "replica b before reloading", err, accesstoken.ErrUnknownKey)

		noErr(t, "reload b", b.Reload(ctx))
		if b.SigningKID() != newKID || !bytes.Equal(a.JWKS(), b.JWKS()) {
			t.Fatalf("after Reload, replica b signs with %s (want %s); JWKS a=%s b=%s", b.SigningKID(), newKID, a.JWKS(), b.JWKS())
		}
		_, err = b.Verify(newTok, expect(clk))
		noErr(t, "replica b verifies the new token", err)
		_, err = b.Verify(oldTok, expect(clk))
		noErr(t, "replica b still verifies the old token", err)
		if kid := header(t, mint(t, b, claims(clk)))["kid"]; kid != newKID {
			t.Fatalf("replica b mints with %v, want %s", kid, newKID)
		}
	})
}

// A running Run reloads soon after Verify meets an unknown kid, without waiting for its tick.
func TestRunReloadsOnUnknownKID(t *testing.T) {
	st := openStore(t, store.Config{DataDir: t.TempDir()})
	clk, ring := newClock(), newRing(t)
	a := openKeySet(t, st, ring, clk)
	b := openKeySet(t, st, ring, clk)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.Run(runCtx, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()

	_, err := a.Rotate(ctx)
	noErr(t, "rotate", err)
	tok := mint(t, a, claims(clk))
	_, err = b.Verify(tok, expect(clk))
	wantErr(t, "before the reload", err, accesstoken.ErrUnknownKey)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = b.Verify(tok, expect(clk)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not reload after an unknown kid: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Replicas opening an empty store together may each create a key; after a reload they all
// sign with the newest, and every key is published.
func TestConcurrentOpen(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		const n = 4
		sets := make([]*accesstoken.KeySet, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sets[i], errs[i] = accesstoken.Open(ctx, st, ring, accesstoken.Options{Now: clk.Now, Logger: discard})
			})
		}
		wg.Wait()
		for i, err := range errs {
			noErr(t, "open", err)
			noErr(t, "reload", sets[i].Reload(ctx))
		}
		rows, err := st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		if len(rows) < 1 || len(rows) > n {
			t.Fatalf("%d keys after %d concurrent opens", len(rows), n)
		}
		for i, ks := range sets {
			if ks.SigningKID() != rows[0].KID || !bytes.Equal(ks.JWKS(), sets[0].JWKS()) || len(jwksKIDs(t, ks)) != len(rows) {
				t.Fatalf("replica %d signs with %s and publishes %v; want the newest %s and all of %v", i, ks.SigningKID(), jwksKIDs(t, ks), rows[0].KID, kidsOf(rows))
			}
		}
		// Each verifies the others' tokens.
		for _, x := range sets {
			for _, y := range sets {
				_, err := y.Verify(mint(t, x, claims(clk)), expect(clk))
				noErr(t, "cross-replica verify", err)
			}
		}
	})
}

func TestPrivateKeyIsSealed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		clk, ring := newClock(), newRing(t)
		ks := openKeySet(t, st, ring, clk)
		rows, err := st.ListSigningKeys(ctx)
		noErr(t, "list", err)
		sealed := rows[0].PrivateKey
		priv := privateKey(t, st, ring, ks.SigningKID())
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		noErr(t, "marshal", err)
		scalar, err := priv.Bytes()
		noErr(t, "private key bytes", err)
		for name, secret := range map[string][]byte{"PKCS#8 DER": der, "private scalar": scalar} {
			for _, enc := range [][]byte{secret, []byte(base64.StdEncoding.EncodeToString(secret)), []byte(base64.RawURLEncoding.EncodeToString(secret))} {
				if bytes.Contains(sealed, enc) || strings.Contains(rows[0].PublicJWK, string(enc)) {
					t.Fatalf("the stored key holds the %s in the clear", name)
				}
			}
		}
		if strings.Contains(rows[0].PublicJWK, `"d"`) || strings.Contains(string(ks.JWKS()), `"d"`) {
			t.Fatalf("the public JWK or the JWKS holds a private member: %s / %s", rows[0].PublicJWK, ks.JWKS())
		}

		// Another master key opens neither the sealed key nor the key set.
		other := newRing(t)
		if _, err := other.Open(sealed, "signing-key:"+ks.SigningKID()); err == nil {
			t.Fatal("another master key opened the sealed private key")
		}
		if _, err := accesstoken.Open(ctx, st, other, accesstoken.Options{Logger: discard}); err == nil || !strings.Contains(err.Error(), "master key") {
			t.Fatalf("Open with another master key: %v, want an error naming the master key", err)
		}
		// The sealed value is bound to its kid.
		if _, err := ring.Open(sealed, "signing-key:another"); err == nil {
			t.Fatal("the sealed private key opened under another kid")
		}
	})
}

// Minting, verifying, rotating and reloading at once (run with -race).
func TestConcurrentUse(t *testing.T) {
	st := openStore(t, store.Config{DataDir: t.TempDir()})
	clk, ring := newClock(), newRing(t)
	ks := openKeySet(t, st, ring, clk)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := ks.Mint(claims(clk))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ks.Verify(tok, expect(clk)); err != nil {
					t.Error(err)
					return
				}
				_ = ks.JWKS()
			}
		})
	}
	for range 3 {
		_, err := ks.Rotate(ctx)
		noErr(t, "rotate", err)
		noErr(t, "reload", ks.Reload(ctx))
	}
	close(stop)
	wg.Wait()
}

func benchKeySet(b *testing.B) (*accesstoken.KeySet, *clock) {
	st := openStore(b, store.Config{DataDir: b.TempDir()})
	clk := newClock()
	return openKeySet(b, st, newRing(b), clk), clk
}

func BenchmarkMint(b *testing.B) {
	ks, clk := benchKeySet(b)
	c := claims(clk)
	c.JTI = ""
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ks.Mint(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	ks, clk := benchKeySet(b)
	tok := mint(b, ks, claims(clk))
	want := expect(clk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ks.Verify(tok, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	ks, clk := benchKeySet(b)
	tok := mint(b, ks, claims(clk))
	want := expect(clk)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ks.Verify(tok, want); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
