package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// ScreenshotsEnv names the directory `make screenshots` has the dashboard's browser test write
// PNGs of its main pages into.
const screenshotsEnv = "TRUSTGATE_SCREENSHOTS"

var setupLinkLog = regexp.MustCompile(`url="?(http://[^\s"]+/dashboard/setup\?token=[A-Za-z0-9_-]+)`)

// TestDashboardBrowser is an operator's first session on a fresh gateway, in a real Chromium
// and with no CLI at all: the setup link serve logged → the first operator → a host → the test
// MCP server imported → a human added and granted a ceiling → the agents page, the activity
// with every change in it, and the intact hash chain. axe-core checks every page (light and
// dark) for serious or critical violations. With TRUSTGATE_SCREENSHOTS set it writes a PNG of
// each main page there.
func TestDashboardBrowser(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	up := mcpserver.Start(t, "")
	b := browser.Start(t)
	shots := os.Getenv(screenshotsEnv)
	page := func(name string) {
		t.Helper()
		b.RequireAccessible(name)
		if shots != "" {
			if err := os.WriteFile(filepath.Join(shots, "dashboard-"+name+".png"), b.Screenshot(1100), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The front page, signed out.
	if status := b.Navigate(p.url + "/"); status != 200 || !strings.Contains(b.Text("main"), "permissions gateway") {
		t.Fatalf("front page = %d: %s", status, b.Text("main"))
	}
	b.RequireAccessible("front")

	// First run: the link serve logged once.
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m := setupLinkLog.FindStringSubmatch(p.output()); m != nil {
			link = m[1]
		}
	}
	if link == "" {
		t.Fatalf("serve logged no setup link:\n%s", p.output())
	}
	if status := b.Navigate(link); status != 200 {
		t.Fatalf("setup page = %d", status)
	}
	b.RequireAccessible("setup")
	b.Fill(map[string]string{"email": "op@example.com", "password": "correct horse battery staple", "confirm": "correct horse battery staple"})
	if status := b.ClickAndWait(`form[action="/dashboard/setup"] button`); status != 200 || !strings.Contains(b.Text("main"), "first operator") {
		t.Fatalf("after setup = %d at %s: %s", status, b.Location(), b.Text("main"))
	}

	// A host, with its key exactly.
	b.Fill(map[string]string{"key": "acme", "name": "Acme Corp"})
	b.Click("#exact")
	if status := b.ClickAndWait(`form[action="/dashboard/hosts"] button`); status != 200 {
		t.Fatalf("create host = %d: %s", status, b.Text("main"))
	}
	if got := b.Text("#mcp-url"); got != p.url+"/h/acme/mcp" {
		t.Fatalf("MCP URL on the host page = %q", got)
	}
	if got := b.Text("#snippet-claude_code"); !strings.Contains(got, "claude mcp add --transport http trustgate-acme "+p.url+"/h/acme/mcp") {
		t.Fatalf("Claude Code snippet = %q", got)
	}
	page("host")

	// The test MCP server: Connect, review the proposed levels (delete_issue overridden to
	// medium, list_issues left disabled), Import.
	b.Navigate(p.url + "/dashboard/hosts/acme/servers")
	b.Fill(map[string]string{"url": up.URL, "key": "tracker"})
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers/review"] button`); status != 200 || !strings.Contains(b.Text("#review"), "delete_issue") {
		t.Fatalf("connect = %d: %s", status, b.Text("main"))
	}
	page("server-review")
	b.SelectIn("#row-delete_issue select", "medium")
	b.Click("#row-list_issues input[type=checkbox]")
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers"] button[type=submit]`); status != 200 || !strings.Contains(b.Text("main"), "Server imported.") {
		t.Fatalf("import = %d at %s: %s", status, b.Location(), b.Text("main"))
	}
	if got := b.Text("#row-delete_issue"); !strings.Contains(got, "level set by an admin") {
		t.Fatalf("delete_issue after import: %q", got)
	}
	page("server")
	b.Navigate(p.url + "/dashboard/hosts/acme/servers")
	if got := b.Text("table"); !strings.Contains(got, "tracker") || !strings.Contains(got, "3 (2)") {
		t.Fatalf("servers table = %q", got)
	}
	page("servers")

	// A human, added and granted a ceiling on it.
	b.Navigate(p.url + "/dashboard/hosts/acme/humans")
	b.Fill(map[string]string{"email": "alice@acme.test", "name": "Alice"})
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/humans"] button`); status != 201 || !strings.Contains(b.Text("#invitation"), "/h/acme/") {
		t.Fatalf("add human = %d: %s", status, b.Text("main"))
	}
	b.ClickAndWait(".notice a")
	b.Click("#srv-tracker")
	b.Select("ceiling", "medium")
	if status := b.ClickAndWait(`form[action$="/grants"] button`); status != 200 || !strings.Contains(b.Text("table"), "tracker") || !strings.Contains(b.Text("table"), "medium") {
		t.Fatalf("grant = %d: %s", status, b.Text("main"))
	}
	page("human")
	b.Navigate(p.url + "/dashboard/hosts/acme/humans")
	if got := b.Text("table"); !strings.Contains(got, "tracker: medium") {
		t.Fatalf("humans table = %q", got)
	}
	page("humans")

	b.Navigate(p.url + "/dashboard/hosts/acme/agents")
	page("agents")
	b.Navigate(p.url + "/dashboard/hosts")
	page("hosts")

	// Every change is in the activity, made by the operator through the admin API.
	b.Navigate(p.url + "/dashboard/hosts/acme/activity")
	got := b.Text("table")
	for _, want := range []string{"grant.set", "human.create", "server.import", "dashboard:op@example.com"} {
		if !strings.Contains(got, want) {
			t.Errorf("activity lacks %q:\n%s", want, got)
		}
	}
	page("activity")
	b.Navigate(p.url + "/dashboard/hosts/acme/activity/verify")
	if got := b.Text("main"); !strings.Contains(got, "intact") {
		t.Fatalf("verification: %s", got)
	}
	b.RequireAccessible("verify")

	// Signed out, the pages send to sign in.
	b.ClickAndWait(`form[action="/dashboard/sign-out"] button`)
	b.Navigate(p.url + "/dashboard/hosts/acme")
	if !strings.Contains(b.Location(), "/dashboard/sign-in") {
		t.Fatalf("after sign-out: %s", b.Location())
	}
	b.RequireAccessible("sign-in")
}
