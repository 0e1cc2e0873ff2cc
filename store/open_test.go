package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/store"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		raw, engine, conn string
	}{
		{"", "sqlite", ""},
		{"sqlite:///var/lib/trustgate/tg.db", "sqlite", "/var/lib/trustgate/tg.db"},
		{"sqlite://relative.db", "sqlite", "relative.db"},
		{"sqlite://data/tg.db?ignored=1", "sqlite", "data/tg.db"},
		{"postgres://u:p@db:5432/tg?sslmode=disable", "postgres", "postgres://u:p@db:5432/tg?sslmode=disable"},
		{"postgresql://db/tg", "postgres", "postgresql://db/tg"},
		{"PostgreSQL://db/tg", "postgres", "postgresql://db/tg"},
		{"cockroachdb://root@crdb:26257/tg?sslmode=verify-full", "cockroachdb", "postgresql://root@crdb:26257/tg?sslmode=verify-full"},
		{"CockroachDB://root@crdb:26257/tg", "cockroachdb", "postgresql://root@crdb:26257/tg"},
	}
	for _, c := range cases {
		engine, conn, err := store.ParseURL(c.raw)
		if err != nil || engine != c.engine || conn != c.conn {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.raw, engine, conn, err, c.engine, c.conn)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	cases := []struct {
		raw  string
		want []string // substrings of the error
	}{
		{"mysql://root:hunter2@db/tg", []string{`"mysql"`, "sqlite://", "postgres://", "postgresql://", "cockroachdb://"}},
		{"host=db user=u password=hunter2", []string{"postgres://"}},
		{"postgres://u:hunter2@db:notaport/tg", []string{"does not parse"}},
		{"postgres://u:hunter2%zz@db/tg", []string{"does not parse"}},
		{"sqlite://", []string{"no file path"}},
	}
	for _, c := range cases {
		_, _, err := store.ParseURL(c.raw)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ParseURL(%q): err %v, want ErrInvalid", c.raw, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseURL(%q): error %q does not contain %q", c.raw, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q): error leaks the password: %q", c.raw, err)
		}
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	_, err := store.Open(ctx, store.Config{URL: "mysql://root:hunter2@db/tg", DataDir: t.TempDir()})
	if err == nil {
		t.Fatal("Open accepted a mysql:// URL")
	}
	for _, w := range []string{"mysql", "sqlite://", "postgres://", "cockroachdb://"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %q", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, url := range []string{
		"postgres://user:secret@127.0.0.1:1/x",
		"postgres://user@127.0.0.1:1/x?password=secret",
		"cockroachdb://user:secret@127.0.0.1:1/x",
	} {
		start := time.Now()
		_, err := store.Open(ctx, store.Config{URL: url, ConnectTimeout: time.Second, Logger: logger})
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s: Open succeeded", url)
		}
		if took > 4*time.Second {
			t.Errorf("%s: Open took %s with a 1s connect timeout", url, took)
		}
		if took < 900*time.Millisecond {
			t.Errorf("%s: Open gave up after %s, before the 1s connect timeout", url, took)
		}
		if !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%s: error %q does not name 127.0.0.1:1", url, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error leaks the password: %q", url, err)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "retrying") {
		t.Errorf("no retry was logged at Warn:\n%s", out)
	}
	if strings.Contains(out, "secret") {
		t.Errorf("logs leak the password:\n%s", out)
	}
}

func TestOpenHonoursCancel(t *testing.T) {
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := store.Open(cctx, store.Config{URL: "postgres://u@127.0.0.1:1/x", ConnectTimeout: time.Minute})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Open with a cancelled context: err %v after %s", err, time.Since(start))
	}
}

func TestSQLiteDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	s := openStore(t, store.Config{DataDir: dir})
	must[store.Host](t, "create host")(s.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}))
	must[store.User](t, "create user")(s.CreateUser(ctx, store.User{Host: "acme", ID: "alice", Email: "a@x.io"}))
	if v := must[int](t, "schema version")(s.SchemaVersion(ctx)); v != store.LatestVersion() || v < 1 {
		t.Fatalf("SchemaVersion = %d, LatestVersion = %d", v, store.LatestVersion())
	}
	noErr(t, "ping", s.Ping(ctx))
	noErr(t, "close", s.Close())

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("data directory mode %o, want 700", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "trustgate.db")); err != nil {
		t.Fatalf("no trustgate.db in the data directory: %v", err)
	}

	// Reopening keeps the data (and applies nothing twice).
	s2 := openStore(t, store.Config{DataDir: dir})
	if h := must[store.Host](t, "get host")(s2.GetHost(ctx, "acme")); h.Name != "Acme" {
		t.Fatalf("host after reopen = %+v", h)
	}
	must[store.User](t, "get user")(s2.GetUser(ctx, "acme", "alice"))
	if n := must[int](t, "pending")(s2.PendingRelationshipChanges(ctx)); n != 1 {
		t.Fatalf("pending after reopen = %d, want 1", n)
	}

	// The same file through a sqlite:// URL.
	s3 := openStore(t, store.Config{URL: "sqlite://" + filepath.Join(dir, "trustgate.db")})
	must[store.User](t, "get user via URL")(s3.GetUser(ctx, "acme", "alice"))
}

func TestOpenNeedsDataDir(t *testing.T) {
	_, err := store.Open(ctx, store.Config{})
	wantErr(t, "Open without URL or data dir", err, store.ErrInvalid)
}

// bumpSchema records a migration version above the binary's in the database.
type bumpSchema func(t *testing.T, cfg store.Config, version int)

func TestSchemaTooNew(t *testing.T) {
	cases := []struct {
		name   string
		config func(t *testing.T) store.Config
		bump   bumpSchema
	}{
		{"sqlite", func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} },
			func(t *testing.T, cfg store.Config, v int) {
				db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, "trustgate.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)", v); err != nil {
					t.Fatal(err)
				}
			}},
		{"postgres", func(t *testing.T) store.Config { return store.Config{URL: services.Postgres(t)} },
			func(t *testing.T, cfg store.Config, v int) {
				conn, err := pgx.Connect(ctx, cfg.URL)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)", v); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.config(t)
			s := openStore(t, cfg)
			noErr(t, "close", s.Close())
			future := store.LatestVersion() + 1
			c.bump(t, cfg, future)
			_, err := store.Open(ctx, cfg)
			wantErr(t, "open a newer schema", err, store.ErrSchemaTooNew)
			want := fmt.Sprintf("database schema is at version %d but this trustgate binary knows only up to %d: upgrade trustgate (or point it at another database)",
				future, store.LatestVersion())
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
		})
	}
}

// TestConcurrentOpen: processes starting together on one database migrate it once, without
// failing, and (thanks to the migration lock) without tripping over each other.
func TestConcurrentOpen(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			var logs logBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			var wg sync.WaitGroup
			errs := make([]error, 4)
			stores := make([]store.Store, 4)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stores[i], errs[i] = store.Open(ctx, cfg)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("concurrent Open %d: %v", i, err)
				}
				defer stores[i].Close()
			}
			if v := must[int](t, "schema version")(stores[0].SchemaVersion(ctx)); v != store.LatestVersion() {
				t.Fatalf("schema version %d, want %d", v, store.LatestVersion())
			}
			out := logs.String()
			if n := strings.Count(out, "applied database migration"); n != store.LatestVersion() {
				t.Errorf("%d migrations applied in all, want each of the %d applied once:\n%s", n, store.LatestVersion(), out)
			}
			if strings.Contains(out, "concurrently") {
				t.Errorf("starters raced on a migration instead of waiting for the lock:\n%s", out)
			}
			must[store.Host](t, "create host")(stores[1].CreateHost(ctx, store.Host{Key: "acme"}))
			must[store.Host](t, "get host")(stores[2].GetHost(ctx, "acme"))
		})
	}
}
