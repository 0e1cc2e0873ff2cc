package tests

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestMetricsListenServesPrometheusText(t *testing.T) {
	metrics := freeAddr(t)
	p := start(t, "--data-dir", t.TempDir(), "--metrics-listen", metrics)
	// An MCP request without a token: a denial, counted.
	resp, err := http.Post(p.url+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /mcp without a token = %d", resp.StatusCode)
	}
	_ = resp.Body.Close()

	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body = readAll(resp)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics Content-Type %q", resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "trustgate_decisions_total") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{
		"# TYPE go_goroutines gauge",
		"process_resident_memory_bytes",
		`trustgate_decisions_total{decision="denied",host="default"`,
		`target_info{service_name="trustgate"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	if code, body := getJSON(t, p.url+"/metrics"); code == http.StatusOK && strings.Contains(body, "go_goroutines") {
		t.Error("/metrics is served on the main listener")
	}
	p.stopCleanly(t)
}

func TestOTLPEndpointReceivesSpans(t *testing.T) {
	var mu sync.Mutex
	var names []string
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
	}))
	defer collector.Close()

	p := start(t, "--data-dir", t.TempDir(), "--metrics-listen", "", "--otlp-endpoint", collector.URL)
	resp, err := http.Post(p.url+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	resp, err = http.Get(p.url + "/api/v1/hosts")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	p.stopCleanly(t) // flushes the spans
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(names, ",")
	if !strings.Contains(got, "mcp") || !strings.Contains(got, "admin GET") {
		t.Fatalf("the collector received spans %q, want an mcp and an admin GET span", got)
	}
}

func TestServeHelpNamesObservabilityFlags(t *testing.T) {
	out, err := run(t, 10*time.Second, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--metrics-listen", "127.0.0.1:9464", "TRUSTGATE_METRICS_LISTEN", "--otlp-endpoint", "TRUSTGATE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestBadObservabilityFlagsGetAClearError(t *testing.T) {
	dir := t.TempDir()
	held := freeAddr(t)
	l, err := net.Listen("tcp", held)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	main := freeAddr(t)
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"OTLP endpoint without scheme", []string{"--listen", freeAddr(t), "--otlp-endpoint", "collector:4318"}, []string{"OTLP endpoint", "http://collector:4318"}},
		{"metrics on the main listener", []string{"--listen", main, "--metrics-listen", main}, []string{"--metrics-listen must differ from --listen"}},
		{"metrics address taken", []string{"--listen", freeAddr(t), "--metrics-listen", held}, []string{held, "--metrics-listen"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := run(t, 30*time.Second, append([]string{"serve", "--data-dir", dir}, c.args...)...)
			if err == nil {
				t.Fatalf("exited 0:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
