package tests

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to put a change into the outbox

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
)

// outboxPoison is a relationship of host that SpiceDB's schema does not accept (no such
// relation): SpiceDB refuses every write that carries it, as it would a change written for
// another schema.
func outboxPoison(host string) string {
	return schema.Relationship{Resource: schema.Server(host, "tracker"), Relation: "no_such_relation",
		Subject: schema.SubjectRef{Object: schema.Agent(host, "a_poison")}}.String()
}

// allowedCall posts a tools/call and wants it forwarded (a result, no denial).
func allowedCall(t *testing.T, resource, token, session, tool, what string) {
	t.Helper()
	status, text := rawPost(t, resource, token, session, toolCall(tool))
	if status != http.StatusOK || !strings.Contains(text, `"result"`) || strings.Contains(text, "-31001") || strings.Contains(text, "trustgate/denial") {
		t.Fatalf("%s: %d %s, want the call forwarded", what, status, text)
	}
}

// TestStalledOutboxFailsClosed: through the binary, a relationship change SpiceDB refuses
// holds up the changes of its host behind it, among them the revocation of an agent's consent;
// SpiceDB still holds the consent, yet the agent's next tools/call is denied with
// pending_change (audited), and its tools/list too, while an agent of another host keeps
// working. Once the change is gone from the outbox, the revocation is applied and the host's
// decisions follow the store again.
func TestStalledOutboxFailsClosed(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--relationships-behind-after", "3s")
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	cli(t, p, admin, "host", "update", "acme", "--denial-format", "jsonrpc_error")
	cli(t, p, admin, "host", "create", "globex", "--exact")
	cli(t, p, admin, "server", "import", up.URL, "--host", "globex", "--key", "tracker")
	addClaimed(t, p, admin, "globex", "bob@globex.test", "correct horse battery staple")
	cli(t, p, admin, "human", "grant", "bob@globex.test", "tracker", "--level", "high", "--host", "globex")

	acme := trackerSetup{p: p, admin: admin, up: up, resource: p.url + "/h/acme/mcp/tracker"}
	globex := p.url + "/h/globex/mcp/tracker"
	noSSE := func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true }
	_, acmeTok := connectAgentTokens(t, p.url, p.url+"/h/acme", acme.resource, "alice@acme.test", "correct horse battery staple", "high")
	acmeSession := mcpSession(t, acme.resource, acmeTok.AccessToken, noSSE).ID()
	_, globexTok := connectAgentTokens(t, p.url, p.url+"/h/globex", globex, "bob@globex.test", "correct horse battery staple", "high")
	globexSession := mcpSession(t, globex, globexTok.AccessToken, noSSE).ID()
	allowedCall(t, acme.resource, acmeTok.AccessToken, acmeSession, "list_issues", "acme before")
	allowedCall(t, globex, globexTok.AccessToken, globexSession, "list_issues", "globex before")

	// The refused change, then the revocation behind it (saved, not enforced: 503).
	db, err := sql.Open("sqlite", filepath.Join(dir, "trustgate.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec("INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES ('touch', ?, ?, 'acme')",
		outboxPoison("acme"), time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	poisonID, _ := res.LastInsertId()
	agents := cliAgents(t, p, admin)
	if len(agents) != 1 {
		t.Fatalf("acme's agents: %v", agents)
	}
	// The API answers 503 (saved, not enforced yet); the CLI retries the DELETE, which then
	// finds the consent gone (404): either way it is revoked in the store.
	if out, err := run(t, 60*time.Second, "admin", "--url", p.url, "--token", admin, "agent", "revoke", agents[0], "tracker", "--host", "acme"); err == nil {
		t.Fatalf("revoke behind a refused change succeeded: %s", out)
	}

	d := wantDenial(t, acme, acmeTok.AccessToken, acmeSession, toolCall("list_issues"), "pending_change",
		[]string{"has not been applied by the authorization backend yet", "calls are refused until it is"}, nil)
	if d.Data["tool"] != "list_issues" {
		t.Errorf("pending_change data: %v", d.Data)
	}
	wantDenial(t, acme, acmeTok.AccessToken, acmeSession, `{"jsonrpc":"2.0","id":8,"method":"tools/list"}`, "pending_change",
		[]string{"has not been applied by the authorization backend yet"}, nil)
	allowedCall(t, globex, globexTok.AccessToken, globexSession, "list_issues", "globex while acme is behind")

	// The denial is audited with its reason.
	var entries []struct {
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		Tool     string `json:"tool"`
	}
	cliJSON(t, p, admin, &entries, "audit", "list", "--host", "acme", "--all")
	audited := false
	for _, e := range entries {
		audited = audited || (e.Decision == "denied" && e.Tool == "list_issues" && strings.HasPrefix(e.Reason, "pending_change:"))
	}
	if !audited {
		t.Errorf("no denied audit entry with reason pending_change: %+v", entries)
	}

	// Without the refused change the revocation is applied: the agent is denied for what the
	// store says now.
	if _, err := db.Exec("DELETE FROM relationship_outbox WHERE id = ?", poisonID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revocation applied", func() bool {
		_, text := rawPost(t, acme.resource, acmeTok.AccessToken, acmeSession, toolCall("list_issues"))
		var resp struct {
			Error *denial `json:"error"`
		}
		_ = json.Unmarshal([]byte(text), &resp)
		return resp.Error != nil && resp.Error.Data["reason"] == "not_consented"
	})
	allowedCall(t, globex, globexTok.AccessToken, globexSession, "list_issues", "globex after")
}
