package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/schema"
)

// The relationship outbox. Every mutation that changes the set of derived tuples appends its
// changes here in its own transaction, after its row writes. The drain hands them out in id
// order, which must match, for any one tuple, the order in which its changes committed. It does:
//
//   - every change of a tuple comes with a write of the one row the tuple derives from (user,
//     agent, server, tool, grant or consent), and the outbox insert comes after that write;
//   - two transactions writing the same row are serialised by the engine (SQLite: one writer at
//     a time; PostgreSQL and CockroachDB: the later one waits for the row, then is retried from
//     the start when the first commits), so the later one draws its id after the earlier one
//     committed;
//   - ids come from a sequence that only grows (SQLite AUTOINCREMENT, PostgreSQL BIGSERIAL,
//     CockroachDB SERIAL with serial_normalization = sql_sequence).
//
// Changes of different tuples may commit in another order than their ids (a transaction that drew
// id 5 may commit after one that drew id 6, and a drain may hand out 6 first); that is harmless,
// as they are independent.

// changeSet collects one transaction's tuple changes. A tuple appears once, with its last op, so
// the order of the changes within a transaction does not matter.
type changeSet struct {
	order []string
	ops   map[string]ChangeOp
	hosts map[string]string // the host of each relationship's resource
}

func (c *changeSet) add(op ChangeOp, rels ...schema.Relationship) {
	if c.ops == nil {
		c.ops = make(map[string]ChangeOp)
		c.hosts = make(map[string]string)
	}
	for _, r := range rels {
		k := r.String()
		if _, seen := c.ops[k]; !seen {
			c.order = append(c.order, k)
			c.hosts[k] = schema.HostOf(r.Resource)
		}
		c.ops[k] = op
	}
}

func (c *changeSet) touch(rels ...schema.Relationship) { c.add(Touch, rels...) }

func (c *changeSet) delete(rels ...schema.Relationship) { c.add(Delete, rels...) }

// outboxChunk bounds the rows of one multi-row INSERT (4 parameters per row).
const outboxChunk = 200

