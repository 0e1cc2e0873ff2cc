package httplimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs an http.Server on a limited loopback listener. Requests with "X-Auth: yes" are
// trusted; /stream answers slowly for a while after reading the body.
func serve(t *testing.T, max int, bodyTimeout time.Duration) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, max)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth") == "yes" {
			Trust(r.Context())
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprintf(w, "read %d", len(b))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		rc := http.NewResponseController(w)
		for i := range 6 {
			if r.Context().Err() != nil {
				return
			}
			fmt.Fprintf(w, "tick %d\n", i)
			_ = rc.Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	srv := &http.Server{Handler: BodyTimeout(mux, bodyTimeout), ConnContext: l.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l, ln.Addr().String()
}

// slowClient sends a request whose body never completes; the connection stays open.
func slowClient(t *testing.T, addr string, header string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\n%sContent-Length: 1000\r\n\r\nabc", header)
	return c
}

// closed reports whether the server closed c within d.
func closed(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	ne, ok := err.(net.Error)
	return !(ok && ne.Timeout())
}

func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("open connections = %d, want %d", l.Open(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlowBodyIsCutAtTheTimeout(t *testing.T) {
	_, addr := serve(t, 0, 300*time.Millisecond)
	c := slowClient(t, addr, "")
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body within 5s: %v", err)
	}
	_ = resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || took > 2*time.Second {
		t.Fatalf("stalled body: %d after %s, want 408 from the handler after ~300ms", resp.StatusCode, took)
	}
	if !closed(c, 2*time.Second) {
		t.Fatal("the connection of a stalled body stays open")
	}
}

func TestBodyInTimeAndLongResponseAreNotCut(t *testing.T) {
	_, addr := serve(t, 0, 200*time.Millisecond)
	// The body arrives in pieces, within the timeout.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
	time.Sleep(50 * time.Millisecond)
	fmt.Fprint(c, "def")
	// The response lasts 600ms, three times the body timeout: the deadline was lifted.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), "tick 5") {
		t.Fatalf("long response = %v %q, want all six ticks", err, body)
	}
	// The connection is still usable for the next request (keep-alive).
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "read 2" {
		t.Fatalf("second request = %q", b)
	}
}

func TestListenerShedsUnauthenticatedConnectionsFirst(t *testing.T) {
	l, addr := serve(t, 4, time.Minute)
	trusted := slowClient(t, addr, "X-Auth: yes\r\n")
	waitOpen(t, l, 1)
	time.Sleep(100 * time.Millisecond) // the handler has run Trust
	var slow []net.Conn
	for range 3 {
		slow = append(slow, slowClient(t, addr, ""))
	}
	waitOpen(t, l, 4)
	// At the limit, a new client still gets an answer: the oldest unauthenticated connection
	// makes room for it. (Each client keeps its connection open, idle.)
	for i := range 3 {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Timeout: 3 * time.Second, Transport: tr}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d at the limit: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		t.Logf("after request %d: open %d, evicted %d", i, l.Open(), l.Evicted())
	}
	for i, c := range slow {
		if !closed(c, 2*time.Second) {
			t.Errorf("unauthenticated slow connection %d still open", i)
		}
	}
	if closed(trusted, 200*time.Millisecond) {
		t.Error("the authenticated connection was closed while unauthenticated ones were open")
	}
	if l.Evicted() < 3 {
		t.Errorf("evicted = %d, want ≥ 3", l.Evicted())
	}
	if l.Open() > 4 {
		t.Errorf("open = %d, above the limit 4", l.Open())
	}
}

func TestListenerRefusesNewConnectionsWhenAllAreAuthenticated(t *testing.T) {
	l, addr := serve(t, 2, time.Minute)
	a := slowClient(t, addr, "X-Auth: yes\r\n")
	b := slowClient(t, addr, "X-Auth: yes\r\n")
	waitOpen(t, l, 2)
	time.Sleep(100 * time.Millisecond)
	c := slowClient(t, addr, "")
	if !closed(c, 2*time.Second) {
		t.Fatal("a new connection beyond the limit stays open")
	}
	if closed(a, 100*time.Millisecond) || closed(b, 100*time.Millisecond) {
		t.Fatal("an authenticated connection was closed")
	}
	if l.Refused() != 1 || l.Open() != 2 {
		t.Fatalf("refused = %d, open = %d; want 1 and 2", l.Refused(), l.Open())
	}
}
