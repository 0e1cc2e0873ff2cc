package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/store/cache"
	"github.com/trustgate/trustgate/telemetry"
)

// BenchmarkPipeline is one allowed tools/call through the gateway's real handler over loopback
// HTTP (real embedded SpiceDB, the trust level's decision cached as in normal operation, the
// test upstream in this process), first with the host's safety stages off (plain), then with
// every stage on (every_stage): the arguments validated against the tool's approved input
// schema, a token taken from an in-memory rate limit far above what the run spends, an
// approval rule that does not match the call, and the result filtered by DLP in redact mode.
// The difference between the two is what the pipeline adds to a call.
//
// The proxy is configured as the gateway configures it (gateway.go): the store's hot-path
// reads through the never-stale control-plane cache (store/cache), the trust level's answers
// through the decision cache, and telemetry on (metrics; spans without an exporter), so that
// its allocations and CPU are what a call costs the gateway.
func BenchmarkPipeline(b *testing.B) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	e := newEnv(b, func(cfg *proxy.Config) {
		decisions, err := authzserver.NewDecisionCache(context.Background(), cfg.Backend, 0)
		if err != nil {
			b.Fatal(err)
		}
		cfg.Backend = authzserver.NewMetrics(decisions, tel.Authz())
		cfg.Store = cache.New(cfg.Store.(cache.Source), 0)
		cfg.Telemetry = tel
	})
	e.setInputSchema("create_issue", `{"type":"object","properties":{"title":{"type":"string","minLength":3,"maxLength":200},"id":{"type":"string"}},"required":["title"],"additionalProperties":false}`)
	token := e.token(e.endpoint(""), nil)
	client := &http.Client{Timeout: 30 * time.Second}
	// The result repeats the title, so with DLP on it carries something to redact.
	const call = `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"create_issue","arguments":{"title":"login fails for ann@example.com"}}}`

	// A session, as a client opens it (the upstream's MCP server wants one).
	session, _ := postCall(b, client, e.endpoint(""), token, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	if session == "" {
		b.Fatal("initialize through the gateway answered without a session")
	}
	postCall(b, client, e.endpoint(""), token, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	run := func(b *testing.B, want, unwanted string) {
		// A first call warms the decision cache and the settings; it must already answer as the
		// stages say.
		if _, out := postCall(b, client, e.endpoint(""), token, session, fmt.Sprintf(call, 0)); !bytes.Contains(out, []byte(want)) || bytes.Contains(out, []byte(unwanted)) {
			b.Fatalf("tools/call through the gateway: want %q and no %q in %s", want, unwanted, out)
		}
		b.ReportAllocs()
		cpu := processCPU(b)
		for i := 0; b.Loop(); i++ {
			_, out := postCall(b, client, e.endpoint(""), token, session, fmt.Sprintf(call, i+1))
			if !bytes.Contains(out, []byte(want)) || bytes.Contains(out, []byte(unwanted)) {
				b.Fatalf("tools/call through the gateway: want %q and no %q in %s", want, unwanted, out)
			}
		}
		// The process's CPU time per call (gateway, SpiceDB, upstream and client together):
		// less moved by other work on the machine and by waiting on the disk than ns/op.
		b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
	}

	b.Run("plain", func(b *testing.B) {
		e.setSettings(func(s *store.HostSettings) {
			s.ArgumentValidation = store.ArgumentValidationOff
			s.RateLimits, s.ApprovalRules, s.DLP = nil, nil, dlp.Settings{}
		})
		run(b, `create_issue called: login fails for ann@example.com`, `[redacted:`)
	})
	b.Run("every_stage", func(b *testing.B) {
		e.setSettings(func(s *store.HostSettings) {
			s.ArgumentValidation = store.ArgumentValidationOn
			s.RateLimits = []store.RateLimit{{Scope: store.RateScopeAgent, PerMinute: 1_000_000}}
			s.ApprovalRules = []store.ApprovalRule{{Server: serverKey, Tool: "delete_issue"}}
			s.DLP = dlp.Settings{Mode: dlp.ModeRedact}
		})
		run(b, `create_issue called: login fails for [redacted:email]`, `ann@example.com`)
	})
}

// postCall posts one JSON-RPC message with the agent's token in session (none: "") and returns
// the session the answer names and its body (status 200 or 202 required).
func postCall(b *testing.B, c *http.Client, endpoint, token, session, body string) (string, []byte) {
	b.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted) {
		b.Fatalf("POST %s = %d (%v): %s", body, resp.StatusCode, err, out)
	}
	return resp.Header.Get("Mcp-Session-Id"), out
}

// processCPU is the CPU time (user and system) this process has used so far.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
