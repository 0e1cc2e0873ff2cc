package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// TestHostAuthCommands drives trustgate admin host auth against the real admin API.
func TestHostAuthCommands(t *testing.T) {
	ctx := context.Background()
	cp := controlplane.New(t)
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	urls, _ := tenant.NewURLs("https://gw.example.com", false)
	api, err := admin.New(admin.Config{Store: cp.Store, Syncer: cp.Writer, Keys: keys, URLs: urls})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	if _, err := cp.Store.EnsureHost(ctx, store.Host{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	secret, hash, prefix := admin.NewTokenSecret()
	if _, err := cp.Store.CreateAPIToken(ctx, store.APIToken{Name: "cli", Hash: hash, Prefix: prefix}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, _, err := runCLI(t, append([]string{"admin", "--url", srv.URL, "--token", secret}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}

	out := run("host", "auth", "list", "acme")
	if !strings.Contains(out, "Sign-in domains: any") || !regexpLine(out, `^password\s+yes\s+any`) || !regexpLine(out, `^oidc\s+no\s+any`) {
		t.Fatalf("list of a new host:\n%s", out)
	}
	secretPath := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretPath, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = run("host", "auth", "set", "acme", "oidc", "--enable", "--config", `{"issuer":"https://idp.acme.test"}`,
		"--allowed-domains", "Acme.test,@corp.acme.test", "--force-redirect-domains", "acme.test", "--secret-file", secretPath)
	if !strings.Contains(out, "enabled") || !strings.Contains(out, "secret set") {
		t.Fatalf("set: %s", out)
	}
	// Flags not given keep their value.
	run("host", "auth", "set", "acme", "oidc", "--allowed-domains", "acme.test")
	stored, err := cp.Store.ListAuthMethods(ctx, "acme")
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	m := stored[0]
	if !m.Enabled || strings.Join(m.AllowedDomains, ",") != "acme.test" || strings.Join(m.ForceRedirectDomains, ",") != "acme.test" ||
		!strings.Contains(string(m.Config), "idp.acme.test") || len(m.SealedSecret) == 0 || bytes.Contains(m.SealedSecret, []byte("s3cret")) {
		t.Fatalf("stored oidc: %+v", m)
	}
	out = run("host", "auth", "list", "acme")
	if strings.Contains(out, "s3cret") || !regexpLine(out, `^oidc\s+yes\s+acme\.test\s+acme\.test\s+.*\sset$`) {
		t.Fatalf("list:\n%s", out)
	}
	run("host", "update", "acme", "--sign-in-domains", "acme.test")
	if out = run("host", "auth", "list", "acme"); !strings.Contains(out, "Sign-in domains: acme.test") {
		t.Fatalf("list after --sign-in-domains:\n%s", out)
	}
	run("host", "auth", "delete", "acme", "oidc")
	if stored, _ := cp.Store.ListAuthMethods(ctx, "acme"); len(stored) != 0 {
		t.Fatalf("after delete: %+v", stored)
	}
	if _, _, err := runCLI(t, "admin", "--url", srv.URL, "--token", secret, "host", "auth", "set", "acme", "telepathy", "--enable"); err == nil || !strings.Contains(err.Error(), "want one of") {
		t.Fatalf("unknown method: %v", err)
	}
}

func regexpLine(out, pattern string) bool {
	re := mustCompileMultiline(pattern)
	return re.MatchString(out)
}

func mustCompileMultiline(pattern string) *regexp.Regexp { return regexp.MustCompile("(?m)" + pattern) }
