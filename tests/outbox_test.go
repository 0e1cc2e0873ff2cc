package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to put a change into the outbox

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/sdk"
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

// TestRefusedChangeFailsItsHostClosed: through the binary, a relationship change SpiceDB
// refuses for good is set aside (logged, audited) so that the changes behind it are applied;
// until an operator resolves it its host refuses every call — the agent's next tools/call is
// denied with pending_change (audited) and its tools/list too — while an agent of another host
// keeps working. `trustgate admin outbox` lists it and, once discarded with --yes, the host's
// decisions follow the store again (the consent revoked meanwhile: not_consented). The admin
// API lists it and retries it, as the dashboard does.
func TestRefusedChangeFailsItsHostClosed(t *testing.T) {
	dir := t.TempDir()
	metrics := freeAddr(t)
	p := start(t, "--data-dir", dir, "--relationships-behind-after", "3s", "--metrics-listen", metrics)
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

	// The refused change, put into the outbox beside the gateway; the writer sets it aside.
	db, err := sql.Open("sqlite", filepath.Join(dir, "trustgate.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES ('touch', ?, ?, 'acme')",
		outboxPoison("acme"), time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	var aside []struct {
		ID           int64  `json:"id"`
		Host         string `json:"host"`
		Relationship string `json:"relationship"`
		Reason       string `json:"reason"`
	}
	outbox := func(args ...string) string {
		t.Helper()
		out, err := run(t, 60*time.Second, append([]string{"admin", "outbox"}, append(args, "--data-dir", dir)...)...)
		if err != nil {
			t.Fatalf("trustgate admin outbox %v: %v\n%s", args, err, out)
		}
		return out
	}
	eventually(t, "the refused change set aside", func() bool {
		if err := json.Unmarshal([]byte(outbox("list", "-o", "json")), &aside); err != nil {
			t.Fatal(err)
		}
		return len(aside) == 1
	})
	if aside[0].Host != "acme" || aside[0].Relationship != outboxPoison("acme") || !strings.Contains(aside[0].Reason, "no_such_relation") {
		t.Fatalf("set aside: %+v", aside)
	}
	if out := outbox("list", "--for-host", "globex"); strings.Contains(out, "acme") {
		t.Errorf("globex's list shows acme's change:\n%s", out)
	}

	// The revocation behind it is applied, and the host still refuses every call.
	agents := cliAgents(t, p, admin)
	cli(t, p, admin, "agent", "revoke", agents[0], "tracker", "--host", "acme")
	d := wantDenial(t, acme, acmeTok.AccessToken, acmeSession, toolCall("list_issues"), "pending_change",
		[]string{"has not been applied by the authorization backend yet", "calls are refused until it is"}, nil)
	if d.Data["tool"] != "list_issues" {
		t.Errorf("pending_change data: %v", d.Data)
	}
	wantDenial(t, acme, acmeTok.AccessToken, acmeSession, `{"jsonrpc":"2.0","id":8,"method":"tools/list"}`, "pending_change",
		[]string{"has not been applied by the authorization backend yet"}, nil)
	allowedCall(t, globex, globexTok.AccessToken, globexSession, "list_issues", "globex while acme has a change set aside")
	_, text := getJSON(t, "http://"+metrics+"/metrics")
	for _, want := range []string{"trustgate_relationships_unknown 0", "trustgate_relationships_hosts_behind 1", "trustgate_relationships_set_aside 1", "trustgate_relationships_oldest_pending_age_seconds "} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The admin API sees it too — the host's count, the list — for acme's token only, and a
	// retry through it queues the delete the store implies, which SpiceDB refuses as well: it
	// is set aside again, and the host still refuses every call.
	api, err := sdk.NewClient(p.url, admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h, err := api.GetHost(ctx, "acme"); err != nil || h.SetAsideChanges != 1 {
		t.Fatalf("acme's set_aside_changes: %d, %v", h.SetAsideChanges, err)
	}
	if show := cli(t, p, admin, "host", "show", "acme"); !strings.Contains(show, "Set-aside changes") || !strings.Contains(show, "1 — every call on the host is refused") || !strings.Contains(show, "NOT APPLIED") {
		t.Errorf("host show acme does not say its calls are refused:\n%s", show)
	}
	listed, err := sdk.Collect(api.SetAsideChanges(ctx, "acme"))
	if err != nil || len(listed) != 1 || listed[0].ID != aside[0].ID || listed[0].Relationship != outboxPoison("acme") {
		t.Fatalf("the API's list: %+v, %v", listed, err)
	}
	if listed, err := sdk.Collect(api.SetAsideChanges(ctx, "globex")); err != nil || len(listed) != 0 {
		t.Fatalf("globex's list through the API: %+v, %v", listed, err)
	}
	retried, err := api.RetrySetAsideChange(ctx, "acme", aside[0].ID)
	if err != nil || retried.Queued != "delete" || retried.SetAsideAgain == nil {
		t.Fatalf("retry through the API: %+v, %v", retried, err)
	}
	wantDenial(t, acme, acmeTok.AccessToken, acmeSession, toolCall("list_issues"), "pending_change", nil, nil)
	aside[0].ID = retried.SetAsideAgain.ID

	// Discarding needs the acknowledgement; then the host's decisions follow the store.
	if out, err := run(t, 60*time.Second, "admin", "outbox", "discard", strconv.FormatInt(aside[0].ID, 10), "--data-dir", dir); err == nil || !strings.Contains(out, "--yes") {
		t.Fatalf("discard without --yes: %v\n%s", err, out)
	}
	outbox("discard", strconv.FormatInt(aside[0].ID, 10), "--yes")
	eventually(t, "the host's decisions follow the store", func() bool {
		_, text := rawPost(t, acme.resource, acmeTok.AccessToken, acmeSession, toolCall("list_issues"))
		var resp struct {
			Error *denial `json:"error"`
		}
		_ = json.Unmarshal([]byte(text), &resp)
		return resp.Error != nil && resp.Error.Data["reason"] == "not_consented"
	})
	allowedCall(t, globex, globexTok.AccessToken, globexSession, "list_issues", "globex after")

	// Audited: the set-aside change, the denial, the discard.
	var entries []struct {
		Decision string `json:"decision"`
		Reason   string `json:"reason"`
		Tool     string `json:"tool"`
		Action   string `json:"action"`
		Actor    string `json:"actor"`
		Object   string `json:"object"`
	}
	cliJSON(t, p, admin, &entries, "audit", "list", "--host", "acme", "--all")
	seen := map[string]bool{}
	for _, e := range entries {
		switch {
		case e.Decision == "denied" && e.Tool == "list_issues" && strings.HasPrefix(e.Reason, "pending_change:"):
			seen["denial"] = true
		case e.Action == "relationship.set_aside" && e.Object == outboxPoison("acme") && strings.Contains(e.Reason, "no_such_relation"):
			seen["set aside"] = true
		case e.Action == "relationship.discard" && e.Actor == "cli" && e.Object == outboxPoison("acme"):
			seen["discard"] = true
		case e.Action == "relationship.retry" && strings.HasPrefix(e.Actor, "token:") && e.Object == outboxPoison("acme"):
			seen["retry"] = true
		}
	}
	for _, want := range []string{"denial", "set aside", "retry", "discard"} {
		if !seen[want] {
			t.Errorf("no audit entry of the %s: %+v", want, entries)
		}
	}
}
