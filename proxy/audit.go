package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/telemetry"
)

// The audit log of the proxy: every message gets one entry with its decision. Denials and
// errors are recorded without waiting (a lost entry is logged by the audit log); an allowed
// message is forwarded only once its entry is durable (auditAllowed), and its outcome —
// upstream status and latency — follows as a "result" entry with the same request id.
//
// Config.Audit nil disables the audit log: only unit tests that build a Proxy directly do that;
// the gateway always passes one.

// errAuditMessage is the client-facing error when an allowed message's entry cannot be written.
const errAuditMessage = "trustgate could not write its audit log; the call was not forwarded"

// auditEntry starts the entry of one message: who sent it, what it is, which request.
func auditEntry(r *http.Request, host string, claims accesstoken.AccessClaims, m *message) audit.Entry {
	e := audit.Entry{Host: host, Time: time.Now(), UserID: claims.Subject, ClientID: claims.ClientID,
		RequestID: auditRequestID(r), TraceID: traceID(r), AgentID: claims.AgentID,
		ClientAddr: forwarded.ClientAddrFrom(r.Context())}
	switch {
	case m == nil:
		e.Method = r.Method // GET (the server's stream) or DELETE (end of session)
	default:
		e.Method, e.Tool = m.label(), m.tool
	}
	return e
}

// describe adds what the store knows of the human and the agent (email, client name).
func (p *Proxy) describe(ctx context.Context, e *audit.Entry) {
	if e.AgentID != "" {
		if a, err := p.cfg.Store.GetAgent(ctx, e.Host, e.AgentID); err == nil {
			e.ClientName = a.Name
			if e.ClientID == "" {
				e.ClientID = a.ClientID
			}
		}
	}
	if e.UserID != "" {
		if u, err := p.cfg.Store.GetUser(ctx, e.Host, e.UserID); err == nil {
			e.UserEmail = u.Email
		}
	}
}

// auditReject records a message that is not forwarded (decision audit.Denied or audit.Error).
func (p *Proxy) auditReject(ctx context.Context, e *audit.Entry, d audit.Decision, reason string) {
	if p.cfg.Audit == nil || e == nil {
		return
	}
	rec := *e
	rec.Decision, rec.Reason = d, reason
	p.describe(ctx, &rec)
	p.cfg.Audit.Record(rec)
}

// auditAllowed makes the entry of an allowed message durable, or returns the refusal that
// answers it: no audit, no forwarding.
func (p *Proxy) auditAllowed(ctx context.Context, fw *forward) *refusal {
	if p.cfg.Audit == nil {
		return nil
	}
	e := &fw.entry
	e.Decision = audit.Allowed
	p.describe(ctx, e)
	if m := fw.msg; m != nil && m.toolCall {
		if h, err := p.cfg.Store.GetHost(ctx, fw.host); err == nil && h.Settings.AuditArguments {
			e.Arguments = audit.RedactArguments(m.arguments, 0)
		}
	}
	if err := p.cfg.Audit.Append(ctx, *e); err != nil {
		return &refusal{form: formReject, status: http.StatusServiceUnavailable, code: ErrCodeUnavailable, message: errAuditMessage,
			logMsg: "proxy: audit log unavailable; not forwarding", logLevel: slog.LevelError, cause: err}
	}
	fw.forwardedAt = time.Now()
	return nil
}

// auditResult records the outcome of a forwarded message without waiting.
func (p *Proxy) auditResult(fw *forward) {
	if p.cfg.Audit == nil {
		return
	}
	e := fw.entry
	e.Time, e.Decision, e.Arguments = time.Now(), audit.Result, ""
	e.UpstreamStatus = fw.upstreamStatus
	e.LatencyMS = time.Since(fw.forwardedAt).Milliseconds()
	e.Reason = fw.upstreamFailure
	if e.Reason == "" && fw.upstreamStatus == 0 {
		e.Reason = "the client went away before the upstream answered"
	}
	if note := fw.dlp.auditNote(); note != "" { // resultfilter.go: kinds and counts only
		e.Reason = strings.TrimPrefix(e.Reason+"; "+note, "; ")
	}
	p.cfg.Audit.Record(e)
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// auditRequestID is the client's X-Request-Id when it is reasonable, else a new random id.
func auditRequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); requestIDRE.MatchString(id) {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var traceparentRE = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)

// traceID is the trace id of the request's span, else of its W3C traceparent header, if any.
func traceID(r *http.Request) string {
	if id := telemetry.TraceID(r.Context()); id != "" {
		return id // the span's (continuing the client's trace when it sent one)
	}
	if m := traceparentRE.FindStringSubmatch(r.Header.Get("Traceparent")); m != nil {
		return m[1]
	}
	return ""
}