// write appends the changes to the outbox.
func (c *changeSet) write(ctx context.Context, q querier, at time.Time) error {
	ms := toMillis(at)
	for start := 0; start < len(c.order); start += outboxChunk {
		keys := c.order[start:min(start+outboxChunk, len(c.order))]
		query := "INSERT INTO relationship_outbox (op, relationship, created_at, host_key) VALUES "
		args := make([]any, 0, 4*len(keys))
		for i, k := range keys {
			if i > 0 {
				query += ", "
			}
			query += "(?, ?, ?, ?)"
			args = append(args, string(c.ops[k]), k, ms, c.hosts[k])
		}
		if _, err := q.exec(ctx, query, args...); err != nil {
			return fmt.Errorf("append to relationship outbox: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) DrainRelationshipChanges(ctx context.Context, limit int, apply func(ctx context.Context, changes []RelationshipChange) error) (int, error) {
	if apply == nil {
		return 0, invalid("drain relationship changes: nil apply")
	}
	var drained int
	err := s.db.writeTx(ctx, func(q querier) error {
		drained = 0
		// The cross-process lock: a row lock on PostgreSQL and CockroachDB, held to commit. On
		// SQLite the transaction already holds the database's write lock.
		n, err := q.exec(ctx, "UPDATE outbox_lock SET n = n + 1 WHERE id = 1")
		if err != nil {
			return fmt.Errorf("take outbox lock: %w", err)
		}
		if n != 1 {
			return errors.New("take outbox lock: the outbox_lock row is missing")
		}
		changes, err := pendingChanges(ctx, q, limit)
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		var aside *SetAside
		if err := apply(ctx, changes); err != nil && !errors.As(err, &aside) {
			return fmt.Errorf("apply: %w", err)
		}
		if aside != nil {
			if err := quarantine(ctx, q, changes, aside.Refused); err != nil {
				return err
			}
		}
		for start := 0; start < len(changes); start += outboxChunk {
			batch := changes[start:min(start+outboxChunk, len(changes))]
			args := make([]any, len(batch))
			for i, c := range batch {
				args[i] = c.ID
			}
			n, err := q.exec(ctx, "DELETE FROM relationship_outbox WHERE id IN ("+placeholders(len(batch))+")", args...)
			if err != nil {
				return fmt.Errorf("remove drained changes: %w", err)
			}
			if n != int64(len(batch)) {
				return fmt.Errorf("remove drained changes: removed %d of %d rows", n, len(batch))
			}
		}
		drained = len(changes)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("drain relationship changes: %w", err)
	}
	return drained, nil
}

// pendingChanges reads the oldest outbox rows; limit <= 0 means all.
func pendingChanges(ctx context.Context, q querier, limit int) ([]RelationshipChange, error) {
	query := "SELECT id, op, relationship FROM relationship_outbox ORDER BY id"
	var args []any
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read relationship outbox: %w", err)
	}
	defer rs.Close()
	var out []RelationshipChange
	for rs.Next() {
		var c RelationshipChange
		var op, rel string
		if err := rs.Scan(&c.ID, &op, &rel); err != nil {
			return nil, fmt.Errorf("read relationship outbox: %w", err)
		}
		switch ChangeOp(op) {
		case Touch, Delete:
			c.Op = ChangeOp(op)
		default:
			return nil, fmt.Errorf("relationship outbox row %d: unknown op %q", c.ID, op)
		}
		if c.Relationship, err = schema.ParseRelationship(rel); err != nil {
			return nil, fmt.Errorf("relationship outbox row %d: %w", c.ID, err)
		}
		out = append(out, c)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read relationship outbox: %w", err)
	}
	return out, nil
}

func (s *sqlStore) PendingRelationshipChanges(ctx context.Context) (int, error) {
	var n int64
	if err := s.db.q().queryRow(ctx, "SELECT COUNT(*) FROM relationship_outbox").Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending relationship changes: %w", err)
	}
	return int(n), nil
}

// PendingHost is a host with relationship changes the authorization backend has not applied.
type PendingHost struct {
	Host string
	// Pending counts its changes in the outbox; Oldest is when the oldest of them was made
	// (zero when none is).
	Pending int
	Oldest  time.Time
	// Quarantined counts its changes the backend refused for good (see
	// QuarantineRelationshipChanges).
	Quarantined int
}

func (s *sqlStore) PendingRelationshipHosts(ctx context.Context) ([]PendingHost, error) {
	byHost := map[string]*PendingHost{}
	at := func(host string) *PendingHost {
		h := byHost[host]
		if h == nil {
			h = &PendingHost{Host: host}
			byHost[host] = h
		}
		return h
	}
	pending := func(host string, n int64, oldest int64) {
		h := at(host)
		h.Pending += int(n)
		if o := fromMillis(oldest); h.Oldest.IsZero() || o.Before(h.Oldest) {
			h.Oldest = o
		}
	}
	err := s.db.readTx(ctx, func(q querier) error {
		clear(byHost) // fn may run more than once
		rs, err := q.query(ctx, "SELECT host_key, COUNT(*), MIN(created_at) FROM relationship_outbox GROUP BY host_key")
		if err != nil {
			return fmt.Errorf("read relationship outbox hosts: %w", err)
		}
		unknownHost := false
		for rs.Next() {
			var host string
			var n, oldest int64
			if err := rs.Scan(&host, &n, &oldest); err != nil {
				rs.Close()
				return fmt.Errorf("read relationship outbox hosts: %w", err)
			}
			if host == "" {
				unknownHost = true
				continue
			}
			pending(host, n, oldest)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("read relationship outbox hosts: %w", err)
		}
		if unknownHost {
			// Written by a replica of the previous release, without its host: read it from
			// the relationship (only during a rolling upgrade).
			rs, err := q.query(ctx, "SELECT relationship, created_at FROM relationship_outbox WHERE host_key = ''")
			if err != nil {
				return fmt.Errorf("read relationship outbox hosts: %w", err)
			}
			for rs.Next() {
				var rel string
				var created int64
				if err := rs.Scan(&rel, &created); err != nil {
					rs.Close()
					return fmt.Errorf("read relationship outbox hosts: %w", err)
				}
				r, err := schema.ParseRelationship(rel)
				if err != nil {
					rs.Close()
					return fmt.Errorf("read relationship outbox hosts: %w", err)
				}
				pending(schema.HostOf(r.Resource), 1, created)
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return fmt.Errorf("read relationship outbox hosts: %w", err)
			}
		}
		rs, err = q.query(ctx, "SELECT host_key, COUNT(*) FROM relationship_quarantine GROUP BY host_key")
		if err != nil {
			return fmt.Errorf("read relationship quarantine hosts: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			var host string
			var n int64
			if err := rs.Scan(&host, &n); err != nil {
				return fmt.Errorf("read relationship quarantine hosts: %w", err)
			}
			at(host).Quarantined += int(n)
		}
		return rs.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]PendingHost, 0, len(byHost))
	for _, h := range byHost {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b PendingHost) int { return strings.Compare(a.Host, b.Host) })
	return out, nil
}

// SetAside is what a drain's apply returns when the authorization backend refused some of the
// changes handed out for good and applied every other: the drain moves the refused ones into
// the quarantine and removes the rest from the outbox, so that the changes behind them are
// applied. Their hosts stay behind (PendingRelationshipHosts counts them) until an operator
// retries or discards them.
type SetAside struct {
	// Refused maps the id of each change refused to the backend's reason.
	Refused map[int64]string
}

func (e *SetAside) Error() string {
	return fmt.Sprintf("%d relationship change(s) refused for good and set aside", len(e.Refused))
}

// maxQuarantineReason bounds the reason kept with a change set aside.
const maxQuarantineReason = 1000

// quarantine copies the refused changes into relationship_quarantine (the drain then removes
// them from the outbox with the rest).
func quarantine(ctx context.Context, q querier, changes []RelationshipChange, refused map[int64]string) error {
	at := toMillis(now())
	for _, c := range changes {
		reason, ok := refused[c.ID]
		if !ok {
			continue
		}
		if len(reason) > maxQuarantineReason {
			reason = strings.ToValidUTF8(reason[:maxQuarantineReason], "") + "…"
		}
		n, err := q.exec(ctx, "INSERT INTO relationship_quarantine (id, op, relationship, host_key, created_at, quarantined_at, reason) "+
			"SELECT id, op, relationship, ?, created_at, ?, ? FROM relationship_outbox WHERE id = ?",
			schema.HostOf(c.Relationship.Resource), at, reason, c.ID)
		if err != nil {
			return fmt.Errorf("set aside relationship change %d: %w", c.ID, err)
		}
		if n != 1 {
			return fmt.Errorf("set aside relationship change %d: the outbox row is gone", c.ID)
		}
	}
	return nil
}

// QuarantinedChange is an outbox change the authorization backend refused for good.
type QuarantinedChange struct {
	// ID is the outbox entry's id.
	ID           int64
	Op           ChangeOp
	Relationship schema.Relationship
	Host         string
	// CreatedAt is when the change was made, QuarantinedAt when it was set aside.
	CreatedAt, QuarantinedAt time.Time
	// Reason is the backend's.
	Reason string
}

const quarantineColumns = "id, op, relationship, host_key, created_at, quarantined_at, reason"

func scanQuarantined(rs interface{ Scan(...any) error }) (QuarantinedChange, error) {
	var c QuarantinedChange
	var op, rel string
	var created, quarantined int64
	if err := rs.Scan(&c.ID, &op, &rel, &c.Host, &created, &quarantined, &c.Reason); err != nil {
		return c, err
	}
	c.Op, c.CreatedAt, c.QuarantinedAt = ChangeOp(op), fromMillis(created), fromMillis(quarantined)
	r, err := schema.ParseRelationship(rel)
	if err != nil {
		return c, fmt.Errorf("quarantined change %d: %w", c.ID, err)
	}
	c.Relationship = r
	return c, nil
}

func (s *sqlStore) ListQuarantinedChanges(ctx context.Context, host string) ([]QuarantinedChange, error) {
	query := "SELECT " + quarantineColumns + " FROM relationship_quarantine"
	var args []any
	if host != "" {
		query += " WHERE host_key = ?"
		args = append(args, host)
	}
	rs, err := s.db.q().query(ctx, query+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list quarantined relationship changes: %w", err)
	}
	defer rs.Close()
	var out []QuarantinedChange
	for rs.Next() {
		c, err := scanQuarantined(rs)
		if err != nil {
			return nil, fmt.Errorf("list quarantined relationship changes: %w", err)
		}
		out = append(out, c)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list quarantined relationship changes: %w", err)
	}
	return out, nil
}

// takeQuarantined reads and removes one quarantined change in q.
func takeQuarantined(ctx context.Context, q querier, id int64) (QuarantinedChange, error) {
	c, err := scanQuarantined(q.queryRow(ctx, "SELECT "+quarantineColumns+" FROM relationship_quarantine WHERE id = ?", id))
	if errors.Is(err, errNoRows) {
		return c, fmt.Errorf("quarantined relationship change %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read quarantined relationship change %d: %w", id, err)
	}
	if _, err := q.exec(ctx, "DELETE FROM relationship_quarantine WHERE id = ?", id); err != nil {
		return c, fmt.Errorf("remove quarantined relationship change %d: %w", id, err)
	}
	return c, nil
}

// releaseHostQuarantine removes host's set-aside changes as the host is deleted: a touch the
// backend refused was never applied and is dropped; a refused delete is queued again into cs,
// since the relationship may still be in the backend and nothing of the host may stay (if the
// backend refuses it again it is set aside again, and a host made again with the same key fails
// closed until an operator resolves it). Left in place, the changes would make a new host of the
// same key refuse every call, with no host left for the API to resolve them through.
func releaseHostQuarantine(ctx context.Context, q querier, cs *changeSet, host string) error {
	rs, err := q.query(ctx, "SELECT "+quarantineColumns+" FROM relationship_quarantine WHERE host_key = ? ORDER BY id", host)
	if err != nil {
		return fmt.Errorf("read set-aside relationship changes: %w", err)
	}
	var deletes []schema.Relationship
	for rs.Next() {
		c, err := scanQuarantined(rs)
		if err != nil {
			rs.Close()
			return fmt.Errorf("read set-aside relationship changes: %w", err)
		}
		if c.Op == Delete {
			deletes = append(deletes, c.Relationship)
		}
	}
	err = rs.Err()
	rs.Close()
	if err != nil {
		return fmt.Errorf("read set-aside relationship changes: %w", err)
	}
	cs.delete(deletes...)
	if _, err := q.exec(ctx, "DELETE FROM relationship_quarantine WHERE host_key = ?", host); err != nil {
		return fmt.Errorf("remove set-aside relationship changes: %w", err)
	}
	return nil
}

func (s *sqlStore) DiscardQuarantinedChange(ctx context.Context, id int64) (QuarantinedChange, error) {
	var c QuarantinedChange
	err := s.db.writeTx(ctx, func(q querier) error {
		var err error
		c, err = takeQuarantined(ctx, q, id)
		return err
	})
	return c, err
}

func (s *sqlStore) RetryQuarantinedChange(ctx context.Context, id int64) (QuarantinedChange, ChangeOp, error) {
	var c QuarantinedChange
	var op ChangeOp
	err := s.db.writeTx(ctx, func(q querier) error {
		var err error
		if c, err = takeQuarantined(ctx, q, id); err != nil {
			return err
		}
		// What the store implies now, not the change as it was: changes to the tuple made
		// since have been applied, and re-applying the old one would undo them.
		rels, err := derivedRelationships(ctx, q)
		if err != nil {
			return fmt.Errorf("derive relationships: %w", err)
		}
		var set changeSet
		op = Delete
		target := c.Relationship
		for _, r := range rels {
			if r.Key() == c.Relationship.Key() {
				op, target = Touch, r
				break
			}
		}
		set.add(op, target)
		return set.write(ctx, q, now())
	})
	if err != nil {
		return c, "", err
	}
	return c, op, nil
}
