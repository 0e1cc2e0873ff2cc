package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/trustgate/trustgate/audit"
)

// AuditLog is the audit log's part of the Store: append and read, and nothing that updates or
// deletes an entry. Deleting a host keeps its entries: the audit log outlives its tenants.
type AuditLog interface {
	// AppendAudit writes the entries in one transaction. Each gets the next sequence number of
	// its host and is chained to the entry before it (audit.Chain). Appends from several
	// processes to one host are serialised on the host's head row.
	AppendAudit(ctx context.Context, entries []audit.Entry) error
	// ListAudit lists at most limit entries of f.Host matching f, in sequence order (newest
	// first when f.Descending), after the sequence number cursor (0: from the start; when
	// descending, below cursor, 0: from the newest).
	ListAudit(ctx context.Context, f audit.Filter, cursor int64, limit int) ([]audit.Entry, error)
	// ScanAudit calls fn for every entry of host with Seq >= fromSeq, in sequence order, reading
	// in pages so that memory stays bounded. An error of fn stops the scan and is returned.
	ScanAudit(ctx context.Context, host string, fromSeq int64, fn func(audit.Entry) error) error
	// AuditHeads lists the head (last sequence number and hash) of every host that has an audit
	// log, deleted hosts included, ordered by host.
	AuditHeads(ctx context.Context) ([]audit.Head, error)
}

const auditColumns = "host_key, seq, at, user_id, user_email, agent_id, client_id, client_name, server_key, tool, method, " +
	"decision, reason, required_level, agent_level, ceiling, upstream_status, latency_ms, request_id, trace_id, arguments, " +
	"actor, action, object, old_value, new_value, format_version, prev_hash, hash, client_addr, flags"

const auditColumnCount = 31

// auditChunk bounds the rows of one multi-row INSERT.
const auditChunk = 100

// maxAuditList bounds one ListAudit.
const maxAuditList = 1000

// auditScanPage is how many rows ScanAudit reads per query.
const auditScanPage = 500

// appendAuditArgs appends e's values in auditColumns' order.
func appendAuditArgs(args []any, e audit.Entry) []any {
	return append(args, e.Host, e.Seq, toMillis(e.Time), e.UserID, e.UserEmail, e.AgentID, e.ClientID, e.ClientName, e.Server, e.Tool, e.Method,
		string(e.Decision), e.Reason, e.RequiredLevel, e.AgentLevel, e.Ceiling, e.UpstreamStatus, e.LatencyMS, e.RequestID, e.TraceID, e.Arguments,
		e.Actor, e.Action, e.Object, e.OldValue, e.NewValue, e.Version, e.PrevHash, e.Hash, e.ClientAddr, strings.Join(e.Flags, ","))
}

// insertAuditOne is the INSERT of one entry, the common batch (one client's call), built once.
var insertAuditOne = insertAuditQuery(1)

