package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Decision is the outcome of one proxied MCP message.
type Decision string

const (
	// Allowed: the message was forwarded to the upstream.
	Allowed Decision = "allowed"
	// Denied: trustgate refused it (authentication, authorization or an invalid message).
	Denied Decision = "denied"
	// Error: it could not be decided or delivered (authorization backend, store or upstream
	// failed); nothing was forwarded, or the upstream failed.
	Error Decision = "error"
)

// Metric names as Prometheus shows them (OpenTelemetry names: dots for underscores, without
// the unit and _total suffixes).
const (
	MetricDecisions        = "trustgate_decisions_total"
	MetricDecisionDuration = "trustgate_decision_duration_seconds"
	MetricRequestDuration  = "trustgate_request_duration_seconds"
	MetricAuthzDuration    = "trustgate_authz_duration_seconds"
)

// Span attribute keys of a proxied message.
const (
	AttrHost           = attribute.Key("trustgate.host")
	AttrServer         = attribute.Key("trustgate.server")
	AttrAgent          = attribute.Key("trustgate.agent")
	AttrMethod         = attribute.Key("mcp.method.name") // OpenTelemetry semantic conventions for MCP
	AttrTool           = attribute.Key("gen_ai.tool.name")
	AttrDecision       = attribute.Key("trustgate.decision")
	AttrReason         = attribute.Key("trustgate.reason")
	AttrUpstreamStatus = attribute.Key("trustgate.upstream.status_code")
	AttrStatus         = attribute.Key("http.response.status_code")
)

// Metric labels.
const (
	labelHost     = attribute.Key("host")
	labelServer   = attribute.Key("server")
	labelMethod   = attribute.Key("method")
	labelDecision = attribute.Key("decision")
)

// maxAttrLen bounds client-supplied text (method, tool, reason) on spans.
const maxAttrLen = 256

// Proxy is the MCP proxy's spans and metrics. A nil *Proxy records nothing.
//
// Metric labels are bounded: host and server are keys that exist in the store, method is one of
// the MCP methods trustgate knows (others are "other"), decision is one of three. The agent and
// the tool are on spans only: agents are as many as clients register and tool names are chosen
// by upstreams, so either would let the number of series grow without bound.
type Proxy struct {
	tracer           trace.Tracer
	propagator       propagation.TextMapPropagator
	decisions        metric.Int64Counter
	decisionDuration metric.Float64Histogram
	requestDuration  metric.Float64Histogram

	// labels are the measurement options of each combination of labels seen, made once
	// (attribute sets are sorted and allocated when made); bounded by maxLabelSets.
	mu     sync.Mutex
	labels map[callLabels]*labelOptions
}

// maxLabelSets bounds Proxy.labels; when full it starts over.
const maxLabelSets = 4096

// callLabels are the metric labels of a call.
type callLabels struct {
	host, server, method string
	decision             Decision
}

// labelOptions are the options a call's measurements are recorded with.
type labelOptions struct {
	decisions        []metric.AddOption    // host, server, method, decision
	decisionDuration []metric.RecordOption // method, decision
	requestDuration  []metric.RecordOption // host, server, method
}

// optionsOf returns the measurement options of l, made on first use.
func (p *Proxy) optionsOf(l callLabels) *labelOptions {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.labels[l]; ok {
		return o
	}
	host, server := labelHost.String(l.host), labelServer.String(l.server)
	m, d := labelMethod.String(l.method), labelDecision.String(string(l.decision))
	o := &labelOptions{
		decisions:        []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(host, server, m, d))},
		decisionDuration: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(m, d))},
		requestDuration:  []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(host, server, m))},
	}
	if p.labels == nil || len(p.labels) >= maxLabelSets {
		p.labels = make(map[callLabels]*labelOptions)
	}
	p.labels[l] = o
	return o
}

func newProxy(tracer trace.Tracer, meter metric.Meter, prop propagation.TextMapPropagator) (*Proxy, error) {
	p := &Proxy{tracer: tracer, propagator: prop}
	var err error
	if p.decisions, err = meter.Int64Counter("trustgate.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("MCP messages decided by the proxy, by host, server, method and decision (allowed, denied, error)")); err != nil {
		return nil, err
	}
	if p.decisionDuration, err = newHistogram(meter, "trustgate.decision.duration",
		"Time from a message's arrival to its decision (authentication, authorization, and for allowed messages everything up to forwarding), by method and decision"); err != nil {
		return nil, err
	}
	if p.requestDuration, err = newHistogram(meter, "trustgate.request.duration",
		"End-to-end time of forwarded messages, until the upstream's response (or stream) has been relayed, by host, server and method"); err != nil {
		return nil, err
	}
	return p, nil
}

// Call is the telemetry of one proxied MCP request, from arrival to the end of its response.
// It belongs to the request's goroutine. Methods on a nil *Call do nothing.
type Call struct {
	p                           *Proxy
	span                        trace.Span
	start                       time.Time
	host, server, agent, method string
	tool                        string
	decision                    Decision
	reason                      string
	decidedAfter                time.Duration
	forwarded                   bool
	upstreamStatus              int
}

