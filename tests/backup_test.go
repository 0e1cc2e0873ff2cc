package tests

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// backupKey is the master key both gateways of the backup tests share: a backup does not hold
// it, so a restored store is served with the original's key.
const backupKey = "0000000000000000000000000000000000000000000000000000000000000001"

func TestBackupRestoreSQLite(t *testing.T) {
	testBackupRestore(t, []string{"--data-dir", t.TempDir()}, []string{"--data-dir", t.TempDir()})
}

func TestBackupRestorePostgres(t *testing.T) {
	testBackupRestore(t,
		[]string{"--database", services.Postgres(t), "--data-dir", t.TempDir()},
		[]string{"--database", services.Postgres(t), "--data-dir", t.TempDir()})
}

// TestBackupRestoreSQLiteToPostgres moves an embedded-default gateway to PostgreSQL.
func TestBackupRestoreSQLiteToPostgres(t *testing.T) {
	testBackupRestore(t,
		[]string{"--data-dir", t.TempDir()},
		[]string{"--database", services.Postgres(t), "--data-dir", t.TempDir()})
}

// testBackupRestore: an agent connects through the real OAuth flow and calls tools; `trustgate
// backup` runs while the gateway serves calls; the backup is restored into a fresh store, a
// gateway started on it at the same address accepts the same agent's token, every tool
// answers as before, and `audit verify` passes on the restored log.
func testBackupRestore(t *testing.T, from, to []string) {
	p := start(t, append([]string{"--master-key", backupKey}, from...)...)
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", from...)
	seedTracker(t, p, admin, up.URL)
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	session := connectSDK(ctx, t, resource, token)
	tools := []string{"list_issues", "create_issue", "delete_issue"}
	args := map[string]any{"title": "t", "id": "1"}
	answers := func(what string) []bool {
		var out []bool
		for _, tool := range tools {
			text, ok := callText(t, session, tool, args)
			if what == "before" && ok == (tool == "delete_issue") {
				t.Fatalf("%s: %s answered ok=%v: %s", what, tool, ok, text)
			}
			out = append(out, ok)
		}
		return out
	}
	before := answers("before")
	toolsBefore := toolNamesOf(ctx, t, session)

	// Calls keep arriving while the backup runs.
	var calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, ok := callText(t, session, "list_issues", nil); ok {
				calls.Add(1)
			}
		}
	}()
	for calls.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	file := filepath.Join(t.TempDir(), "trustgate.backup")
	out, err := run(t, 60*time.Second, append([]string{"backup", "--out", file}, from...)...)
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "backed up the store") {
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}
	t.Logf("%s(%d calls served during the backup run)", out, calls.Load())
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if out, err := run(t, 60*time.Second, append([]string{"backup", "--out", file}, from...)...); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("backup over an existing file: %v\n%s", err, out)
	}
	p.stopCleanly(t)

	out, err = run(t, 60*time.Second, append([]string{"restore", file}, to...)...)
	if err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := run(t, 60*time.Second, append([]string{"audit", "verify"}, to...)...); err != nil || !strings.Contains(out, "acme: ") || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify of the restored store: %v\n%s", err, out)
	}
	if out, err := run(t, 60*time.Second, append([]string{"restore", file}, to...)...); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into the restored (non-empty) store: %v\n%s", err, out)
	}

	// The restored gateway, at the same address (the token's audience), the same master key.
	addr := strings.TrimPrefix(p.url, "http://")
	p2 := waitReady(t, launchEnv(t, addr, nil, append([]string{"serve", "--listen", addr, "--master-key", backupKey}, to...)...))
	session = connectSDK(ctx, t, resource, token)
	if got := toolNamesOf(ctx, t, session); !slices.Equal(got, toolsBefore) {
		t.Fatalf("tools/list after restore = %v, before %v", got, toolsBefore)
	}
	if after := answers("after"); !slices.Equal(after, before) {
		t.Fatalf("answers after restore %v, before %v (tools %v)", after, before, tools)
	}
	// The restored signing keys still sign: the admin API token and a new agent work.
	cli(t, p2, admin, "agent", "list", "--host", "acme")
	connectAgent(t, p2.url, p2.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "low")
}

// TestMigrateDryRun: --dry-run lists the migrations that would run and changes nothing.
func TestMigrateDryRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, err := run(t, 30*time.Second, "migrate", "--dry-run", "--statements", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "at schema version 0; migrate would apply") || !strings.Contains(out, "  0001_init\n") ||
		!strings.Contains(out, "CREATE TABLE hosts") {
		t.Fatalf("dry run on a new data directory: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the dry run created %s (%v)", dir, err)
	}
	if out, err := run(t, 30*time.Second, "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := run(t, 30*time.Second, "migrate", "--dry-run", "--data-dir", dir); err != nil || !strings.Contains(out, "nothing would run") {
		t.Fatalf("dry run on a migrated store: %v\n%s", err, out)
	}
}
