package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/services"
)

// TestBackupCoversEveryTable: the tables a backup carries (derived from the migrations) are
// exactly the tables the migrated database has, on every engine.
func TestBackupCoversEveryTable(t *testing.T) {
	ctx := context.Background()
	configs := map[string]func() Config{
		EngineSQLite:   func() Config { return Config{DataDir: t.TempDir()} },
		EnginePostgres: func() Config { return Config{URL: services.Postgres(t), ConnectTimeout: 5 * time.Second} },
	}
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			st, err := Open(ctx, cfg())
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
