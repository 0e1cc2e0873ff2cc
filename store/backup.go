package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// A backup is a snapshot of every table of the store, read in one transaction (one consistent
// snapshot, while the gateway keeps serving), as JSON Lines:
//
//	{"format":"trustgate-backup","format_version":1,"schema_version":13,"engine":"sqlite","created_at":"…"}
//	{"table":"hosts","columns":[{"name":"host_key","type":"text"},…]}
//	["default","Default",1733500000000,…]          one line per row, values in the columns' order
//	{"end":"hosts","rows":1}
//	…                                               every table of the schema, parents first
//	{"sha256":"…","tables":21,"rows":1234}
//
// The last line carries the SHA-256 of every byte before it: a truncated or damaged file is
// refused before anything is written. (It detects damage, not tampering: whoever can edit the
// file can recompute it. The audit log's own hash chain is checked by `audit verify`.)
//
// The master key is not in a backup: sealed upstream credentials and signing keys stay sealed,
// and a restored store needs the master key it was sealed with.

// BackupFormat and BackupFormatVersion name the format of a backup file.
const (
	BackupFormat        = "trustgate-backup"
	BackupFormatVersion = 1
)

// maxBackupLine bounds one line of a backup (one row) when it is read back.
const maxBackupLine = 64 << 20

// ErrNotEmpty: restore was pointed at a store that already holds data.
var ErrNotEmpty = errors.New("store is not empty")

// BackupSummary describes a backup that was written or restored.
type BackupSummary struct {
	SchemaVersion int
	// Engine is the engine the backup was read from.
	Engine    string
	CreatedAt time.Time
	Tables    int
	Rows      int64
	// RowsByTable counts the rows of each table.
	RowsByTable map[string]int64
	SHA256      string
}

// BackupFile is where Backup writes: an *os.File. The backup transaction may run more than
// once (the engine retries it), and each attempt starts the file again.
type BackupFile interface {
	io.Writer
	io.Seeker
	Truncate(size int64) error
}

type backupHeader struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	SchemaVersion int       `json:"schema_version"`
	Engine        string    `json:"engine"`
	CreatedAt     time.Time `json:"created_at"`
}

type backupTable struct {
	Table   string   `json:"table"`
	Columns []column `json:"columns"`
}

type backupTableEnd struct {
	End  string `json:"end"`
	Rows int64  `json:"rows"`
}

type backupTrailer struct {
	SHA256 string `json:"sha256"`
	Tables int    `json:"tables"`
	Rows   int64  `json:"rows"`
}

// The keys of each kind of line; a line has exactly the keys of its kind.
var (
	headerKeys   = []string{"format", "format_version", "schema_version", "engine", "created_at"}
	tableKeys    = []string{"table", "columns"}
	tableEndKeys = []string{"end", "rows"}
	trailerKeys  = []string{"sha256", "tables", "rows"}
)

func sqlStoreOf(st Store) (*sqlStore, error) {
	s, ok := st.(*sqlStore)
	if !ok {
		return nil, fmt.Errorf("backup and restore need a store opened with store.Open, not %T", st)
	}
	return s, nil
}

// Backup writes a snapshot of every table of st to f, read in one read-only transaction so
// that it is consistent while other processes write. The database must be at this binary's
// schema version.
func Backup(ctx context.Context, st Store, f BackupFile) (BackupSummary, error) {
	s, err := sqlStoreOf(st)
	if err != nil {
		return BackupSummary{}, err
	}
	tables, err := schemaTables(s.db.tokens())
	if err != nil {
		return BackupSummary{}, err
	}
	engine := s.db.engine()
	var sum BackupSummary
	err = s.db.readTx(ctx, func(q querier) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewind the backup file: %w", err)
		}
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("truncate the backup file: %w", err)
		}
		v, err := schemaVersion(ctx, q)
		if err != nil {
			return err
		}
		if latest := LatestVersion(); v != latest {
			return fmt.Errorf("the database is at schema version %d, this trustgate's is %d: back it up with the trustgate release that serves it", v, latest)
		}
		sum = BackupSummary{SchemaVersion: v, Engine: engine, CreatedAt: now(), RowsByTable: map[string]int64{}}
		h := sha256.New()
		w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<16)
		if err := writeJSONLine(w, backupHeader{Format: BackupFormat, FormatVersion: BackupFormatVersion,
			SchemaVersion: v, Engine: engine, CreatedAt: sum.CreatedAt}); err != nil {
			return err
		}
		for _, t := range tables {
			n, err := backupTableRows(ctx, q, engine, t.name, w)
			if err != nil {
				return err
			}
			sum.Tables++
			sum.Rows += n
			sum.RowsByTable[t.name] = n
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write the backup: %w", err)
		}
		sum.SHA256 = hex.EncodeToString(h.Sum(nil))
		return writeJSONLine(f, backupTrailer{SHA256: sum.SHA256, Tables: sum.Tables, Rows: sum.Rows})
	})
	if err != nil {
		return BackupSummary{}, fmt.Errorf("backup: %w", err)
	}
	return sum, nil
}

