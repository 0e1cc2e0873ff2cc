package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLostSQLiteSharedMemory: SQLite keeps its WAL index in a memory-mapped file beside the
// database (trustgate.db-shm). When that file is truncated under the running process (as when
// the data dir's disk fails or another program meddles with it), the next read of the mapping
// is a SIGBUS, which a Go program cannot recover from: the process exits (exit status 2,
// "signal SIGBUS" in its output) instead of answering -31002. This test holds what the README
// promises for that case: nothing committed is lost, a restart on the same data dir serves
// again, and every host's audit chain verifies.
func TestLostSQLiteSharedMemory(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	token := bootstrapToken(t, "shm", "--data-dir", dir)
	for _, h := range []string{"h1", "h2"} {
		cli(t, p, token, "host", "create", h, "--exact")
		cli(t, p, token, "human", "add", "alice@"+h+".test", "--host", h)
	}
	if err := os.Truncate(filepath.Join(dir, "trustgate.db-shm"), 0); err != nil {
		t.Fatal(err)
	}
	// Anything that reads the store touches the mapping: a request, or the gateway's own
	// background reads.
	deadline := time.Now().Add(20 * time.Second)
	for crashed := false; !crashed && time.Now().Before(deadline); {
		if resp, err := http.Get(p.url + "/api/v1/hosts"); err == nil {
			_ = resp.Body.Close()
		}
		select {
		case <-p.exited:
			crashed = true
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-p.exited:
		if !strings.Contains(p.output(), "SIGBUS") {
			t.Errorf("the process exited (%v) without naming SIGBUS:\n%s", p.err, p.output())
		}
	default:
		// Still serving (a SQLite that re-creates the mapping): what follows must hold too.
		p.stopCleanly(t)
	}

	p = start(t, "--data-dir", dir)
	if out := cli(t, p, token, "host", "list"); !strings.Contains(out, "h1") || !strings.Contains(out, "h2") {
		t.Fatalf("hosts after the restart:\n%s", out)
	}
	p.stopCleanly(t)
	out, err := run(t, 30*time.Second, "audit", "verify", "--data-dir", dir)
	if err != nil || strings.Count(out, "chain intact") < 2 {
		t.Fatalf("audit verify after the restart: %v\n%s", err, out)
	}
}
