package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// hold stores a pending call of agent "ag-1" (Claude) for human, as the proxy does when an
// approval rule matches.
func (e *env) hold(host, id, human, tool string, standingHours int) {
	e.t.Helper()
	now := time.Now()
	_, err := e.store.CreateHeldCall(context.Background(), store.HeldCall{ID: id, Host: host, AgentID: "ag-1", AgentName: "Claude",
		UserID: human, Server: "github", Tool: tool, Arguments: `{"repo":"acme/site"}`, StandingHours: standingHours,
		CreatedAt: now, ExpiresAt: now.Add(2 * time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) heldStatus(host, id string) store.HeldCall {
	e.t.Helper()
	c, err := e.store.GetHeldCall(context.Background(), host, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestPendingApprovals: a host admin sees the calls held on their host (agent, human, server,
// tool, its level, the arguments, since and until) and no other host's; Approve and Deny decide
// them as the signed-in person through the dashboard channel, once; an approval for some hours
// stands and is revoked here; another host's admin and a form without its CSRF token decide
// nothing. With nothing held, the page says what approval rules are and where they are set.
func TestPendingApprovals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.human("acme", "boss@acme.test", true)
	e.human("beta", "boss@beta.test", true)
	alice := e.human("acme", "alice@acme.test", false)
	bob := e.human("beta", "bob@beta.test", false)
	if _, err := e.store.CreateServer(ctx, store.Server{Host: "acme", Key: "github", Name: "GitHub", URL: "http://127.0.0.1:1/mcp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutTool(ctx, store.Tool{Host: "acme", Server: "github", Name: "delete_repo", Level: schema.High, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	const page = "/dashboard/hosts/acme/approvals"
	boss := e.signIn("boss@acme.test", "acme")

	// Nothing held, no rules: the page explains them.
	status, body, _ := boss.get(page)
	if status != http.StatusOK || !strings.Contains(body, "No call is waiting") || !strings.Contains(body, "no approval rules") ||
		!strings.Contains(body, "trustgate admin host approvals add acme") || !strings.Contains(body, "No standing approvals") {
		t.Fatalf("empty approvals page = %d\n%s", status, body)
	}
	if !strings.Contains(body, `href="/dashboard/hosts/acme/approvals"`) {
		t.Error("the host's navigation has no link to Pending approvals")
	}

	e.hold("acme", "hc-once", alice.ID, "delete_repo", 0)
	e.hold("acme", "hc-deny", alice.ID, "delete_repo", 0)
	e.hold("acme", "hc-standing", alice.ID, "delete_repo", 8)
	e.hold("beta", "hc-beta", bob.ID, "drop_table", 0)

	status, body, _ = boss.get(page)
	for _, want := range []string{"Claude", "alice@acme.test", "github", "delete_repo", "high", "&#34;repo&#34;: &#34;acme/site&#34;",
		"/dashboard/hosts/acme/approvals/hc-once/approve", "/dashboard/hosts/acme/approvals/hc-deny/deny"} {
		if !strings.Contains(body, want) {
			t.Errorf("approvals page lacks %q", want)
		}
	}
	if status != http.StatusOK || strings.Contains(body, "hc-beta") || strings.Contains(body, "drop_table") {
		t.Fatalf("approvals page = %d (another host's call must not show)\n%s", status, body)
	}

	// A form without a valid CSRF token, and another host's admin, decide nothing.
	if status, _, _ := boss.post(page+"/hc-once/approve", url.Values{}); status != http.StatusForbidden {
		t.Errorf("approve without CSRF = %d; want 403", status)
	}
	other := e.signIn("boss@beta.test", "beta")
	if status, _, _ := other.post(page+"/hc-once/approve", url.Values{"csrf_token": {other.csrf()}}); status != http.StatusForbidden {
		t.Errorf("approve by beta's admin = %d; want 403", status)
	}
	// Naming acme's call under beta's own host finds nothing.
	if status, _, _ := other.post("/dashboard/hosts/beta/approvals/hc-once/approve", url.Values{"csrf_token": {other.csrf()}}); status != http.StatusNotFound {
		t.Errorf("acme's call approved under beta = %d; want 404", status)
	}
	if c := e.heldStatus("acme", "hc-once"); c.Status != store.HeldPending {
		t.Fatalf("after refused attempts the call is %s; want pending", c.Status)
	}

	csrf := boss.csrf()
	status, body, h := boss.post(page+"/hc-once/approve", url.Values{"csrf_token": {csrf}})
	if status != http.StatusSeeOther || h.Get("Location") != page+"?done=call-approved" {
		t.Fatalf("approve = %d %q\n%s", status, h.Get("Location"), body)
	}
	if c := e.heldStatus("acme", "hc-once"); c.Status != store.HeldApproved || c.DecidedBy != "dashboard:boss@acme.test" || c.Channel != "dashboard" {
		t.Errorf("approved call = %s by %q via %q; want approved by dashboard:boss@acme.test via dashboard", c.Status, c.DecidedBy, c.Channel)
	}
	if _, body, _ := boss.get(page + "?done=call-approved"); !strings.Contains(body, "forwarded now") || strings.Contains(body, "hc-once") {
		t.Errorf("after approving, the page still lists the call or says nothing:\n%s", body)
	}
	// Decided once: a second decision is refused and changes nothing.
	if status, body, _ := boss.post(page+"/hc-once/deny", url.Values{"csrf_token": {csrf}}); status != http.StatusConflict || !strings.Contains(body, "no longer be decided") {
		t.Errorf("deny after approve = %d; want 409\n%s", status, body)
	}
	if c := e.heldStatus("acme", "hc-once"); c.Status != store.HeldApproved {
		t.Errorf("a second decision changed the call to %s", c.Status)
	}

	if status, _, h := boss.post(page+"/hc-deny/deny", url.Values{"csrf_token": {csrf}}); status != http.StatusSeeOther || h.Get("Location") != page+"?done=call-denied" {
		t.Fatalf("deny = %d %q", status, h.Get("Location"))
	}
	if c := e.heldStatus("acme", "hc-deny"); c.Status != store.HeldDenied || c.DecidedBy != "dashboard:boss@acme.test" {
		t.Errorf("denied call = %s by %q", c.Status, c.DecidedBy)
	}

	// Approved for 8 hours: it stands, is listed, and Revoke ends it.
	if status, _, _ := boss.post(page+"/hc-standing/approve", url.Values{"csrf_token": {csrf}}); status != http.StatusSeeOther {
		t.Fatalf("approve for 8 hours = %d", status)
	}
	revoke := "/dashboard/hosts/acme/standing-approvals/ag-1/github/delete_repo/revoke"
	_, body, _ = boss.get(page)
	if !strings.Contains(body, revoke) || !strings.Contains(body, "dashboard:boss@acme.test") {
		t.Fatalf("the standing approval is not listed with its revoke form:\n%s", body)
	}
	if status, _, _ := other.post("/dashboard/hosts/acme/standing-approvals/ag-1/github/delete_repo/revoke", url.Values{"csrf_token": {other.csrf()}}); status != http.StatusForbidden {
		t.Errorf("revoke by beta's admin = %d; want 403", status)
	}
	if status, _, h := boss.post(revoke, url.Values{"csrf_token": {csrf}}); status != http.StatusSeeOther || h.Get("Location") != page+"?done=standing-revoked" {
		t.Fatalf("revoke = %d %q", status, h.Get("Location"))
	}
	if _, err := e.store.StandingApprovalFor(ctx, "acme", "ag-1", "github", "delete_repo", time.Now()); err == nil {
		t.Error("the standing approval still stands after Revoke")
	}
	if _, body, _ := boss.get(page); strings.Contains(body, revoke) || !strings.Contains(body, "No standing approvals") {
		t.Errorf("after revoking, the page still lists it:\n%s", body)
	}
	// The audit log names the person for each decision and the revocation.
	entries, err := e.store.ListAudit(ctx, auditFilter("acme"), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, en := range entries {
		if en.Actor == "dashboard:boss@acme.test" {
			actions[en.Action]++
		}
	}
	if actions["approval.approve"] != 2 || actions["approval.deny"] != 1 || actions["approval.revoke"] != 1 {
		t.Errorf("audit entries by the dashboard's person = %v; want 2 approve, 1 deny, 1 revoke", actions)
	}
	// beta's call is untouched by all of it.
	if c := e.heldStatus("beta", "hc-beta"); c.Status != store.HeldPending {
		t.Errorf("beta's call is %s; want pending", c.Status)
	}
}

// TestApprovalsURL: the address the webhook's message gives is the page's.
func TestApprovalsURL(t *testing.T) {
	e := newEnv(t)
	e.human("acme", "boss@acme.test", true)
	u, err := url.Parse(dashboard.ApprovalsURL(e.urls, "acme"))
	if err != nil || u.Scheme+"://"+u.Host != e.srv.URL {
		t.Fatalf("ApprovalsURL = %v, %v; want under %s", u, err, e.srv.URL)
	}
	if status, body, _ := e.signIn("boss@acme.test", "acme").get(u.Path); status != http.StatusOK || !strings.Contains(body, "Pending approvals") {
		t.Errorf("GET %s = %d", u.Path, status)
	}
}
