package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsOnAnAddressOfTheirOwn(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := func(metrics string, optional bool) Config {
		return Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), MetricsListen: metrics, MetricsListenOptional: optional,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}

	// An address the operator chose must be free.
	if _, err := New(context.Background(), cfg(held.Addr().String(), false)); err == nil || !strings.Contains(err.Error(), "--metrics-listen") {
		t.Fatalf("taken --metrics-listen: %v", err)
	}
	// The default one is skipped when taken.
	g, err := New(context.Background(), cfg(held.Addr().String(), true))
	if err != nil {
		t.Fatalf("taken default metrics address: %v", err)
	}
	if g.MetricsAddr() != "" {
		t.Errorf("metrics served on %s", g.MetricsAddr())
	}
	g.close()

	g, err = New(context.Background(), cfg("127.0.0.1:0", false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	defer func() { cancel(); <-runErr }()
	waitStatus(t, "http://"+g.Addr()+"/readyz", http.StatusOK)

	// An MCP request, so that trustgate's own metrics exist.
	resp, err := http.Post("http://"+g.Addr()+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	code, body := get(t, "http://"+g.MetricsAddr()+"/metrics")
	for _, want := range []string{"go_goroutines", `trustgate_decisions_total{decision="denied",host="default"`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics = %d, lacks %s", code, want)
		}
	}
	if code, body := get(t, "http://"+g.Addr()+"/metrics"); code == http.StatusOK || strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on the main listener = %d", code)
	}
}
