package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/trustgate/trustgate/telemetry"
)

// collector is an OTLP/HTTP endpoint that keeps the span names it receives, by URL path.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	spans map[string][]string
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{spans: map[string][]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not OTLP protobuf", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans[r.URL.Path] = append(c.spans[r.URL.Path], s.GetName())
				}
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) received(path string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spans[path]
}

// oneCall makes one proxied-call span and shuts the telemetry down (which must flush it).
func oneCall(t *testing.T, tel *telemetry.Telemetry) {
	t.Helper()
	_, call := tel.Proxy().Start(context.Background(), http.Header{}, "acme")
	call.Describe("linear", "a_1", "tools/call", "create_issue")
	call.Forward(http.Header{})
	call.End(http.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestOTLPEndpointFromConfig(t *testing.T) {
	c := newCollector(t)
	tel, err := telemetry.New(context.Background(), telemetry.Config{OTLPEndpoint: c.URL + "/otel/"})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() {
		t.Fatal("an OTLP endpoint did not turn tracing on")
	}
	oneCall(t, tel)
	if got := c.received("/otel/v1/traces"); len(got) != 1 || got[0] != "mcp tools/call" {
		t.Fatalf("collector received %v", c.spans)
	}
}

func TestOTLPEndpointFromEnvironment(t *testing.T) {
	c := newCollector(t)
	t.Setenv(telemetry.EnvOTLPEndpoint, c.URL)
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	oneCall(t, tel)
	if got := c.received("/v1/traces"); len(got) != 1 {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT: collector received %v", c.spans)
	}

	t.Setenv(telemetry.EnvOTLPTracesEndpoint, c.URL+"/custom/path")
	tel, err = telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	oneCall(t, tel)
	if got := c.received("/custom/path"); len(got) != 1 {
		t.Fatalf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector received %v", c.spans)
	}
}

func TestNoEndpointNoTracing(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if tel.Tracing() {
		t.Fatal("tracing is on without an endpoint")
	}
	// The client's trace context still reaches the upstream unchanged.
	in := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	ctx, call := tel.Proxy().Start(context.Background(), in, "acme")
	if got := telemetry.TraceID(ctx); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("TraceID = %q, want the client's", got)
	}
	if got := telemetry.TraceID(context.Background()); got != "" {
		t.Errorf("TraceID without a span = %q", got)
	}
	out := http.Header{}
	call.Forward(out)
	call.End(http.StatusOK)
	if out.Get("Traceparent") != in.Get("Traceparent") {
		t.Errorf("upstream traceparent %q, want the client's", out.Get("Traceparent"))
	}
	h := &struct{ http.Handler }{http.NotFoundHandler()}
	if tel.Handler("admin", h) != http.Handler(h) {
		t.Error("without tracing, the admin handler is wrapped anyway")
	}
}

func TestBadOTLPEndpoint(t *testing.T) {
	for _, endpoint := range []string{"collector:4318", "ftp://collector", "http://user:pw@collector:4318"} {
		_, err := telemetry.New(context.Background(), telemetry.Config{OTLPEndpoint: endpoint})
		if err == nil {
			t.Errorf("%q accepted", endpoint)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestNilRecordsNothing(t *testing.T) {
	var tel *telemetry.Telemetry
	ctx, call := tel.Proxy().Start(context.Background(), http.Header{}, "acme")
	call.Describe("s", "a", "tools/call", "t")
	call.Decide(telemetry.Denied, "no")
	call.Forward(http.Header{})
	call.UpstreamStatus(200)
	call.End(200)
	tel.Authz().Observe(ctx, telemetry.AuthzCheck, time.Millisecond, nil)
	if call.Decided() || tel.Tracing() || tel.Shutdown(ctx) != nil {
		t.Fatal("a nil Telemetry did something")
	}
}

func TestMetricsText(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{ServiceVersion: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	tel.Authz().Observe(context.Background(), telemetry.AuthzCheck, 300*time.Microsecond, nil)
	long := strings.Repeat("é", 300)
	_, call := tel.Proxy().Start(context.Background(), http.Header{}, "acme")
	call.Describe("linear", "a_1", long, long) // an unknown method, counted as "other"
	call.End(http.StatusOK)

	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`trustgate_authz_duration_seconds_bucket{operation="check",outcome="ok",le="0.0005"} 1`,
		`trustgate_authz_duration_seconds_bucket{operation="check",outcome="ok",le="0.00025"} 0`,
		`trustgate_decisions_total{decision="denied",host="acme",method="other",server="linear"} 1`,
		`target_info{service_name="trustgate",service_version="1.2.3"`,
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "é") {
		t.Error("a client-supplied method became a label value")
	}
}

// TestRelationshipLagGauges: the gauges follow what the writer knows at each collection, and
// a process that has not read the outbox says so instead of reporting no host behind.
func TestRelationshipLagGauges(t *testing.T) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	lag := telemetry.RelationshipLag{Unknown: true}
	if err := tel.ObserveRelationshipLag(func() telemetry.RelationshipLag { return lag }); err != nil {
		t.Fatal(err)
	}
	scrape := func() string {
		rec := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	want := func(text string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(text, "\n"+l+"\n") {
				t.Errorf("/metrics lacks %q", l)
			}
		}
	}
	want(scrape(), "trustgate_relationships_unknown 1", "trustgate_relationships_hosts_behind 0")
	lag = telemetry.RelationshipLag{HostsBehind: 2, SetAside: 3, OldestAge: 1500 * time.Millisecond}
	want(scrape(), "trustgate_relationships_unknown 0", "trustgate_relationships_hosts_behind 2",
		"trustgate_relationships_set_aside 3", "trustgate_relationships_oldest_pending_age_seconds 1.5")
}

// BenchmarkCall is the cost of one proxied message's telemetry without trace export.
func BenchmarkCall(b *testing.B) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	p := tel.Proxy()
	in := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		_, call := p.Start(context.Background(), in, "acme")
		call.Describe("linear", "a_1", "tools/call", "create_issue")
		call.Forward(http.Header{})
		call.UpstreamStatus(200)
		call.End(http.StatusOK)
	}
}
