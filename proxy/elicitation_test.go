package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
)

// countingNotifier counts the held calls whose approvers were told (email, webhook).
type countingNotifier struct{ n atomic.Int64 }

func (c *countingNotifier) NotifyHeld(context.Context, store.HeldCall) { c.n.Add(1) }

// connectEliciting opens an MCP session whose client declares elicitation and answers each
// question with answer (and records its message).
func connectEliciting(t *testing.T, endpoint, token string, answer func(*mcp.ElicitParams) *mcp.ElicitResult, asked *[]string, mu *sync.Mutex) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}, MaxRetries: -1}
	client := mcp.NewClient(&mcp.Implementation{Name: "eliciting-client", Version: "1.0.0"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			*asked = append(*asked, req.Params.Message)
			mu.Unlock()
			return answer(req.Params), nil
		},
	})
	cs, err := client.Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// A client that declared elicitation is asked in-band: its human's "yes" forwards the call and
// the answer comes back, a "no" or a decline denies it, each decision recorded as the agent's
// human's through the elicitation channel, and nobody is emailed. A client that did not
// declare it gets the held-call path (its approvers are told; the dashboard decides).
func TestElicitationAsksTheAgentsHuman(t *testing.T) {
	notifier := &countingNotifier{}
	e := newEnv(t, func(c *proxy.Config) { c.ApprovalNotifier = notifier })
	e.setApprovals(30, 0)
	var mu sync.Mutex
	var asked []string
	var reply atomic.Pointer[mcp.ElicitResult]
	cs := connectEliciting(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil),
		func(*mcp.ElicitParams) *mcp.ElicitResult { return reply.Load() }, &asked, &mu)
	if id := cs.ID(); !strings.HasPrefix(id, "tg2.") {
		t.Fatalf("the session id of a client declaring elicitation: %q", id)
	}

	reply.Store(&mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}})
	got, err := callText(t, cs, "create_issue", map[string]any{"title": "printer on fire"})
	if err != nil || got != "create_issue called: printer on fire" {
		t.Fatalf("approved in the client: %q %v", got, err)
	}
	mu.Lock()
	if len(asked) != 1 || !strings.Contains(asked[0], "Cursor wants to call create_issue on Issue Tracker with") || !strings.Contains(asked[0], "printer on fire") {
		t.Fatalf("questions asked: %q", asked)
	}
	mu.Unlock()
	es := e.approvalEntries(2)
	var approved audit.Entry
	for _, x := range es {
		if x.Action == "approved" {
			approved = x
		}
		if x.Action == "held" && !strings.Contains(x.Reason, "asked in their client") {
			t.Errorf("held entry %q", x.Reason)
		}
	}
	if approved.Actor != "ann@example.com" || approved.Reason != "via elicitation" {
		t.Fatalf("approved entry %+v", approved)
	}

	for name, r := range map[string]*mcp.ElicitResult{
		"declined":           {Action: "decline"},
		"cancelled":          {Action: "cancel"},
		"accepted, not true": {Action: "accept", Content: map[string]any{"approve": false}},
	} {
		reply.Store(r)
		before := e.upCalls.Load()
		if _, err := callText(t, cs, "create_issue", map[string]any{"title": name}); err == nil || !strings.Contains(err.Error(), "ann@example.com denied it") {
			t.Fatalf("%s: %v", name, err)
		}
		if e.upCalls.Load() != before {
			t.Fatalf("%s: the denied call reached the upstream", name)
		}
		if d := e.deniedAudit("create_issue"); !strings.HasPrefix(d.Reason, "approval_denied: denied by ann@example.com via elicitation") {
			t.Fatalf("%s: denied entry %q", name, d.Reason)
		}
	}
	if n := notifier.n.Load(); n != 0 {
		t.Fatalf("approvers were emailed %d times although the human was asked in the client", n)
	}

	// Without the capability: held, the approvers told, decided elsewhere.
	plain := connect(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil))
	if id := plain.ID(); !strings.HasPrefix(id, "tg1.") {
		t.Fatalf("the session id of a client without capabilities: %q", id)
	}
	done := make(chan callOutcome, 1)
	go func() {
		text, err := callText(t, plain, "create_issue", map[string]any{"title": "plain"})
		done <- callOutcome{text, err}
	}()
	c := e.heldCall()
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldApproved, "bob@example.com", "dashboard", time.Now()); err != nil {
		t.Fatal(err)
	}
	if o := <-done; o.err != nil || o.text != "create_issue called: plain" {
		t.Fatalf("held call of a client without elicitation: %+v", o)
	}
	if n := notifier.n.Load(); n != 1 {
		t.Fatalf("approvers told %d times, want 1 (the call of the client without elicitation)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 4 {
		t.Fatalf("%d questions asked in the client, want 4", len(asked))
	}
}

