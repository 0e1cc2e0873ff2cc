package oauthserver

import (
	"errors"
	"strings"
	"testing"
)

// RFC 7636 Appendix B.
const (
	rfc7636Verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfc7636Challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestS256Challenge(t *testing.T) {
	if got := S256Challenge(rfc7636Verifier); got != rfc7636Challenge {
		t.Fatalf("S256Challenge(RFC 7636 verifier) = %q, want %q", got, rfc7636Challenge)
	}
	if got := S256Challenge(rfc7636Verifier + "x"); got == rfc7636Challenge {
		t.Fatal("a different verifier gave the same challenge")
	}
	if got := S256Challenge(""); len(got) != 43 || strings.ContainsAny(got, "+/=") {
		t.Fatalf("S256Challenge must be 43 base64url characters without padding, got %q", got)
	}
}

func TestValidatePKCEChallenge(t *testing.T) {
	cases := []struct {
		method, challenge string
		want              string // "" = valid; else a fragment of the error
	}{
		{"S256", rfc7636Challenge, ""},
		{"S256", S256Challenge("another verifier"), ""},
		{"S256", strings.Repeat("a", 43), ""},
		{"S256", strings.Repeat("A", 128), ""},
		{"S256", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", ""},

		{"", rfc7636Challenge, "S256 is required"},
		{"plain", rfc7636Challenge, "plain is not allowed"},
		{"plain", rfc7636Verifier, "S256 is required"},
		{"s256", rfc7636Challenge, "S256 is required"},
		{"S256 ", rfc7636Challenge, "S256 is required"},
		{"SHA256", rfc7636Challenge, "S256 is required"},
		{"S512", rfc7636Challenge, "S256 is required"},

		{"S256", "", "code_challenge is required"},
		{"S256", strings.Repeat("a", 42), "43 to 128"},
		{"S256", strings.Repeat("a", 129), "43 to 128"},
		{"S256", rfc7636Challenge + "=", "only"},                        // padding
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "only"}, // standard base64
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw/cM", "only"},
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw cM", "only"},
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw\ncM", "only"},
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw%2M", "only"},
		{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstwécM", "only"},
	}
	for _, c := range cases {
		err := ValidatePKCEChallenge(c.method, c.challenge)
		if c.want == "" {
			if err != nil {
				t.Errorf("ValidatePKCEChallenge(%q, %q) = %v, want nil", c.method, c.challenge, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidatePKCEChallenge(%q, %q) = nil, want error containing %q", c.method, c.challenge, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidatePKCEChallenge(%q, %q) = %q, want it to contain %q", c.method, c.challenge, err, c.want)
		}
		if !errors.Is(err, ErrInvalidPKCE) {
			t.Errorf("ValidatePKCEChallenge(%q, %q): error does not wrap ErrInvalidPKCE", c.method, c.challenge)
		}
	}
}
