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

// TestDashboardBrowserApprovals: through the binary, the host holds every high call; an agent's
// delete_issue waits while the operator, in a real Chromium, finds it on the host's Pending
// approvals page (tool, level, arguments) and presses Approve: the agent's request gets the
// upstream's answer and the held call is recorded as approved by the operator through the
// dashboard. axe-core checks the page with a call on it and empty (light and dark); with
// TRUSTGATE_SCREENSHOTS set it is written as a PNG. Then the host's Approval rules page lists
// the CLI's rule, refuses a bad timeout beside its field and adds a rule; and axe-core checks
// the pages no other browser test opens.
func TestDashboardBrowserApprovals(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	up := mcpserver.Start(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, token, up.URL)
	cli(t, p, token, "host", "approvals", "add", "acme", "--level", "high", "--timeout", "60s")
	resource := p.url + "/h/acme/mcp/tracker"
	access := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "high")
	session := mcpSession(t, resource, access)

	type answer struct {
		text string
		ok   bool
	}
	answered := make(chan answer, 1)
	go func() {
		text, ok := callText(t, session, "delete_issue", map[string]any{"id": "approve-in-dashboard"})
		answered <- answer{text, ok}
	}()
	var held []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	for deadline := time.Now().Add(15 * time.Second); len(held) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		cliJSON(t, p, token, &held, "host", "approvals", "list", "acme")
	}
	if len(held) != 1 {
		t.Fatalf("held calls = %+v; want the one delete_issue", held)
	}

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
	b.Navigate(p.url + "/dashboard/hosts/acme")
	if status := b.ClickAndWait(`nav.hostnav a[href="/dashboard/hosts/acme/approvals"]`); status != 200 {
		t.Fatalf("Pending approvals = %d at %s", status, b.Location())
	}
	got := b.Text("main")
	for _, want := range []string{"e2e agent", "alice@acme.test", "tracker", "delete_issue", "high", "approve-in-dashboard"} {
		if !strings.Contains(got, want) {
			t.Errorf("Pending approvals lacks %q:\n%s", want, got)
		}
	}
	b.RequireAccessible("approvals")
	if shots := os.Getenv(screenshotsEnv); shots != "" {
		if err := os.WriteFile(filepath.Join(shots, "dashboard-approvals.png"), b.Screenshot(1100), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if status := b.ClickAndWait(`form[action$="/approvals/` + held[0].ID + `/approve"] button`); status != 200 {
		t.Fatalf("Approve = %d: %s", status, b.Text("main"))
	}
	if got := b.Text("main"); !strings.Contains(got, "forwarded now") || strings.Contains(got, "approve-in-dashboard") {
		t.Errorf("after Approve the page says:\n%s", got)
	}
	select {
	case a := <-answered:
		if !a.ok {
			t.Fatalf("the approved call was refused: %s", a.text)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the approved call got no answer")
	}
	b.RequireAccessible("approvals-empty")

	audit := cli(t, p, token, "audit", "list", "--host", "acme", "--tool", "delete_issue")
	if !strings.Contains(audit, "dashboard:op@example.com") {
		t.Errorf("the audit log does not name the operator as the approver:\n%s", audit)
	}

	// The approval rules: the one the CLI added, another added on the page, a refused value
	// shown beside its field.
	if status := b.Navigate(p.url + "/dashboard/hosts/acme/approval-rules"); status != 200 || !strings.Contains(b.Text("table"), "high") {
		t.Fatalf("approval rules = %d: %s", status, b.Text("main"))
	}
	b.RequireAccessible("approval-rules")
	b.Fill(map[string]string{"server": "tracker", "tool": "create_issue", "timeout_seconds": "3"})
	if status := b.ClickAndWait(`form[action$="/approval-rules#add-rule"] button`); status != 400 || !strings.Contains(b.Text("#rule-timeout-error"), "timeout of 3 seconds") {
		t.Fatalf("a refused timeout = %d: %s", status, b.Text("main"))
	}
	b.RequireAccessible("approval-rules-invalid")
	b.Fill(map[string]string{"timeout_seconds": "30"})
	b.SelectIn("#rule-approvers", "sec@acme.test") // sets the text area's value
	if status := b.ClickAndWait(`form[action$="/approval-rules#add-rule"] button`); status != 200 || !strings.Contains(b.Text("table"), "sec@acme.test") {
		t.Fatalf("add a rule = %d: %s", status, b.Text("main"))
	}
	var rules []struct {
		Server, Tool   string
		TimeoutSeconds int `json:"timeout_seconds"`
	}
	cliJSON(t, p, token, &rules, "host", "approvals", "rules", "acme")
	if len(rules) != 2 || rules[1].Tool != "create_issue" || rules[1].TimeoutSeconds != 30 {
		t.Errorf("rules after the page added one = %+v", rules)
	}
	if shots := os.Getenv(screenshotsEnv); shots != "" {
		if err := os.WriteFile(filepath.Join(shots, "dashboard-approval-rules.png"), b.Screenshot(1100), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The pages no other browser test opens, checked by axe-core too: an agent's page and its
	// kill switch, the emergency stop, the sign-in methods, the delete confirmations, an error.
	var agents []struct {
		ID string `json:"id"`
	}
	cliJSON(t, p, token, &agents, "agent", "list", "--host", "acme")
	if len(agents) == 0 {
		t.Fatal("no agent listed")
	}
	for name, path := range map[string]string{
		"agent": "/agents/" + agents[0].ID, "kill": "/agents/" + agents[0].ID + "/kill", "emergency-stop": "/emergency-stop",
		"sign-in-methods": "/auth", "delete-host": "/delete", "delete-server": "/servers/tracker/delete",
	} {
		if status := b.Navigate(p.url + "/dashboard/hosts/acme" + path); status != 200 {
			t.Errorf("%s page = %d", name, status)
			continue
		}
		b.RequireAccessible(name)
	}
	if status := b.Navigate(p.url + "/dashboard/hosts/acme/no-such-page"); status != 404 {
		t.Errorf("a page that does not exist = %d", status)
	}
	b.RequireAccessible("not-found")
}
