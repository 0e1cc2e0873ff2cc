package signinpolicy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

func policy(global []string, methods ...store.AuthMethod) signinpolicy.Policy {
	return signinpolicy.New(store.Host{Key: "acme", Settings: store.HostSettings{SignInDomains: global}}, methods)
}

func TestDefaultIsPasswordOnly(t *testing.T) {
	p := policy(nil)
	if got := fmt.Sprint(p.Enabled()); got != "[password]" {
		t.Fatalf("enabled = %s, want [password]", got)
	}
	if err := p.Allow(store.AuthPassword, "ada@anything.example"); err != nil {
		t.Fatal(err)
	}
	var r *signinpolicy.Refusal
	if err := p.Allow(store.AuthOIDC, "ada@anything.example"); !errors.As(err, &r) || r.Reason != signinpolicy.NotEnabled {
		t.Fatalf("oidc on a default host: %v", err)
	}
}

// TestDomainIntersection: an address may use a method only when its domain is allowed by the
// host's list and by the method's; an empty list allows all; case does not matter; only the
// exact domain matches.
func TestDomainIntersection(t *testing.T) {
	lists := map[string][]string{
		"empty":      nil,
		"acme":       {"acme.com"},
		"ACME":       {"ACME.COM"},
		"beta":       {"beta.org"},
		"acme+beta":  {"beta.org", "acme.com"},
		"subdomain":  {"eu.acme.com"},
		"suffixlike": {"cme.com"},
	}
	// want[global][method] for ada@Acme.Com: allowed?
	admits := func(list []string, domain string) bool {
		if len(list) == 0 {
			return true
		}
		for _, d := range list {
			if strings.EqualFold(d, domain) {
				return true
			}
		}
		return false
	}
	allowedFor := func(list []string) bool { return admits(list, "acme.com") }
	emails := []string{"ada@acme.com", "Ada@ACME.com", " ada@acme.com "}
	// Near misses: each is allowed only by lists naming its exact domain ("" for addresses
	// without a usable domain, which are always refused).
	nearMisses := map[string]string{
		"ada@eu.acme.com": "eu.acme.com", "ada@acme.com.evil.example": "acme.com.evil.example",
		"ada@evilacme.com": "evilacme.com", "ada@cme.com.": "cme.com.", "ada@acme.com.": "acme.com.",
		"ada@beta.org@acme.com": "", "acme.com": "", "@acme.com": "", "ada@": "",
	}
	for gName, global := range lists {
		for mName, methodList := range lists {
			t.Run(gName+"×"+mName, func(t *testing.T) {
				p := policy(global, store.AuthMethod{Host: "acme", Method: store.AuthOIDC, Enabled: true, AllowedDomains: methodList})
				want := allowedFor(global) && allowedFor(methodList)
				for _, email := range emails {
					err := p.Allow(store.AuthOIDC, email)
					if (err == nil) != want {
						t.Errorf("Allow(oidc, %q) = %v, want allowed=%v", email, err, want)
					}
					var r *signinpolicy.Refusal
					if err != nil && !errors.As(err, &r) {
						t.Errorf("refusal %v is not a *Refusal", err)
					}
					if err != nil && !allowedFor(global) && r.Reason != signinpolicy.DomainNotAllowed {
						t.Errorf("host list refused with reason %s", r.Reason)
					}
					if err != nil && allowedFor(global) && r.Reason != signinpolicy.MethodDomainNotAllowed {
						t.Errorf("method list refused with reason %s", r.Reason)
					}
				}
				for email, domain := range nearMisses {
					want := domain != "" && admits(global, domain) && admits(methodList, domain)
					if err := p.Allow(store.AuthOIDC, email); (err == nil) != want {
						t.Errorf("Allow(oidc, %q) with lists %v × %v = %v, want allowed=%v", email, global, methodList, err, want)
					}
				}
			})
		}
	}
	// Malformed addresses are refused even when every list is empty.
	p := policy(nil, store.AuthMethod{Method: store.AuthPassword, Enabled: true})
	for _, email := range []string{"acme.com", "@acme.com", "ada@", "ada@b@acme.com", "a da@acme.com", ""} {
		var r *signinpolicy.Refusal
		if err := p.Allow(store.AuthPassword, email); !errors.As(err, &r) || r.Reason != signinpolicy.BadEmail {
			t.Errorf("Allow(password, %q) = %v, want bad_email", email, err)
		}
	}
}