// Start begins the call of a request to host: a server span that continues the W3C trace
// context in header, if any. The returned context carries the span.
func (p *Proxy) Start(ctx context.Context, header http.Header, host string) (context.Context, *Call) {
	if p == nil {
		return ctx, nil
	}
	c := &Call{p: p, start: time.Now(), host: host}
	ctx = p.propagator.Extract(ctx, propagation.HeaderCarrier(header))
	ctx, c.span = p.tracer.Start(ctx, "mcp", trace.WithSpanKind(trace.SpanKindServer))
	return ctx, c
}

// Describe names what the request is about; empty arguments leave what was known. method is
// the JSON-RPC method, or "GET", "DELETE" or "response" for messages that have none.
func (c *Call) Describe(server, agent, method, tool string) {
	if c == nil {
		return
	}
	if server != "" {
		c.server = server
	}
	if agent != "" {
		c.agent = agent
	}
	if method != "" && method != c.method {
		c.method = truncate(method)
		c.span.SetName("mcp " + boundedMethod(c.method))
	}
	if tool != "" {
		c.tool = truncate(tool)
	}
}

// Decide records the decision. The first one counts, except that an Error after Allowed
// replaces it (the upstream failed after the message was forwarded).
func (c *Call) Decide(d Decision, reason string) {
	if c == nil {
		return
	}
	switch {
	case c.decision == "":
		c.decidedAfter = time.Since(c.start)
	case c.decision == Allowed && d == Error:
	default:
		return
	}
	c.decision, c.reason = d, truncate(reason)
}

// Decided reports whether a decision was recorded.
func (c *Call) Decided() bool { return c != nil && c.decision != "" }

// Forward marks the message allowed and forwarded, and writes the trace context (traceparent,
// tracestate) into the upstream request's header.
func (c *Call) Forward(upstream http.Header) {
	if c == nil {
		return
	}
	c.Decide(Allowed, "")
	c.forwarded = true
	c.p.propagator.Inject(trace.ContextWithSpan(context.Background(), c.span), propagation.HeaderCarrier(upstream))
}

// UpstreamStatus records the HTTP status the upstream answered with.
func (c *Call) UpstreamStatus(code int) {
	if c != nil {
		c.upstreamStatus = code
	}
}

// End finishes the call: status is the HTTP status the client got. It counts the decision,
// records the latencies and ends the span. A call without a decision counts as Error when
// status is 5xx and as Denied otherwise.
func (c *Call) End(status int) {
	if c == nil {
		return
	}
	took := time.Since(c.start)
	if c.decision == "" {
		d := Denied
		if status >= 500 {
			d = Error
		}
		c.Decide(d, "HTTP "+strconv.Itoa(status))
	}
	ctx := context.Background()
	opts := c.p.optionsOf(callLabels{host: c.host, server: c.server, method: boundedMethod(c.method), decision: c.decision})
	c.p.decisions.Add(ctx, 1, opts.decisions...)
	c.p.decisionDuration.Record(ctx, c.decidedAfter.Seconds(), opts.decisionDuration...)
	if c.forwarded {
		c.p.requestDuration.Record(ctx, took.Seconds(), opts.requestDuration...)
	}
	if c.span.IsRecording() {
		attrs := []attribute.KeyValue{AttrHost.String(c.host), AttrDecision.String(string(c.decision))}
		for _, kv := range []attribute.KeyValue{AttrServer.String(c.server), AttrAgent.String(c.agent), AttrMethod.String(c.method), AttrTool.String(c.tool), AttrReason.String(c.reason)} {
			if kv.Value.AsString() != "" {
				attrs = append(attrs, kv)
			}
		}
		if c.upstreamStatus != 0 {
			attrs = append(attrs, AttrUpstreamStatus.Int(c.upstreamStatus))
		}
		if status != 0 {
			attrs = append(attrs, AttrStatus.Int(status))
		}
		c.span.SetAttributes(attrs...)
		if c.decision == Error {
			c.span.SetStatus(codes.Error, c.reason)
		}
	}
	c.span.End()
}

// truncate cuts s to at most maxAttrLen bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxAttrLen {
		return s
	}
	cut := maxAttrLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// knownMethods are the MCP methods (client to server, and the notifications clients send) that
// metrics and span names name; any other method is "other".
var knownMethods = map[string]bool{
	"GET": true, "DELETE": true, "response": true, // not methods: requests without one
	"initialize": true, "ping": true, "server/discover": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/read": true, "resources/templates/list": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true, "completion/complete": true, "logging/setLevel": true,
	"tasks/get": true, "tasks/result": true, "tasks/list": true, "tasks/cancel": true,
	"notifications/initialized": true, "notifications/cancelled": true, "notifications/progress": true,
	"notifications/roots/list_changed": true, "notifications/tasks/status": true,
}

// boundedMethod is method when trustgate knows it, "" when unknown yet, else "other".
func boundedMethod(method string) string {
	if method == "" || knownMethods[method] {
		return method
	}
	return "other"
}

// TraceID is the W3C trace id (32 hex digits) of the span in ctx, "" when there is none; for
// log and audit entries that point at a trace. A client's trace context counts even when
// spans are not exported.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}
