package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// journeyAgent is the TypeScript SDK client of tests/ts/journey.mjs, one call at a time.
type journeyAgent struct {
	t     *testing.T
	in    io.WriteCloser
	lines *bufio.Scanner
}

// journeyCall is journey.mjs's answer to one call.
type journeyCall struct {
	Tool   string `json:"tool"`
	OK     bool   `json:"ok"`
	Text   string `json:"text"`
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// startJourneyAgent runs journey.mjs: it connects to mcpURL as email (sign-in and consent at
// level), and returns once it has listed its tools.
func startJourneyAgent(t *testing.T, mcpURL, email, password, level string) (*journeyAgent, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := nodeCommand(ctx, t, "journey.mjs", "MCP_URL="+mcpURL, "EMAIL="+email, "PASSWORD="+password, "TRUST_LEVEL="+level)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("journey.mjs stderr:\n%s", stderr.String())
		}
	})
	a := &journeyAgent{t: t, in: in, lines: bufio.NewScanner(out)}
	var hello struct {
		Connected bool     `json:"connected"`
		Tools     []string `json:"tools"`
	}
	if !a.lines.Scan() || json.Unmarshal(a.lines.Bytes(), &hello) != nil || !hello.Connected {
		_ = in.Close()
		_ = cmd.Wait()
		t.Fatalf("journey.mjs did not connect: %q\n%s", a.lines.Text(), stderr.String())
	}
	return a, hello.Tools
}

// call has the agent call tool and returns what it got.
func (a *journeyAgent) call(tool string) journeyCall {
	a.t.Helper()
	if _, err := io.WriteString(a.in, "call "+tool+"\n"); err != nil {
		a.t.Fatal(err)
	}
	var res journeyCall
	if !a.lines.Scan() || json.Unmarshal(a.lines.Bytes(), &res) != nil || res.Tool != tool {
		a.t.Fatalf("journey.mjs answered %q to call %s", a.lines.Text(), tool)
	}
	return res
}

