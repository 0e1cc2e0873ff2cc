package services

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// fakeTB records Fatal and Skip, and ends the calling goroutine like the real ones do.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) {
	f.skip = fmt.Sprint(args...)
	runtime.Goexit()
}

func run(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestPostgresServerURLUnset(t *testing.T) {
	t.Setenv(PostgresEnv, "")

	t.Setenv("CI", "")
	f := run(t, func(tb testing.TB) { PostgresServerURL(tb) })
	if f.skip == "" || f.fatal != "" {
		t.Fatalf("outside CI: want a skip, got skip=%q fatal=%q", f.skip, f.fatal)
	}
	if !strings.Contains(f.skip, PostgresEnv) {
		t.Errorf("skip reason %q does not name %s", f.skip, PostgresEnv)
	}

	t.Setenv("CI", "true")
	f = run(t, func(tb testing.TB) { Postgres(tb) })
	if f.fatal == "" || f.skip != "" {
		t.Fatalf("under CI=true: want a failure, got skip=%q fatal=%q", f.skip, f.fatal)
	}
	if !strings.Contains(f.fatal, "CI=true") {
		t.Errorf("failure %q does not explain the CI rule", f.fatal)
	}
}

func TestPostgresUnreachableFails(t *testing.T) {
	t.Setenv(PostgresEnv, "postgres://postgres:hunter2@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	f := run(t, func(tb testing.TB) { Postgres(tb) })
	if f.fatal == "" {
		t.Fatalf("want a failure for an unreachable server, got skip=%q", f.skip)
	}
	if strings.Contains(f.fatal, "hunter2") {
		t.Errorf("failure message leaks the password: %q", f.fatal)
	}
}

func TestPostgresCreatesAndDropsDatabase(t *testing.T) {
	server := PostgresServerURL(t)
	var name string
	t.Run("use", func(t *testing.T) {
		dbURL := Postgres(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect to the test database: %v", err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "tg_test_") {
			t.Fatalf("database %q does not start with tg_test_", name)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		// A second database in the same test is another one.
		if other := Postgres(t); other == dbURL {
			t.Fatalf("two calls returned the same database %s", other)
		}
	})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test ended", name)
	}
}
