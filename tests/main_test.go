// Package tests holds trustgate's end-to-end tests: they build the real binary, start it as a
// separate process and speak to it only through its public interfaces (HTTP, gRPC, the
// database), as users and operators do.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the trustgate binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trustgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "trustgate")
	build := exec.Command("go", "build", "-o", binary, "../cmd/trustgate")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build trustgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// process is one running `trustgate serve`.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
	err    error
}

// syncWriter collects a process's output for failure messages.
type syncWriter struct{ p *process }

func (w syncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.logs.Write(b)
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// start runs `trustgate serve` with the given arguments (a --listen is added) and waits until
// /readyz answers 200.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	return waitReady(t, launch(t, args...))
}

// waitReady waits until the process's /readyz answers 200.
func waitReady(t *testing.T, p *process) *process {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("trustgate exited during start-up (%v):\n%s", p.err, p.output())
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("trustgate not ready within 60s:\n%s", p.output())
	return nil
}

// launch starts the process on a free address without waiting for readiness.
func launch(t *testing.T, args ...string) *process {
	t.Helper()
	addr := freeAddr(t)
	return launchEnv(t, addr, nil, append([]string{"serve", "--listen", addr}, args...)...)
}

// launchEnv starts the binary with extra environment variables; addr is where it will listen.
func launchEnv(t *testing.T, addr string, env []string, args ...string) *process {
	t.Helper()
	p := &process{t: t, url: "http://" + addr, exited: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(cleanEnv(), env...)
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
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("trustgate did not stop within 30s of SIGTERM")
	}
}

// stopCleanly stops the process and fails the test unless it exited 0.
func (p *process) stopCleanly(t *testing.T) {
	t.Helper()
	p.stop()
	if p.err != nil {
		t.Fatalf("trustgate exited with %v after SIGTERM:\n%s", p.err, p.output())
	}
}

// run runs the binary to completion with a time limit and returns its combined output.
func run(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("trustgate %s did not finish within %s:\n%s", strings.Join(args, " "), timeout, out)
	}
	return string(out), err
}

// cleanEnv is the test's environment without TRUSTGATE_ settings, so that a developer's shell
// does not change what the tests start.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRUSTGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

func getJSON(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readAll reads and closes a response body.
func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// lines splits output into lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
