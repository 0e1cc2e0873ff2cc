package accesstoken_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/store"
)

func storeConfigSQLite(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} }

// A token verified once (and so remembered) is refused as soon as its signing key stops being
// published, even when the leeway would still accept its exp.
func TestRememberedTokenDiesWithItsKey(t *testing.T) {
	st := openStore(t, storeConfigSQLite(t))
	clk, ring := newClock(), newRing(t)
	ks := openKeySet(t, st, ring, clk)
	c := claims(clk)
	c.Expiry = clk.Now().Add(24 * time.Hour)
	tok := mint(t, ks, c)
	lenient := func() accesstoken.Expect {
		return accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: 72 * time.Hour}
	}
	for range 3 {
		_, err := ks.Verify(tok, lenient())
		noErr(t, "verify", err)
	}
	_, err := ks.Rotate(ctx)
	noErr(t, "rotate", err)
	_, err = ks.Verify(tok, lenient())
	noErr(t, "remembered token while its retired key is published", err)
	clk.Add(accesstoken.DefaultMaxTokenLifetime + accesstoken.DefaultPublishGrace + time.Second)
	_, err = ks.Verify(tok, lenient())
	wantErr(t, "remembered token after its key's publication ended", err, accesstoken.ErrUnknownKey)
}

// Remembered tokens are still checked against each call's issuer, audience and clock.
func TestRememberedTokenIsCheckedAtEveryUse(t *testing.T) {
	st := openStore(t, storeConfigSQLite(t))
	clk, ring := newClock(), newRing(t)
	ks := openKeySet(t, st, ring, clk)
	tok := mint(t, ks, claims(clk))
	c, err := ks.Verify(tok, expect(clk))
	noErr(t, "verify", err)
	c.Extra["level"] = "tampered by the caller"
	c.AgentID = "tampered by the caller"
	c.Audience[0] = "tampered"
	again, err := ks.Verify(tok, expect(clk))
	noErr(t, "verify again", err)
	if again.Extra["level"] != "2" || again.AgentID != "a_123" || again.Audience[0] != audience {
		t.Fatalf("a caller's change to the returned claims reached the next Verify: %+v", again)
	}
	_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer, Audience: audience + "/other", Now: clk.Now()})
	wantErr(t, "remembered token, another audience", err, accesstoken.ErrWrongAudience)
	_, err = ks.Verify(tok, accesstoken.Expect{Issuer: issuer + "/other", Audience: audience, Now: clk.Now()})
	wantErr(t, "remembered token, another issuer", err, accesstoken.ErrWrongIssuer)
	clk.Add(time.Hour + time.Minute)
	_, err = ks.Verify(tok, expect(clk))
	wantErr(t, "remembered token after exp", err, accesstoken.ErrExpired)
	// A token whose signature differs in one bit is not the remembered one. (Replacing the last
	// characters of the text could leave the decoded signature unchanged, or equal.)
	_, err = ks.Verify(flipSignatureBit(t, tok), accesstoken.Expect{Issuer: issuer, Audience: audience, Leeway: 2 * time.Hour})
	if err == nil {
		t.Fatal("a token with another signature verified")
	}
}

// The memory is bounded, and tokens beyond it still verify.
func TestRememberedTokensAreBounded(t *testing.T) {
	st := openStore(t, storeConfigSQLite(t))
	clk, ring := newClock(), newRing(t)
	ks, err := accesstoken.Open(ctx, st, ring, accesstoken.Options{Now: clk.Now, Logger: discard, VerifiedTokens: 2})
	noErr(t, "open", err)
	var toks []string
	for range 5 {
		toks = append(toks, mint(t, ks, claims(clk)))
	}
	for range 2 {
		for _, tok := range toks {
			_, err := ks.Verify(tok, expect(clk))
			noErr(t, "verify", err)
		}
	}
	if n := accesstoken.RememberedTokens(ks); n != 2 {
		t.Fatalf("remembered %d tokens, want the bound 2", n)
	}
}

// flipSignatureBit returns tok with one bit of its decoded signature inverted.
func flipSignatureBit(t *testing.T, tok string) string {
	t.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil || len(sig) == 0 {
		t.Fatalf("signature of %q: %v", tok, err)
	}
	sig[len(sig)/2] ^= 1
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}
