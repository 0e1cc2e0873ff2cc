package tests

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to tamper with the file

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

func TestAuditLogSQLite(t *testing.T) {
	dir := t.TempDir()
	testAuditLog(t, []string{"--data-dir", dir}, func(query string) {
		db, err := sql.Open("sqlite", filepath.Join(dir, "trustgate.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	})
}

func TestAuditLogPostgres(t *testing.T) {
	url := services.Postgres(t)
	testAuditLog(t, []string{"--database", url, "--data-dir", t.TempDir()}, func(query string) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	})
}

// testAuditLog: admin changes are audit entries that `admin audit list` lists, exports and
// follows; `audit verify` passes on the intact log and names the first broken entry after a
// row is edited or deleted directly in the database (sqlExec runs SQL on it).
func testAuditLog(t *testing.T, storeArgs []string, sqlExec func(query string)) {
	p := start(t, storeArgs...)
	token := bootstrapToken(t, "bootstrap", storeArgs...)
	up := mcpserver.Start(t, "")
	cli(t, p, token, "server", "import", up.URL, "--key", "tracker")
	cli(t, p, token, "human", "add", "alice@acme.test")
	cli(t, p, token, "human", "grant", "alice@acme.test", "tracker", "--level", "medium")
	cli(t, p, token, "human", "grant", "alice@acme.test", "tracker", "--level", "high")
	cli(t, p, token, "human", "revoke", "alice@acme.test", "tracker")

	var entries []admin.AuditEntry
	cliJSON(t, p, token, &entries, "audit", "list", "--decision", "admin")
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.OldValue+"->"+e.NewValue)
		if !strings.Contains(e.Actor, "bootstrap") {
			t.Errorf("entry %d: actor %q does not name the token", e.Seq, e.Actor)
		}
	}
	if strings.Join(got, ", ") != "server.import ->, human.create ->, grant.set none->medium, grant.set medium->high, grant.revoke high->none" {
		t.Fatalf("admin entries: %v", got)
	}
	table := cli(t, p, token, "audit", "list")
	if !strings.Contains(table, "grant.revoke humans/alice@acme.test/grants/tracker high → none") {
		t.Errorf("audit list table:\n%s", table)
	}
	export := lines(cli(t, p, token, "audit", "list", "--all", "-o", "jsonl"))
	if len(export) != 5 || !json.Valid([]byte(export[0])) {
		t.Fatalf("export:\n%s", strings.Join(export, "\n"))
	}

	// --follow prints an entry written after it started, and ends cleanly on interrupt.
	follow := exec.Command(binary, "admin", "--url", p.url, "--token", token, "audit", "list", "--follow", "--interval", "100ms", "-o", "jsonl")
	follow.Env = cleanEnv()
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followed := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			followed <- sc.Text()
		}
		close(followed)
	}()
	for range 5 { // the existing entries first
		select {
		case <-followed:
		case <-time.After(20 * time.Second):
			t.Fatal("--follow did not print the existing entries")
		}
	}
	cli(t, p, token, "human", "grant", "alice@acme.test", "tracker", "--level", "low")
	select {
	case line := <-followed:
		if !strings.Contains(line, `"new_value":"low"`) {
			t.Fatalf("--follow printed %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("--follow did not print the new entry")
	}
	_ = follow.Process.Signal(syscall.SIGINT)
	if err := follow.Wait(); err != nil {
		t.Fatalf("--follow ended with %v on interrupt", err)
	}
	p.stopCleanly(t)

	verify := func() (string, error) {
		return run(t, 60*time.Second, append([]string{"audit", "verify"}, storeArgs...)...)
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "default: 6 entries, chain intact") {
		t.Fatalf("verify of the intact log: %v\n%s", err, out)
	}
	// An edited row.
	sqlExec("UPDATE audit_entries SET new_value = 'low' WHERE host_key = 'default' AND seq = 4")
	out, err := verify()
	if err == nil || !strings.Contains(out, "BROKEN at entry 4") || !strings.Contains(out, "edited") {
		t.Fatalf("verify after editing entry 4: %v\n%s", err, out)
	}
	sqlExec("UPDATE audit_entries SET new_value = 'high' WHERE host_key = 'default' AND seq = 4")
	if out, err := verify(); err != nil {
		t.Fatalf("verify after restoring entry 4: %v\n%s", err, out)
	}
	// A deleted row.
	sqlExec("DELETE FROM audit_entries WHERE host_key = 'default' AND seq = 3")
	out, err = run(t, 60*time.Second, append([]string{"audit", "verify", "--host", "default"}, storeArgs...)...)
	if err == nil || !strings.Contains(out, "BROKEN at entry 3") || !strings.Contains(out, "deleted") {
		t.Fatalf("verify after deleting entry 3: %v\n%s", err, out)
	}
}
