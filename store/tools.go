package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/schema"
)

// toolWriteColumns are what inserts write; toolColumns what is read (a tool's argument
// conditions are written only by SetToolConditions).
const (
	toolWriteColumns = "host_key, server_key, name, description, input_schema, title, annotations, level, level_overridden, enabled, " +
		"definition_hash, approved_hash, flagged, flag_reason, updated_at, output_schema"
	toolColumns = toolWriteColumns + ", arg_conditions"
)

func scanTool(r row) (Tool, error) {
	var t Tool
	var level string
	var updated int64
	if err := r.Scan(&t.Host, &t.Server, &t.Name, &t.Description, &t.InputSchema, &t.Title, &t.Annotations, &level, &t.LevelOverridden,
		&t.Enabled, &t.DefinitionHash, &t.ApprovedHash, &t.Flagged, &t.FlagReason, &updated, &t.OutputSchema, &t.Conditions); err != nil {
		return Tool{}, err
	}
	l, err := schema.ParseLevel(level)
	if err != nil {
		return Tool{}, fmt.Errorf("tool %s/%s/%s: %w", t.Host, t.Server, t.Name, err)
	}
	t.Level = l
	t.UpdatedAt = fromMillis(updated)
	return t, nil
}

// toolTuple is the tool's relationship, caveated with its argument conditions; a disabled tool
// has none. Conditions that do not decode (written around the store) give the caveat an empty
// context, so that every check of the tool stays conditional and is denied.
func toolTuple(t Tool) (schema.Relationship, bool) {
	if !t.Enabled {
		return schema.Relationship{}, false
	}
	c, err := schema.DecodeArgumentConditions(t.Conditions)
	if err != nil {
		r := schema.ToolLevel(t.Host, t.Server, t.Name, t.Level)
		r.Caveat, r.CaveatContext = schema.CaveatArguments, "{}"
		return r, true
	}
	return schema.ToolLevelWithConditions(t.Host, t.Server, t.Name, t.Level, c), true
}

func (s *sqlStore) PutTool(ctx context.Context, t Tool) (Tool, error) {
	if err := preparePutTool(&t); err != nil {
		return Tool{}, err
	}
	err := s.controlTx(ctx, func(q querier) error { return putTool(ctx, q, t) })
	if err != nil {
		return Tool{}, fmt.Errorf("put tool %s/%s/%s: %w", t.Host, t.Server, t.Name, err)
	}
	return t, nil
}

// preparePutTool checks a tool to put and stamps its time.
func preparePutTool(t *Tool) error {
	if err := validTool(*t); err != nil {
		return fmt.Errorf("put tool %s/%s: %w", t.Host, t.Server, err)
	}
	if t.Flagged && t.Enabled {
		return fmt.Errorf("put tool %s/%s/%s: %w", t.Host, t.Server, t.Name,
			invalid("a flagged tool cannot be enabled; approve it first"))
	}
	t.UpdatedAt = now()
	return nil
}

// putTool creates or replaces a prepared tool, with its tuple changes.
func putTool(ctx context.Context, q querier, t Tool) error {
	if err := requireServer(ctx, q, t.Host, t.Server); err != nil {
		return err
	}
	old, err := scanTool(q.queryRow(ctx, "SELECT "+toolColumns+" FROM tools WHERE host_key = ? AND server_key = ? AND name = ?",
		t.Host, t.Server, t.Name))
	found := err == nil
	if err != nil && !errors.Is(err, errNoRows) {
		return err
	}
	t.Conditions = old.Conditions // kept: only SetToolConditions changes them
	if found {
		_, err = q.exec(ctx, "UPDATE tools SET description = ?, input_schema = ?, title = ?, annotations = ?, level = ?, level_overridden = ?, "+
			"enabled = ?, definition_hash = ?, approved_hash = ?, flagged = ?, flag_reason = ?, updated_at = ?, output_schema = ? "+
			"WHERE host_key = ? AND server_key = ? AND name = ?",
			t.Description, t.InputSchema, t.Title, t.Annotations, t.Level.String(), t.LevelOverridden,
			t.Enabled, t.DefinitionHash, t.ApprovedHash, t.Flagged, t.FlagReason, toMillis(t.UpdatedAt), t.OutputSchema,
			t.Host, t.Server, t.Name)
	} else {
		_, err = q.exec(ctx, "INSERT INTO tools ("+toolWriteColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			t.Host, t.Server, t.Name, t.Description, t.InputSchema, t.Title, t.Annotations, t.Level.String(), t.LevelOverridden,
			t.Enabled, t.DefinitionHash, t.ApprovedHash, t.Flagged, t.FlagReason, toMillis(t.UpdatedAt), t.OutputSchema)
	}
	if err != nil {
		return writeErr(err)
	}
	var cs changeSet
	if found {
		if rel, ok := toolTuple(old); ok && (!t.Enabled || old.Level != t.Level) {
			cs.delete(rel)
		}
	}
	if rel, ok := toolTuple(t); ok {
		cs.touch(rel)
	}
	return cs.write(ctx, q, t.UpdatedAt)
}

