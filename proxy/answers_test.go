package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/sse"
	"github.com/trustgate/trustgate/proxy"
)

// TestUpstreamFailuresAreJSONRPCErrors: an upstream that fails a request with a text error
// page, or breaks off (or ends) its event stream before answering, reaches the client as
// ErrCodeUpstream naming the server, never as the raw page or a cut stream. A JSON-RPC error
// body passes on as the upstream sent it, and a stream the client can resume (its events
// have ids) is left to the client.
func TestUpstreamFailuresAreJSONRPCErrors(t *testing.T) {
	e := newEnv(t)
	var answer func(w http.ResponseWriter)
	e.addServer("flaky", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		answer(w)
	}), nil)
	call := func() (*http.Response, []byte) {
		t.Helper()
		return e.do("POST", "flaky", map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "list_issues"}, modernCall(3, "list_issues"))
	}
	const rpcErr = `{"jsonrpc":"2.0","id":3,"error":{"code":-32603,"message":"upstream's own error"}}`
	sseHead := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n")
		w.(http.Flusher).Flush()
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		status int    // the client's status
		code   int    // the JSON-RPC error code the client reads (0: none)
		raw    string // the body passes byte for byte
	}{
		{"text 500", func(w http.ResponseWriter) {
			http.Error(w, "Internal Server Error: stack trace here", http.StatusInternalServerError)
		}, http.StatusOK, proxy.ErrCodeUpstream, ""},
		{"text 502", func(w http.ResponseWriter) { http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway) }, http.StatusOK, proxy.ErrCodeUpstream, ""},
		{"text 404 keeps its status", func(w http.ResponseWriter) { http.Error(w, "session not found", http.StatusNotFound) }, http.StatusNotFound, proxy.ErrCodeUpstream, ""},
		{"JSON-RPC error 500", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, rpcErr)
		}, http.StatusInternalServerError, -32603, rpcErr},
		{"stream broken off", func(w http.ResponseWriter) {
			sseHead(w)
			_, _ = io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,")
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close() // the chunked body ends without its last chunk
			}
		}, http.StatusOK, proxy.ErrCodeUpstream, ""},
		{"stream ended without an answer", sseHead, http.StatusOK, proxy.ErrCodeUpstream, ""},
		{"resumable stream left to the client", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "id: 1\ndata:\n\n")
		}, http.StatusOK, 0, "id: 1\ndata:\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer = tc.answer
			resp, body := call()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.raw != "" && string(body) != tc.raw {
				t.Fatalf("body %q, want %q as the upstream sent it", body, tc.raw)
			}
			code, msg := rpcErrorOf(t, resp, body)
			if code != tc.code {
				t.Fatalf("JSON-RPC error %d (%q), want %d; body %q", code, msg, tc.code, body)
			}
			if tc.code == proxy.ErrCodeUpstream && (!strings.Contains(msg, "Server flaky") || strings.Contains(string(body), "stack trace") || strings.Contains(string(body), "<html>")) {
				t.Fatalf("error %q does not name the server or echoes the upstream's page", msg)
			}
		})
	}
}

// rpcErrorOf is the JSON-RPC error for id 3 a client reads from the answer: the JSON body, or
// the first event that answers id 3 in an event stream.
func rpcErrorOf(t *testing.T, resp *http.Response, body []byte) (int, string) {
	t.Helper()
	var datas [][]byte
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		r := sse.NewReader(bufio.NewReader(strings.NewReader(string(body))), 1<<20)
		for {
			ev, err := r.Next()
			if err != nil {
				break
			}
			datas = append(datas, ev.Data)
		}
	} else {
		datas = [][]byte{body}
	}
	for _, d := range datas {
		var m struct {
			ID    json.RawMessage
			Error *struct {
				Code    int
				Message string
			}
		}
		if json.Unmarshal(d, &m) == nil && string(m.ID) == "3" && m.Error != nil {
			return m.Error.Code, m.Error.Message
		}
	}
	return 0, ""
}