// backupTableRows writes one table: its header line, a line per row and its end line.
func backupTableRows(ctx context.Context, q querier, engine, table string, w io.Writer) (int64, error) {
	cols, err := tableColumns(ctx, q, engine, table)
	if err != nil {
		return 0, err
	}
	if err := writeJSONLine(w, backupTable{Table: table, Columns: cols}); err != nil {
		return 0, err
	}
	qt, err := quoteIdent(table)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		if names[i], err = quoteIdent(c.Name); err != nil {
			return 0, err
		}
	}
	r, err := q.query(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+qt)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer r.Close()
	dest := make([]any, len(cols))
	for i, c := range cols {
		switch c.Type {
		case colText:
			dest[i] = new(string)
		case colInt:
			dest[i] = new(int64)
		case colBool:
			dest[i] = new(bool)
		}
	}
	vals := make([]any, len(cols))
	var n int64
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return 0, fmt.Errorf("read %s: %w", table, err)
		}
		for i, d := range dest {
			switch d := d.(type) {
			case *string:
				if !utf8.ValidString(*d) { // JSON would silently replace the invalid bytes
					return 0, fmt.Errorf("%s.%s holds text that is not valid UTF-8: the backup cannot carry it", table, cols[i].Name)
				}
				vals[i] = *d
			case *int64:
				vals[i] = *d
			case *bool:
				vals[i] = *d
			}
		}
		if err := writeJSONLine(w, vals); err != nil {
			return 0, err
		}
		n++
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
	}
	if err := r.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	return n, writeJSONLine(w, backupTableEnd{End: table, Rows: n})
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode backup line: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write the backup: %w", err)
	}
	return nil
}

