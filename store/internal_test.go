package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

func TestRebind(t *testing.T) {
	cases := map[string]string{
		"SELECT 1":     "SELECT 1",
		"SELECT ? , ?": "SELECT $1 , $2",
		"UPDATE t SET a = ? WHERE b = '?' AND c = ?": "UPDATE t SET a = $1 WHERE b = '?' AND c = $2",
		`SELECT "?" FROM t WHERE x IN (?, ?, ?)`:     `SELECT "?" FROM t WHERE x IN ($1, $2, $3)`,
	}
	for in, want := range cases {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	text := `-- a comment; with a semicolon
CREATE TABLE a (x TEXT DEFAULT ';'); -- trailing; comment
INSERT INTO a VALUES ('it''s');

;
CREATE INDEX i ON a (x)`
	got := splitStatements(text)
	want := []string{
		"CREATE TABLE a (x TEXT DEFAULT ';')",
		"INSERT INTO a VALUES ('it''s')",
		"CREATE INDEX i ON a (x)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("splitStatements =\n%q\nwant\n%q", got, want)
	}
}

func TestMigrationsLoadForEveryEngine(t *testing.T) {
	engines := map[string]map[string]string{
		EngineSQLite:      (&sqliteBackend{}).tokens(),
		EnginePostgres:    (&pgBackend{}).tokens(),
		EngineCockroachDB: (&pgBackend{crdb: true}).tokens(),
	}
	for name, tokens := range engines {
		ms, err := loadMigrations(tokens)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(ms) != LatestVersion() || LatestVersion() < 1 {
			t.Fatalf("%s: %d migrations, LatestVersion %d", name, len(ms), LatestVersion())
		}
		for _, m := range ms {
			for _, s := range m.stmts {
				if strings.Contains(s, "{{") {
					t.Errorf("%s: migration %d keeps a token: %s", name, m.version, s)
				}
			}
		}
	}
	if _, err := substituteTokens("CREATE TABLE t (id {{nope}})", map[string]string{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown token: err %v", err)
	}
}

func TestCockroachDetection(t *testing.T) {
	crdb := "CockroachDB CCL v24.1.0 (x86_64-pc-linux-gnu, built 2024/05/15 21:28:29, go1.22.2 X:nocoverageredesign)"
	pg := "PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit"
	if !isCockroachVersion(crdb) || isCockroachVersion(pg) {
		t.Fatal("isCockroachVersion misreads the version strings")
	}
	if (&pgBackend{crdb: true}).engine() != EngineCockroachDB || (&pgBackend{}).engine() != EnginePostgres {
		t.Fatal("pgBackend.engine misnames the engine")
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^u_[a-z2-7]{20}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := newID("u_")
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestRedaction(t *testing.T) {
	raw := "postgres://bob:s%40cret@db:5432/tg?sslmode=disable&password=other-secret"
	got := redactURL(raw)
	if strings.Contains(got, "cret") || strings.Contains(got, "other-secret") || !strings.Contains(got, "bob") || !strings.Contains(got, "db:5432") {
		t.Fatalf("redactURL = %q", got)
	}
	r := newRedactor(raw)
	base := errors.New("auth failed for s@cret / s%40cret / other-secret")
	err := r.err(base)
	if strings.Contains(err.Error(), "cret") || strings.Contains(err.Error(), "other-secret") {
		t.Fatalf("redacted error still has a secret: %q", err)
	}
	if !errors.Is(err, base) {
		t.Fatal("redacted error lost its chain")
	}
}

// TestPostgresTxSurfacesCommitFailures is the reason PostgreSQL does not go through
// crdbpgx.ExecuteTx: two SERIALIZABLE transactions that each insert a row only when the table is
// empty (write skew) must not both report success. PostgreSQL cancels the second at COMMIT; the
// runner must notice, retry it in a new transaction, and that retry sees the first one's row.
func TestPostgresTxSurfacesCommitFailures(t *testing.T) {
	url := services.Postgres(t)
	ctx := context.Background()
	b, err := openPostgres(ctx, EnginePostgres, url, 5*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if _, err := b.q().exec(ctx, "CREATE TABLE skew (k INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}

	var readBoth sync.WaitGroup
	readBoth.Add(2)
	firstDone := make(chan struct{})
	var (
		errs     [2]error
		inserted [2]bool // what each caller believes its committed attempt did
		attempts [2]int
	)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.writeTx(ctx, func(q querier) error {
				attempts[i]++
				inserted[i] = false
				var n int64
				if err := q.queryRow(ctx, "SELECT COUNT(*) FROM skew").Scan(&n); err != nil {
					return err
				}
				if attempts[i] == 1 {
					readBoth.Done()
					readBoth.Wait()
				}
				if n == 0 {
					if _, err := q.exec(ctx, "INSERT INTO skew (k) VALUES (?)", i+1); err != nil {
						return err
					}
					inserted[i] = true
				}
				if i == 1 && attempts[i] == 1 {
					<-firstDone // commit only after the other transaction committed
				}
				return nil
			})
			if i == 0 {
				close(firstDone)
			}
		}()
	}
	wg.Wait()
	var rows int64
	if err := b.q().queryRow(ctx, "SELECT COUNT(*) FROM skew").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	believed := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("transaction %d failed: %v", i, errs[i])
		}
		if inserted[i] {
			believed++
		}
	}
	if int64(believed) != rows || rows != 1 {
		t.Fatalf("%d callers believe they inserted, the table has %d rows (attempts %v): a failed commit was reported as success",
			believed, rows, attempts)
	}
	if attempts[1] < 2 {
		t.Fatalf("the second transaction ran %d time(s); its commit should have failed and been retried", attempts[1])
	}
}

func TestIsRetryablePg(t *testing.T) {
	for code, want := range map[string]bool{"40001": true, "40P01": true, "23505": false, "57014": false} {
		err := &pgconn.PgError{Code: code}
		if got := isRetryablePg(errors.Join(errors.New("ctx"), err)); got != want {
			t.Errorf("isRetryablePg(%s) = %v, want %v", code, got, want)
		}
	}
}

// TestGenerationClock: the generation is read from the database at most once per maxAge while
// nothing changes in this process, and again at once after a change this process made.
func TestGenerationClock(t *testing.T) {
	c := newGenerationClock(time.Hour)
	loads := 0
	load := func(context.Context) (int64, error) { loads++; return int64(loads), nil }
	for range 3 {
		if n, err := c.read(context.Background(), load); err != nil || n != 1 {
			t.Fatalf("read = %d, %v; want 1 (remembered)", n, err)
		}
	}
	c.changed()
	if n, _ := c.read(context.Background(), load); n != 2 || loads != 2 {
		t.Fatalf("after a change: read = %d after %d loads, want 2 after 2", n, loads)
	}
	// A read that began before a change is not remembered.
	c.changed()
	racing := func(context.Context) (int64, error) { c.changed(); loads++; return 99, nil }
	if n, _ := c.read(context.Background(), racing); n != 99 {
		t.Fatalf("racing read = %d, want 99", n)
	}
	if n, _ := c.read(context.Background(), load); n != int64(loads) {
		t.Fatalf("the read that raced a change was remembered: got %d, want a new load (%d)", n, loads)
	}
	// Expired: read again.
	c = newGenerationClock(time.Millisecond)
	loads = 0
	_, _ = c.read(context.Background(), load)
	time.Sleep(2 * time.Millisecond)
	if n, _ := c.read(context.Background(), load); n != 2 {
		t.Fatalf("after maxAge: read = %d, want a new load", n)
	}
}
