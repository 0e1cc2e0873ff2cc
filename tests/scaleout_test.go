package tests

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// TestTwoReplicasOnOnePostgres runs two `trustgate serve` processes on one PostgreSQL database,
// each with its embedded SpiceDB on the shared datastore, as a scaled-out deployment behind a
// load balancer does (one public URL, one master key). The human consents through replica A;
// the agent calls through replica B; the kill switch pulled on A denies the very next call on B.
func TestTwoReplicasOnOnePostgres(t *testing.T) {
	db := services.Postgres(t)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	env := []string{"TRUSTGATE_MASTER_KEY=" + base64.StdEncoding.EncodeToString(raw)}
	addrA, addrB := freeAddr(t), freeAddr(t)
	public := "http://" + addrA // the load balancer's URL: every replica issues and checks for it
	a := waitReady(t, launchEnv(t, addrA, env, "serve", "--listen", addrA, "--database", db, "--public-url", public))
	b := waitReady(t, launchEnv(t, addrB, env, "serve", "--listen", addrB, "--database", db, "--public-url", public))

	admin := bootstrapToken(t, "e2e", "--database", db)
	up := mcpserver.Start(t, "")
	cli(t, a, admin, "host", "create", "acme", "--exact")
	cli(t, a, admin, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	addClaimed(t, b, admin, "acme", "alice@acme.test", "correct horse battery staple") // either replica serves the API
	cli(t, a, admin, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")

	token := connectAgent(t, a.url, public+"/h/acme", public+"/h/acme/mcp/tracker", "alice@acme.test", "correct horse battery staple", "medium")

	// The agent's calls go to replica B.
	s := mcpSession(t, b.url+"/h/acme/mcp/tracker", token)
	if text, ok := callText(t, s, "create_issue", map[string]any{"title": "via b"}); !ok || !strings.Contains(text, "create_issue called: via b") {
		t.Fatalf("allowed call through replica B: %q", text)
	}
	if text, ok := callText(t, s, "delete_issue", map[string]any{"id": "1"}); ok || !strings.Contains(text, "high") {
		t.Fatalf("denied call through replica B: ok=%v %q", ok, text)
	}

	// Kill switch on A; the very next call on B is refused: the agent's tokens are revoked with
	// it, so B answers 401 (the client cannot refresh either).
	var agents []struct {
		ID string `json:"id"`
	}
	cliJSON(t, a, admin, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 1 {
		t.Fatalf("agents: %+v", agents)
	}
	cli(t, a, admin, "agent", "kill", agents[0].ID, "--yes", "--host", "acme")
	if text, ok := callText(t, s, "list_issues", nil); ok || !(strings.Contains(text, "denied") || strings.Contains(text, "Unauthorized")) {
		t.Fatalf("call through replica B right after the kill switch on A: ok=%v %q", ok, text)
	}
}
