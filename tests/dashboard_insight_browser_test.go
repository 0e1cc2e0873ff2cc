package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestDashboardBrowserTrustMap: an agent connected through the OAuth flow calls one tool and
// is denied another; the operator, in a real Chromium, finds the denial in Activity, follows
// its Why? link to the explanation from SpiceDB's check, and opens the host's trust map with
// the over-permission marked. axe-core checks both pages (light and dark); with
// TRUSTGATE_SCREENSHOTS set (make screenshots) they are written as PNGs.
func TestDashboardBrowserTrustMap(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	up := mcpserver.Start(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, token, up.URL) // alice, ceiling high on tracker
	resource := p.url + "/h/acme/mcp/tracker"
	access := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	session := mcpSession(t, resource, access)
	if text, ok := callText(t, session, "list_issues", nil); !ok {
		t.Fatalf("list_issues at medium: %s", text)
	}
	if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok {
		t.Fatalf("delete_issue at medium was allowed: %s", text)
	}

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

	// The denial in Activity links to its explanation.
	b.Navigate(p.url + "/dashboard/hosts/acme/activity?decision=denied")
	if got := b.Text("table"); !strings.Contains(got, "delete_issue") || !strings.Contains(got, "Why?") {
		t.Fatalf("denied activity: %s", got)
	}
	if status := b.ClickAndWait(`a[href*="/why?agent="]`); status != 200 {
		t.Fatalf("Why? = %d at %s", status, b.Location())
	}
	got := b.Text("main")
	for _, want := range []string{"Denied", "Decided here: agent e2e agent", "holds level medium on tracker, below the tool's level high",
		"tool:acme/tracker/delete_issue#server_high@mcp_server:acme/tracker", "SpiceDB's trace of the check",
		"The denied call: activity entry", "The same denial holds now"} {
		if !strings.Contains(strings.ReplaceAll(got, `"`, ""), want) {
			t.Errorf("Why? page lacks %q:\n%s", want, got)
		}
	}
	page("why")

	// The trust map: the agent holds medium and used only a low tool; delete_issue (high)
	// nobody can call; alice's ceiling (high) is above what her agent holds.
	b.Navigate(p.url + "/dashboard/hosts/acme/trust-map")
	got = b.Text("main")
	for _, want := range []string{"Trust map", "holds medium on tracker but called no medium tool in 30 days (at most low): lower it to low.",
		"Tool delete_issue of tracker is enabled at high, but no agent can call it.",
		"The ceiling of alice@acme.test on tracker is high, but none of their agents holds more than medium there."} {
		if !strings.Contains(got, want) {
			t.Errorf("trust map lacks %q:\n%s", want, got)
		}
	}
	page("trust-map")
}
