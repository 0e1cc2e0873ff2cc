package tests

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/testca"
)

// spicedbBinary builds SpiceDB's own server at the version trustgate embeds (go.mod), from its
// module, as `make cluster` does, into the user's cache directory (kept between runs: the first
// build takes minutes). Where it cannot be built (no module download) the test is skipped, or
// fails under CI=true.
func spicedbBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/authzed/spicedb").Output()
	if err != nil {
		t.Fatalf("SpiceDB's version in go.mod: %v", err)
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "trustgate-tests", "spicedb-"+version)
	bin := filepath.Join(dir, "spicedb")
	if v, err := exec.Command(bin, "version").CombinedOutput(); err == nil && strings.Contains(string(v), version) {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "install", "github.com/authzed/spicedb/cmd/spicedb@"+version)
	build.Dir = t.TempDir() // outside this module: SpiceDB's own go.mod decides its dependencies
	build.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but SpiceDB %s cannot be built: %v\n%s", version, err, out)
		}
		t.Skipf("SpiceDB %s cannot be built here: %v\n%s", version, err, out)
	}
	t.Logf("built SpiceDB %s in %s", version, time.Since(began).Round(time.Second))
	return bin
}

// startSpiceDB runs SpiceDB's server (memory datastore) serving gRPC over TLS with the
// certificate and key given, and returns its address once it accepts connections.
func startSpiceDB(t *testing.T, bin, key, certPath, keyPath string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--grpc-preshared-key", key, "--grpc-addr", addr,
		"--grpc-tls-cert-path", certPath, "--grpc-tls-key-path", keyPath,
		"--datastore-engine", "memory", "--http-enabled=false", "--metrics-enabled=false",
		"--dispatch-cluster-enabled=false", "--telemetry-endpoint=", "--skip-release-check")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("SpiceDB exited during start-up:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("SpiceDB not listening on %s within 60s:\n%s", addr, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRemoteSpiceDBWithPrivateCA: a remote SpiceDB (SpiceDB's own server at trustgate's
// version) serves gRPC over TLS with a certificate from a CA the test makes. With
// --spicedb-ca-file naming that CA the gateway starts and decides (a tool the agent's level
// allows is served, one above it denied); without it, with another CA, with a file that is
// missing or holds no certificate, start-up fails (closed) with an error naming the problem.
func TestRemoteSpiceDBWithPrivateCA(t *testing.T) {
	bin := spicedbBinary(t)
	ca := testca.New(t)
	certPath, keyPath, _ := ca.WriteFiles(t, t.TempDir(), "127.0.0.1", "localhost")
	key := "e2e-remote-tls-key"
	addr := startSpiceDB(t, bin, key, certPath, keyPath)

	files := t.TempDir()
	caFile := filepath.Join(files, "ca.pem")
	otherCA := filepath.Join(files, "other-ca.pem")
	notPEM := filepath.Join(files, "not-pem.txt")
	for path, data := range map[string][]byte{
		caFile:  ca.PEM(),
		otherCA: testca.New(t).PEM(),
		notPEM:  []byte("this is not a certificate\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	remote := []string{"--spicedb-endpoint", addr, "--spicedb-token", key, "--metrics-listen", ""}

	// Refused at start-up, each with an error that names the problem.
	for _, c := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"the system's CAs", nil, []string{"remote SpiceDB at", "certificate is not trusted", "x509", "--spicedb-ca-file"}},
		{"another CA", []string{"--spicedb-ca-file", otherCA}, []string{"remote SpiceDB at", "certificate is not trusted", "x509", "--spicedb-ca-file"}},
		{"a missing file", []string{"--spicedb-ca-file", filepath.Join(files, "missing.pem")}, []string{"--spicedb-ca-file", "no such file"}},
		{"a file without a certificate", []string{"--spicedb-ca-file", notPEM}, []string{"--spicedb-ca-file", "no PEM certificate"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"serve", "--listen", freeAddr(t), "--data-dir", t.TempDir()}, remote...), c.extra...)
			began := time.Now()
			out, err := run(t, 90*time.Second, args...)
			if err == nil {
				t.Fatalf("serve with %s started (want a refusal):\n%s", c.name, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("serve with %s: the error does not say %q:\n%s", c.name, w, out)
				}
			}
			reason := ""
			for _, l := range lines(out) {
				if strings.Contains(l, "--spicedb-ca-file") {
					reason = l
				}
			}
			t.Logf("%s: refused in %s: %s", c.name, time.Since(began).Round(100*time.Millisecond), reason)
		})
	}

	// With the CA: it starts, writes its schema there and decides through it.
	f := setupFaults(t, append(remote, "--spicedb-ca-file", caFile), []string{"--data-dir", t.TempDir()})
	if text, ok := callText(t, f.session, "delete_issue", map[string]any{"id": "1"}); ok {
		t.Errorf("delete_issue (needs high; the agent has medium) was served through the remote SpiceDB: %q", text)
	}
	if text, ok := callText(t, f.session, "create_issue", map[string]any{"title": "over TLS"}); !ok || !strings.Contains(text, "create_issue called: over TLS") {
		t.Errorf("create_issue (medium) through the remote SpiceDB: %q", text)
	}
	if code, body := getJSON(t, f.p.url+"/readyz"); code != 200 || !strings.Contains(body, `"spicedb":"ok"`) {
		t.Errorf("readyz with the remote SpiceDB over TLS = %d %s", code, body)
	}
}
