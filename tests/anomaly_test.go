package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestAnomalyFlagsSuspendTheAgent: a host raises new_tool and denial_streak, posts both to its
// webhook and suspends an agent on a denial streak of 3. Through the binary: the agent's first
// call of create_issue is allowed and flagged (audit reason, webhook), three denied calls of a
// tool above its level in a row flag the streak, the agent is suspended by the policy (an
// audit entry naming it), the webhook says so, its access token is refused at the next call
// (as after `admin agent kill`), and the flags are counted in the metrics.
func TestAnomalyFlagsSuspendTheAgent(t *testing.T) {
	texts := make(chan string, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text string `json:"text"`
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &m)
		texts <- m.Text
	}))
	defer receiver.Close()

	dir := t.TempDir()
	metrics := freeAddr(t)
	p := start(t, "--data-dir", dir, "--metrics-listen", metrics, "--upstream-allow-cidr", "127.0.0.0/8")
	up := mcpserver.Start(t, "")
	adminToken := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, adminToken, up.URL)
	urlFile := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(urlFile, []byte(receiver.URL+"/hook"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, p, adminToken, "host", "webhook", "set", "acme", "--url-file", urlFile)
	out := cli(t, p, adminToken, "host", "anomaly", "set", "acme", "--flags", "new_tool,denial_streak",
		"--notify", "new_tool,denial_streak", "--suspend", "denial_streak", "--denial-streak", "3")
	if !strings.Contains(out, "new_tool, denial_streak") || !strings.Contains(out, "3 denials in a row") {
		t.Errorf("anomaly set printed:\n%s", out)
	}

	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	session := mcpSession(t, resource, token)
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "first"}); !ok {
		t.Fatalf("first call of create_issue refused: %s", text)
	}
	wantMessage := func(what string, parts ...string) {
		t.Helper()
		select {
		case text := <-texts:
			for _, p := range parts {
				if !strings.Contains(text, p) {
					t.Errorf("%s: webhook message %q lacks %q", what, text, p)
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no webhook message", what)
		}
	}
	wantMessage("new tool", "create_issue", "anomaly: new_tool")
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "second"}); !ok {
		t.Fatalf("second call refused: %s", text)
	}

	for i := range 3 {
		if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok || !strings.Contains(text, "trust level high") {
			t.Fatalf("denied call %d: %v %q", i, ok, text)
		}
		// No wait for the denial's audit entry (written in the background): the third denial
		// in a row is the one flagged, whether the two before are written yet or not.
	}
	wantMessage("denial streak", "anomaly: denial_streak", "suspended")
	eventually(t, "the three denials' audit entries", func() bool { return deniedEntries(t, p, adminToken) == 3 })
	// The kill switch: the agent's access token no longer stands (401), as after `agent kill`.
	text, ok := callText(t, session, "create_issue", map[string]any{"title": "after"})
	if ok || !(strings.Contains(text, "disabled") || strings.Contains(text, "Unauthorized")) {
		t.Fatalf("call after the suspension: %v %q", ok, text)
	}

	var entries []admin.AuditEntry
	cliJSON(t, p, adminToken, &entries, "audit", "list", "--host", "acme", "--all")
	var flagged, killed int
	for _, e := range entries {
		if slices.Equal(e.Flags, []string{"new_tool"}) && e.Tool == "create_issue" && e.Decision == "allowed" {
			flagged++
		}
		if slices.Equal(e.Flags, []string{"denial_streak"}) && e.Decision == "denied" {
			flagged++
		}
		if strings.Contains(e.Reason, "anomaly") {
			t.Errorf("flags in the reason of entry %d: %q", e.Seq, e.Reason)
		}
		if e.Action == "agent.kill" && e.Actor == "anomaly policy" && strings.Contains(e.NewValue, "denial_streak") {
			killed++
		}
	}
	if flagged != 2 || killed != 1 {
		t.Errorf("audit log: %d flagged entries (want 2), %d suspensions by the policy (want 1)", flagged, killed)
	}
	// The flag filter: the API, and the CLI.
	var streak []admin.AuditEntry
	cliJSON(t, p, adminToken, &streak, "audit", "list", "--host", "acme", "--flag", "denial_streak", "--all")
	if len(streak) != 1 || streak[0].Decision != "denied" || streak[0].Tool != "delete_issue" {
		t.Errorf("entries flagged denial_streak: %+v", streak)
	}
	if table := cli(t, p, adminToken, "audit", "list", "--host", "acme", "--flag", "new_tool"); !strings.Contains(table, "[flags: new_tool]") {
		t.Errorf("the CLI's table of entries flagged new_tool:\n%s", table)
	}
	_, body := getJSON(t, "http://"+metrics+"/metrics")
	for _, want := range []string{`trustgate_anomaly_flags_total{flag="denial_streak",host="acme"`, `trustgate_anomaly_flags_total{flag="new_tool",host="acme"`,
		`trustgate_webhook_deliveries_total{host="acme",outcome="delivered"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// deniedEntries counts host acme's denied audit entries, through the admin API.
func deniedEntries(t *testing.T, p *process, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+"/api/v1/hosts/acme/audit?decision=denied&limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}
