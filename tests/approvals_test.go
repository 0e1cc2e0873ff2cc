package tests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
)

// linkAfter is the URL on the line of body that starts with label.
func linkAfter(t *testing.T, body, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s*(\S+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %q link in the email:\n%s", label, body)
	}
	return m[1]
}

// page fetches a link page (GET, or POST of its form) and returns the status and the body.
func page(t *testing.T, method, link string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(url.Values{"decision": {"x"}}.Encode())
	}
	req, _ := http.NewRequest(method, link, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTypeScriptSDKApprovals: the done-when of human approval, through the binary with the
// official TypeScript SDK client. The host holds every high call (admin host approvals add);
// each held call emails the agent's human signed approve and deny links. The first call is
// approved through its link (a GET only shows it, the POST decides, a second POST changes
// nothing) and forwarded, with progress notifications while it waits; the second is denied
// through its link and the client gets the error; the third times out and is denied. Nothing
// denied reaches the upstream, and every step is in the audit log.
func TestTypeScriptSDKApprovals(t *testing.T) {
	mail := smtpserver.Start(t, smtpserver.Options{})
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--smtp-url", mail.URL(), "--smtp-from", "trustgate <gateway@example.com>", "--approval-keepalive", "300ms")
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	rules := cli(t, p, admin, "host", "approvals", "add", "acme", "--level", "high", "--timeout", "6s")
	if !strings.Contains(rules, "high") || !strings.Contains(rules, "the agent's human") || !strings.Contains(rules, "6s") {
		t.Fatalf("approval rules:\n%s", rules)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	node := startNode(ctx, t, "approvals.mjs", "MCP_URL="+p.url+"/h/acme/mcp/tracker", "EMAIL=alice@acme.test",
		"PASSWORD=correct horse battery staple", "TRUST_LEVEL=high")

	// 1: approved through the link.
	m := mail.WaitFor(t, "alice@acme.test", 1)
	if subj := m.Header.Get("Subject"); !strings.Contains(subj, "delete_issue") || !strings.Contains(m.Body, "approve-me") {
		t.Fatalf("approval email %q:\n%s", subj, m.Body)
	}
	approve, deny := linkAfter(t, m.Body, "Approve:"), linkAfter(t, m.Body, "Deny:")
	time.Sleep(time.Second) // a few keep-alives reach the waiting client
	if status, body := page(t, http.MethodGet, approve); status != 200 || !strings.Contains(body, "Approve this call?") || !strings.Contains(body, "approve-me") {
		t.Fatalf("GET of the approve link: %d\n%s", status, body)
	}
	var held []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	cliJSON(t, p, admin, &held, "host", "approvals", "list", "acme")
	if len(held) != 1 || held[0].Status != "pending" {
		t.Fatalf("after the GET (a mail scanner's prefetch decides nothing): %+v", held)
	}
	if status, body := page(t, http.MethodPost, approve); status != 200 || !strings.Contains(body, "Approved") {
		t.Fatalf("POST of the approve link: %d\n%s", status, body)
	}
	if status, body := page(t, http.MethodPost, deny); status != http.StatusConflict || !strings.Contains(body, "Already decided") {
		t.Fatalf("the deny link after the approval: %d\n%s", status, body)
	}
	tampered := approve[:len(approve)-3] + "AAA"
	if status, _ := page(t, http.MethodGet, tampered); status != http.StatusNotFound {
		t.Fatalf("a tampered link: %d", status)
	}

	// 2: denied through the link.
	m = mail.WaitFor(t, "alice@acme.test", 2)
	if !strings.Contains(m.Body, "deny-me") {
		t.Fatalf("second email:\n%s", m.Body)
	}
	if status, body := page(t, http.MethodPost, linkAfter(t, m.Body, "Deny:")); status != 200 || !strings.Contains(body, "Denied") {
		t.Fatalf("POST of the deny link: %d\n%s", status, body)
	}

	// 3: nobody decides.
	m = mail.WaitFor(t, "alice@acme.test", 3)
	if !strings.Contains(m.Body, "forget-me") {
		t.Fatalf("third email:\n%s", m.Body)
	}

	result := node.result(ctx, t)
	var res struct {
		OK         bool   `json:"ok"`
		Approved   string `json:"approved"`
		ApprovedOK bool   `json:"approved_ok"`
		Progress   int    `json:"progress"`
		Denied     string `json:"denied"`
		TimedOut   string `json:"timed_out"`
		Unheld     string `json:"unheld"`
	}
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		t.Fatalf("approvals.mjs output: %v\n%s", err, result)
	}
	if !res.OK || !res.ApprovedOK || !strings.Contains(res.Approved, "delete_issue called") {
		t.Fatalf("the approved call: %+v", res)
	}
	if res.Progress < 1 {
		t.Errorf("no progress notification reached the client while its call was held")
	}
	if !strings.Contains(res.Denied, "alice@acme.test denied it") {
		t.Errorf("the denied call: %q", res.Denied)
	}
	if !strings.Contains(res.TimedOut, "nobody approved it within 6s") {
		t.Errorf("the call that timed out: %q", res.TimedOut)
	}
	if !strings.Contains(res.Unheld, "list_issues") {
		t.Errorf("an unheld call: %q", res.Unheld)
	}
	if calls := strings.Join(up.Calls(), ","); strings.Count(calls, "delete_issue") != 1 {
		t.Errorf("the upstream saw %s: want delete_issue once (the approved call only)", calls)
	}

	entries := approvalEntries(t, p, admin)
	got := map[string]int{}
	for _, e := range entries {
		got[e.Action]++
		if e.Action == "approved" && (e.Actor != "alice@acme.test" || !strings.Contains(e.Reason, "email")) {
			t.Errorf("approved entry %+v", e)
		}
	}
	if got["held"] != 3 || got["approved"] != 1 || got["denied"] != 1 || got["expired"] != 1 {
		t.Errorf("approval entries by action %v, want 3 held, 1 approved, 1 denied, 1 expired", got)
	}
}

// TestTypeScriptSDKElicitation: a client that declared elicitation gets the question in-band
// and the answer decides, through the binary with the official TypeScript SDK client. The host
// holds every high call for the agent's human. The eliciting client's "yes" forwards the first
// call, its "no" denies the second (an answer to the same question posted from the agent's
// other session meanwhile is refused and changes nothing); an answer to a question nobody
// asked is refused; the agent's client without the capability is not asked: its call is held,
// its human emailed, and it is approved through the admin CLI. The audit log names the human
// and the channel.
func TestTypeScriptSDKElicitation(t *testing.T) {
	mail := smtpserver.Start(t, smtpserver.Options{})
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--smtp-url", mail.URL(), "--smtp-from", "trustgate <gateway@example.com>", "--approval-keepalive", "300ms")
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	cli(t, p, admin, "host", "approvals", "add", "acme", "--level", "high", "--timeout", "30s")

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	node := startNode(ctx, t, "elicitation.mjs", "MCP_URL="+p.url+"/h/acme/mcp/tracker", "EMAIL=alice@acme.test",
		"PASSWORD=correct horse battery staple", "TRUST_LEVEL=high")

	// The call of the client without the capability is held: approve it through the CLI. It
	// is the only call whose approvers are emailed.
	var m smtpserver.Message
	for deadline := time.Now().Add(90 * time.Second); len(mail.Messages()) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no approval email\nstderr of the client:\n%s", node.stderr.String())
		}
	}
	if m = mail.Messages()[0]; !strings.Contains(m.Body, "held-for-plain") {
		t.Fatalf("the email is about another call:\n%s", m.Body)
	}
	var held []struct {
		ID   string `json:"id"`
		Tool string `json:"tool"`
	}
	cliJSON(t, p, admin, &held, "host", "approvals", "list", "acme")
	if len(held) != 1 {
		t.Fatalf("held calls %+v, want the plain client's one", held)
	}
	cli(t, p, admin, "host", "approvals", "approve", "acme", held[0].ID)

	result := node.result(ctx, t)
	var res struct {
		OK            bool     `json:"ok"`
		Questions     []string `json:"questions"`
		Approved      string   `json:"approved"`
		ApprovedOK    bool     `json:"approved_ok"`
		Declined      string   `json:"declined"`
		ForgedStatus  int      `json:"forged_status"`
		UnknownStatus int      `json:"unknown_status"`
		Plain         string   `json:"plain"`
		PlainOK       bool     `json:"plain_ok"`
	}
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		t.Fatalf("elicitation.mjs output: %v\n%s", err, result)
	}
	if !res.OK || !res.ApprovedOK || !strings.Contains(res.Approved, "delete_issue called") {
		t.Fatalf("the call approved in the client: %+v", res)
	}
	if len(res.Questions) != 2 || !strings.Contains(res.Questions[0], "wants to call delete_issue") || !strings.Contains(res.Questions[0], "approve-in-client") {
		t.Errorf("questions asked in the client: %q (want two, naming the tool and its arguments)", res.Questions)
	}
	if !strings.Contains(res.Declined, "alice@acme.test denied it") {
		t.Errorf("the call declined in the client: %q", res.Declined)
	}
	if res.ForgedStatus != http.StatusBadRequest || res.UnknownStatus != http.StatusBadRequest {
		t.Errorf("an answer from another session: %d, to a question never asked: %d; want 400 each", res.ForgedStatus, res.UnknownStatus)
	}
	if !res.PlainOK || !strings.Contains(res.Plain, "delete_issue called") {
		t.Errorf("the held call of the client without elicitation: %q", res.Plain)
	}
	if calls := strings.Join(up.Calls(), ","); strings.Count(calls, "delete_issue") != 2 {
		t.Errorf("the upstream saw %s: want delete_issue twice (the two approved calls)", calls)
	}
	if n := len(mail.Messages()); n != 1 {
		t.Errorf("%d approval emails, want 1 (the call of the client without elicitation)", n)
	}

	entries := approvalEntries(t, p, admin)
	got := map[string]int{}
	for _, e := range entries {
		got[e.Action+" "+e.Reason]++
	}
	if got["approved via elicitation"] != 1 || got["denied via elicitation"] != 1 || got["approved via api"] != 1 {
		t.Errorf("approval entries %v: want one approved and one denied via elicitation, one approved via api", got)
	}
	for _, e := range entries {
		if (e.Action == "approved" || e.Action == "denied") && e.Actor != "alice@acme.test" && !strings.Contains(e.Reason, "api") {
			t.Errorf("decision entry %+v does not name the human", e)
		}
	}
}

// approvalEntry is an audit entry of decision approval, as `audit list --json` prints it.
type approvalEntry struct {
	Decision string `json:"decision"`
	Action   string `json:"action"`
	Actor    string `json:"actor"`
	Reason   string `json:"reason"`
}

// approvalEntries lists host acme's approval entries through the CLI.
func approvalEntries(t *testing.T, p *process, admin string) []approvalEntry {
	t.Helper()
	var entries []approvalEntry
	cliJSON(t, p, admin, &entries, "audit", "list", "--host", "acme", "--decision", "approval", "--all")
	return entries
}
