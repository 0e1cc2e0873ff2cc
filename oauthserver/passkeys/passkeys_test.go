package passkeys_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/webauthnkey"
	"github.com/trustgate/trustgate/oauthserver/passkeys"
	"github.com/trustgate/trustgate/store"
)

func TestForIssuerRelyingPartyRules(t *testing.T) {
	for _, tc := range []struct {
		issuer, id, origin string
	}{
		{"https://gw.example.com", "gw.example.com", "https://gw.example.com"},
		{"https://GW.Example.com:8443/h/acme", "gw.example.com", "https://gw.example.com:8443"},
		{"https://acme.gw.example.com", "acme.gw.example.com", "https://acme.gw.example.com"},
		{"http://localhost:8080/h/acme", "localhost", "http://localhost:8080"},
	} {
		rp, err := passkeys.ForIssuer(tc.issuer, "")
		if err != nil {
			t.Fatalf("ForIssuer(%s): %v", tc.issuer, err)
		}
		if rp.ID() != tc.id || rp.Origin() != tc.origin {
			t.Errorf("ForIssuer(%s) = %s %s, want %s %s", tc.issuer, rp.ID(), rp.Origin(), tc.id, tc.origin)
		}
	}
	for _, issuer := range []string{"http://127.0.0.1:8080", "https://[::1]:8443", "http://gw.example.com", "ftp://gw.example.com", "not a url"} {
		if _, err := passkeys.ForIssuer(issuer, ""); !errors.Is(err, passkeys.ErrUnavailable) {
			t.Errorf("ForIssuer(%s) = %v, want ErrUnavailable", issuer, err)
		}
	}
}

// registered is a relying party with ada's passkey registered by key.
func registered(t *testing.T, rp *passkeys.RelyingParty, key *webauthnkey.Authenticator) passkeys.Human {
	t.Helper()
	ada := passkeys.Human{ID: "u_ada", Email: "ada@example.com"}
	options, state, err := rp.BeginRegistration(ada)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := key.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := rp.FinishRegistration(ada, state, answer)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if !bytes.Equal(pk.CredentialID, key.CredentialID()) || pk.UserID != "u_ada" || len(pk.PublicKey) == 0 {
		t.Fatalf("registered passkey = %+v", pk)
	}
	pk.Host = "acme"
	ada.Passkeys = []store.Passkey{pk}
	return ada
}

func lookupOf(h passkeys.Human) passkeys.Lookup {
	return func(id, handle []byte) (passkeys.Human, error) {
		if len(h.Passkeys) == 0 || !bytes.Equal(id, h.Passkeys[0].CredentialID) || string(handle) != h.ID {
			return passkeys.Human{}, passkeys.ErrUnknownPasskey
		}
		return h, nil
	}
}

func signIn(rp *passkeys.RelyingParty, key *webauthnkey.Authenticator, h passkeys.Human) (passkeys.Human, store.Passkey, error) {
	options, state, err := rp.BeginSignIn()
	if err != nil {
		return passkeys.Human{}, store.Passkey{}, err
	}
	answer, err := key.Get(options)
	if err != nil {
		return passkeys.Human{}, store.Passkey{}, err
	}
	return rp.FinishSignIn(state, answer, lookupOf(h))
}

