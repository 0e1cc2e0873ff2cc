package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
)

func (e *env) setApprovals(timeout, standing int) {
	e.t.Helper()
	e.setSettings(func(s *store.HostSettings) {
		s.ApprovalRules = []store.ApprovalRule{{Server: serverKey, Tool: "create_issue", TimeoutSeconds: timeout, StandingHours: standing}}
	})
}

// heldCall waits for the host's one pending held call.
func (e *env) heldCall() store.HeldCall {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		calls, err := e.st.ListHeldCalls(context.Background(), host, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		if len(calls) == 1 {
			return calls[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d held calls, want 1", len(calls))
		}
	}
}

// approvalEntries are the host's approval audit entries, waited for until n are there.
func (e *env) approvalEntries(n int) []audit.Entry {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		es, err := e.st.ListAudit(context.Background(), audit.Filter{Host: host, Decision: audit.Approval}, 0, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(es) >= n {
			return es
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d approval entries, want %d", len(es), n)
		}
	}
}

type callOutcome struct {
	text string
	err  error
}

// A held call waits for the person: approved, it is forwarded and its answer comes back;
// denied, the agent reads that a person denied it and nothing is forwarded. Each step is an
// audit entry naming the approver and the channel.
func TestHeldCallApprovedOrDenied(t *testing.T) {
	e := newEnv(t)
	e.setApprovals(60, 0)
	cs := connect(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil))

	// Calls the policy does not name are not held.
	if got, err := callText(t, cs, "list_issues", nil); err != nil || !strings.Contains(got, "list_issues") {
		t.Fatalf("list_issues: %q %v", got, err)
	}

	before := e.upCalls.Load()
	done := make(chan callOutcome, 1)
	go func() {
		text, err := callText(t, cs, "create_issue", map[string]any{"title": "printer on fire"})
		done <- callOutcome{text, err}
	}()
	c := e.heldCall()
	if c.Tool != "create_issue" || c.Server != serverKey || c.AgentID != e.agentID || c.AgentName != "Cursor" || !strings.Contains(c.Arguments, "printer on fire") {
		t.Fatalf("held call %+v", c)
	}
	time.Sleep(300 * time.Millisecond)
	if e.upCalls.Load() != before {
		t.Fatal("the held call reached the upstream before anyone approved it")
	}
	select {
	case o := <-done:
		t.Fatalf("the held call returned before a decision: %+v", o)
	default:
	}
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldApproved, "bob@example.com", "dashboard", time.Now()); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil || o.text != "create_issue called: printer on fire" {
		t.Fatalf("approved call: %q %v", o.text, o.err)
	}
	es := e.approvalEntries(2)
	actions := map[string]audit.Entry{}
	for _, x := range es {
		actions[x.Action] = x
	}
	if actions["held"].Tool != "create_issue" || actions["approved"].Actor != "bob@example.com" || !strings.Contains(actions["approved"].Reason, "dashboard") {
		t.Fatalf("approval entries %+v", es)
	}

	// Denied.
	before = e.upCalls.Load()
	go func() {
		text, err := callText(t, cs, "create_issue", map[string]any{"title": "again"})
		done <- callOutcome{text, err}
	}()
	c = e.heldCall()
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldDenied, "bob@example.com", "email", time.Now()); err != nil {
		t.Fatal(err)
	}
	o = <-done
	if o.err == nil || !strings.Contains(o.err.Error(), "bob@example.com denied it") {
		t.Fatalf("denied call: %q %v", o.text, o.err)
	}
	if e.upCalls.Load() != before {
		t.Fatal("a denied call reached the upstream")
	}
	if d := e.deniedAudit("create_issue"); !strings.HasPrefix(d.Reason, "approval_denied: denied by bob@example.com via email") {
		t.Fatalf("denied entry %q", d.Reason)
	}
}

