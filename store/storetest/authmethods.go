package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/store"
)

func testAuthMethods(t *testing.T, open Opener) {
	withStore(t, open, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		must[store.Host](t, "create acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		must[store.Host](t, "create beta")(s.CreateHost(ctx, store.Host{Key: "beta"}))

		// No rows: the host uses the defaults.
		if got := must[[]store.AuthMethod](t, "list empty")(s.ListAuthMethods(ctx, "acme")); len(got) != 0 {
			t.Fatalf("new host's methods = %+v, want none", got)
		}
		_, err := s.ListAuthMethods(ctx, "nope")
		wantErr(t, "list unknown host", err, store.ErrNotFound)

		oidc := store.AuthMethod{
			Host: "acme", Method: store.AuthOIDC, Enabled: true,
			AllowedDomains:       []string{"Acme.COM", "acme.com", "corp.acme.com"},
			ForceRedirectDomains: []string{"acme.com"},
			Config:               json.RawMessage(`{"issuer":"https://idp.example.com","client_id":"tg"}`),
			SealedSecret:         []byte{0, 1, 2, 255},
		}
		noErr(t, "put oidc", s.PutAuthMethod(ctx, oidc))
		noErr(t, "put password", s.PutAuthMethod(ctx, store.AuthMethod{Host: "acme", Method: store.AuthPassword, Enabled: false}))
		got := must[[]store.AuthMethod](t, "list")(s.ListAuthMethods(ctx, "acme"))
		if len(got) != 2 || got[0].Method != store.AuthPassword || got[1].Method != store.AuthOIDC {
			t.Fatalf("methods = %+v, want password then oidc", got)
		}
		o := got[1]
		if !o.Enabled || !slices.Equal(o.AllowedDomains, []string{"acme.com", "corp.acme.com"}) ||
			!slices.Equal(o.ForceRedirectDomains, []string{"acme.com"}) || !bytes.Equal(o.SealedSecret, oidc.SealedSecret) ||
			o.UpdatedAt.IsZero() {
			t.Fatalf("oidc = %+v", o)
		}
		var cfg map[string]string
		if err := json.Unmarshal(o.Config, &cfg); err != nil || cfg["issuer"] != "https://idp.example.com" {
			t.Fatalf("config = %s (%v)", o.Config, err)
		}
		if p := got[0]; p.Enabled || p.AllowedDomains == nil || len(p.SealedSecret) != 0 || string(p.Config) != "{}" {
			t.Fatalf("password = %+v", p)
		}
		// Other hosts see nothing of it.
		if got := must[[]store.AuthMethod](t, "list beta")(s.ListAuthMethods(ctx, "beta")); len(got) != 0 {
			t.Fatalf("beta's methods = %+v", got)
		}

		// Put replaces.
		oidc.Enabled, oidc.SealedSecret, oidc.AllowedDomains = false, nil, nil
		noErr(t, "replace oidc", s.PutAuthMethod(ctx, oidc))
		got = must[[]store.AuthMethod](t, "list")(s.ListAuthMethods(ctx, "acme"))
		if o := got[1]; o.Enabled || len(o.SealedSecret) != 0 || len(o.AllowedDomains) != 0 {
			t.Fatalf("replaced oidc = %+v", o)
		}

		// A domain goes to one provider only.
		err = s.PutAuthMethod(ctx, store.AuthMethod{Host: "acme", Method: store.AuthSAML, ForceRedirectDomains: []string{"ACME.com"}})
		wantErr(t, "second force-redirect of a domain", err, store.ErrConflict)
		noErr(t, "another domain", s.PutAuthMethod(ctx, store.AuthMethod{Host: "acme", Method: store.AuthSAML, ForceRedirectDomains: []string{"other.com"}}))

		for name, bad := range map[string]store.AuthMethod{
			"unknown method":           {Host: "acme", Method: "telepathy"},
			"force on password":        {Host: "acme", Method: store.AuthPassword, ForceRedirectDomains: []string{"acme.com"}},
			"domain with @":            {Host: "acme", Method: store.AuthOIDC, AllowedDomains: []string{"@acme.com"}},
			"empty domain":             {Host: "acme", Method: store.AuthOIDC, AllowedDomains: []string{""}},
			"config not an object":     {Host: "acme", Method: store.AuthOIDC, Config: json.RawMessage(`[1]`)},
			"config not JSON":          {Host: "acme", Method: store.AuthOIDC, Config: json.RawMessage(`{`)},
			"config too large":         {Host: "acme", Method: store.AuthSAML, Config: json.RawMessage(`{"x":"` + strings.Repeat("a", 300<<10) + `"}`)},
			"secret too large":         {Host: "acme", Method: store.AuthOIDC, SealedSecret: make([]byte, 20<<10)},
			"too many allowed domains": {Host: "acme", Method: store.AuthOIDC, AllowedDomains: manyDomains(101)},
		} {
			wantErr(t, name, s.PutAuthMethod(ctx, bad), store.ErrInvalid)
		}
		wantErr(t, "unknown host", s.PutAuthMethod(ctx, store.AuthMethod{Host: "nope", Method: store.AuthOIDC}), store.ErrNotFound)

		// Delete, then the host's deletion takes the rest.
		noErr(t, "delete oidc", s.DeleteAuthMethod(ctx, "acme", store.AuthOIDC))
		noErr(t, "delete again", s.DeleteAuthMethod(ctx, "acme", store.AuthOIDC))
		got = must[[]store.AuthMethod](t, "list")(s.ListAuthMethods(ctx, "acme"))
		if len(got) != 2 || got[0].Method != store.AuthPassword || got[1].Method != store.AuthSAML {
			t.Fatalf("after delete: %+v", got)
		}
		noErr(t, "delete host", s.DeleteHost(ctx, "acme"))
		must[store.Host](t, "recreate acme")(s.CreateHost(ctx, store.Host{Key: "acme"}))
		if got := must[[]store.AuthMethod](t, "list recreated")(s.ListAuthMethods(ctx, "acme")); len(got) != 0 {
			t.Fatalf("a recreated host inherits %+v", got)
		}

		// The host-wide list is a host setting.
		h := must[store.Host](t, "get")(s.GetHost(ctx, "acme"))
		h.Settings.SignInDomains = []string{"ACME.com"}
		h = must[store.Host](t, "update")(s.UpdateHost(ctx, h))
		if h = must[store.Host](t, "get")(s.GetHost(ctx, "acme")); !slices.Equal(h.Settings.SignInDomains, []string{"acme.com"}) {
			t.Fatalf("sign-in domains = %v", h.Settings.SignInDomains)
		}
		h.Settings.SignInDomains = []string{"a@b"}
		_, err = s.UpdateHost(ctx, h)
		wantErr(t, "bad sign-in domain", err, store.ErrInvalid)
	})
}

func manyDomains(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "d" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + ".example"
	}
	return out
}
