package tests

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeAnswersHealthAndReadiness(t *testing.T) {
	p := start(t, "--data-dir", t.TempDir())
	code, body := getJSON(t, p.url+"/healthz")
	if code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	code, body = getJSON(t, p.url+"/readyz")
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != http.StatusOK || ready.Status != "ready" || ready.Checks["store"] != "ok" || ready.Checks["spicedb"] != "ok" {
		t.Fatalf("/readyz = %d %+v", code, ready)
	}
	p.stopCleanly(t)
	if !strings.Contains(p.output(), "stopped") {
		t.Errorf("no clean-stop log line:\n%s", p.output())
	}
}

func TestJSONLogs(t *testing.T) {
	p := start(t, "--data-dir", t.TempDir(), "--log-format", "json")
	p.stopCleanly(t)
	n := 0
	for _, line := range lines(p.output()) {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if entry["msg"] == nil || entry["level"] == nil || entry["time"] == nil {
			t.Fatalf("log line lacks msg/level/time: %q", line)
		}
		n++
	}
	if n < 3 {
		t.Fatalf("only %d log lines:\n%s", n, p.output())
	}
}

func TestConfigurationFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	p := waitReady(t, launchEnv(t, addr, []string{
		"TRUSTGATE_LISTEN=" + addr,
		"TRUSTGATE_DATA_DIR=" + filepath.Join(dir, "fromenv"),
		"TRUSTGATE_LOG_FORMAT=json",
	}, "serve"))
	if _, err := os.Stat(filepath.Join(dir, "fromenv", "trustgate.db")); err != nil {
		t.Fatalf("TRUSTGATE_DATA_DIR not used: %v", err)
	}
	p.stopCleanly(t)
	if !strings.HasPrefix(strings.TrimSpace(p.output()), "{") {
		t.Errorf("TRUSTGATE_LOG_FORMAT=json not used:\n%s", p.output())
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	out, err := run(t, 10*time.Second, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"serve", "migrate", "version"} {
		if !strings.Contains(out, sub) {
			t.Errorf("trustgate --help does not list %s:\n%s", sub, out)
		}
	}
	out, err = run(t, 10*time.Second, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"--listen", "TRUSTGATE_LISTEN", "127.0.0.1:8080",
		"--data-dir", "TRUSTGATE_DATA_DIR", "./data",
		"--database", "TRUSTGATE_DATABASE",
		"--public-url", "TRUSTGATE_PUBLIC_URL",
		"--log-format", "--spicedb-endpoint", "--spicedb-token", "--spicedb-insecure",
		"--spicedb-grpc-listen", "--spicedb-preshared-key", "TRUSTGATE_SPICEDB_KEY", "--spicedb-grpc-allow-writes",
		"--request-body-timeout", "TRUSTGATE_REQUEST_BODY_TIMEOUT", "--max-connections", "TRUSTGATE_MAX_CONNECTIONS",
		"--upstream-allow-cidr", "TRUSTGATE_UPSTREAM_ALLOW_CIDR",
		"--smtp-url", "TRUSTGATE_SMTP_URL", "--smtp-from", "TRUSTGATE_SMTP_FROM",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	out, err = run(t, 10*time.Second, "migrate", "--help")
	if err != nil || !strings.Contains(out, "--database") || !strings.Contains(out, "--data-dir") {
		t.Errorf("migrate --help: %v\n%s", err, out)
	}
}

func TestBadInputGetsAClearError(t *testing.T) {
	dir := t.TempDir()
	badSchema := filepath.Join(dir, "bad.zed")
	if err := os.WriteFile(badSchema, []byte("definition user {}\ndefinition agent {\n  relation owner: user\n  permission p = owner +\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	cases := []struct {
		name    string
		args    []string
		want    []string
		notWant string
	}{
		{"unknown database scheme", []string{"serve", "--data-dir", dir, "--database", "mysql://root@127.0.0.1/x"}, []string{"mysql", "postgres"}, ""},
		{"unreachable database", []string{"serve", "--data-dir", dir, "--database", "postgres://tg:s3cr3tpw@127.0.0.1:1/tg", "--database-connect-timeout", "2s"}, []string{"127.0.0.1:1"}, "s3cr3tpw"},
		{"malformed schema", []string{"serve", "--data-dir", dir, "--schema-file", badSchema}, []string{"bad.zed", "line 5"}, ""},
		{"port in use", []string{"serve", "--data-dir", dir, "--listen", held.Addr().String()}, []string{held.Addr().String(), "address already in use"}, ""},
		{"exposed API without key", []string{"serve", "--data-dir", dir, "--spicedb-grpc-listen", "127.0.0.1:0"}, []string{"preshared-key"}, ""},
		{"writes to an API not exposed", []string{"serve", "--data-dir", dir, "--spicedb-grpc-allow-writes"}, []string{"--spicedb-grpc-listen"}, ""},
		{"bad upstream network", []string{"serve", "--data-dir", dir, "--upstream-allow-cidr", "10.0.0.0/8,intranet"}, []string{"--upstream-allow-cidr", `"intranet"`}, ""},
		{"bad SMTP URL", []string{"serve", "--data-dir", dir, "--smtp-url", "smtp://gw:s3cr3tpw@mail.example.com/inbox", "--smtp-from", "gw@example.com"}, []string{"--smtp-url", "mail.example.com"}, "s3cr3tpw"},
		{"SMTP without a sender", []string{"serve", "--data-dir", dir, "--smtp-url", "smtps://gw:s3cr3tpw@mail.example.com"}, []string{"--smtp-from"}, "s3cr3tpw"},
		{"bad log format", []string{"serve", "--data-dir", dir, "--log-format", "xml"}, []string{"--log-format", "json"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			out, err := run(t, 30*time.Second, c.args...)
			if err == nil {
				t.Fatalf("exited 0:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if c.notWant != "" && strings.Contains(out, c.notWant) {
				t.Errorf("output leaks %q:\n%s", c.notWant, out)
			}
			if time.Since(began) > 20*time.Second {
				t.Errorf("took %s to give up", time.Since(began))
			}
		})
	}
}
