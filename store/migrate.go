package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations are SQL files named NNNN_name.sql, numbered from 1 without gaps. One file serves
// every engine; {{token}}s stand where the engines' SQL differs (see backend.tokens). A file is
// split into statements at semicolons outside quotes and comments.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	stmts   []string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LatestVersion is the highest schema version this binary knows.
func LatestVersion() int {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		panic(fmt.Sprintf("store: embedded migrations: %v", err)) // the binary is broken
	}
	latest := 0
	for _, e := range entries {
		if m := migrationName.FindStringSubmatch(e.Name()); m != nil {
			v, _ := strconv.Atoi(m[1])
			latest = max(latest, v)
		}
	}
	return latest
}

// loadMigrations reads the embedded migrations for an engine, tokens substituted, in order.
func loadMigrations(tokens map[string]string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("embedded migration %q: name is not NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		text, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sqlText, err := substituteTokens(string(text), tokens)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: m[2], stmts: splitStatements(sqlText)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migrations: expected version %d, found %d (%s)", i+1, m.version, m.name)
		}
	}
	return ms, nil
}

var tokenPattern = regexp.MustCompile(`\{\{\s*([a-z_]+)\s*\}\}`)

func substituteTokens(text string, tokens map[string]string) (string, error) {
	var missing []string
	out := tokenPattern.ReplaceAllStringFunc(text, func(tok string) string {
		name := tokenPattern.FindStringSubmatch(tok)[1]
		v, ok := tokens[name]
		if !ok {
			missing = append(missing, name)
			return tok
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown token(s) %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// splitStatements splits SQL text at semicolons that are not inside quotes or comments, and
// drops empty statements and comment-only text.
func splitStatements(text string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s != "" {
			stmts = append(stmts, s)
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			for i < len(text) && text[i] != '\n' {
				i++
			}
			cur.WriteByte('\n')
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(text) && text[j] != c {
				j++
			}
			end := min(j+1, len(text))
			cur.WriteString(text[i:end])
			i = end - 1
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return stmts
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    applied_at BIGINT NOT NULL DEFAULT 0
)`

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int64
	if err := q.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v), nil
}

func schemaTooNew(current, latest int) error {
	return fmt.Errorf("database schema is at version %d but this trustgate binary knows only up to %d: upgrade trustgate (or point it at another database): %w",
		current, latest, ErrSchemaTooNew)
}

// migrate applies the pending migrations, each in its own transaction with its
// schema_migrations row, and refuses a database migrated by a newer binary.
func migrate(ctx context.Context, b backend, log *slog.Logger) error {
	return migrateTo(ctx, b, log, -1)
}

// migrateTo is migrate stopping at version target (-1: the latest); tests use it to build a
// database of an older version.
func migrateTo(ctx context.Context, b backend, log *slog.Logger, target int) error {
	ms, err := loadMigrations(b.tokens())
	if err != nil {
		return err
	}
	latest := len(ms)
	if target < 0 || target > latest {
		target = latest
	}
	for {
		var applied *migration
		var before int
		err := b.migrateTx(ctx, func(q querier) error {
			applied = nil
			if _, err := q.exec(ctx, createMigrationsTable); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			cur, err := schemaVersion(ctx, q)
			if err != nil {
				return err
			}
			before = cur
			if cur > latest {
				return schemaTooNew(cur, latest)
			}
			if cur >= target {
				return nil
			}
			m := ms[cur] // version cur+1
			for i, stmt := range m.stmts {
				if _, err := q.exec(ctx, stmt); err != nil {
					return fmt.Errorf("migration %04d_%s, statement %d: %w", m.version, m.name, i+1, err)
				}
			}
			if _, err := q.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
			}
			applied = &m
			return nil
		})
		if err != nil {
			// Without a migration lock (CockroachDB), another process starting at the same time
			// may have applied this migration first; then carry on from its version.
			if cur, verr := schemaVersion(ctx, b.q()); verr == nil && cur > before && cur <= latest {
				log.Info("migration applied concurrently by another process", "version", cur)
				continue
			}
			return fmt.Errorf("migrate: %w", err)
		}
		if applied == nil {
			return nil
		}
		log.Info("applied database migration", "engine", b.engine(), "version", applied.version, "name", applied.name)
	}
}

// checkCurrent refuses a database that is not at this binary's schema version, without
// changing it.
func checkCurrent(ctx context.Context, b backend) error {
	latest := LatestVersion()
	v, err := schemaVersion(ctx, b.q())
	if err != nil {
		return fmt.Errorf("the database has no trustgate schema (run trustgate migrate, or serve, on it first): %w", err)
	}
	switch {
	case v > latest:
		return schemaTooNew(v, latest)
	case v < latest:
		return fmt.Errorf("database schema is at version %d, this trustgate binary's is %d: run trustgate migrate first, or use the release that serves it", v, latest)
	}
	return nil
}

// Migration is one migration a store would apply.
type Migration struct {
	Version int
	Name    string
	// Statements are the SQL statements, for the store's engine.
	Statements []string
}

// MigrationPlan is what migrating a store would do.
type MigrationPlan struct {
	Engine string
	// Current is the store's schema version (0: no trustgate schema yet).
	Current int
	// Pending are the migrations that would run, in order.
	Pending []Migration
}

// PlanMigrations reports, without changing anything, which migrations Open or `trustgate
// migrate` would apply to the store cfg names. A SQLite file that does not exist is not
// created: every migration would run. A database migrated by a newer trustgate is
// ErrSchemaTooNew, as Open would report it.
func PlanMigrations(ctx context.Context, cfg Config) (MigrationPlan, error) {
	plan, err := planMigrations(ctx, cfg)
	if err != nil {
		return MigrationPlan{}, newRedactor(cfg.URL).err(err)
	}
	return plan, nil
}

func planMigrations(ctx context.Context, cfg Config) (MigrationPlan, error) {
	engine, conn, err := ParseURL(cfg.URL)
	if err != nil {
		return MigrationPlan{}, fmt.Errorf("open store: %w", err)
	}
	current := 0
	if engine == EngineSQLite {
		path, err := sqlitePathOf(cfg, conn)
		if err != nil {
			return MigrationPlan{}, err
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return pendingFrom(engine, 0, (&sqliteBackend{}).tokens())
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b, err := openBackend(ctx, cfg, log)
	if err != nil {
		return MigrationPlan{}, err
	}
	defer b.close()
	engine = b.engine()
	var query string
	if engine == EngineSQLite {
		query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	} else {
		query = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
	}
	found, err := exists(ctx, b.q(), query)
	if err != nil {
		return MigrationPlan{}, fmt.Errorf("read schema version: %w", err)
	}
	if found {
		if current, err = schemaVersion(ctx, b.q()); err != nil {
			return MigrationPlan{}, err
		}
	}
	return pendingFrom(engine, current, b.tokens())
}

func pendingFrom(engine string, current int, tokens map[string]string) (MigrationPlan, error) {
	ms, err := loadMigrations(tokens)
	if err != nil {
		return MigrationPlan{}, err
	}
	if current > len(ms) {
		return MigrationPlan{}, schemaTooNew(current, len(ms))
	}
	plan := MigrationPlan{Engine: engine, Current: current}
	for _, m := range ms[current:] {
		plan.Pending = append(plan.Pending, Migration{Version: m.version, Name: m.name, Statements: m.stmts})
	}
	return plan, nil
}