// TestDashboardJourney is the seed journey in a real Chromium with no CLI at all:
// first-run setup → a host → the test MCP server imported with one tool's level overridden in
// the review table → a human added (invitation accepted in the browser) and granted a ceiling →
// that human connects the official TypeScript SDK client (sign-in and consent) and calls a tool
// allowed only by the override → the admin sees the agent and the call in Activity (and the
// next call arrive in its live tail) and lowers
// the agent's level → the next call is denied → the human signs in to the dashboard and
// disconnects the agent in My connections → the next call fails with 401. axe-core checks
// every dashboard page; TRUSTGATE_SCREENSHOTS takes PNGs of the new ones.
func TestDashboardJourney(t *testing.T) {
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
	const pw = "correct horse battery staple"
	const alicePW = "alice's own long passphrase"

	// First run: the link serve logged, the first operator.
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
	b.Fill(map[string]string{"email": "op@example.com", "password": pw, "confirm": pw})
	if status := b.ClickAndWait(`form[action="/dashboard/setup"] button`); status != 200 {
		t.Fatalf("setup = %d: %s", status, b.Text("main"))
	}

	// A host.
	b.Fill(map[string]string{"key": "acme", "name": "Acme Corp"})
	b.Click("#exact")
	if status := b.ClickAndWait(`form[action="/dashboard/hosts"] button`); status != 200 {
		t.Fatalf("create host = %d: %s", status, b.Text("main"))
	}
	page("host-settings")

	// The server: Connect, override delete_issue (high by its name) to medium, Import.
	b.Navigate(p.url + "/dashboard/hosts/acme/servers")
	b.Fill(map[string]string{"url": up.URL, "key": "tracker"})
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers/review"] button`); status != 200 {
		t.Fatalf("connect = %d: %s", status, b.Text("main"))
	}
	b.SelectIn("#row-delete_issue select", "medium")
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/servers"] button[type=submit]`); status != 200 || !strings.Contains(b.Text("main"), "Server imported.") {
		t.Fatalf("import = %d: %s", status, b.Text("main"))
	}

	// Alice: added, her invitation accepted in the browser, granted medium on tracker.
	b.Navigate(p.url + "/dashboard/hosts/acme/humans")
	b.Fill(map[string]string{"email": "alice@acme.test", "name": "Alice"})
	if status := b.ClickAndWait(`form[action="/dashboard/hosts/acme/humans"] button`); status != 201 {
		t.Fatalf("add human = %d: %s", status, b.Text("main"))
	}
	invitation := b.Text("#invitation")
	b.ClickAndWait(".notice a")
	b.Click("#srv-tracker")
	b.Select("ceiling", "medium")
	if status := b.ClickAndWait(`form[action$="/grants"] button`); status != 200 || !strings.Contains(b.Text("table"), "medium") {
		t.Fatalf("grant = %d: %s", status, b.Text("main"))
	}
	b.ClickAndWait(`form[action="/dashboard/sign-out"] button`)
	if status := b.Navigate(invitation); status != 200 {
		t.Fatalf("invitation = %d", status)
	}
	b.Fill(map[string]string{"password": alicePW, "password_confirm": alicePW})
	if b.ClickAndWait(`button[type=submit]`); !strings.Contains(b.Text("main"), "password is set") {
		t.Fatalf("accepting the invitation: %s", b.Text("main"))
	}

	// Alice connects the TypeScript SDK client at medium: delete_issue is callable only
	// because of the override.
	agent, tools := startJourneyAgent(t, p.url+"/h/acme/mcp/tracker", "alice@acme.test", alicePW, "medium")
	if strings.Join(tools, ",") != "create_issue,delete_issue,list_issues" {
		t.Fatalf("tools/list at medium = %v", tools)
	}
	if res := agent.call("delete_issue"); !res.OK || !strings.Contains(res.Text, "delete_issue called") {
		t.Fatalf("delete_issue at medium after the override: %+v", res)
	}

	// The admin sees the agent and the call, and lowers the agent to low.
	signInDashboard(t, b, p.url, "op@example.com", pw, "")
	b.Navigate(p.url + "/dashboard/hosts/acme/activity")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(b.Text("table"), "tracker/delete_issue") && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		b.Navigate(p.url + "/dashboard/hosts/acme/activity")
	}
	if got := b.Text("table"); !strings.Contains(got, "tools/call tracker/delete_issue") || !strings.Contains(got, "for alice@acme.test") {
		t.Fatalf("activity lacks the agent's call:\n%s", got)
	}
	// The live tail (the dashboard's script, under its CSP): the next call appears without a
	// reload.
	b.Click("#live-toggle")
	if res := agent.call("create_issue"); !res.OK {
		t.Fatalf("create_issue at medium: %+v", res)
	}
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(b.Text("table"), "tracker/create_issue") && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
	}
	if got := b.Text("table"); !strings.Contains(got, "tools/call tracker/create_issue") {
		t.Fatalf("the live tail did not show the call: %s\n%s", b.Text("#live-status"), got)
	}
	if got := b.Text("#live-status"); !strings.Contains(got, "new entr") {
		t.Fatalf("live status = %q", got)
	}
	page("activity-live")
	b.Navigate(p.url + "/dashboard/hosts/acme/agents")
	if got := b.Text("table"); !strings.Contains(got, "alice@acme.test") || !strings.Contains(got, "TypeScript SDK") {
		t.Fatalf("agents table = %q", got)
	}
	b.ClickAndWait(`main table a[href*="/agents/"]`)
	b.Select("level", "low")
	if status := b.ClickAndWait(`form[action$="/servers/tracker/level"] button`); status != 200 || !strings.Contains(b.Text("table"), "low") {
		t.Fatalf("lower the level = %d: %s", status, b.Text("main"))
	}
	if res := agent.call("create_issue"); res.OK || !strings.Contains(res.Error, "create_issue") {
		t.Fatalf("create_issue after lowering the agent to low: %+v", res)
	}
	if res := agent.call("list_issues"); !res.OK {
		t.Fatalf("list_issues at low: %+v", res)
	}
	b.ClickAndWait(`form[action="/dashboard/sign-out"] button`)

	// Alice signs in to the dashboard: My connections, Disconnect.
	signInDashboard(t, b, p.url, "alice@acme.test", alicePW, "acme")
	if loc := b.Location(); !strings.HasSuffix(loc, "/dashboard/me") {
		t.Fatalf("a human lands on %s, want My connections", loc)
	}
	if got := b.Text("main"); !strings.Contains(got, "TypeScript SDK") || !strings.Contains(got, "tracker") {
		t.Fatalf("My connections: %s", got)
	}
	page("my-connections")
	if status := b.ClickAndWait(`form[action$="/disconnect"] button`); status != 200 || !strings.Contains(b.Text("main"), "Disconnected") {
		t.Fatalf("disconnect = %d: %s", status, b.Text("main"))
	}
	if res := agent.call("list_issues"); res.OK || res.Status != 401 {
		t.Fatalf("list_issues after disconnecting: %+v; want a 401", res)
	}
}

// signInDashboard signs in to the dashboard in b (host "" for an operator): the host named on
// the dashboard's page, then email and password on the host's own sign-in page.
func signInDashboard(t *testing.T, b *browser.Browser, base, email, password, host string) {
	t.Helper()
	b.Navigate(base + "/dashboard/sign-in")
	b.Fill(map[string]string{"host": host})
	if status := b.ClickAndWait(`form[action="/dashboard/sign-in"] button`); status != 200 || !strings.Contains(b.Text("main"), "Sign in to the dashboard") {
		t.Fatalf("the dashboard's sign-in on host %q = %d: %s", host, status, b.Text("main"))
	}
	b.RequireAccessible("the host's sign-in page for the dashboard")
	b.Fill(map[string]string{"email": email, "password": password})
	if status := b.ClickAndWait(`main > form button[type=submit]`); status != 200 || strings.Contains(b.Location(), "/dashboard/sign-in") {
		t.Fatalf("dashboard sign-in of %s = %d at %s: %s", email, status, b.Location(), b.Text("main"))
	}
}
