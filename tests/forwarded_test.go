package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/admin"
)

// TestTrustedProxiesDecideForwardedHeaders: a client that writes X-Forwarded-For and
// X-Forwarded-Proto itself is not believed — the audit entry of its change names the
// connection's own address and no HSTS is sent — unless the connection comes from a proxy in
// --trusted-proxies, whose headers then give the audit's client address and the https scheme.
func TestTrustedProxiesDecideForwardedHeaders(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		wantAddr  string
		wantHSTS  bool
		wantEmail string
	}{
		{"default: trust none", nil, "127.0.0.1", false, "spoof@acme.test"},
		{"another network trusted", []string{"--trusted-proxies", "10.0.0.0/8"}, "127.0.0.1", false, "spoof@acme.test"},
		{"loopback trusted", []string{"--trusted-proxies", "127.0.0.0/8,::1"}, "198.51.100.9", true, "proxied@acme.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := start(t, append([]string{"--data-dir", dir}, tc.args...)...)
			token := bootstrapToken(t, "ops", "--data-dir", dir)

			req, err := http.NewRequest("POST", p.url+"/api/v1/hosts/default/humans", strings.NewReader(`{"email":"`+tc.wantEmail+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", "203.0.113.66, 198.51.100.9")
			req.Header.Set("X-Forwarded-Proto", "https")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("create human: %d %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security") != ""; got != tc.wantHSTS {
				t.Errorf("HSTS sent: %v, want %v", got, tc.wantHSTS)
			}

			var entries []admin.AuditEntry
			cliJSON(t, p, token, &entries, "audit", "list", "--decision", "admin")
			var found bool
			for _, e := range entries {
				if e.Action == "human.create" {
					found = true
					if e.ClientAddr != tc.wantAddr {
						t.Errorf("audit entry's client address %q, want %q", e.ClientAddr, tc.wantAddr)
					}
					if e.Version != 2 {
						t.Errorf("audit entry with a client address has format version %d, want 2", e.Version)
					}
				}
			}
			if !found {
				t.Fatalf("no human.create entry in %+v", entries)
			}
			p.stopCleanly(t)
			if out, err := run(t, 60*time.Second, "audit", "verify", "--data-dir", dir); err != nil || !strings.Contains(out, "chain intact") {
				t.Fatalf("audit verify: %v\n%s", err, out)
			}
		})
	}
}
