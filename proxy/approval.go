package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/store"
)

// Human approval, decide's last safety stage and the handler's wait.
//
// A host's approval policy (store.ApprovalRule) names the tools/calls a person must approve:
// the first rule that matches the call (the tool's level at or above the rule's, its server, its
// tool, the agent's type) holds it, unless an approval for this agent and tool still stands
// ("approve for N hours"). decide returns the hold as part of its decision; serveMCP applies it
// here:
//
//  1. the call is stored as held (store.Approvals, so that every replica can list and decide
//     it) and audited (decision approval, action held); its approvers are told
//     (ApprovalNotifier: email with signed links, webhook);
//  2. the request stays open: when the client accepts an event stream the answer becomes one
//     at once, with a notifications/progress every ApprovalKeepAlive when the call carries a
//     progressToken (or an SSE comment when it does not), so that clients do not time out;
//  3. the holder renews the call's heartbeat while it waits and reads its state; approved, it
//     is forwarded as any allowed call (the allowed entry names the approver); denied, or not
//     decided within the rule's timeout, or the client went away, it is refused
//     (approval_denied, approval_timed_out) and never forwarded.
//
// A replica that stops while it holds calls forwards none of them (their requests end with
// the process); their heartbeats stop, so no replica can approve them, and housekeeping marks
// them expired (store.HeldHeartbeatStale).

// The approval stage's reasons.
const (
	// ReasonApprovalDenied: a person denied the held call.
	ReasonApprovalDenied Reason = "approval_denied"
	// ReasonApprovalTimedOut: nobody decided the held call within the policy's timeout.
	ReasonApprovalTimedOut Reason = "approval_timed_out"
	// ReasonApprovalRequired: the check API's answer for a call the proxy would hold.
	ReasonApprovalRequired Reason = "approval_required"
)

// ApprovalNotifier tells a held call's approvers about it (email, webhook). It is called once
// per held call, off the request's path.
type ApprovalNotifier interface {
	NotifyHeld(ctx context.Context, c store.HeldCall)
}

// DefaultApprovalKeepAlive is how often a held request's event stream gets a sign of life.
const DefaultApprovalKeepAlive = 10 * time.Second

// heldPoll is how often the holder renews the heartbeat and reads the call's state.
const heldPoll = 400 * time.Millisecond

// hold is decide's "hold for approval": the rule that matched, the agent and the tool.
type hold struct {
	rule  store.ApprovalRule
	agent store.Agent
	tool  store.Tool
}

// approvalStage is the approval stage of the tools/call m on srv: nil when no rule of the host
// matches it, or an approval for this agent and tool stands.
func approvalStage(ctx context.Context, f facts, hs store.HostSettings, req request, srv store.Server, m *message) (*hold, *refusal) {
	if len(hs.ApprovalRules) == 0 {
		return nil, nil
	}
	fail := func(err error) (*hold, *refusal) { rf := storeFailed(err); return nil, &rf }
	t, found, err := f.tool(ctx, srv.Host, srv.Key, m.tool)
	switch {
	case err != nil:
		return fail(err)
	case !found:
		return fail(fmt.Errorf("tool %s/%s allowed but not stored", srv.Key, m.tool))
	}
	a, found, err := f.agent(ctx, req.host, req.agentID)
	switch {
	case err != nil:
		return fail(err)
	case !found:
		return fail(fmt.Errorf("agent %s allowed but not stored", req.agentID))
	}
	for _, r := range hs.ApprovalRules {
		if !r.Matches(t.Level, srv.Key, m.tool, a.Type) {
			continue
		}
		standing, err := f.standingApproval(ctx, req.host, req.agentID, srv.Key, m.tool)
		if err != nil {
			return fail(err)
		}
		if standing {
			return nil, nil
		}
		return &hold{rule: r, agent: a, tool: t}, nil
	}
	return nil, nil
}

// approvalRefusal is the refusal of a held call that was not approved.
func approvalRefusal(m *message, srv store.Server, h *hold, c store.HeldCall) *refusal {
	if c.Status == store.HeldDenied {
		who := c.DecidedBy
		if who == "" {
			who = "a person"
		}
		return safetyRefusal(m, srv, h.tool, ReasonApprovalDenied, ErrCodeDenied,
			fmt.Sprintf("%s denied it", who), "Do not call it again unless that person asks you to.",
			fmt.Sprintf("denied by %s via %s", who, c.Channel), map[string]any{"approval": c.ID})
	}
	timeout := h.rule.Timeout()
	return safetyRefusal(m, srv, h.tool, ReasonApprovalTimedOut, ErrCodeDenied,
		fmt.Sprintf("it needs a person's approval and nobody approved it within %s", timeout),
		"Ask the person to watch for the approval request, then call the tool again.",
		fmt.Sprintf("not approved within %s", timeout), map[string]any{"approval": c.ID})
}