// validTool checks what PutTool, AddTool and FlagTool write.
func validTool(t Tool) error {
	return firstErr(
		validToolName(t.Name),
		validLevel("tool level", t.Level),
		validSchema("input schema", t.InputSchema),
		validSchema("output schema", t.OutputSchema),
		validText("tool description", t.Description),
		validText("tool title", t.Title),
		validAnnotations(t.Annotations),
		validHash("tool definition hash", t.DefinitionHash),
		validHash("tool approved hash", t.ApprovedHash),
		validText("tool flag reason", t.FlagReason),
	)
}

// errUnchanged rolls back a conditional write whose condition no longer holds.
var errUnchanged = errors.New("condition no longer holds")

func (s *sqlStore) AddTool(ctx context.Context, t Tool) (bool, error) {
	if err := prepareAddTool(&t); err != nil {
		return false, err
	}
	err := s.controlTx(ctx, func(q querier) error { return addTool(ctx, q, t) })
	if errors.Is(err, errUnchanged) || errors.Is(err, ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add tool %s/%s/%s: %w", t.Host, t.Server, t.Name, err)
	}
	return true, nil
}

// prepareAddTool checks a tool to add and stamps its time.
func prepareAddTool(t *Tool) error {
	if err := validTool(*t); err != nil {
		return fmt.Errorf("add tool %s/%s: %w", t.Host, t.Server, err)
	}
	if t.Flagged && t.Enabled {
		return fmt.Errorf("add tool %s/%s/%s: %w", t.Host, t.Server, t.Name, invalid("a flagged tool cannot be enabled; approve it first"))
	}
	t.UpdatedAt = now()
	return nil
}

// addTool inserts a prepared tool unless one of its name exists (errUnchanged then: nothing
// was written).
func addTool(ctx context.Context, q querier, t Tool) error {
	if err := requireServer(ctx, q, t.Host, t.Server); err != nil {
		return err
	}
	n, err := q.exec(ctx, "INSERT INTO tools ("+toolWriteColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "+
		"ON CONFLICT (host_key, server_key, name) DO NOTHING",
		t.Host, t.Server, t.Name, t.Description, t.InputSchema, t.Title, t.Annotations, t.Level.String(), t.LevelOverridden,
		t.Enabled, t.DefinitionHash, t.ApprovedHash, t.Flagged, t.FlagReason, toMillis(t.UpdatedAt), t.OutputSchema)
	if err != nil {
		return writeErr(err)
	}
	if n == 0 {
		return errUnchanged
	}
	var cs changeSet
	if rel, ok := toolTuple(t); ok {
		cs.touch(rel)
	}
	return cs.write(ctx, q, t.UpdatedAt)
}

func (s *sqlStore) FlagTool(ctx context.Context, t Tool, approvedHash string) (bool, error) {
	if err := prepareFlagTool(&t, approvedHash); err != nil {
		return false, err
	}
	err := s.controlTx(ctx, func(q querier) error { return flagTool(ctx, q, t) })
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flag tool %s/%s/%s: %w", t.Host, t.Server, t.Name, err)
	}
	return true, nil
}

// prepareFlagTool checks a changed definition to flag and marks it flagged and disabled.
func prepareFlagTool(t *Tool, approvedHash string) error {
	if err := validTool(*t); err != nil {
		return fmt.Errorf("flag tool %s/%s: %w", t.Host, t.Server, err)
	}
	if approvedHash == "" {
		return fmt.Errorf("flag tool %s/%s/%s: %w", t.Host, t.Server, t.Name, invalid("a tool never approved is not flagged: it awaits its first review"))
	}
	t.Enabled, t.Flagged, t.ApprovedHash, t.UpdatedAt = false, true, approvedHash, now()
	return nil
}

// flagTool writes a prepared flag while its condition holds (errUnchanged otherwise: nothing
// was written).
func flagTool(ctx context.Context, q querier, t Tool) error {
	where := "host_key = ? AND server_key = ? AND name = ?"
	old, err := scanTool(q.queryRow(ctx, "SELECT "+toolColumns+" FROM tools WHERE "+where, t.Host, t.Server, t.Name))
	if errors.Is(err, errNoRows) {
		return errUnchanged // deleted meanwhile
	}
	if err != nil {
		return err
	}
	// The condition is in the statement too: on PostgreSQL a concurrent flag that committed
	// after this transaction's read makes the UPDATE match nothing.
	n, err := q.exec(ctx, "UPDATE tools SET description = ?, input_schema = ?, title = ?, annotations = ?, level = ?, level_overridden = ?, "+
		"enabled = ?, definition_hash = ?, flagged = ?, flag_reason = ?, updated_at = ?, output_schema = ? "+
		"WHERE "+where+" AND approved_hash = ? AND NOT (flagged = ? AND definition_hash = ?)",
		t.Description, t.InputSchema, t.Title, t.Annotations, t.Level.String(), t.LevelOverridden,
		false, t.DefinitionHash, true, t.FlagReason, toMillis(t.UpdatedAt), t.OutputSchema,
		t.Host, t.Server, t.Name, t.ApprovedHash, true, t.DefinitionHash)
	if err != nil {
		return writeErr(err)
	}
	if n == 0 {
		return errUnchanged
	}
	var cs changeSet
	if rel, ok := toolTuple(old); ok {
		cs.delete(rel)
	}
	return cs.write(ctx, q, t.UpdatedAt)
}