// A rule that names approvers other than the agent's human never asks the client: the call is
// held and the approvers are told.
func TestElicitationNotForOtherApprovers(t *testing.T) {
	notifier := &countingNotifier{}
	e := newEnv(t, func(c *proxy.Config) { c.ApprovalNotifier = notifier })
	e.setSettings(func(s *store.HostSettings) {
		s.ApprovalRules = []store.ApprovalRule{{Server: serverKey, Tool: "create_issue", Approvers: []string{"bob@example.com"}, TimeoutSeconds: 30}}
	})
	var mu sync.Mutex
	var asked []string
	cs := connectEliciting(t, e.endpoint(serverKey), e.token(e.endpoint(serverKey), nil),
		func(*mcp.ElicitParams) *mcp.ElicitResult {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}
		}, &asked, &mu)
	done := make(chan callOutcome, 1)
	go func() {
		text, err := callText(t, cs, "create_issue", map[string]any{"title": "for bob"})
		done <- callOutcome{text, err}
	}()
	c := e.heldCall()
	if _, err := e.st.DecideHeldCall(context.Background(), host, c.ID, store.HeldDenied, "bob@example.com", "dashboard", time.Now()); err != nil {
		t.Fatal(err)
	}
	if o := <-done; o.err == nil || !strings.Contains(o.err.Error(), "bob@example.com denied it") {
		t.Fatalf("call held for bob: %+v", o)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 0 || notifier.n.Load() != 1 {
		t.Fatalf("asked in the client %q, approvers told %d times", asked, notifier.n.Load())
	}
}