// Restore loads a backup into st, which must be empty (freshly migrated: no host, no human, no
// key, no audit entry) and at the schema version the backup was made at. The file is read
// twice: once to check all of it (format, version, columns, every value, the checksum) before
// anything is written, then to insert every row in one transaction, which commits only when
// the whole file went in. The relationships in SpiceDB are not in a backup: the gateway's
// start-up reconciliation rebuilds them from the restored store.
func Restore(ctx context.Context, st Store, f io.ReadSeeker) (BackupSummary, error) {
	s, err := sqlStoreOf(st)
	if err != nil {
		return BackupSummary{}, err
	}
	tables, err := schemaTables(s.db.tokens())
	if err != nil {
		return BackupSummary{}, err
	}
	engine := s.db.engine()
	target := map[string][]column{}
	for _, t := range tables {
		cols, err := tableColumns(ctx, s.db.q(), engine, t.name)
		if err != nil {
			return BackupSummary{}, err
		}
		target[t.name] = cols
	}
	current, err := schemaVersion(ctx, s.db.q())
	if err != nil {
		return BackupSummary{}, err
	}
	check := &restoreCheck{tables: tables, target: target, version: current}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return BackupSummary{}, fmt.Errorf("restore: %w", err)
	}
	sum, err := readBackup(ctx, f, check.visitor(nil))
	if err != nil {
		return BackupSummary{}, fmt.Errorf("restore: %w", err)
	}
	if err := check.complete(); err != nil {
		return BackupSummary{}, fmt.Errorf("restore: %w", err)
	}

	err = s.db.writeTx(ctx, func(q querier) error {
		for _, t := range tables {
			qt, err := quoteIdent(t.name)
			if err != nil {
				return err
			}
			if t.seeded { // its rows come from a migration; the backup's replace them
				if _, err := q.exec(ctx, "DELETE FROM "+qt); err != nil {
					return fmt.Errorf("clear %s: %w", t.name, err)
				}
				continue
			}
			found, err := exists(ctx, q, "SELECT 1 FROM "+qt+" LIMIT 1")
			if err != nil {
				return fmt.Errorf("check that %s is empty: %w", t.name, err)
			}
			if found {
				return fmt.Errorf("table %s already has rows: restore only into an empty store (a new --data-dir, or an empty database that trustgate serve has not started on): %w", t.name, ErrNotEmpty)
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		ins := &restoreInserter{ctx: ctx, q: q, engine: engine}
		again := &restoreCheck{tables: tables, target: target, version: current}
		if _, err := readBackup(ctx, f, again.visitor(ins)); err != nil {
			return err
		}
		return again.complete()
	})
	if err != nil {
		return BackupSummary{}, fmt.Errorf("restore: %w", err)
	}
	return sum, nil
}

// backupVisitor receives a backup's content as readBackup reads it.
type backupVisitor struct {
	header   func(backupHeader) error
	table    func(name string, cols []column) error
	row      func(vals []any) error
	tableEnd func(name string, rows int64) error
}

// readBackup reads and checks a whole backup, handing its parts to v, and verifies the
// checksum at the end: a visitor must not make anything it did permanent before readBackup
// returned nil.
func readBackup(ctx context.Context, r io.Reader, v backupVisitor) (BackupSummary, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	h := sha256.New()
	var (
		sum     = BackupSummary{RowsByTable: map[string]int64{}}
		lineNo  int
		cols    []column // of the table being read; nil between tables
		table   string
		rows    int64
		trailer *backupTrailer
	)
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		lineNo++
		if err != nil {
			return sum, fmt.Errorf("backup line %d: %w", lineNo, err)
		}
		if trailer != nil {
			return sum, fmt.Errorf("backup line %d: data after the checksum line", lineNo)
		}
		if lineNo%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return sum, err
			}
		}
		fail := func(format string, args ...any) (BackupSummary, error) {
			return sum, fmt.Errorf("backup line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		body := bytes.TrimSuffix(line, []byte("\n"))
		switch {
		case lineNo == 1:
			var hd backupHeader
			if err := decodeLine(body, headerKeys, &hd); err != nil || hd.Format != BackupFormat {
				return fail("not a trustgate backup (the first line is not its header)")
			}
			if hd.FormatVersion != BackupFormatVersion {
				return fail("backup format version %d; this trustgate reads version %d", hd.FormatVersion, BackupFormatVersion)
			}
			sum.SchemaVersion, sum.Engine, sum.CreatedAt = hd.SchemaVersion, hd.Engine, hd.CreatedAt
			if v.header != nil {
				if err := v.header(hd); err != nil {
					return sum, err
				}
			}
		case cols != nil && len(body) > 0 && body[0] == '[':
			vals, err := decodeRow(body, cols)
			if err != nil {
				return fail("table %s: %v", table, err)
			}
			rows++
			if v.row != nil {
				if err := v.row(vals); err != nil {
					return sum, err
				}
			}
		case cols != nil:
			var end backupTableEnd
			if err := decodeLine(body, tableEndKeys, &end); err != nil {
				return fail("table %s: want a row or the table's end: %v", table, err)
			}
			if end.End != table || end.Rows != rows {
				return fail("table %s ends with %d rows counted, the file says %q has %d", table, rows, end.End, end.Rows)
			}
			if v.tableEnd != nil {
				if err := v.tableEnd(table, rows); err != nil {
					return sum, err
				}
			}
			sum.Tables++
			sum.Rows += rows
			sum.RowsByTable[table] = rows
			cols, table, rows = nil, "", 0
		case bytes.HasPrefix(body, []byte(`{"table"`)):
			var bt backupTable
			if err := decodeLine(body, tableKeys, &bt); err != nil {
				return fail("table header: %v", err)
			}
			if len(bt.Columns) == 0 {
				return fail("table %q has no columns", bt.Table)
			}
			if _, dup := sum.RowsByTable[bt.Table]; dup {
				return fail("table %q appears twice", bt.Table)
			}
			for _, c := range bt.Columns {
				if c.Type != colText && c.Type != colInt && c.Type != colBool {
					return fail("column %s.%s has unknown type %q", bt.Table, c.Name, c.Type)
				}
			}
			if v.table != nil {
				if err := v.table(bt.Table, bt.Columns); err != nil {
					return sum, fmt.Errorf("backup line %d: %w", lineNo, err)
				}
			}
			cols, table = bt.Columns, bt.Table
		default:
			var tr backupTrailer
			if err := decodeLine(body, trailerKeys, &tr); err != nil {
				return fail("want a table or the checksum line: %v", err)
			}
			trailer = &tr
			continue // the checksum line is not part of what it sums
		}
		h.Write(line)
	}
	switch {
	case lineNo == 0:
		return sum, errors.New("the backup file is empty")
	case trailer == nil || cols != nil:
		return sum, errors.New("the backup is truncated: it does not end with its checksum line")
	}
	got := hex.EncodeToString(h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(trailer.SHA256))) != 1 {
		return sum, errors.New("the backup is damaged: its content does not match its SHA-256 checksum")
	}
	if trailer.Tables != sum.Tables || trailer.Rows != sum.Rows {
		return sum, fmt.Errorf("the backup's checksum line counts %d tables and %d rows, the file holds %d and %d",
			trailer.Tables, trailer.Rows, sum.Tables, sum.Rows)
	}
	sum.SHA256 = got
	return sum, nil
}