func (s *sqlStore) GetTool(ctx context.Context, host, server, name string) (Tool, error) {
	return getTool(ctx, s.db.q(), host, server, name)
}

func getTool(ctx context.Context, q querier, host, server, name string) (Tool, error) {
	t, err := scanTool(q.queryRow(ctx, "SELECT "+toolColumns+" FROM tools WHERE host_key = ? AND server_key = ? AND name = ?",
		host, server, name))
	if errors.Is(err, errNoRows) {
		return Tool{}, fmt.Errorf("get tool %s/%s/%s: %w", host, server, name, ErrNotFound)
	}
	if err != nil {
		return Tool{}, fmt.Errorf("get tool %s/%s/%s: %w", host, server, name, err)
	}
	return t, nil
}

func (s *sqlStore) ListTools(ctx context.Context, host, server string) ([]Tool, error) {
	var out []Tool
	err := s.db.readTx(ctx, func(q querier) error {
		var err error
		out, err = listTools(ctx, q, host, server)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tools of %s/%s: %w", host, server, err)
	}
	return out, nil
}

func listTools(ctx context.Context, q querier, host, server string) ([]Tool, error) {
	if err := requireServer(ctx, q, host, server); err != nil {
		return nil, err
	}
	return selectTools(ctx, q, "host_key = ? AND server_key = ? ORDER BY name", host, server)
}

func selectTools(ctx context.Context, q querier, where string, args ...any) ([]Tool, error) {
	rs, err := q.query(ctx, "SELECT "+toolColumns+" FROM tools WHERE "+where, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []Tool{}
	for rs.Next() {
		t, err := scanTool(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rs.Err()
}

func (s *sqlStore) DeleteTool(ctx context.Context, host, server, name string) error {
	err := s.controlTx(ctx, func(q querier) error { return deleteTool(ctx, q, host, server, name) })
	if err != nil {
		return fmt.Errorf("delete tool %s/%s/%s: %w", host, server, name, err)
	}
	return nil
}

func deleteTool(ctx context.Context, q querier, host, server, name string) error {
	at := now()
	where := "host_key = ? AND server_key = ? AND name = ?"
	ok, err := exists(ctx, q, "SELECT 1 FROM tools WHERE "+where, host, server, name)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	var cs changeSet
	if err := deleteTools(ctx, q, &cs, where, host, server, name); err != nil {
		return err
	}
	return cs.write(ctx, q, at)
}

// deleteTools removes the tools matching where, recording the deletion of the enabled ones'
// tuples.
func deleteTools(ctx context.Context, q querier, cs *changeSet, where string, args ...any) error {
	tools, err := selectTools(ctx, q, where, args...)
	if err != nil {
		return fmt.Errorf("read tools: %w", err)
	}
	for _, t := range tools {
		if rel, ok := toolTuple(t); ok {
			cs.delete(rel)
		}
	}
	if _, err := q.exec(ctx, "DELETE FROM tools WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete tools: %w", err)
	}
	return nil
}

// SetToolConditions replaces a tool's argument conditions (none: removes them) and, when the
// tool is enabled, rewrites its relationship with the new caveat.
func (s *sqlStore) SetToolConditions(ctx context.Context, host, server, name string, c schema.ArgumentConditions) (Tool, error) {
	if err := c.Validate(); err != nil {
		return Tool{}, fmt.Errorf("set conditions of tool %s/%s/%s: %w: %w", host, server, name, ErrInvalid, err)
	}
	var out Tool
	err := s.controlTx(ctx, func(q querier) error {
		t, err := scanTool(q.queryRow(ctx, "SELECT "+toolColumns+" FROM tools WHERE host_key = ? AND server_key = ? AND name = ?", host, server, name))
		if errors.Is(err, errNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		t.Conditions, t.UpdatedAt = c.Encode(), now()
		if _, err := q.exec(ctx, "UPDATE tools SET arg_conditions = ?, updated_at = ? WHERE host_key = ? AND server_key = ? AND name = ?",
			t.Conditions, toMillis(t.UpdatedAt), host, server, name); err != nil {
			return err
		}
		out = t
		var cs changeSet
		if rel, ok := toolTuple(t); ok {
			cs.touch(rel) // the same tuple with another caveat replaces it
		}
		return cs.write(ctx, q, t.UpdatedAt)
	})
	if err != nil {
		return Tool{}, fmt.Errorf("set conditions of tool %s/%s/%s: %w", host, server, name, err)
	}
	return out, nil
}
