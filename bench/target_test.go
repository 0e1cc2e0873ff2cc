package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/bench"
)

const targetToken = "s3cret-target-token"

// upstreamSeen is what a served upstream received and answered.
type upstreamSeen struct {
	mu           sync.Mutex
	toolCalls    int
	contentTypes map[string]int // of the answers to POSTs with an id (requests)
}

// serveUpstream serves the bench's upstream directly (no gateway) behind a bearer-token check,
// counting the tools/call requests that reach it and the content types it answers with.
func serveUpstream(t *testing.T, sse bool) (*httptest.Server, *upstreamSeen) {
	t.Helper()
	seen := &upstreamSeen{contentTypes: map[string]int{}}
	h := bench.UpstreamHandler(0, sse)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+targetToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
		contentType, _, _ := strings.Cut(w.Header().Get("Content-Type"), ";")
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if bytes.Contains(body, []byte(`"method":"tools/call"`)) {
			seen.toolCalls++
		}
		if r.Method == http.MethodPost && bytes.Contains(body, []byte(`"id"`)) {
			seen.contentTypes[contentType]++
		}
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// TestTargetDrivesAnyEndpoint runs --target against the bench's upstream served directly, in
// both answer formats: the tool named by --tool with --arguments is called, with the token,
// and every call the report counts reached the upstream.
func TestTargetDrivesAnyEndpoint(t *testing.T) {
	for _, sse := range []bool{false, true} {
		name := "json"
		if sse {
			name = "sse"
		}
		t.Run(name, func(t *testing.T) {
			srv, seen := serveUpstream(t, sse)
			rep, err := bench.RunTarget(context.Background(), bench.TargetOptions{URL: srv.URL, Token: targetToken,
				Tool: bench.ToolEcho, Arguments: json.RawMessage(`{"text":"side by side"}`), Clients: 2, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Tool != bench.ToolEcho || rep.Phase.Calls == 0 || rep.Phase.Errors != 0 || rep.Phase.P50 <= 0 || rep.Phase.P99 < rep.Phase.P50 {
				t.Fatalf("report: %+v", rep)
			}
			seen.mu.Lock()
			calls, types := seen.toolCalls, seen.contentTypes
			seen.mu.Unlock()
			if calls < rep.Phase.Calls {
				t.Fatalf("the upstream saw %d tools/call, the report counts %d", calls, rep.Phase.Calls)
			}
			want := "application/json"
			if sse {
				want = "text/event-stream"
			}
			if len(types) != 1 || types[want] == 0 {
				t.Fatalf("answers' content types: %v, want only %s", types, want)
			}
			var out strings.Builder
			if err := rep.WriteTable(&out); err != nil || !strings.Contains(out.String(), "calls/s") || strings.Contains(out.String(), targetToken) {
				t.Fatalf("table: %v\n%s", err, out.String())
			}
		})
	}
}

// TestTargetDefaultTool: without --tool, the first tool of tools/list is called.
func TestTargetDefaultTool(t *testing.T) {
	srv, _ := serveUpstream(t, false)
	rep, err := bench.RunTarget(context.Background(), bench.TargetOptions{URL: srv.URL, Token: targetToken, Clients: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The Go SDK lists tools by name.
	if rep.Tool != bench.ToolDenied || rep.Phase.Calls == 0 {
		t.Fatalf("report: %+v", rep)
	}
}

// TestTargetErrors: an unreachable URL, a refused or missing token and an unknown tool are
// each said plainly, and never with the token or the URL's query.
func TestTargetErrors(t *testing.T) {
	srv, _ := serveUpstream(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/mcp?key=query-secret"
	ln.Close()
	cases := []struct {
		name, url, token, tool string
		want                   string
	}{
		{"unreachable", closed, targetToken, "", "cannot reach the target http://" + ln.Addr().String() + "/mcp"},
		{"wrong token", srv.URL, "wrong-token", "", "refused the token (HTTP 401)"},
		{"no token", srv.URL, "", "", "wants a token (HTTP 401): pass --token"},
		{"unknown tool", srv.URL, targetToken, "nope", `no tool "nope": tools/list has delete_everything, echo, read_large`},
		{"not a URL", "ftp://example.test/mcp", targetToken, "", "want an http:// or https:// URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := bench.RunTarget(context.Background(), bench.TargetOptions{URL: c.url, Token: c.token, Tool: c.tool, Clients: 1, Duration: time.Second})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			for _, secret := range []string{targetToken, "wrong-token", "query-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
		})
	}
	if _, err := bench.RunTarget(context.Background(), bench.TargetOptions{URL: srv.URL, Token: targetToken, Arguments: json.RawMessage(`[1]`)}); err == nil || !strings.Contains(err.Error(), "--arguments") {
		t.Fatalf("arguments not an object: %v", err)
	}
}

// TestMeasureFloor: the fsync floor is measured in the given directory, with sane values, and
// leaves nothing behind; a directory that does not exist is an error.
func TestMeasureFloor(t *testing.T) {
	dir := t.TempDir()
	f, err := bench.MeasureFloor(context.Background(), dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if f.Samples != 20 || f.P50 <= 0 || f.P99 < f.P50 || f.P99 > float64(10*time.Second/time.Microsecond) {
		t.Fatalf("floor: %+v", f)
	}
	if left, err := filepath.Glob(filepath.Join(dir, "*")); err != nil || len(left) != 0 {
		t.Fatalf("left behind: %v %v", left, err)
	}
	if _, err := bench.MeasureFloor(context.Background(), dir+"/missing", 5); err == nil {
		t.Fatal("a missing directory measured")
	}
}