func TestForceRedirect(t *testing.T) {
	p := policy([]string{"acme.com", "beta.org", "corp.example"},
		store.AuthMethod{Method: store.AuthPassword, Enabled: true},
		store.AuthMethod{Method: store.AuthOIDC, Enabled: true, ForceRedirectDomains: []string{"acme.com"}},
		store.AuthMethod{Method: store.AuthSAML, Enabled: false, ForceRedirectDomains: []string{"beta.org"}},
		store.AuthMethod{Method: store.AuthGoogle, Enabled: true, ForceRedirectDomains: []string{"gone.example"}},
	)
	for _, tc := range []struct {
		email, want string
	}{
		{"ada@acme.com", store.AuthOIDC},
		{"ADA@Acme.COM", store.AuthOIDC},
		{"ada@eu.acme.com", ""}, // subdomains are not forced
		{"ada@beta.org", ""},    // SAML is off: the domain is not forced
		{"ada@corp.example", ""},
		{"not an email", ""},
		{"ada@gone.example", store.AuthGoogle}, // forced, though the host's list refuses it (Allow says so)
	} {
		got, _ := p.ForceRedirect(tc.email)
		if got != tc.want {
			t.Errorf("ForceRedirect(%q) = %q, want %q", tc.email, got, tc.want)
		}
	}
	// A forced domain never gets the password form.
	var r *signinpolicy.Refusal
	if err := p.Allow(store.AuthPassword, "ada@acme.com"); !errors.As(err, &r) || r.Reason != signinpolicy.ForcedElsewhere {
		t.Fatalf("password for a forced domain: %v", err)
	} else if !strings.Contains(r.Message, "single sign-on") {
		t.Fatalf("message %q does not name the provider", r.Message)
	}
	if err := p.Allow(store.AuthOIDC, "ada@acme.com"); err != nil {
		t.Fatalf("the forced provider refused: %v", err)
	}
	if err := p.Allow(store.AuthPassword, "ada@beta.org"); err != nil {
		t.Fatalf("password for a domain of a disabled method: %v", err)
	}
	if err := p.Allow(store.AuthGoogle, "ada@gone.example"); err == nil {
		t.Fatal("the host's list did not refuse a forced domain")
	}
}

func TestRefusalsSayWhatToDo(t *testing.T) {
	p := policy([]string{"acme.com", "beta.org"},
		store.AuthMethod{Method: store.AuthPassword, Enabled: true, AllowedDomains: []string{"beta.org"}},
		store.AuthMethod{Method: store.AuthGitHub, Enabled: true},
	)
	var r *signinpolicy.Refusal
	if err := p.Allow(store.AuthPassword, "ada@acme.com"); !errors.As(err, &r) {
		t.Fatal(err)
	}
	if r.Message != "Signing in with email and password is not available for addresses at acme.com." || r.WhatToDo != "Sign in with GitHub instead." {
		t.Fatalf("refusal = %+v", r)
	}
	if err := p.Allow(store.AuthPassword, "ada@gamma.net"); !errors.As(err, &r) || !strings.Contains(r.Message, "gamma.net") || r.WhatToDo == "" {
		t.Fatalf("refusal = %+v", r)
	}
	if err := p.Allow(store.AuthSAML, "ada@acme.com"); !errors.As(err, &r) || r.WhatToDo != "Sign in with email and password or GitHub instead." {
		t.Fatalf("refusal = %+v", r)
	}
}

func TestSealedSecretIsBoundToHostAndMethod(t *testing.T) {
	keys, err := secrets.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed := signinpolicy.SealSecret(keys, "acme", store.AuthOIDC, []byte("s3cret"))
	got, err := signinpolicy.OpenSecret(keys, store.AuthMethod{Host: "acme", Method: store.AuthOIDC, SealedSecret: sealed})
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("open = %q, %v", got, err)
	}
	for _, m := range []store.AuthMethod{{Host: "beta", Method: store.AuthOIDC}, {Host: "acme", Method: store.AuthGoogle}} {
		m.SealedSecret = sealed
		if _, err := signinpolicy.OpenSecret(keys, m); err == nil {
			t.Fatalf("a secret sealed for acme/oidc opened as %s/%s", m.Host, m.Method)
		}
	}
	if got, err := signinpolicy.OpenSecret(keys, store.AuthMethod{Host: "acme", Method: store.AuthOIDC}); got != nil || err != nil {
		t.Fatalf("nothing sealed: %q, %v", got, err)
	}
}