// readLine reads one line, its newline included, of at most maxBackupLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxBackupLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxBackupLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, errors.New("the last line has no newline: the backup is truncated")
		default:
			return nil, err
		}
	}
}

// decodeLine reads a JSON object that has exactly the keys of its kind.
func decodeLine(body []byte, keys []string, v any) error {
	obj, err := strictjson.ParseObject(body, keys...)
	if err != nil {
		return err
	}
	if len(obj) != len(keys) {
		return fmt.Errorf("want exactly the keys %s", strings.Join(keys, ", "))
	}
	for _, k := range keys {
		if !obj.Has(k) {
			return fmt.Errorf("missing key %q", k)
		}
	}
	return json.Unmarshal(body, v)
}

// decodeRow reads one row: a JSON array with a value of each column's type.
func decodeRow(body []byte, cols []column) ([]any, error) {
	if err := strictjson.Check(body); err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("row: %w", err)
	}
	if len(raw) != len(cols) {
		return nil, fmt.Errorf("row has %d values for %d columns", len(raw), len(cols))
	}
	vals := make([]any, len(raw))
	for i, rv := range raw {
		c := cols[i]
		switch {
		case c.Type == colText && len(rv) > 0 && rv[0] == '"':
			var s string
			if err := json.Unmarshal(rv, &s); err != nil {
				return nil, fmt.Errorf("column %s: %w", c.Name, err)
			}
			vals[i] = s
		case c.Type == colInt:
			n, err := strconv.ParseInt(string(rv), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("column %s: not an integer", c.Name)
			}
			vals[i] = n
		case c.Type == colBool && (string(rv) == "true" || string(rv) == "false"):
			vals[i] = string(rv) == "true"
		default:
			return nil, fmt.Errorf("column %s: not a %s", c.Name, c.Type)
		}
	}
	return vals, nil
}

// restoreCheck holds a backup to the target store's schema: its version, its tables and their
// columns.
type restoreCheck struct {
	tables  []schemaTable
	target  map[string][]column
	version int
	seen    []string
}

func (c *restoreCheck) visitor(ins *restoreInserter) backupVisitor {
	v := backupVisitor{
		header: func(h backupHeader) error {
			switch {
			case h.SchemaVersion == c.version:
				return nil
			case h.SchemaVersion > c.version:
				return fmt.Errorf("the backup was made at schema version %d, by a newer trustgate than this one (version %d): restore it with that release", h.SchemaVersion, c.version)
			default:
				return fmt.Errorf("the backup was made at schema version %d, this trustgate's store is at version %d: restore it with the trustgate release that made it, then start this release on the restored store to migrate it", h.SchemaVersion, c.version)
			}
		},
		table: func(name string, cols []column) error {
			want, ok := c.target[name]
			if !ok {
				return fmt.Errorf("table %q is not in this store's schema", name)
			}
			if err := sameColumns(name, cols, want); err != nil {
				return err
			}
			c.seen = append(c.seen, name)
			if ins != nil {
				return ins.start(name, cols)
			}
			return nil
		},
	}
	if ins != nil {
		v.row = ins.add
		v.tableEnd = func(string, int64) error { return ins.finish() }
	}
	return v
}

