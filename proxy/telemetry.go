package proxy

import (
	"net/http"
	"strconv"

	"github.com/trustgate/trustgate/telemetry"
	"github.com/trustgate/trustgate/tenant"
)

// Telemetry of a request (Config.Telemetry; nil records nothing). serveMCP starts the call and
// ends it when it returns; the points where the proxy answers reach the call through the
// ResponseWriter they answer with (or the forward, in the ReverseProxy hooks):
//
//   - describe (serveMCP, once decided): what the message is about;
//   - writeRPCError: every JSON-RPC error answer is a decision (ErrCodeUnavailable and
//     ErrCodeUpstream are errors, the rest denials), the message its reason;
//   - Forward (rewrite): allowed, with the trace context written into the upstream request;
//   - UpstreamStatus (modifyResponse): the upstream's HTTP status;
//   - anything answered otherwise (401, the Origin check, a dropped notification) is decided
//     from its HTTP status when the call ends.

// observed is the ResponseWriter of a request with telemetry: it carries the call and the
// status the client got.
type observed struct {
	http.ResponseWriter
	call   *telemetry.Call
	status int
}

func (o *observed) WriteHeader(code int) {
	if o.status == 0 && code >= 200 {
		o.status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	return o.ResponseWriter.Write(b)
}

// Flush and Unwrap keep flushing (SSE) and http.ResponseController working.
func (o *observed) Flush() { _ = http.NewResponseController(o.ResponseWriter).Flush() }

func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// startTelemetry begins the request's call: a span continuing the client's trace context.
func (p *Proxy) startTelemetry(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	tp := p.cfg.Telemetry.Proxy()
	if tp == nil {
		return w, r
	}
	ctx, call := tp.Start(r.Context(), r.Header, tenant.FromContext(r.Context()))
	if r.Method != http.MethodPost {
		call.Describe("", "", r.Method, "")
	}
	return &observed{ResponseWriter: w, call: call}, r.WithContext(ctx)
}

// endTelemetry ends the call of the request answered through w.
func endTelemetry(w http.ResponseWriter) {
	o, ok := w.(*observed)
	if !ok {
		return
	}
	if !o.call.Decided() {
		d, reason := telemetry.Denied, statusReasons[o.status]
		if o.status >= 500 {
			d = telemetry.Error
		}
		if reason == "" {
			reason = "HTTP " + strconv.Itoa(o.status)
		}
		o.call.Decide(d, reason)
	}
	o.call.End(o.status)
}

// statusReasons explain the answers that are not JSON-RPC errors.
var statusReasons = map[int]string{
	http.StatusUnauthorized:     "unauthenticated: no valid access token",
	http.StatusForbidden:        "origin not allowed",
	http.StatusAccepted:         "notification denied and dropped",
	http.StatusMethodNotAllowed: "HTTP method not allowed",
	http.StatusNotFound:         "no such MCP server path",
	http.StatusBadRequest:       "unreadable request body",
}

func callOf(w http.ResponseWriter) *telemetry.Call {
	for w != nil {
		if o, ok := w.(*observed); ok {
			return o.call
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// describe tells the call which agent, server and message the request is about.
func describe(w http.ResponseWriter, m *message, agentID, server string) {
	call := callOf(w)
	if call == nil {
		return
	}
	var method, tool string
	if m != nil {
		method, tool = m.label(), m.tool
	}
	call.Describe(server, agentID, method, tool)
}

// decidedByError records the decision of a JSON-RPC error answer.
func decidedByError(w http.ResponseWriter, code int, msg string) {
	d := telemetry.Denied
	if code == ErrCodeUnavailable || code == ErrCodeUpstream {
		d = telemetry.Error
	}
	callOf(w).Decide(d, msg)
}