// holdForApproval applies a decision's hold to the request: it stores and announces the held
// call, keeps the client's request alive and waits for the outcome. It returns the writer the
// rest of the answer goes to (an event stream already open when the client accepts one), the
// function that completes that answer, and a refusal unless the call was approved (then
// entry's reason names the approver).
func (p *Proxy) holdForApproval(w http.ResponseWriter, r *http.Request, req request, d decision, entry *audit.Entry) (http.ResponseWriter, func(), *refusal) {
	noop := func() {}
	m, h := req.msg, d.hold
	if p.cfg.Approvals == nil {
		rf := storeFailed(errors.New("a call must be held for approval but the proxy has no store for held calls"))
		return w, noop, &rf
	}
	now := time.Now()
	args := ""
	if len(m.arguments) > 0 && string(m.arguments) != "null" {
		args = string(m.arguments)
	}
	call := store.HeldCall{ID: newHeldID(), Host: req.host, AgentID: req.agentID, AgentName: h.agent.Name, UserID: req.userID,
		Server: d.server.Key, Tool: m.tool, Arguments: args, Approvers: h.rule.Approvers, StandingHours: h.rule.StandingHours,
		CreatedAt: now, ExpiresAt: now.Add(h.rule.Timeout())}
	ctx, cancel := context.WithTimeout(r.Context(), backendTimeout)
	call, err := p.cfg.Approvals.CreateHeldCall(ctx, call)
	cancel()
	if err != nil {
		rf := storeFailed(err)
		return w, noop, &rf
	}
	inClient := p.asksInClient(r, req, d) // elicitation.go
	how := ""
	if inClient {
		how = ", asked in their client (elicitation)"
	}
	p.auditApproval(r.Context(), entry, call, "held", "", fmt.Sprintf("held for approval until %s by %s%s",
		call.ExpiresAt.UTC().Format(time.RFC3339), approversText(call.Approvers), how))
	if n := p.cfg.ApprovalNotifier; n != nil && !inClient {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n.NotifyHeld(ctx, call)
		}()
	}

	out, finish := w, noop
	var stream *heldStream
	if acceptsEventStream(r.Header) {
		stream = startHeldStream(w, m, h.agent.Name)
		out, finish = stream, stream.finish
	}
	if inClient {
		if ev, err := p.elicitationRequest(r, req, call, displayName(d.server)); err != nil {
			p.log.Error("proxy: could not ask the agent's human in their client", "host", req.host, "id", call.ID, "err", err)
		} else {
			stream.send(ev)
		}
	}
	final := p.waitForDecision(r.Context(), call, stream)
	switch final.Status {
	case store.HeldApproved:
		entry.Reason = fmt.Sprintf("approved by %s via %s", final.DecidedBy, final.Channel)
		p.auditApproval(r.Context(), entry, final, "approved", final.DecidedBy, "via "+final.Channel)
		return out, finish, nil
	case store.HeldDenied:
		p.auditApproval(r.Context(), entry, final, "denied", final.DecidedBy, "via "+final.Channel)
	default:
		p.auditApproval(r.Context(), entry, final, "expired", "", "not decided in time")
	}
	return out, finish, approvalRefusal(m, d.server, h, final)
}

// waitForDecision waits until the held call c is decided, its wait ends (it is expired), or
// the client goes away (it is expired too); it renews the call's heartbeat meanwhile and keeps
// the stream alive. It returns the call as decided.
func (p *Proxy) waitForDecision(ctx context.Context, c store.HeldCall, stream *heldStream) store.HeldCall {
	keepAlive := p.cfg.ApprovalKeepAlive
	if keepAlive <= 0 {
		keepAlive = DefaultApprovalKeepAlive
	}
	poll, keep := time.NewTicker(heldPoll), time.NewTicker(keepAlive)
	defer poll.Stop()
	defer keep.Stop()
	deadline := time.NewTimer(time.Until(c.ExpiresAt))
	defer deadline.Stop()
	expire := func() store.HeldCall {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendTimeout)
		defer cancel()
		got, err := p.cfg.Approvals.DecideHeldCall(ctx, c.Host, c.ID, store.HeldExpired, "", "", time.Now())
		if err != nil && !errors.Is(err, store.ErrConflict) {
			p.log.Error("proxy: could not expire a held call", "host", c.Host, "id", c.ID, "err", err)
		}
		if got.Status == "" {
			got = c
		}
		if got.Status == store.HeldPending {
			got.Status = store.HeldExpired
		}
		return got
	}
	for {
		select {
		case <-ctx.Done():
			return expire()
		case <-deadline.C:
			return expire()
		case <-keep.C:
			stream.keepAlive()
		case <-poll.C:
			pctx, cancel := context.WithTimeout(ctx, backendTimeout)
			got, err := p.cfg.Approvals.HeartbeatHeldCall(pctx, c.Host, c.ID, time.Now())
			cancel()
			if err != nil {
				p.log.Warn("proxy: could not read a held call", "host", c.Host, "id", c.ID, "err", err)
				continue
			}
			if got.Status != store.HeldPending {
				return got
			}
		}
	}
}