// complete reports a table of the schema that the backup did not have.
func (c *restoreCheck) complete() error {
	for _, t := range c.tables {
		if !slices.Contains(c.seen, t.name) {
			return fmt.Errorf("the backup has no table %s", t.name)
		}
	}
	return nil
}

// sameColumns checks that a backup's table has the target's columns, by name and type, in any
// order.
func sameColumns(table string, got, want []column) error {
	if len(got) != len(want) {
		return fmt.Errorf("table %s has %d columns in the backup and %d in this store", table, len(got), len(want))
	}
	for _, g := range got {
		i := slices.IndexFunc(want, func(w column) bool { return w.Name == g.Name })
		if i < 0 {
			return fmt.Errorf("column %s.%s of the backup is not in this store", table, g.Name)
		}
		if want[i].Type != g.Type {
			return fmt.Errorf("column %s.%s is %s in the backup and %s in this store", table, g.Name, g.Type, want[i].Type)
		}
	}
	return nil
}

// restoreInserter writes a backup's rows in multi-row INSERTs.
type restoreInserter struct {
	ctx    context.Context
	q      querier
	engine string
	table  string
	cols   []column
	prefix string
	batch  [][]any
	max    int
}

// restoreBatchValues bounds the placeholders of one INSERT (SQLite allows 32766, PostgreSQL 65535).
const restoreBatchValues = 900

func (ins *restoreInserter) start(table string, cols []column) error {
	qt, err := quoteIdent(table)
	if err != nil {
		return err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		if names[i], err = quoteIdent(c.Name); err != nil {
			return err
		}
	}
	ins.table, ins.cols = table, cols
	ins.prefix = "INSERT INTO " + qt + " (" + strings.Join(names, ", ") + ") VALUES "
	ins.max = max(1, restoreBatchValues/len(cols))
	ins.batch = ins.batch[:0]
	return nil
}

func (ins *restoreInserter) add(vals []any) error {
	ins.batch = append(ins.batch, vals)
	if len(ins.batch) >= ins.max {
		return ins.flush()
	}
	return nil
}

func (ins *restoreInserter) flush() error {
	if len(ins.batch) == 0 {
		return nil
	}
	one := "(" + placeholders(len(ins.cols)) + ")"
	var sb strings.Builder
	sb.WriteString(ins.prefix)
	args := make([]any, 0, len(ins.batch)*len(ins.cols))
	for i, row := range ins.batch {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(one)
		args = append(args, row...)
	}
	if _, err := ins.q.exec(ins.ctx, sb.String(), args...); err != nil {
		return fmt.Errorf("insert into %s: %w", ins.table, err)
	}
	ins.batch = ins.batch[:0]
	return nil
}

// finish writes the table's last rows and, on PostgreSQL, moves the sequences of its serial
// columns past the restored ids (SQLite's AUTOINCREMENT follows explicit ids by itself).
func (ins *restoreInserter) finish() error {
	if err := ins.flush(); err != nil {
		return err
	}
	if ins.engine == EngineSQLite {
		return nil
	}
	ctx := ins.ctx
	for _, c := range ins.cols {
		if c.Type != colInt {
			continue
		}
		var seq *string
		if err := ins.q.queryRow(ctx, "SELECT pg_get_serial_sequence(?, ?)", ins.table, c.Name).Scan(&seq); err != nil {
			return fmt.Errorf("find the sequence of %s.%s: %w", ins.table, c.Name, err)
		}
		if seq == nil {
			continue
		}
		qt, _ := quoteIdent(ins.table)
		qc, _ := quoteIdent(c.Name)
		if _, err := ins.q.exec(ctx, "SELECT setval(?, m) FROM (SELECT MAX("+qc+") AS m FROM "+qt+") AS t WHERE m IS NOT NULL", *seq); err != nil {
			return fmt.Errorf("advance the sequence of %s.%s: %w", ins.table, c.Name, err)
		}
	}
	return nil
}
