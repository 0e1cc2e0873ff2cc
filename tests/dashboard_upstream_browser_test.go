package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/protectedmcp"
)

// TestDashboardBrowserUpstreamSignIn: through the binary, in a real Chromium, the operator's
// Create server meets MCP servers protected by their own OAuth authorization server (real
// fosite). With dynamic registration offered, Connect offers "Sign in at the server": the
// operator is sent through the upstream's authorization (trustgate registering itself there)
// and comes back to the review table of the tools discovered with that sign-in, overrides one
// level and imports. Without registration, the form asks for the OAuth client registered there
// (showing the redirect URI to register), signs in with it, and the import stores it sealed
// (write-only). axe-core checks the sign-in form and the review table.
func TestDashboardBrowserUpstreamSignIn(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, token, "host", "create", "acme", "--exact")
	withDCR := protectedmcp.Start(t, protectedmcp.Options{DCR: true})
	noDCR := protectedmcp.Start(t, protectedmcp.Options{})
	callback := p.url + "/h/acme/oauth/upstream/callback"
	noDCR.AddClient("trustgate-at-tracker", "its-secret", callback)

	b := browser.Start(t)
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m := setupLinkLog.FindStringSubmatch(p.output()); m != nil {
			link = m[1]
		}
	}
	if link == "" {
		t.Fatalf("serve logged no setup link:\n%s", p.output())
	}
	b.Navigate(link)
	b.Fill(map[string]string{"email": "op@example.com", "password": "correct horse battery staple", "confirm": "correct horse battery staple"})
	if status := b.ClickAndWait(`form[action="/dashboard/setup"] button`); status != 200 {
		t.Fatalf("setup = %d: %s", status, b.Text("main"))
	}
	servers := p.url + "/dashboard/hosts/acme/servers"
	const signIn = `button[formaction$="/servers/upstream-sign-in"]`

	// With dynamic registration: Connect → Sign in at the server → the review table.
	b.Navigate(servers)
	b.Fill(map[string]string{"url": withDCR.MCPURL, "key": "issues"})
	if status := b.ClickAndWait(`form[action$="/servers/review"] button[type=submit]:not([formaction])`); status != 502 {
		t.Fatalf("Connect to the protected server = %d; want 502 asking for credentials: %s", status, b.Text("main"))
	}
	got := b.Text("main")
	if !strings.Contains(got, "Sign in at the server") || !strings.Contains(got, withDCR.URL) || !strings.Contains(got, "registers itself there") {
		t.Fatalf("Connect does not offer the sign-in at the server:\n%s", got)
	}
	b.RequireAccessible("server-upstream-sign-in")
	if status := b.ClickAndWait(signIn); status != 200 || !strings.Contains(b.Text("main"), "Continue to the sign-in at") {
		t.Fatalf("sign in at the server = %d at %s: %s", status, b.Location(), b.Text("main"))
	}
	b.RequireAccessible("server-upstream-continue")
	if status := b.ClickAndWait("#continue"); status != 200 {
		t.Fatalf("the sign-in at the server = %d at %s: %s", status, b.Location(), b.Text("main"))
	}
	if loc := b.Location(); !strings.HasPrefix(loc, p.url+"/dashboard/hosts/acme/upstream-callback") {
		t.Errorf("back at %s; want the dashboard's callback", loc)
	}
	got = b.Text("main")
	if !strings.Contains(got, "Discovered with your sign-in") {
		t.Errorf("the review does not say the tools come from the admin's sign-in:\n%s", got)
	}
	for _, tool := range mcpserver.Tools {
		if !strings.Contains(got, tool) {
			t.Errorf("the review table lacks %s:\n%s", tool, got)
		}
	}
	if withDCR.Registrations.Load() != 1 {
		t.Errorf("registrations at the upstream = %d; want 1", withDCR.Registrations.Load())
	}
	b.RequireAccessible("server-upstream-review")
	if shots := os.Getenv(screenshotsEnv); shots != "" {
		if err := os.WriteFile(filepath.Join(shots, "dashboard-server-upstream-review.png"), b.Screenshot(1100), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.SelectIn("#row-delete_issue select", "medium")
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers"] button[type=submit]`); status != 200 {
		t.Fatalf("Import = %d: %s", status, b.Text("main"))
	}
	type tool struct {
		Name    string `json:"name"`
		Level   string `json:"level"`
		Enabled bool   `json:"enabled"`
	}
	var tools []tool
	cliJSON(t, p, token, &tools, "tool", "list", "issues", "--host", "acme")
	if len(tools) != len(mcpserver.Tools) {
		t.Fatalf("imported tools = %+v", tools)
	}
	for _, tl := range tools {
		if tl.Name == "delete_issue" && (tl.Level != "medium" || !tl.Enabled) {
			t.Errorf("delete_issue = %+v; want medium (overridden in the review), enabled", tl)
		}
	}
	var srv struct {
		CredentialKind string `json:"credential_kind"`
	}
	cliJSON(t, p, token, &srv, "server", "show", "issues", "--host", "acme")
	if srv.CredentialKind != "" {
		t.Errorf("the server imported for humans' sign-ins stores credentials %q; want none (the admin's token is not kept)", srv.CredentialKind)
	}

	// Without registration: the form asks for the OAuth client registered there.
	b.Navigate(servers)
	b.Fill(map[string]string{"url": noDCR.MCPURL, "key": "tracker2"})
	b.ClickAndWait(`form[action$="/servers/review"] button[type=submit]:not([formaction])`)
	got = b.Text("main")
	if !strings.Contains(got, "offers no registration") || !strings.Contains(got, callback) {
		t.Fatalf("the form does not ask for a client with the redirect URI:\n%s", got)
	}
	if status := b.ClickAndWait(signIn); status != 400 || !strings.Contains(b.Text("main"), "enter the OAuth client id") {
		t.Fatalf("sign in without a client = %d: %s", status, b.Text("main"))
	}
	b.Fill(map[string]string{"client_id": "trustgate-at-tracker", "client_secret": "its-secret"})
	b.Click("#cred-oauth")
	if status := b.ClickAndWait(signIn); status != 200 {
		t.Fatalf("sign in with the client = %d at %s: %s", status, b.Location(), b.Text("main"))
	}
	if status := b.ClickAndWait("#continue"); status != 200 || !strings.Contains(b.Text("main"), "with the OAuth client you entered") {
		t.Fatalf("the sign-in at the server with the client = %d at %s: %s", status, b.Location(), b.Text("main"))
	}
	if !slices.Contains(noDCR.TokenClients(), "trustgate-at-tracker") {
		t.Errorf("the upstream's token endpoint saw clients %v; want trustgate-at-tracker", noDCR.TokenClients())
	}
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers"] button[type=submit]`); status != 200 {
		t.Fatalf("Import = %d: %s", status, b.Text("main"))
	}
	cliJSON(t, p, token, &srv, "server", "show", "tracker2", "--host", "acme")
	if srv.CredentialKind != "oauth_client" {
		t.Errorf("credentials of the server = %q; want the OAuth client, stored", srv.CredentialKind)
	}
	if page := b.Text("main"); strings.Contains(page, "its-secret") {
		t.Error("the server's page shows the client secret")
	}
	cliJSON(t, p, token, &tools, "tool", "list", "tracker2", "--host", "acme")
	if len(tools) != len(mcpserver.Tools) {
		t.Errorf("tools of tracker2 = %+v", tools)
	}
}
