package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestDiscoverInvalidURL(t *testing.T) {
	for _, u := range []string{"ftp://x", "not a url", "http://user:pw@host/", "/relative/mcp", "http:///mcp", "mailto:a@b", ""} {
		_, err := Discover(context.Background(), u, testOptions())
		if !errors.Is(err, ErrInvalidURL) {
			t.Errorf("%q: err = %v, want ErrInvalidURL", u, err)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: error quotes the password: %v", u, err)
		}
	}
}

func TestDiscoverUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	start := time.Now()
	_, err = Discover(context.Background(), "http://"+addr+"/mcp", testOptions())
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v for a closed port", elapsed)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "could not be reached") || !strings.Contains(msg, "connection refused") {
		t.Errorf("message %q should name the host, say it could not be reached, and why", msg)
	}
}

func TestDiscoverUnknownHost(t *testing.T) {
	o := testOptions()
	o.Timeout = 3 * time.Second
	_, err := Discover(context.Background(), "http://no-such-host.invalid/mcp", o)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "no-such-host.invalid") {
		t.Fatalf("err = %v, want ErrUnreachable naming the host", err)
	}
}

func TestDiscoverTimeout(t *testing.T) {
	url := startHTTP(t, hang)
	o := testOptions()
	o.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Discover(context.Background(), url, o)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 300ms timeout", elapsed)
	}
}

func TestDiscoverCallerCancels(t *testing.T) {
	url := startHTTP(t, hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Discover(ctx, url, testOptions())
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want the caller's context error", err)
	}
}

func TestDiscoverNotMCP(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		reason  string
	}{
		{"html page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><html><body>Welcome</body></html>")
		}, "unexpected content type text/html"},
		{"not found", http.NotFound, "HTTP 404 Not Found"},
		{"method not allowed", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
		}, "HTTP 405"},
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "HTTP 500"},
		{"json but not json-rpc", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"ok","version":3}`)
		}, "invalid answer to initialize: failed to decode response"},
		{"initialize error", jsonRPCError(-32600, "unsupported client"), "JSON-RPC error -32600: unsupported client"},
		{"huge response", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			chunk := strings.Repeat(" ", 1<<20)
			for range MaxResponseBytes>>20 + 2 {
				if _, err := fmt.Fprint(w, chunk); err != nil {
					return
				}
			}
		}, "larger than 8 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := startHTTP(t, c.handler)
			_, err := Discover(context.Background(), url, testOptions())
			if !errors.Is(err, ErrNotMCP) {
				t.Fatalf("err = %v, want ErrNotMCP", err)
			}
			want := url + " is not an MCP server (Streamable HTTP): "
			if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, c.reason) {
				t.Errorf("message %q, want %q… with %q", msg, want, c.reason)
			}
		})
	}
}

// hang answers nothing until the client goes away. (The body is read first: only then does the
// server notice a closed connection.)
func hang(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// jsonRPCError answers every call with a JSON-RPC error.
func jsonRPCError(code int, message string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"jsonrpc": "2.0",
			"id":      req.ID,
			"error":   map[string]any{"code": code, "message": message},
		})
	}
}

// Text the upstream sends back must not reveal configured header values.
func TestDiscoverRedactsEchoedCredentials(t *testing.T) {
	url := startHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		jsonRPCError(-32000, "token "+r.Header.Get("Authorization")+" is not valid for "+r.URL.String())(w, r)
	})
	o := testOptions()
	o.Header = http.Header{"Authorization": {"Bearer s3cret-value"}}
	_, err := Discover(context.Background(), url+"?key=querysecret", o)
	if !errors.Is(err, ErrNotMCP) {
		t.Fatalf("err = %v, want ErrNotMCP", err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret-value") || strings.Contains(msg, "querysecret") {
		t.Errorf("message reveals a secret: %q", msg)
	}
}

// Timeout bounds the whole discovery, including the SDK's session-ending DELETE, which runs on
// a context of its own.
func TestDiscoverTimeoutCoversSessionClose(t *testing.T) {
	srv := newServer(nil)
	addTool[noInput](srv, &mcp.Tool{Name: "list_things"})
	url := startMCP(t, srv, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete {
				hang(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	o := testOptions()
	o.Timeout = 500 * time.Millisecond
	start := time.Now()
	res, err := Discover(context.Background(), url, o)
	if err != nil || len(res.Tools) != 1 {
		t.Fatalf("Discover = %+v, %v", res, err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v with a 500ms timeout", elapsed)
	}
}
