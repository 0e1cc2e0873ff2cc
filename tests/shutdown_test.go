package tests

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// openGETStream initializes a Streamable HTTP session with raw requests and opens its GET
// stream (the server-to-client channel every Streamable HTTP client keeps open, idle). It
// returns the open response.
func openGETStream(t *testing.T, endpoint, token string) *http.Response {
	t.Helper()
	post := func(body, session string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"stream","version":"1"}}}`, "")
	body := readAll(resp)
	session := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || session == "" {
		t.Fatalf("initialize = %d (session %q) %s", resp.StatusCode, session, body)
	}
	if resp := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, session); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized = %d %s", resp.StatusCode, readAll(resp))
	} else {
		_ = resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, endpoint, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET stream = %d %q %s", stream.StatusCode, stream.Header.Get("Content-Type"), readAll(stream))
	}
	return stream
}

// TestShutdownWithAnOpenStream: an idle GET stream (every Streamable HTTP client keeps one)
// does not hold SIGTERM for the whole shutdown timeout: the stream ends at once, the process
// exits 0 within seconds, and the audit entries of the calls made before are all written
// (nothing is reported lost, nothing waits for an expired deadline).
func TestShutdownWithAnOpenStream(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--metrics-listen", "", "--shutdown-timeout", "60s")
	up := mcpserver.Start(t, "")
	adminToken := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, adminToken, up.URL)
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")

	stream := openGETStream(t, resource, token)
	defer stream.Body.Close()
	streamEnded := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, stream.Body)
		streamEnded <- err
	}()

	s := mcpSession(t, resource, token, func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true })
	const calls = 5
	for i := range calls {
		title := fmt.Sprintf("before shutdown %d", i)
		if text, ok := callText(t, s, "create_issue", map[string]any{"title": title}); !ok || !strings.Contains(text, title) {
			t.Fatalf("call %d: %q", i, text)
		}
	}
	_ = s.Close()

	begin := time.Now()
	p.stop()
	took := time.Since(begin)
	if p.err != nil {
		t.Fatalf("trustgate exited with %v after SIGTERM (%s):\n%s", p.err, took, p.output())
	}
	if took > 10*time.Second {
		t.Errorf("shutdown with an open GET stream took %s (shutdown timeout 60s), want seconds", took)
	}
	select {
	case <-streamEnded:
	case <-time.After(5 * time.Second):
		t.Errorf("the GET stream was still open after the process exited")
	}
	out := p.output()
	for _, bad := range []string{"lost", "context deadline exceeded", "pending relationship changes stay"} {
		if strings.Contains(out, bad) {
			t.Errorf("shutdown log mentions %q:\n%s", bad, out)
		}
	}
	t.Logf("SIGTERM to exit with an open GET stream: %s", took)

	// Every call's two entries (allowed before forwarding, its result after) are in the log.
	p2 := start(t, "--data-dir", dir, "--metrics-listen", "")
	var entries []admin.AuditEntry
	cliJSON(t, p2, adminToken, &entries, "audit", "list", "--host", "acme", "--all")
	allowed, results := 0, 0
	for _, e := range entries {
		if e.Tool != "create_issue" {
			continue
		}
		switch e.Decision {
		case "allowed":
			allowed++
		case "result":
			results++
			if e.Reason != "" {
				t.Logf("result entry %d: %s", e.Seq, e.Reason)
			}
		}
	}
	if allowed != calls || results != calls {
		var b bytes.Buffer
		for _, e := range entries {
			fmt.Fprintf(&b, "%d %s %s %s %s\n", e.Seq, e.Decision, e.Method, e.Tool, e.Reason)
		}
		t.Fatalf("audit log after shutdown: %d allowed and %d result entries for create_issue, want %d each:\n%s", allowed, results, calls, b.String())
	}
	p2.stopCleanly(t)
}