func TestRegisterThenSignInWithThePasskeyAlone(t *testing.T) {
	rp, err := passkeys.ForIssuer("https://gw.example.com/h/acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	key := webauthnkey.New("https://gw.example.com")
	ada := registered(t, rp, key)

	options, _, err := rp.BeginSignIn()
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RPID             string            `json:"rpId"`
			AllowCredentials []json.RawMessage `json:"allowCredentials"`
			UserVerification string            `json:"userVerification"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.RPID != "gw.example.com" || len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.UserVerification != "required" {
		t.Fatalf("sign-in options %s (%v): want the relying party, no credentials listed, user verification required", options, err)
	}

	h, pk, err := signIn(rp, key, ada)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if h.ID != "u_ada" || pk.SignCount != 1 {
		t.Fatalf("signed in %s with counter %d, want u_ada with 1", h.ID, pk.SignCount)
	}
	ada.Passkeys[0] = pk
	if _, pk, err = signIn(rp, key, ada); err != nil || pk.SignCount != 2 {
		t.Fatalf("second sign-in: counter %d, %v", pk.SignCount, err)
	}
}

func TestRefusedAnswers(t *testing.T) {
	rp, err := passkeys.ForIssuer("https://gw.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		spoil func(k *webauthnkey.Authenticator, h *passkeys.Human)
		want  error
	}{
		{"another origin", func(k *webauthnkey.Authenticator, _ *passkeys.Human) { k.Origin = "https://evil.example" }, passkeys.ErrRefused},
		{"same host, another port", func(k *webauthnkey.Authenticator, _ *passkeys.Human) { k.Origin = "https://gw.example.com:8443" }, passkeys.ErrRefused},
		{"plain http origin", func(k *webauthnkey.Authenticator, _ *passkeys.Human) { k.Origin = "http://gw.example.com" }, passkeys.ErrRefused},
		{"another relying party", func(k *webauthnkey.Authenticator, _ *passkeys.Human) { k.RPID = "example.com" }, passkeys.ErrRefused},
		{"no user verification", func(k *webauthnkey.Authenticator, _ *passkeys.Human) { k.SkipUserVerification = true }, passkeys.ErrRefused},
		{"counter went backwards", func(k *webauthnkey.Authenticator, h *passkeys.Human) {
			h.Passkeys[0].SignCount = 10
			k.Counter = 4
		}, passkeys.ErrCloned},
		{"counter did not grow", func(k *webauthnkey.Authenticator, h *passkeys.Human) {
			h.Passkeys[0].SignCount = 10
			k.Counter = 9 // Get answers with 10
		}, passkeys.ErrCloned},
		{"removed passkey", func(_ *webauthnkey.Authenticator, h *passkeys.Human) { h.Passkeys = nil }, passkeys.ErrUnknownPasskey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := webauthnkey.New("https://gw.example.com")
			ada := registered(t, rp, key)
			tc.spoil(key, &ada)
			if _, _, err := signIn(rp, key, ada); !errors.Is(err, tc.want) {
				t.Fatalf("sign in: %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("registration from another origin", func(t *testing.T) {
		ada := passkeys.Human{ID: "u_ada", Email: "ada@example.com"}
		options, state, _ := rp.BeginRegistration(ada)
		answer, _ := webauthnkey.New("https://evil.example").Create(options)
		if _, err := rp.FinishRegistration(ada, state, answer); !errors.Is(err, passkeys.ErrRefused) {
			t.Fatalf("FinishRegistration: %v, want ErrRefused", err)
		}
	})
	t.Run("registration for another human", func(t *testing.T) {
		ada := passkeys.Human{ID: "u_ada", Email: "ada@example.com"}
		options, state, _ := rp.BeginRegistration(ada)
		answer, _ := webauthnkey.New("https://gw.example.com").Create(options)
		bob := passkeys.Human{ID: "u_bob", Email: "bob@example.com"}
		if _, err := rp.FinishRegistration(bob, state, answer); !errors.Is(err, passkeys.ErrRefused) {
			t.Fatalf("FinishRegistration: %v, want ErrRefused", err)
		}
	})
	t.Run("answer to another ceremony", func(t *testing.T) {
		key := webauthnkey.New("https://gw.example.com")
		ada := registered(t, rp, key)
		options, _, _ := rp.BeginSignIn()
		_, otherState, _ := rp.BeginSignIn()
		answer, _ := key.Get(options)
		if _, _, err := rp.FinishSignIn(otherState, answer, lookupOf(ada)); !errors.Is(err, passkeys.ErrRefused) {
			t.Fatalf("FinishSignIn: %v, want ErrRefused", err)
		}
	})
	t.Run("oversized or malformed answers", func(t *testing.T) {
		_, state, _ := rp.BeginSignIn()
		for _, answer := range [][]byte{bytes.Repeat([]byte("a"), passkeys.MaxResponseBytes+1), []byte("{}"), []byte("not json")} {
			if _, _, err := rp.FinishSignIn(state, answer, lookupOf(passkeys.Human{})); !errors.Is(err, passkeys.ErrRefused) {
				t.Errorf("FinishSignIn(%.20q): %v, want ErrRefused", answer, err)
			}
		}
	})
	t.Run("registration excludes the human's passkeys", func(t *testing.T) {
		key := webauthnkey.New("https://gw.example.com")
		ada := registered(t, rp, key)
		options, _, _ := rp.BeginRegistration(ada)
		if !bytes.Contains(options, []byte(fmt.Sprintf("%q", b64(key.CredentialID())))) {
			t.Fatalf("options %s do not exclude the registered passkey", options)
		}
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