// insertAuditQuery is the INSERT of rows entries.
func insertAuditQuery(rows int) string {
	row := "(" + placeholders(auditColumnCount) + ")"
	var b strings.Builder
	b.Grow(len("INSERT INTO audit_entries () VALUES ") + len(auditColumns) + rows*(len(row)+2))
	b.WriteString("INSERT INTO audit_entries (" + auditColumns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

func scanAudit(r row) (audit.Entry, error) {
	var e audit.Entry
	var at, status, version int64
	var decision, flags string
	if err := r.Scan(&e.Host, &e.Seq, &at, &e.UserID, &e.UserEmail, &e.AgentID, &e.ClientID, &e.ClientName, &e.Server, &e.Tool, &e.Method,
		&decision, &e.Reason, &e.RequiredLevel, &e.AgentLevel, &e.Ceiling, &status, &e.LatencyMS, &e.RequestID, &e.TraceID, &e.Arguments,
		&e.Actor, &e.Action, &e.Object, &e.OldValue, &e.NewValue, &version, &e.PrevHash, &e.Hash, &e.ClientAddr, &flags); err != nil {
		return audit.Entry{}, err
	}
	if flags != "" {
		e.Flags = strings.Split(flags, ",")
	}
	e.Time = fromMillis(at)
	e.Decision = audit.Decision(decision)
	e.UpstreamStatus = int(status)
	e.Version = int(version)
	return e, nil
}

func (s *sqlStore) AppendAudit(ctx context.Context, entries []audit.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	oneHost := true
	for _, e := range entries {
		if err := validHostKey(e.Host); err != nil {
			return fmt.Errorf("append audit entries: %w", err)
		}
		if !e.Decision.Valid() {
			return fmt.Errorf("append audit entries: decision %q: %w", e.Decision, ErrInvalid)
		}
		oneHost = oneHost && e.Host == entries[0].Host
	}
	lockHead := s.db.engine() != EngineSQLite
	var err error
	if oneHost { // the common case: no grouping to allocate
		err = s.db.writeTx(ctx, func(q querier) error {
			return appendHostAudit(ctx, q, entries[0].Host, entries, lockHead)
		})
	} else {
		// Hosts in order of first appearance; each host's entries keep their order.
		var hosts []string
		byHost := map[string][]audit.Entry{}
		for _, e := range entries {
			if _, ok := byHost[e.Host]; !ok {
				hosts = append(hosts, e.Host)
			}
			byHost[e.Host] = append(byHost[e.Host], e)
		}
		err = s.db.writeTx(ctx, func(q querier) error {
			for _, host := range hosts {
				if err := appendHostAudit(ctx, q, host, byHost[host], lockHead); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("append audit entries: %w", err)
	}
	return nil
}

// appendHostAudit chains and inserts one host's entries, holding the host's head row.
func appendHostAudit(ctx context.Context, q querier, host string, entries []audit.Entry, lockHead bool) error {
	var seq int64
	var prev string
	if lockHead {
		// One statement creates a missing head and takes the lock: a row lock on PostgreSQL and
		// CockroachDB (ON CONFLICT DO UPDATE locks the row it updates), held to commit (a
		// concurrent appender waits, then its transaction is retried).
		err := q.queryRow(ctx, "INSERT INTO audit_heads (host_key, last_seq, last_hash) VALUES (?, 0, '') "+
			"ON CONFLICT (host_key) DO UPDATE SET last_seq = audit_heads.last_seq RETURNING last_seq, last_hash", host).Scan(&seq, &prev)
		if err != nil {
			return fmt.Errorf("lock audit head: %w", err)
		}
	} else {
		// SQLite's write transaction already excludes every other writer: no lock to take, and
		// a missing head is the empty chain (created by the upsert below).
		err := q.queryRow(ctx, "SELECT last_seq, last_hash FROM audit_heads WHERE host_key = ?", host).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, errNoRows) {
			return fmt.Errorf("read audit head: %w", err)
		}
	}
	chained := make([]audit.Entry, len(entries))
	for i, e := range entries {
		seq++
		c, err := audit.Chain(e, seq, prev)
		if err != nil {
			return err
		}
		chained[i], prev = c, c.Hash
	}
	args := make([]any, 0, auditColumnCount*min(len(chained), auditChunk))
	for start := 0; start < len(chained); start += auditChunk {
		batch := chained[start:min(start+auditChunk, len(chained))]
		query := insertAuditOne
		if len(batch) > 1 {
			query = insertAuditQuery(len(batch))
		}
		args = args[:0]
		for _, e := range batch {
			args = appendAuditArgs(args, e)
		}
		if _, err := q.exec(ctx, query, args...); err != nil {
			return fmt.Errorf("insert audit entries: %w", err)
		}
	}
	if _, err := q.exec(ctx, "INSERT INTO audit_heads (host_key, last_seq, last_hash) VALUES (?, ?, ?) ON CONFLICT (host_key) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash",
		host, seq, prev); err != nil {
		return fmt.Errorf("advance audit head: %w", err)
	}
	return nil
}

func (s *sqlStore) ListAudit(ctx context.Context, f audit.Filter, cursor int64, limit int) ([]audit.Entry, error) {
	if f.Host == "" {
		return nil, invalid("list audit entries: no host")
	}
	if limit <= 0 || limit > maxAuditList {
		limit = maxAuditList
	}
	where := []string{"host_key = ?"}
	args := []any{f.Host}
	for _, c := range []struct{ col, val string }{
		{"user_id", f.UserID}, {"agent_id", f.AgentID}, {"server_key", f.Server}, {"tool", f.Tool}, {"decision", string(f.Decision)},
	} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if f.Flag != "" {
		if !validFlagFilter(f.Flag) {
			return nil, invalid("list audit entries: flag %q: want a flag's name (lower case letters and _)", f.Flag)
		}
		// The flags are stored comma-separated; _ is escaped, as LIKE reads it as any character.
		where = append(where, "(',' || flags || ',') LIKE ? ESCAPE '\\'")
		args = append(args, "%,"+strings.ReplaceAll(f.Flag, "_", `\_`)+",%")
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, toMillis(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < ?")
		args = append(args, toMillis(f.Until))
	}
	order := "ASC"
	switch {
	case f.Descending && cursor > 0:
		where = append(where, "seq < ?")
		args = append(args, cursor)
		order = "DESC"
	case f.Descending:
		order = "DESC"
	case cursor > 0:
		where = append(where, "seq > ?")
		args = append(args, cursor)
	}
	args = append(args, limit)
	query := "SELECT " + auditColumns + " FROM audit_entries WHERE " + strings.Join(where, " AND ") + " ORDER BY seq " + order + " LIMIT ?"
	out, err := s.queryAudit(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries of host %s: %w", f.Host, err)
	}
	return out, nil
}

func (s *sqlStore) queryAudit(ctx context.Context, query string, args ...any) ([]audit.Entry, error) {
	rs, err := s.db.q().query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []audit.Entry
	for rs.Next() {
		e, err := scanAudit(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rs.Err()
}

func (s *sqlStore) ScanAudit(ctx context.Context, host string, fromSeq int64, fn func(audit.Entry) error) error {
	after := max(fromSeq-1, 0)
	for {
		page, err := s.queryAudit(ctx, "SELECT "+auditColumns+" FROM audit_entries WHERE host_key = ? AND seq > ? ORDER BY seq LIMIT ?",
			host, after, auditScanPage)
		if err != nil {
			return fmt.Errorf("read audit entries of host %s after %d: %w", host, after, err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(page) < auditScanPage {
			return nil
		}
	}
}

func (s *sqlStore) AuditHeads(ctx context.Context) ([]audit.Head, error) {
	rs, err := s.db.q().query(ctx, "SELECT host_key, last_seq, last_hash FROM audit_heads ORDER BY host_key")
	if err != nil {
		return nil, fmt.Errorf("read audit heads: %w", err)
	}
	defer rs.Close()
	var out []audit.Head
	for rs.Next() {
		var h audit.Head
		if err := rs.Scan(&h.Host, &h.Seq, &h.Hash); err != nil {
			return nil, fmt.Errorf("read audit heads: %w", err)
		}
		out = append(out, h)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read audit heads: %w", err)
	}
	return out, nil
}

// validFlagFilter: a flag's name, as a filter: 1 to 64 of a-z and _.
func validFlagFilter(f string) bool {
	if len(f) > 64 {
		return false
	}
	for _, r := range f {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return f != ""
}
