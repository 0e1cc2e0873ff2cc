package tests

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// skipOrFail skips the test with reason, or fails it when CI=true (CI must run it).
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// launchLimited starts `trustgate serve` with at most fds open files (soft and hard limit, so
// that the Go runtime cannot raise it), or skips when the limit cannot be set.
func launchLimited(t *testing.T, fds int, args ...string) *process {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		skipOrFail(t, "needs prlimit (util-linux) to start the gateway with a file-descriptor limit")
	}
	limit := fmt.Sprintf("--nofile=%d:%d", fds, fds)
	if out, err := exec.Command(prlimit, limit, "true").CombinedOutput(); err != nil {
		skipOrFail(t, fmt.Sprintf("prlimit %s is not permitted here: %v %s", limit, err, out))
	}
	addr := freeAddr(t)
	p := &process{t: t, url: "http://" + addr, exited: make(chan struct{})}
	p.cmd = exec.Command(prlimit, append([]string{limit, binary, "serve", "--listen", addr}, args...)...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = syncWriter{p}, syncWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("trustgate output:\n%s", p.output())
		}
	})
	return waitReady(t, p)
}

// TestReadyzStaysUpUnderSlowClients: 3,000 clients that send a request body one byte at a
// time (to an endpoint that reads bodies before any authentication: dynamic client
// registration) against a gateway limited to 1,024 open files. /readyz keeps answering, and
// the gateway never holds more client connections than its limit.
func TestReadyzStaysUpUnderSlowClients(t *testing.T) {
	const slowClients, fdLimit = 3000, 1024
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < slowClients+500 {
		skipOrFail(t, fmt.Sprintf("the test process needs %d open files for its slow clients (limit %d, %v)", slowClients+500, rl.Cur, err))
	}
	p := launchLimited(t, fdLimit, "--data-dir", t.TempDir(), "--metrics-listen", "")
	addr := strings.TrimPrefix(p.url, "http://")

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		failed atomic.Int64
	)
	sem := make(chan struct{}, 64)
	for range slowClients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			// Headers complete, body announced but barely started: the gateway reads it.
			_, _ = fmt.Fprintf(c, "POST /h/default/register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	t.Logf("%d slow clients connected (%d dials failed)", len(conns), failed.Load())

	// The slow clients keep trickling their bodies while /readyz is asked, well within the
	// body timeout (so it is the connection limit that keeps the gateway reachable).
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			mu.Lock()
			for _, c := range conns {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Write([]byte(" "))
			}
			mu.Unlock()
		}
	})
	defer func() { close(stop); trickle.Wait() }()

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var worst time.Duration
	for i := range 10 {
		begin := time.Now()
		resp, err := client.Get(p.url + "/readyz")
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("/readyz %d under %d slow clients: %v (after %s)", i, slowClients, err, took)
		}
		body := readAll(resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz %d under %d slow clients = %d %s", i, slowClients, resp.StatusCode, body)
		}
		worst = max(worst, took)
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("/readyz under %d slow clients with %d open files: worst answer %s", slowClients, fdLimit, worst)
	if strings.Contains(p.output(), "too many open files") {
		t.Errorf("the gateway ran out of file descriptors:\n%s", p.output())
	}
}

// TestSlowBodyIsCutAtTheRequestBodyTimeout: a body that has not arrived within
// --request-body-timeout ends the request and its connection; a body in time is served.
func TestSlowBodyIsCutAtTheRequestBodyTimeout(t *testing.T) {
	p := start(t, "--data-dir", t.TempDir(), "--metrics-listen", "", "--request-body-timeout", "1s")
	addr := strings.TrimPrefix(p.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	_, _ = fmt.Fprintf(c, "POST /h/default/register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("a stalled body held its connection for 10s (--request-body-timeout 1s)")
			}
			break // closed by the gateway (after an error answer, if any)
		}
	}
	if took := time.Since(begin); took > 4*time.Second {
		t.Fatalf("a stalled body was cut after %s, want about 1s", took)
	}
	// A body in time is served.
	resp, err := http.Post(p.url+"/h/default/register", "application/json", strings.NewReader(`{"client_name":"in time","redirect_uris":["http://127.0.0.1:1/cb"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != http.StatusCreated {
		t.Fatalf("registration in time = %d %s", resp.StatusCode, body)
	}
}
