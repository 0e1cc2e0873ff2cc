package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/services"
)

// TestBackupCoversEveryTable: the tables a backup carries (derived from the migrations) are
// exactly the tables the migrated database has, on every engine.
func TestBackupCoversEveryTable(t *testing.T) {
	ctx := context.Background()
	// Each config takes the subtest's t: a skip (no PostgreSQL here) must end the subtest only.
	configs := map[string]func(*testing.T) Config{
		EngineSQLite:   func(t *testing.T) Config { return Config{DataDir: t.TempDir()} },
		EnginePostgres: func(t *testing.T) Config { return Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second} },
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			st, err := Open(ctx, cfg(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s := st.(*sqlStore)
			tables, err := schemaTables(s.db.tokens())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tb := range tables {
				names = append(names, tb.name)
				if _, err := tableColumns(ctx, s.db.q(), s.db.engine(), tb.name); err != nil {
					t.Errorf("columns of %s: %v", tb.name, err)
				}
			}
			slices.Sort(names)
			catalog, err := catalogTables(ctx, s.db.q(), s.db.engine())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, catalog) {
				t.Fatalf("a backup carries the tables\n  %v\nthe database has\n  %v", names, catalog)
			}
		})
	}
}

// TestSchemaTablesFollowMigrations: a table a later migration creates, renames or drops is
// followed, and tables a migration seeds with rows are marked.
func TestSchemaTablesFollowMigrations(t *testing.T) {
	ms := []migration{
		{version: 1, stmts: []string{"CREATE TABLE a (x TEXT)", "create table if not exists b (y TEXT)", "INSERT INTO b (y) VALUES ('1')"}},
		{version: 2, stmts: []string{"CREATE TABLE c (z BIGINT)", "ALTER TABLE a RENAME TO a2", "ALTER TABLE c ADD COLUMN w TEXT"}},
		{version: 3, stmts: []string{"DROP TABLE b", "CREATE TABLE d (x TEXT)"}},
	}
	got := tablesOf(ms)
	want := []schemaTable{{name: "a2"}, {name: "c"}, {name: "d"}}
	if !slices.Equal(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
	got = tablesOf(ms[:1])
	if want := []schemaTable{{name: "a"}, {name: "b", seeded: true}}; !slices.Equal(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
}

// TestPlanMigrations: the dry run lists what migrating would apply, from any version, changes
// nothing, and refuses a database a newer trustgate migrated.
func TestPlanMigrations(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	latest := LatestVersion()
	cases := map[string]func(t *testing.T) (backend, Config){
		EngineSQLite: func(t *testing.T) (backend, Config) {
			dir := t.TempDir()
			cfg := Config{DataDir: dir}
			// A data directory with no database yet: every migration, and no file created.
			plan, err := PlanMigrations(ctx, cfg)
			if err != nil || plan.Current != 0 || len(plan.Pending) != latest || plan.Pending[0].Name != "init" || len(plan.Pending[0].Statements) == 0 {
				t.Fatalf("plan of a missing database: %+v, %v", plan, err)
			}
			if _, err := os.Stat(filepath.Join(dir, sqliteFileName)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the dry run created the database file (%v)", err)
			}
			b, err := openSQLite(ctx, filepath.Join(dir, sqliteFileName), log)
			if err != nil {
				t.Fatal(err)
			}
			return b, cfg
		},
		EnginePostgres: func(t *testing.T) (backend, Config) {
			url := services.Postgres(t)
			cfg := Config{URL: url, ConnectTimeout: 5 * time.Second}
			plan, err := PlanMigrations(ctx, cfg)
			if err != nil || plan.Current != 0 || len(plan.Pending) != latest {
				t.Fatalf("plan of an empty database: %+v, %v", plan, err)
			}
			b, err := openPostgres(ctx, EnginePostgres, url, 5*time.Second, log)
			if err != nil {
				t.Fatal(err)
			}
			return b, cfg
		},
	}
	for name, open := range cases {
		t.Run(name, func(t *testing.T) {
			b, cfg := open(t)
			defer b.close()
			at := latest - 2
			if err := migrateTo(ctx, b, log, at); err != nil {
				t.Fatal(err)
			}
			plan, err := PlanMigrations(ctx, cfg)
			if err != nil || plan.Current != at || plan.Engine != name || len(plan.Pending) != 2 || plan.Pending[0].Version != at+1 || plan.Pending[1].Version != latest {
				t.Fatalf("plan at version %d: %+v, %v", at, plan, err)
			}
			if v, _ := schemaVersion(ctx, b.q()); v != at {
				t.Fatalf("the dry run changed the schema version to %d", v)
			}
			if err := migrate(ctx, b, log); err != nil {
				t.Fatal(err)
			}
			if plan, err := PlanMigrations(ctx, cfg); err != nil || plan.Current != latest || len(plan.Pending) != 0 {
				t.Fatalf("plan of a migrated database: %+v, %v", plan, err)
			}
			if _, err := b.q().exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)", latest+1); err != nil {
				t.Fatal(err)
			}
			if _, err := PlanMigrations(ctx, cfg); !errors.Is(err, ErrSchemaTooNew) {
				t.Fatalf("plan of a newer database: %v", err)
			}
		})
	}
}