// rawEvents reads the SSE events of resp's body into a channel.
func rawEvents(resp *http.Response) <-chan []byte {
	ch := make(chan []byte, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		r := sse.NewReader(resp.Body, 1<<20)
		for {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if len(ev.Data) > 0 {
				ch <- ev.Data
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan []byte, what string) []byte {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the stream ended", what)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10 s", what)
	}
	return nil
}

// An answer is the gateway's only when it comes from the session it was asked on, names a
// question that was asked, is bounded and the first: anything else is refused and changes
// nothing, and no answer to the gateway's questions reaches the upstream.
func TestElicitationAnswersAreChecked(t *testing.T) {
	e := newEnv(t)
	e.setApprovals(30, 0)
	tok := e.token(e.endpoint(serverKey), nil)
	open := func() *rawSession {
		s := &rawSession{t: t, endpoint: e.endpoint(serverKey), token: tok}
		s.answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"raw","version":"1"}}}`)
		if resp := s.do(http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("initialized: %d", resp.StatusCode)
		} else {
			resp.Body.Close()
		}
		return s
	}
	a, b := open(), open()
	if !strings.HasPrefix(a.id, "tg2.") {
		t.Fatalf("session id %q", a.id)
	}
	resp := a.do(http.MethodPost, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"create_issue","arguments":{"title":"raw"}}}`)
	events := rawEvents(resp)
	var q struct {
		ID     string `json:"id"`
		Method string `json:"method"`
		Params struct {
			Message         string         `json:"message"`
			RequestedSchema map[string]any `json:"requestedSchema"`
		} `json:"params"`
	}
	if err := json.Unmarshal(nextEvent(t, events, "the question"), &q); err != nil || q.Method != "elicitation/create" || !strings.HasPrefix(q.ID, "trustgate.approval.") || q.Params.RequestedSchema["type"] != "object" {
		t.Fatalf("question %+v %v", q, err)
	}
	c := e.heldCall()
	before := e.upCalls.Load()
	answerBody := func(id, result string) string {
		idJSON, _ := json.Marshal(id)
		return `{"jsonrpc":"2.0","id":` + string(idJSON) + `,"result":` + result + `}`
	}
	yes := `{"action":"accept","content":{"approve":true}}`
	post := func(s *rawSession, body string, want int, what string) {
		t.Helper()
		resp := s.do(http.MethodPost, body)
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d: %s", what, resp.StatusCode, want, out)
		}
	}
	post(b, answerBody(q.ID, yes), http.StatusBadRequest, "another session's answer")
	post(a, answerBody("trustgate.approval."+c.ID+".AAAAAAAAAAAAAAAAAAAAAA", yes), http.StatusBadRequest, "an answer to a question never asked")
	post(a, answerBody(q.ID[:len(q.ID)-2]+"AA", yes), http.StatusBadRequest, "a tampered id")
	post(a, answerBody(q.ID, `{"action":"accept","content":{"approve":true,"pad":"`+strings.Repeat("x", 20<<10)+`"}}`), http.StatusRequestEntityTooLarge, "a large answer")
	post(a, answerBody(q.ID, `{"action":"maybe"}`), http.StatusBadRequest, "an unknown action")
	idJSON, _ := json.Marshal(q.ID)
	post(a, `{"jsonrpc":"2.0","id":`+string(idJSON)+`,"error":{"code":-32601,"message":"no"}}`, http.StatusAccepted, "an error (the client could not ask)")
	other := &rawSession{t: t, endpoint: e.endpoint(serverKey), token: e.token(e.endpoint(serverKey), func(cl *accesstoken.AccessClaims) { cl.AgentID = "a_other" }), id: a.id}
	if resp := other.do(http.MethodPost, answerBody(q.ID, yes)); resp.StatusCode == http.StatusAccepted {
		t.Fatal("another agent's answer was accepted")
	} else {
		resp.Body.Close()
	}
	if got, err := e.st.GetHeldCall(context.Background(), host, c.ID); err != nil || got.Status != store.HeldPending {
		t.Fatalf("after refused answers the call is %q (%v), want pending", got.Status, err)
	}
	if e.upCalls.Load() != before {
		t.Fatal("an answer to the gateway's question reached the upstream")
	}

	post(a, answerBody(q.ID, yes), http.StatusAccepted, "the human's answer")
	var res struct {
		ID     json.RawMessage `json:"id"`
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	for {
		ev := nextEvent(t, events, "the call's answer")
		if strings.Contains(string(ev), `"notifications/progress"`) {
			continue
		}
		if err := json.Unmarshal(ev, &res); err != nil || string(res.ID) != "7" || len(res.Result.Content) != 1 || res.Result.Content[0].Text != "create_issue called: raw" {
			t.Fatalf("answer %s", ev)
		}
		break
	}
	post(a, answerBody(q.ID, `{"action":"decline"}`), http.StatusConflict, "a second answer")
	got, err := e.st.GetHeldCall(context.Background(), host, c.ID)
	if err != nil || got.Status != store.HeldApproved || got.DecidedBy != "ann@example.com" || got.Channel != "elicitation" {
		t.Fatalf("held call after the answers: %+v %v", got, err)
	}
	// Each refused answer is audited (written in the background): another session's, one never
	// asked, a tampered id, a large one, an unknown action, the second answer.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		es, err := e.st.ListAudit(context.Background(), audit.Filter{Host: host, Decision: audit.Denied}, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		denied := 0
		for _, x := range es {
			if strings.HasPrefix(x.Reason, "elicitation answer refused") && x.Method == "response" {
				denied++
			}
		}
		if denied == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refused answers audited, want 6", denied)
		}
	}
}
