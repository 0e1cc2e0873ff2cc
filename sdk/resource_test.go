package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The end-to-end test (tests/sdk_test.go) verifies the gateway's real tokens. These tests need
// an issuer whose keys they control (rotation, an outage): a small one that serves RFC 8414
// metadata and a JWKS the way the gateway does, and signs tokens with go-jose.

type testIssuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey
	hidden  map[string]bool // keys that sign but are not published (yet)
	fetches atomic.Int32
	down    atomic.Bool
}

func newTestIssuer(t *testing.T) *testIssuer {
	iss := &testIssuer{keys: map[string]*ecdsa.PrivateKey{}, hidden: map[string]bool{}}
	iss.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if iss.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server/h/acme":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss.srv.URL + "/h/acme", "jwks_uri": iss.srv.URL + "/h/acme/.well-known/jwks.json"})
		case "/h/acme/.well-known/jwks.json":
			iss.fetches.Add(1)
			iss.mu.Lock()
			var set jose.JSONWebKeySet
			for kid, k := range iss.keys {
				if iss.hidden[kid] {
					continue
				}
				set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
			}
			iss.mu.Unlock()
			_ = json.NewEncoder(w).Encode(set)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(iss.srv.Close)
	iss.addKey(t, "k1")
	return iss
}

func (iss *testIssuer) addKey(t *testing.T, kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss.mu.Lock()
	iss.keys[kid] = k
	iss.mu.Unlock()
}

// mint signs a token with key kid; edit changes its claims first.
func (iss *testIssuer) mint(t *testing.T, kid string, edit func(map[string]any)) string {
	iss.mu.Lock()
	k := iss.keys[kid]
	iss.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{"iss": iss.srv.URL + "/h/acme", "sub": "u_alice", "aud": iss.srv.URL + "/h/acme/mcp/tracker",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "j1", "client_id": "c1",
		"host": "acme", "agent_id": "a_1", "sid": "g1"}
	if edit != nil {
		edit(claims)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (iss *testIssuer) resourceServer(t *testing.T) *ResourceServer {
	rs, err := NewResourceServer(ResourceServerConfig{Issuer: iss.srv.URL + "/h/acme", Audience: iss.srv.URL + "/h/acme/mcp/tracker", Host: "acme",
		KeysMinRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestResourceServerChecksEveryClaim(t *testing.T) {
	iss := newTestIssuer(t)
	rs := iss.resourceServer(t)
	ctx := context.Background()
	tok, err := rs.Verify(ctx, iss.mint(t, "k1", nil))
	if err != nil || tok.Human != "u_alice" || tok.Agent != "a_1" || tok.Host != "acme" || tok.Grant != "g1" || tok.ClientID != "c1" {
		t.Fatalf("Verify = %+v, %v", tok, err)
	}
	for name, edit := range map[string]func(map[string]any){
		"expired":          func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() },
		"not yet valid":    func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() },
		"another issuer":   func(c map[string]any) { c["iss"] = "https://evil.example" },
		"another audience": func(c map[string]any) { c["aud"] = []string{iss.srv.URL + "/h/acme/mcp/other"} },
		"another host":     func(c map[string]any) { c["host"] = "beta" },
		"no agent":         func(c map[string]any) { delete(c, "agent_id") },
		"no expiry":        func(c map[string]any) { delete(c, "exp") },
	} {
		if _, err := rs.Verify(ctx, iss.mint(t, "k1", edit)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
		}
	}
}

// A token signed by a key the cache does not know fetches the keys again, but at most once
// per KeysMinRefresh: a flood of tokens with unknown kids costs one fetch.
func TestResourceServerRefreshesKeysOnUnknownKidBounded(t *testing.T) {
	iss := newTestIssuer(t)
	rs := iss.resourceServer(t) // KeysMinRefresh: an hour
	ctx := context.Background()
	intervalPasses := func() {
		rs.keys.mu.Lock()
		rs.keys.attemptedAt = time.Now().Add(-2 * time.Hour)
		rs.keys.mu.Unlock()
	}
	if _, err := rs.Verify(ctx, iss.mint(t, "k1", nil)); err != nil {
		t.Fatal(err)
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first token, want 1", n)
	}
	iss.addKey(t, "k2")
	iss.mu.Lock()
	iss.hidden["k2"] = true // signs, not published: a forger's kid
	iss.mu.Unlock()
	intervalPasses()
	for range 50 {
		if _, err := rs.Verify(ctx, iss.mint(t, "k2", nil)); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unpublished k2: %v, want ErrInvalidToken", err)
		}
	}
	if n := iss.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 50 tokens of an unknown kid, want 2 (one refresh)", n)
	}
	// The gateway publishes k2 (a rotation): found at the next refresh, not before.
	iss.mu.Lock()
	delete(iss.hidden, "k2")
	iss.mu.Unlock()
	if _, err := rs.Verify(ctx, iss.mint(t, "k2", nil)); !errors.Is(err, ErrInvalidToken) || iss.fetches.Load() != 2 {
		t.Fatalf("k2 within the minimum refresh interval: %v after %d fetches", err, iss.fetches.Load())
	}
	intervalPasses()
	if _, err := rs.Verify(ctx, iss.mint(t, "k2", nil)); err != nil || iss.fetches.Load() != 3 {
		t.Fatalf("published k2 after the interval: %v after %d fetches", err, iss.fetches.Load())
	}
	// k1 is still accepted without a fetch.
	if _, err := rs.Verify(ctx, iss.mint(t, "k1", nil)); err != nil || iss.fetches.Load() != 3 {
		t.Fatalf("k1: %v after %d fetches", err, iss.fetches.Load())
	}
}

// Without the issuer's keys nothing is accepted, and the middleware says so with 503.
func TestResourceServerFailsClosedWithoutKeys(t *testing.T) {
	iss := newTestIssuer(t)
	iss.down.Store(true)
	rs := iss.resourceServer(t)
	token := iss.mint(t, "k1", nil)
	if _, err := rs.Verify(context.Background(), token); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Verify with the issuer down = %v, want ErrKeysUnavailable", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rs.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("handler reached") })).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("middleware with the issuer down = %d, want 503", rec.Code)
	}
}
