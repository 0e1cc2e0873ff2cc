package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// callOutcome posts a tools/call and says what the gateway did: "allowed" (forwarded), or the
// reason of its denial. Anything else fails the test.
func callOutcome(t *testing.T, resource, token, session, tool string) string {
	t.Helper()
	status, text := rawPost(t, resource, token, session, toolCall(tool))
	body := text
	if _, data, ok := strings.Cut(text, "data: "); ok { // an answer as an event stream
		body, _, _ = strings.Cut(data, "\n")
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *denial         `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || status != http.StatusOK {
		t.Fatalf("%s on %s: %d %s", tool, resource, status, text)
	}
	switch {
	case resp.Error != nil && resp.Error.Data["reason"] != "":
		return resp.Error.Data["reason"]
	case resp.Error == nil && len(resp.Result) > 0 && !strings.Contains(text, "trustgate/denial"):
		return "allowed"
	}
	t.Fatalf("%s on %s: %s, want a result or a denial", tool, resource, text)
	return ""
}

// TestReplicasFailClosedTogether runs two `trustgate serve` processes on one PostgreSQL store
// (each with its embedded SpiceDB on the shared datastore) and checks that the fail-closed
// guarantee holds across them:
//
//   - a change SpiceDB refuses for good, set aside by whichever replica drains it, makes BOTH
//     replicas refuse its host's calls (pending_change) within two sync intervals of a second
//     (a drain by either replica, then the other's read of the outbox; a second more is
//     allowed for the requests), while another host keeps working on both; once
//     `trustgate admin outbox discard --yes` resolves it, both answer as the store says again;
//   - a revocation made through replica A that SpiceDB has not applied (its write waits on a
//     lock: a drain that hangs) is not answered "allowed" by replica B — whose decision cache
//     holds the allow — past --relationships-behind-after plus two sync intervals: B refuses
//     pending_change, another host still works, and once the write goes through both replicas
//     deny as revoked (not_consented).
func TestReplicasFailClosedTogether(t *testing.T) {
	const behind = 2 * time.Second // the shortest --relationships-behind-after allowed
	const syncInterval = time.Second
	bound := behind + 2*syncInterval
	ctx := context.Background()
	db := services.Postgres(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	public := "http://" + addrA // the load balancer's URL: every replica issues and checks for it
	serve := func(addr string) *process {
		return waitReady(t, launchEnv(t, addr, nil, "serve", "--listen", addr, "--database", db, "--master-key", strings.Repeat("5a", 32),
			"--public-url", public, "--relationships-behind-after", behind.String(), "--metrics-listen", ""))
	}
	a := serve(addrA)
	b := serve(addrB)

	admin := bootstrapToken(t, "e2e", "--database", db)
	up := mcpserver.Start(t, "")
	seedTracker(t, a, admin, up.URL)
	cli(t, a, admin, "host", "update", "acme", "--denial-format", "jsonrpc_error")
	cli(t, b, admin, "host", "create", "globex", "--exact")
	cli(t, b, admin, "server", "import", up.URL, "--host", "globex", "--key", "tracker")
	cli(t, b, admin, "host", "update", "globex", "--denial-format", "jsonrpc_error")
	addClaimed(t, b, admin, "globex", "bob@globex.test", "correct horse battery staple")
	cli(t, b, admin, "human", "grant", "bob@globex.test", "tracker", "--level", "high", "--host", "globex")

	// An agent per host, each with a session on each replica.
	type agentAt struct {
		resource, token, session string
	}
	noSSE := func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true }
	connect := func(host, email string) map[*process]agentAt {
		_, tok := connectAgentTokens(t, a.url, public+"/h/"+host, public+"/h/"+host+"/mcp/tracker", email, "correct horse battery staple", "high")
		out := map[*process]agentAt{}
		for _, p := range []*process{a, b} {
			resource := p.url + "/h/" + host + "/mcp/tracker"
			out[p] = agentAt{resource, tok.AccessToken, mcpSession(t, resource, tok.AccessToken, noSSE).ID()}
		}
		return out
	}
	acme, globex := connect("acme", "alice@acme.test"), connect("globex", "bob@globex.test")
	name := map[*process]string{a: "replica A", b: "replica B"}
	outcome := func(ag agentAt) string { return callOutcome(t, ag.resource, ag.token, ag.session, "list_issues") }
	want := func(ag map[*process]agentAt, want, what string) {
		t.Helper()
		for _, p := range []*process{a, b} {
			if got := outcome(ag[p]); got != want {
				t.Errorf("%s on %s: %s, want %s", what, name[p], got, want)
			}
		}
	}
	// until polls both replicas until host's calls get want, and returns how long each took.
	until := func(ag map[*process]agentAt, want, what string, since time.Time) map[*process]time.Duration {
		t.Helper()
		took := map[*process]time.Duration{}
		eventually(t, what, func() bool {
			for _, p := range []*process{a, b} {
				if _, done := took[p]; !done && outcome(ag[p]) == want {
					took[p] = time.Since(since)
				}
			}
			return len(took) == 2
		})
		return took
	}
	want(acme, "allowed", "acme before")
	want(globex, "allowed", "globex before")

	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// 1. A change SpiceDB refuses for good, put into the shared outbox.
	inserted := time.Now()
	if _, err := conn.Exec(ctx, "INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES ('touch', $1, $2, 'acme')",
		outboxPoison("acme"), inserted.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	took := until(acme, "pending_change", "both replicas refuse acme's calls once its change is set aside", inserted)
	for p, d := range took {
		t.Logf("%s refused acme's calls %v after the refused change was written", name[p], d)
		if limit := 2*syncInterval + time.Second; d > limit {
			t.Errorf("%s refused acme's calls only %v after the refused change was written, want within %v", name[p], d, limit)
		}
	}
	want(globex, "allowed", "globex while acme has a change set aside")
	want(acme, "pending_change", "acme, still set aside")
	for _, p := range []*process{a, b} {
		wantDenial(t, trackerSetup{resource: acme[p].resource}, acme[p].token, acme[p].session,
			`{"jsonrpc":"2.0","id":8,"method":"tools/list"}`, "pending_change", nil, nil)
	}
	var aside []struct {
		ID   int64  `json:"id"`
		Host string `json:"host"`
	}
	out, err := run(t, 60*time.Second, "admin", "outbox", "list", "-o", "json", "--database", db)
	if err != nil || json.Unmarshal([]byte(out), &aside) != nil || len(aside) != 1 || aside[0].Host != "acme" {
		t.Fatalf("outbox list: %v\n%s", err, out)
	}
	discarded := time.Now()
	if out, err := run(t, 60*time.Second, "admin", "outbox", "discard", strconv.FormatInt(aside[0].ID, 10), "--yes", "--database", db); err != nil {
		t.Fatalf("outbox discard: %v\n%s", err, out)
	}
	for p, d := range until(acme, "allowed", "both replicas follow the store once the change is discarded", discarded) {
		t.Logf("%s allowed acme's calls %v after the discard", name[p], d)
	}
	want(globex, "allowed", "globex after the discard")

	// 2. A revocation through replica A that SpiceDB cannot take yet: its write waits on a lock
	// (reads go on), as a drain that hangs would. Replica B's cache holds the allow.
	want(acme, "allowed", "acme before the revocation")
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE trustgate_spicedb.relation_tuple IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	agents := cliAgents(t, a, admin)
	revoked := time.Now()
	// The API saves the revocation, then waits for SpiceDB: the command may end either way.
	revokeCtx, cancelRevoke := context.WithTimeout(ctx, 90*time.Second)
	defer cancelRevoke()
	revoke := exec.CommandContext(revokeCtx, binary, "admin", "--url", a.url, "--token", admin, "agent", "revoke", agents[0], "tracker", "--host", "acme")
	revoke.Env = cleanEnv()
	if err := revoke.Start(); err != nil {
		t.Fatal(err)
	}
	revokeDone := make(chan error, 1)
	go func() { revokeDone <- revoke.Wait() }()
	firstDenied := map[*process]time.Duration{}
	for deadline := time.Now().Add(bound + 10*time.Second); len(firstDenied) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, p := range []*process{a, b} {
			got, since := outcome(acme[p]), time.Since(revoked)
			switch {
			case got == "allowed" && since > bound:
				t.Fatalf("%s allowed a call of acme %v after the revocation, past the bound %v", name[p], since, bound)
			case got == "pending_change":
				if _, ok := firstDenied[p]; !ok {
					firstDenied[p] = since
				}
			case got != "allowed":
				t.Fatalf("%s answered %s while SpiceDB could not take the revocation, want allowed or pending_change", name[p], got)
			}
		}
	}
	for _, p := range []*process{a, b} {
		d, ok := firstDenied[p]
		if !ok {
			t.Fatalf("%s never refused acme's calls while the revocation waited", name[p])
		}
		t.Logf("%s refused acme's calls %v after the revocation", name[p], d)
	}
	// Past the bound, never allowed again while the write waits; the other host works.
	for range 5 {
		want(acme, "pending_change", "acme while the revocation waits")
		time.Sleep(200 * time.Millisecond)
	}
	want(globex, "allowed", "globex while acme's revocation waits")

	released := time.Now()
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for p, d := range until(acme, "not_consented", "both replicas deny the revoked agent once SpiceDB took the revocation", released) {
		t.Logf("%s denied the revoked agent %v after SpiceDB could write", name[p], d)
	}
	want(globex, "allowed", "globex at the end")
	if err := <-revokeDone; revokeCtx.Err() != nil {
		t.Fatalf("the revoke command did not end once SpiceDB could write: %v", err)
	}
}
