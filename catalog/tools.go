package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// ErrToolExists: the server already has a tool of that name.
var ErrToolExists = errors.New("the server already has a tool of that name")

// ErrFlagged: a flagged tool cannot be enabled; approving it enables it.
var ErrFlagged = errors.New("the tool is flagged for review (changed upstream since it was approved, or its definition may carry hidden instructions); approve it to enable it")

// InputSchemaError says why a tool's input schema cannot be part of its definition.
type InputSchemaError struct{ Err error }

func (e *InputSchemaError) Error() string { return "input_schema: " + e.Err.Error() }
func (e *InputSchemaError) Unwrap() error { return e.Err }

// CreateTool adds a tool an admin defines by hand: its level is the one given
// (LevelOverridden) or classified from its name, and its definition counts as approved.
func (c *Catalog) CreateTool(ctx context.Context, t store.Tool) (store.Tool, error) {
	if !t.LevelOverridden {
		t.Level = schema.ClassifyName(t.Name)
	}
	inputSchema := t.InputSchema
	if inputSchema == "" {
		inputSchema = "{}"
	}
	hash, err := discovery.DefinitionHash(t.Name, t.Description, json.RawMessage(inputSchema))
	if err != nil {
		return store.Tool{}, &InputSchemaError{Err: err}
	}
	t.DefinitionHash, t.ApprovedHash = hash, hash
	var saved store.Tool
	err = c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		if _, err := tx.GetTool(ctx, t.Host, t.Server, t.Name); err == nil {
			return fmt.Errorf("server %s already has a tool %q: %w", t.Server, t.Name, ErrToolExists)
		}
		var err error
		saved, err = tx.PutTool(ctx, t)
		return err
	})
	return saved, err
}

// ToolChange is an admin's change of one tool; nil fields stay as they are.
type ToolChange struct {
	Level *schema.Level // overrides the classified level; a sync keeps it
	// Approve records the tool's current definition as approved, lifts its flag and enables it.
	Approve bool
	// Enabled enables or disables the tool; enabling a tool never approved is its review, and
	// enabling a flagged tool (unless Approve) is ErrFlagged.
	Enabled *bool
}

// UpdateTool applies ch to a tool in one transaction and returns the tool before and after.
// With ErrFlagged, before is the stored tool (its FlagReason says what changed).
func (c *Catalog) UpdateTool(ctx context.Context, host, server, name string, ch ToolChange) (before, after store.Tool, err error) {
	err = c.store.ReadWriteTx(ctx, func(tx store.Tx) error {
		t, err := tx.GetTool(ctx, host, server, name)
		if err != nil {
			return err
		}
		before = t
		if ch.Level != nil {
			t.Level, t.LevelOverridden = *ch.Level, true
		}
		if ch.Approve {
			t.ApprovedHash, t.Flagged, t.FlagReason = t.DefinitionHash, false, ""
			t.Enabled = true
		}
		if ch.Enabled != nil {
			if *ch.Enabled && t.Flagged {
				return fmt.Errorf("tool %q: %w", t.Name, ErrFlagged)
			}
			if *ch.Enabled && t.ApprovedHash == "" {
				t.ApprovedHash = t.DefinitionHash // enabling a new tool is its review
			}
			t.Enabled = *ch.Enabled
		}
		after, err = tx.PutTool(ctx, t)
		return err
	})
	return before, after, err
}
