package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/telemetry"
)

// newTelemetry is a Telemetry for one test; spans, when given, records every span.
func newTelemetry(t *testing.T, spans sdktrace.SpanProcessor) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(context.Background(), telemetry.Config{ServiceVersion: "test", SpanProcessor: spans})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

func withTelemetry(tel *telemetry.Telemetry) func(*proxy.Config) {
	return func(c *proxy.Config) { c.Telemetry = tel }
}

// eventually waits up to 5 seconds for cond: a request's telemetry ends when its handler
// returns, which can be just after the client has read the response.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// scrape reads the /metrics handler's Prometheus text.
func scrape(t *testing.T, tel *telemetry.Telemetry) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams
}

// sample is the value of the series of name with exactly these labels (missing labels are
// ""): a counter's value or a histogram's count; -1 when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	fam := fams[name]
	if fam == nil {
		return -1
	}
next:
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			if l.GetValue() != "" { // an empty label is no label
				got[l.GetName()] = l.GetValue()
			}
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		if len(got) != len(labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsCountDecisionsAndLatency(t *testing.T) {
	tel := newTelemetry(t, nil)
	e := newEnv(t, withTelemetry(tel))
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	if _, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"}); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	if _, err := callText(t, cs, "delete_issue", map[string]any{"id": "1"}); err == nil {
		t.Fatal("delete_issue was allowed")
	}
	e.post("", "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusUnauthorized)

	call := func(decision string) map[string]string {
		return map[string]string{"host": host, "server": serverKey, "method": "tools/call", "decision": decision}
	}
	// A request is counted when its handler returns, which may be just after the client has
	// read the whole response.
	var fams map[string]*dto.MetricFamily
	eventually(t, func() bool {
		fams = scrape(t, tel)
		return sample(fams, telemetry.MetricDecisions, call("allowed")) == 1
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{telemetry.MetricDecisions, call("allowed"), 1},
		{telemetry.MetricDecisions, call("denied"), 1},
		// Unauthenticated: neither server nor method is known yet.
		{telemetry.MetricDecisions, map[string]string{"host": host, "decision": "denied"}, 1},
		{telemetry.MetricDecisionDuration, map[string]string{"method": "tools/call", "decision": "allowed"}, 1},
		{telemetry.MetricDecisionDuration, map[string]string{"method": "tools/call", "decision": "denied"}, 1},
		// Only the forwarded call has an end-to-end latency.
		{telemetry.MetricRequestDuration, map[string]string{"host": host, "server": serverKey, "method": "tools/call"}, 1},
	} {
		if got := sample(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := sample(fams, telemetry.MetricDecisions, map[string]string{"host": host, "server": serverKey, "method": "initialize", "decision": "allowed"}); n != 1 {
		t.Errorf("initialize counted %v times, want 1", n)
	}
	// Buckets reach down to 100µs.
	for _, m := range fams[telemetry.MetricDecisionDuration].GetMetric() {
		if b := m.GetHistogram().GetBucket(); len(b) == 0 || b[0].GetUpperBound() != 0.0001 {
			t.Fatalf("first bucket %v, want 0.0001", b)
		}
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	for name := range fams {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "agent" || l.GetName() == "tool" || l.GetValue() == e.agentID {
					t.Errorf("%s has an unbounded label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// spanAttrs is the string and int attributes of a span.
func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	out := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value.String()
	}
	return out
}

func TestSpansCarryTheDecision(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	e := newEnv(t, withTelemetry(newTelemetry(t, rec)))
	cs := connect(t, e.endpoint(""), e.token(e.endpoint(""), nil))
	if _, err := callText(t, cs, "create_issue", map[string]any{"title": "bug"}); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	if _, err := callText(t, cs, "delete_issue", map[string]any{"id": "1"}); err == nil {
		t.Fatal("delete_issue was allowed")
	}
	if err := e.backend.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := callText(t, cs, "list_issues", nil); err == nil {
		t.Fatal("a call succeeded with the backend down")
	}

	byTool := map[string]sdktrace.ReadOnlySpan{}
	eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "mcp tools/call" {
				byTool[spanAttrs(s)[telemetry.AttrTool]] = s
			}
		}
		return len(byTool) == 3
	})
	want := map[string]map[attribute.Key]string{
		"create_issue": {telemetry.AttrDecision: "allowed", telemetry.AttrUpstreamStatus: "200"},
		"delete_issue": {telemetry.AttrDecision: "denied", telemetry.AttrReason: `trustgate denied tools/call "delete_issue" on tracker: it needs trust level high; this app has medium (your ceiling is high). Reconnect the client and choose trust level high.`},
		"list_issues":  {telemetry.AttrDecision: "error", telemetry.AttrReason: "trustgate could not reach its authorization backend"},
	}
	for tool, attrs := range want {
		s := byTool[tool]
		if s == nil {
			t.Errorf("no span for tools/call %s", tool)
			continue
		}
		got := spanAttrs(s)
		for k, v := range map[attribute.Key]string{telemetry.AttrHost: host, telemetry.AttrServer: serverKey, telemetry.AttrAgent: e.agentID, telemetry.AttrMethod: "tools/call"} {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", tool, k, got[k], v)
			}
		}
		for k, v := range attrs {
			if k == telemetry.AttrReason && strings.HasPrefix(got[k], v) || got[k] == v {
				continue
			}
			t.Errorf("%s: %s = %q, want %q", tool, k, got[k], v)
		}
		if (s.Status().Code == codes.Error) != (attrs[telemetry.AttrDecision] == "error") {
			t.Errorf("%s: span status %v", tool, s.Status())
		}
		if _, ok := got[telemetry.AttrUpstreamStatus]; ok && tool != "create_issue" {
			t.Errorf("%s was not forwarded but has an upstream status", tool)
		}
	}
}

func TestUpstreamContinuesTheTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	e := newEnv(t, withTelemetry(newTelemetry(t, rec)))
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, e.endpoint(""), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+e.token(e.endpoint(""), nil))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	req.Header.Set("Tracestate", "vendor=opaque")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize = %d", resp.StatusCode)
	}

	var span sdktrace.ReadOnlySpan
	eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "mcp initialize" {
				span = s
			}
		}
		return span != nil
	})
	if got := span.SpanContext().TraceID().String(); got != clientTrace {
		t.Errorf("span trace id %s, want the client's %s", got, clientTrace)
	}
	if got := span.Parent().SpanID().String(); got != clientSpan || !span.Parent().IsRemote() {
		t.Errorf("span parent %s, want the client's span %s", got, clientSpan)
	}
	up := e.upHeader.Load()
	if up == nil {
		t.Fatal("nothing reached the upstream")
	}
	want := "00-" + clientTrace + "-" + span.SpanContext().SpanID().String() + "-01"
	if got := up.Get("Traceparent"); got != want {
		t.Errorf("upstream traceparent %q, want %q (the gateway's span as parent)", got, want)
	}
	if got := up.Get("Tracestate"); got != "vendor=opaque" {
		t.Errorf("upstream tracestate %q", got)
	}
}