// A call nobody decides is denied when the rule's timeout ends, and never forwarded; a proxy
// without a store for held calls refuses what it would hold (fail closed).
func TestHeldCallTimesOut(t *testing.T) {
	bare := newEnv(t, func(c *proxy.Config) { c.Approvals = nil })
	bare.setApprovals(5, 0)
	bareCS := connect(t, bare.endpoint(serverKey), bare.token(bare.endpoint(serverKey), nil))
	if _, err := callText(t, bareCS, "create_issue", map[string]any{"title": "x"}); err == nil || !strings.Contains(err.Error(), "could not read its configuration") {
		t.Fatalf("held call without a store: %v", err)
	}

	e := newEnv(t)
	e.setApprovals(5, 0)
	cs := connect(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil))
	before := e.upCalls.Load()
	start := time.Now()
	_, err := callText(t, cs, "create_issue", map[string]any{"title": "x"})
	if err == nil || !strings.Contains(err.Error(), "nobody approved it within 5s") {
		t.Fatalf("undecided call: %v", err)
	}
	if waited := time.Since(start); waited < 5*time.Second || waited > 10*time.Second {
		t.Fatalf("the call waited %s, want the rule's 5 s", waited)
	}
	if e.upCalls.Load() != before {
		t.Fatal("a call that timed out reached the upstream")
	}
	if d := e.deniedAudit("create_issue"); !strings.HasPrefix(d.Reason, "approval_timed_out: ") {
		t.Fatalf("denied entry %q", d.Reason)
	}
	calls, _ := e.st.ListHeldCalls(context.Background(), host, time.Now())
	if len(calls) != 0 {
		t.Fatalf("still pending: %+v", calls)
	}
}

// A client that accepts an event stream gets one at once, with progress notifications for its
// progressToken while the call waits; the answer follows as an event once it is approved. A
// client that goes away leaves nothing that can be approved.
func TestHeldCallStreamsProgress(t *testing.T) {
	e := newEnv(t)
	e.setApprovals(60, 2)
	endpoint := e.endpoint(serverKey)
	// A session of the upstream, as a client opens one.
	initResp, _ := e.do(http.MethodPost, serverKey, nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	session := initResp.Header.Get("Mcp-Session-Id")
	e.do(http.MethodPost, serverKey, map[string]string{"Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"}, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"create_issue","arguments":{"title":"streamed"},"_meta":{"progressToken":"tok-1"}}}`
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(endpoint, nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("held answer: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "data: ") {
				return strings.TrimPrefix(l, "data: ")
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return ""
	}
	for i := 1; i <= 2; i++ {
		if ev := next(); !strings.Contains(ev, `"method":"notifications/progress"`) || !strings.Contains(ev, `"progressToken":"tok-1"`) {
			t.Fatalf("event %d while held: %s", i, ev)
		}
	}
	c := e.heldCall()
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldApproved, "ann@example.com", "email", time.Now()); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next()
		if strings.Contains(ev, "notifications/progress") {
			continue
		}
		if !strings.Contains(ev, `"id":7`) || !strings.Contains(ev, "create_issue called: streamed") {
			t.Fatalf("answer event %s", ev)
		}
		break
	}
	// The approval stands for two hours: the next call goes through at once.
	cs := connect(t, endpoint, e.token(endpoint, nil))
	if got, err := callText(t, cs, "create_issue", map[string]any{"title": "standing"}); err != nil || got != "create_issue called: standing" {
		t.Fatalf("call under a standing approval: %q %v", got, err)
	}

	// A client that goes away: the call is expired, never forwarded.
	if err := e.st.DeleteStandingApproval(context.Background(), host, e.agentID, serverKey, "create_issue"); err != nil {
		t.Fatal(err)
	}
	before := e.upCalls.Load()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token(endpoint, nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	c = e.heldCall()
	cancel()
	resp2.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := e.st.GetHeldCall(context.Background(), host, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == store.HeldExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held call of a client that went away: %+v", got)
		}
	}
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldApproved, "ann@example.com", "email", time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("approving the call of a client that went away: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if e.upCalls.Load() != before {
		t.Fatal("the call of a client that went away reached the upstream")
	}
}
