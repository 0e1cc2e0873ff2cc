package admin_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/sdk"
)

// seedAudit writes entries as the proxy would: for acme, 6 allowed/denied calls by two agents
// an hour apart; for beta, one.
func (e *env) seedAudit() time.Time {
	e.t.Helper()
	t0 := time.Now().Add(-10 * time.Hour).UTC().Truncate(time.Second)
	var es []audit.Entry
	for i := range 6 {
		d := audit.Allowed
		if i%2 == 1 {
			d = audit.Denied
		}
		es = append(es, audit.Entry{Host: "acme", Time: t0.Add(time.Duration(i) * time.Hour), AgentID: fmt.Sprintf("agent-%d", i%3),
			UserID: "u1", Server: "tracker", Tool: []string{"list_issues", "delete_issue"}[i%2], Method: "tools/call", Decision: d})
	}
	es = append(es, audit.Entry{Host: "beta", Time: t0, Decision: audit.Allowed, Server: "secret-server"})
	if err := e.store.AppendAudit(context.Background(), es); err != nil {
		e.t.Fatal(err)
	}
	return t0
}

func seqsOf(items []admin.AuditEntry) string {
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprint(it.Seq))
	}
	return strings.Join(out, ",")
}

func TestAuditListFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	t0 := e.seedAudit()
	list := func(query string) admin.Page[admin.AuditEntry] {
		var p admin.Page[admin.AuditEntry]
		e.must(200, "GET", "/api/v1/hosts/acme/audit"+query, e.acme, nil, &p)
		return p
	}
	if got := seqsOf(list("").Items); got != "1,2,3,4,5,6" {
		t.Fatalf("all entries: %s", got)
	}
	for q, want := range map[string]string{
		"?decision=denied":                 "2,4,6",
		"?agent=agent-1":                   "2,5",
		"?tool=delete_issue&agent=agent-0": "4",
		"?server=other":                    "",
		"?human=u1&decision=allowed":       "1,3,5",
		"?order=desc&limit=2":              "6,5",
		"?since=" + t0.Add(2*time.Hour).Format(time.RFC3339) + "&until=" + t0.Add(4*time.Hour).Format(time.RFC3339): "3,4",
		"?since=7h30m": "4,5,6",
	} {
		if got := seqsOf(list(q).Items); got != want {
			t.Errorf("GET audit%s = %s, want %s", q, got, want)
		}
	}
	// Pagination: pages of 4 then 2, following next_cursor.
	p1 := list("?limit=4")
	if seqsOf(p1.Items) != "1,2,3,4" || p1.NextCursor == "" {
		t.Fatalf("first page %s, cursor %q", seqsOf(p1.Items), p1.NextCursor)
	}
	p2 := list("?limit=4&cursor=" + p1.NextCursor)
	if seqsOf(p2.Items) != "5,6" || p2.NextCursor != "" {
		t.Fatalf("second page %s, cursor %q", seqsOf(p2.Items), p2.NextCursor)
	}
	desc := list("?order=desc&limit=2&cursor=" + list("?order=desc&limit=2").NextCursor)
	if seqsOf(desc.Items) != "4,3" {
		t.Fatalf("second page newest first: %s", seqsOf(desc.Items))
	}
	e.problem(400, "GET", "/api/v1/hosts/acme/audit?decision=maybe", e.acme, nil, "decision")
	e.problem(400, "GET", "/api/v1/hosts/acme/audit?since=yesterday", e.acme, nil, "RFC 3339")
	e.problem(400, "GET", "/api/v1/hosts/acme/audit?cursor=!!", e.acme, nil, "cursor")
	// Host scoping: beta's token cannot read acme's log, and acme's log holds none of beta's.
	e.problem(403, "GET", "/api/v1/hosts/acme/audit", e.beta, nil, "scoped")
	var b admin.Page[admin.AuditEntry]
	e.must(200, "GET", "/api/v1/hosts/beta/audit", e.beta, nil, &b)
	if len(b.Items) != 1 || b.Items[0].Server != "secret-server" || b.Items[0].Hash == "" {
		t.Fatalf("beta's log: %+v", b.Items)
	}
}

