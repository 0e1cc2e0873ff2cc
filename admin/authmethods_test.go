package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

func TestAuthMethodSettings(t *testing.T) {
	var checked []string
	e := newEnvWith(t, func(c *admin.Config) {
		c.CheckAuthConfig = func(method string, config json.RawMessage, secretSet bool) error {
			checked = append(checked, method)
			if method == store.AuthOIDC && !bytes.Contains(config, []byte(`"issuer"`)) {
				return errors.New("an issuer URL is required")
			}
			return nil
		}
	})
	var got admin.AuthSettings
	e.must(200, "GET", "/api/v1/hosts/acme/auth", e.acme, nil, &got)
	if len(got.Methods) != len(store.AuthMethodNames) || got.Methods[0].Method != "password" || !got.Methods[0].Enabled || got.Methods[1].Enabled {
		t.Fatalf("defaults: %+v", got)
	}

	const secret = "client-secret-value-0123456789"
	var m admin.AuthMethod
	s := secret
	e.must(200, "PUT", "/api/v1/hosts/acme/auth/methods/oidc", e.acme, admin.AuthMethodSet{
		Enabled: true, AllowedDomains: []string{"Acme.test"}, ForceRedirectDomains: []string{"acme.test"},
		Config: json.RawMessage(`{"issuer":"https://idp.acme.test","client_id":"tg"}`), Secret: &s,
	}, &m)
	if m.Secret != "set" || !m.Enabled || m.AllowedDomains[0] != "acme.test" || !m.Configured {
		t.Fatalf("oidc = %+v", m)
	}
	code, body := e.do("GET", "/api/v1/hosts/acme/auth", e.acme, nil)
	if code != 200 || strings.Contains(string(body), secret) {
		t.Fatalf("GET shows the secret: %d %s", code, body)
	}
	// The stored secret is sealed for acme/oidc with the master key.
	stored, err := e.store.ListAuthMethods(context.Background(), "acme")
	if err != nil || len(stored) != 1 || bytes.Contains(stored[0].SealedSecret, []byte(secret)) {
		t.Fatalf("stored: %+v, %v", stored, err)
	}
	keys, _ := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if plain, err := signinpolicy.OpenSecret(keys, stored[0]); err != nil || string(plain) != secret {
		t.Fatalf("open the stored secret: %q, %v", plain, err)
	}
	// A PUT without secret keeps it; "" removes it.
	e.must(200, "PUT", "/api/v1/hosts/acme/auth/methods/oidc", e.acme, map[string]any{"enabled": true, "force_redirect_domains": []string{"acme.test"}, "config": map[string]string{"issuer": "https://idp.acme.test"}}, &m)
	if m.Secret != "set" {
		t.Fatalf("secret lost by a PUT without one: %+v", m)
	}
	e.must(200, "PUT", "/api/v1/hosts/acme/auth/methods/oidc", e.acme, map[string]any{"enabled": true, "force_redirect_domains": []string{"acme.test"}, "config": map[string]string{"issuer": "https://idp.acme.test"}, "secret": ""}, &m)
	if m.Secret != "not set" {
		t.Fatalf("secret kept after removal: %+v", m)
	}

	// Refusals: the method's own check, an unknown method, a domain forced twice, bad domains,
	// unknown fields, another host's token.
	for _, tc := range []struct {
		path  string
		body  any
		token string
		code  int
		text  string
	}{
		{"/api/v1/hosts/acme/auth/methods/oidc", `{"enabled":true}`, e.acme, 400, "an issuer URL is required"},
		{"/api/v1/hosts/acme/auth/methods/telepathy", `{"enabled":true}`, e.acme, 404, "does not exist"},
		{"/api/v1/hosts/acme/auth/methods/saml", `{"enabled":true,"force_redirect_domains":["ACME.test"]}`, e.acme, 409, "already force-redirected"},
		{"/api/v1/hosts/acme/auth/methods/password", `{"enabled":true,"force_redirect_domains":["x.test"]}`, e.acme, 400, "only single sign-on"},
		{"/api/v1/hosts/acme/auth/methods/google", `{"enabled":true,"allowed_domains":["@x"]}`, e.acme, 400, "email domain"},
		{"/api/v1/hosts/acme/auth/methods/google", `{"enabled":true,"secrets":"x"}`, e.acme, 400, "unknown field"},
		{"/api/v1/hosts/acme/auth/methods/google", `{"enabled":true,"config":[1]}`, e.acme, 400, "JSON object"},
		{"/api/v1/hosts/acme/auth/methods/google", `{"enabled":true}`, e.beta, 403, "scoped to host"},
	} {
		code, body := e.do("PUT", tc.path, tc.token, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.text) {
			t.Errorf("PUT %s %v = %d %s, want %d with %q", tc.path, tc.body, code, body, tc.code, tc.text)
		}
	}
	if len(checked) == 0 {
		t.Fatal("CheckAuthConfig was never called")
	}

	// The host-wide list is a host setting.
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, map[string]any{"settings": map[string]any{"sign_in_domains": []string{"acme.test"}}}, nil)
	e.must(200, "GET", "/api/v1/hosts/acme/auth", e.acme, nil, &got)
	if len(got.SignInDomains) != 1 || got.SignInDomains[0] != "acme.test" {
		t.Fatalf("sign-in domains: %+v", got.SignInDomains)
	}

	// Delete: back to the default (off).
	e.must(204, "DELETE", "/api/v1/hosts/acme/auth/methods/oidc", e.acme, nil, nil)
	e.must(200, "GET", "/api/v1/hosts/acme/auth", e.acme, nil, &got)
	for _, m := range got.Methods {
		if m.Method == "oidc" && (m.Enabled || m.Configured) {
			t.Fatalf("oidc after delete: %+v", m)
		}
	}

	// Every change is audited, never with the secret.
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme", Decision: audit.Admin}, 0, 500)
		if err != nil {
			t.Fatal(err)
		}
		sets, dels := 0, 0
		for _, en := range entries {
			js, _ := json.Marshal(en)
			if strings.Contains(string(js), secret) {
				t.Fatalf("audit entry shows the secret: %s", js)
			}
			switch en.Action {
			case "auth_method.set":
				sets++
			case "auth_method.delete":
				dels++
			}
		}
		if sets >= 3 && dels == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit: %d sets, %d deletes", sets, dels)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