// auditApproval records a step of a held call: its audit entry names the call, the step
// (action), who decided (actor) and how.
func (p *Proxy) auditApproval(ctx context.Context, e *audit.Entry, c store.HeldCall, action, actor, reason string) {
	if p.cfg.Audit == nil {
		return
	}
	rec := *e
	rec.Time, rec.Decision, rec.Action, rec.Actor, rec.Object, rec.Reason = time.Now(), audit.Approval, action, actor, "held_call:"+c.ID, reason
	p.describe(context.WithoutCancel(ctx), &rec)
	p.cfg.Audit.Record(rec)
}

func approversText(approvers []string) string {
	if len(approvers) == 0 {
		return "the agent's human"
	}
	return strings.Join(approvers, ", ")
}

func newHeldID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "hc_" + hex.EncodeToString(b)
}

// acceptsEventStream: the request's Accept names text/event-stream.
func acceptsEventStream(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// heldStream is the answer to a held request once it became an event stream: keep-alives
// while the call waits, then the rest of the answer as events. What the handler writes into
// it afterwards (the upstream's answer, or a refusal) is passed on as it is when it is itself an
// event stream, or becomes one message event when it is a JSON body.
type heldStream struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	id       json.RawMessage
	token    json.RawMessage // the call's progressToken (nil: none)
	who      string
	progress int

	hdr         http.Header
	status      int
	wroteHeader bool
	passThrough bool
	buf         bytes.Buffer
}

func startHeldStream(w http.ResponseWriter, m *message, agentName string) *heldStream {
	s := &heldStream{w: w, rc: http.NewResponseController(w), id: m.id, token: progressTokenOf(m.params), who: agentName, hdr: http.Header{}}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush()
	return s
}

// keepAlive writes a progress notification (when the call has a progressToken) or a comment.
func (s *heldStream) keepAlive() {
	if s == nil {
		return
	}
	var out []byte
	if s.token != nil {
		s.progress++
		data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "notifications/progress",
			"params": map[string]any{"progressToken": s.token, "progress": s.progress, "message": "waiting for a person to approve the call"}})
		if err != nil {
			return
		}
		out = sse.AppendEvent(nil, sse.Event{Type: "message", Data: data})
	} else {
		out = []byte(": waiting for a person to approve the call\n\n")
	}
	_, _ = s.w.Write(out)
	_ = s.rc.Flush()
}

// send writes one event of the gateway's own (a question to the client) at once.
func (s *heldStream) send(event []byte) {
	_, _ = s.w.Write(event)
	_ = s.rc.Flush()
}

func (s *heldStream) Header() http.Header { return s.hdr }

func (s *heldStream) WriteHeader(code int) {
	if s.wroteHeader {
		return
	}
	s.wroteHeader, s.status = true, code
	mt := mediaTypeOf(s.hdr.Get("Content-Type"))
	s.passThrough = mt == "text/event-stream"
}

func (s *heldStream) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	if s.passThrough {
		return s.w.Write(b)
	}
	if s.buf.Len()+len(b) > maxFilterBytes {
		return 0, errTooLarge
	}
	return s.buf.Write(b)
}

func (s *heldStream) Flush() {
	if s.passThrough {
		_ = s.rc.Flush()
	}
}

// Unwrap is the client's writer (http.ResponseController, telemetry).
func (s *heldStream) Unwrap() http.ResponseWriter { return s.w }

// finish writes a JSON answer as one event; any other answer becomes a JSON-RPC error event.
func (s *heldStream) finish() {
	if s.passThrough {
		return
	}
	body := bytes.TrimSpace(s.buf.Bytes())
	var event []byte
	switch {
	case len(body) > 0 && body[0] == '{' && json.Valid(body):
		event = sse.AppendEvent(nil, sse.Event{Type: "message", Data: body})
	case s.status >= 400 || len(body) > 0:
		msg := strings.TrimSpace(string(body))
		if msg == "" || len(msg) > 512 {
			msg = http.StatusText(s.status)
		}
		event = rpcErrorEvent(s.id, ErrCodeUpstream, msg)
	default:
		event = rpcErrorEvent(s.id, ErrCodeUpstream, "the call was approved but its server sent no answer")
	}
	_, _ = s.w.Write(event)
	_ = s.rc.Flush()
}

// progressTokenOf is params._meta.progressToken (nil: none).
func progressTokenOf(params json.RawMessage) json.RawMessage {
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return nil
	}
	t := bytes.TrimSpace(p.Meta.ProgressToken)
	if len(t) == 0 || (t[0] != '"' && (t[0] < '0' || t[0] > '9') && t[0] != '-') {
		return nil
	}
	return t
}