func TestAuditExportJSONLines(t *testing.T) {
	e := newEnv(t)
	e.seedAudit()
	for _, tc := range []struct{ query, accept string }{{"?format=jsonl&decision=denied", ""}, {"?decision=denied", "application/x-ndjson"}} {
		req, _ := http.NewRequest("GET", e.api.URL+"/api/v1/hosts/acme/audit"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer "+e.acme)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var en admin.AuditEntry
			if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			seqs = append(seqs, en.Seq)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || fmt.Sprint(seqs) != "[2 4 6]" {
			t.Fatalf("export %s (Accept %q): %d %s %v", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), seqs)
		}
	}
	// The Go client.
	c, err := sdk.NewClient(e.api.URL, e.acme)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.ExportAudit(context.Background(), "acme", sdk.AuditQuery{Decision: "allowed"}, "", func(admin.AuditEntry) error { n++; return nil }); err != nil || n != 3 {
		t.Fatalf("ExportAudit: %d entries, %v", n, err)
	}
	page, err := c.ListAudit(context.Background(), "acme", sdk.AuditQuery{Agent: "agent-0"}, sdk.PageRequest{})
	if err != nil || seqsOf(page.Items) != "1,4" {
		t.Fatalf("ListAudit: %s, %v", seqsOf(page.Items), err)
	}
	page, err = c.ListAudit(context.Background(), "acme", sdk.AuditQuery{}, sdk.PageRequest{Cursor: sdk.AuditCursor(5)})
	if err != nil || seqsOf(page.Items) != "6" {
		t.Fatalf("ListAudit after 5: %s, %v", seqsOf(page.Items), err)
	}
	if err := c.ExportAudit(context.Background(), "beta", sdk.AuditQuery{}, "", func(admin.AuditEntry) error { return nil }); err == nil {
		t.Fatal("export of another host's log with a host token succeeded")
	}
}

// TestAdminChangesAreAudited: every change to who may do what is an entry naming the token,
// the action, the object and the levels before and after.
func TestAdminChangesAreAudited(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	userID, agentID := e.imported(up)
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "medium"}, nil)
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/delete_issue", e.acme, map[string]any{"enabled": false}, nil)
	e.must(200, "POST", "/api/v1/hosts/acme/agents/"+agentID+"/kill", e.acme, nil, nil)
	e.must(204, "DELETE", "/api/v1/hosts/acme/humans/alice@acme.test", e.acme, nil, nil)
	e.must(204, "DELETE", "/api/v1/hosts/acme/servers/tracker", e.acme, nil, nil)
	// A failed change is not audited.
	e.problem(404, "DELETE", "/api/v1/hosts/acme/servers/nope", e.acme, nil)

	var p admin.Page[admin.AuditEntry]
	e.must(200, "GET", "/api/v1/hosts/acme/audit?decision=admin", e.acme, nil, &p)
	var got []string
	for _, en := range p.Items {
		if !strings.HasPrefix(en.Actor, "token:") || !strings.Contains(en.Actor, "(test)") || en.RequestID == "" {
			t.Errorf("entry %d actor %q request %q", en.Seq, en.Actor, en.RequestID)
		}
		got = append(got, fmt.Sprintf("%s %s %s->%s", en.Action, en.Object, en.OldValue, en.NewValue))
	}
	want := []string{
		"server.import servers/tracker ->",
		"human.create humans/alice@acme.test ->",
		"grant.set humans/alice@acme.test/grants/tracker none->high",
		"agent_level.set agents/" + agentID + "/servers/tracker none->medium",
		"grant.set humans/alice@acme.test/grants/tracker high->medium",
		"tool.update servers/tracker/tools/delete_issue level=high enabled=true->level=high enabled=false",
		"agent.kill agents/" + agentID + "/kill ->disabled",
		"human.delete humans/alice@acme.test ->",
		"server.delete servers/tracker ->",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("admin entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The human filter finds the human's entries by the (deleted) human's id.
	p = admin.Page[admin.AuditEntry]{}
	e.must(200, "GET", "/api/v1/hosts/acme/audit?decision=admin&human="+userID, e.acme, nil, &p)
	if len(p.Items) < 4 || p.Items[0].Action != "human.create" || !bytes.Contains([]byte(p.Items[1].Action), []byte("grant")) {
		t.Fatalf("entries of human %s: %+v", userID, p.Items)
	}
}

// A host's chain starts with its creation (a global route), and an import with dry_run, which
// saves nothing, is not an admin change.
func TestHostCreationIsAuditedAndDryRunsAreNot(t *testing.T) {
	e := newEnv(t)
	e.must(201, "POST", "/api/v1/hosts", e.global, admin.HostCreate{Key: "initech", Exact: true}, nil)
	var p admin.Page[admin.AuditEntry]
	e.must(200, "GET", "/api/v1/hosts/initech/audit", e.global, nil, &p)
	if len(p.Items) != 1 || p.Items[0].Action != "host.create" || p.Items[0].Object != "host/initech" || p.Items[0].Seq != 1 {
		t.Fatalf("initech's log: %+v", p.Items)
	}
	up := mcpserver.Start(t, "")
	e.must(200, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, DryRun: true}, nil)
	p = admin.Page[admin.AuditEntry]{}
	e.must(200, "GET", "/api/v1/hosts/acme/audit?decision=admin", e.acme, nil, &p)
	for _, en := range p.Items {
		if en.Action == "server.import" {
			t.Fatalf("a dry-run import was audited: %+v", en)
		}
	}
}
