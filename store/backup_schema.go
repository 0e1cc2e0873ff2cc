package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A backup covers every table the migrations create. The list is derived from the migration
// files themselves, so a table a new migration adds is in the next backup without anyone
// remembering to add it; the columns and their types come from the database's catalog.

// schemaTable is one table of the store's schema.
type schemaTable struct {
	name string
	// seeded: a migration inserts rows into it (a singleton counter), so a fresh store already
	// has them; restore replaces them instead of requiring the table to be empty.
	seeded bool
}

var (
	createTableStmt = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([a-z0-9_]+)"?`)
	dropTableStmt   = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?"?([a-z0-9_]+)"?`)
	renameTableStmt = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+"?([a-z0-9_]+)"?\s+RENAME\s+TO\s+"?([a-z0-9_]+)"?`)
	insertIntoStmt  = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+"?([a-z0-9_]+)"?`)
)

// schemaTables returns the tables the embedded migrations leave behind, in the order they were
// created: a table's foreign keys name tables created before it, so inserting in this order
// satisfies them.
func schemaTables(tokens map[string]string) ([]schemaTable, error) {
	ms, err := loadMigrations(tokens)
	if err != nil {
		return nil, err
	}
	tables := tablesOf(ms)
	if len(tables) == 0 {
		return nil, fmt.Errorf("embedded migrations create no table")
	}
	return tables, nil
}

// tablesOf follows the tables through the migrations' CREATE, RENAME and DROP statements.
func tablesOf(ms []migration) []schemaTable {
	var tables []schemaTable
	index := func(name string) int {
		return slices.IndexFunc(tables, func(t schemaTable) bool { return t.name == name })
	}
	for _, m := range ms {
		for _, stmt := range m.stmts {
			stmt = strings.TrimSpace(stmt)
			switch {
			case createTableStmt.MatchString(stmt):
				name := strings.ToLower(createTableStmt.FindStringSubmatch(stmt)[1])
				if index(name) < 0 {
					tables = append(tables, schemaTable{name: name})
				}
			case dropTableStmt.MatchString(stmt):
				if i := index(strings.ToLower(dropTableStmt.FindStringSubmatch(stmt)[1])); i >= 0 {
					tables = slices.Delete(tables, i, i+1)
				}
			case renameTableStmt.MatchString(stmt):
				sm := renameTableStmt.FindStringSubmatch(stmt)
				if i := index(strings.ToLower(sm[1])); i >= 0 {
					tables[i].name = strings.ToLower(sm[2])
				}
			case insertIntoStmt.MatchString(stmt):
				if i := index(strings.ToLower(insertIntoStmt.FindStringSubmatch(stmt)[1])); i >= 0 {
					tables[i].seeded = true
				}
			}
		}
	}
	return tables
}

// Column types of a backup: every column of the schema is one of these.
const (
	colText = "text"
	colInt  = "int"
	colBool = "bool"
)

type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// tableColumns reads a table's columns, in order, from the catalog, with their backup types.
// A column of a type a backup cannot carry is an error naming it.
func tableColumns(ctx context.Context, q querier, engine, table string) ([]column, error) {
	var query string
	if engine == EngineSQLite {
		query = `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`
	} else {
		query = `SELECT column_name, data_type FROM information_schema.columns
		         WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`
	}
	r, err := q.query(ctx, query, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	defer r.Close()
	var cols []column
	for r.Next() {
		var name, sqlType string
		if err := r.Scan(&name, &sqlType); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		typ, ok := backupType(sqlType)
		if !ok {
			return nil, fmt.Errorf("column %s.%s has type %q, which a backup cannot carry (text, integers and booleans only)", table, name, sqlType)
		}
		cols = append(cols, column{Name: name, Type: typ})
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s is missing from the database", table)
	}
	return cols, nil
}

// backupType maps a column's SQL type (SQLite's declared type or PostgreSQL's data_type) to
// the backup's.
func backupType(sqlType string) (string, bool) {
	t := strings.ToUpper(strings.TrimSpace(sqlType))
	switch {
	case strings.Contains(t, "INT"):
		return colInt, true
	case strings.Contains(t, "BOOL"):
		return colBool, true
	case t == "TEXT" || strings.Contains(t, "CHAR") || t == "CLOB" || t == "STRING":
		return colText, true
	}
	return "", false
}

// catalogTables lists the tables the database's catalog holds in the store's schema, but for
// the engine's own bookkeeping and schema_migrations (which a backup records as its version).
func catalogTables(ctx context.Context, q querier, engine string) ([]string, error) {
	var query string
	if engine == EngineSQLite {
		query = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	} else {
		query = `SELECT table_name FROM information_schema.tables
		         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	r, err := q.query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer r.Close()
	var names []string
	for r.Next() {
		var n string
		if err := r.Scan(&n); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if n != "schema_migrations" {
			names = append(names, n)
		}
	}
	return names, r.Err()
}

// quoteIdent quotes a table or column name for SQL; names come from the migrations or the
// catalog and are checked to be plain.
func quoteIdent(name string) (string, error) {
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return "", fmt.Errorf("name %q is not a plain lower-case identifier: %w", name, ErrInvalid)
	}
	return `"` + name + `"`, nil
}
