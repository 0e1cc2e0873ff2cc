package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

func toolDoc(t store.Tool) Tool {
	d := Tool{
		Server: t.Server, Name: t.Name, Title: t.Title, Description: t.Description,
		Level: t.Level.String(), LevelOverridden: t.LevelOverridden, Enabled: t.Enabled,
		Flagged: t.Flagged, FlagReason: t.FlagReason, UpdatedAt: t.UpdatedAt,
	}
	if t.InputSchema != "" {
		d.InputSchema = json.RawMessage(t.InputSchema)
	}
	if t.OutputSchema != "" {
		d.OutputSchema = json.RawMessage(t.OutputSchema)
	}
	if t.Annotations != "" {
		d.Annotations = json.RawMessage(t.Annotations)
	}
	if c, err := schema.DecodeArgumentConditions(t.Conditions); err == nil && !c.Empty() {
		d.Conditions = &ToolConditions{Prefix: c.Prefix, Max: c.Max, Min: c.Min, OneOf: c.OneOf}
	} else if err != nil {
		d.Conditions = &ToolConditions{} // unreadable: shown as set, and every call is denied
	}
	return d
}

// setToolConditions replaces the conditions on a tool's arguments: stored, and written as the
// caveat of the tool's relationship before the answer (a.sync).
func (a *API) setToolConditions(r *http.Request, c *caller) (int, any, error) {
	if a.cfg.ConditionsUnsupported != "" {
		return 0, nil, problemf(http.StatusConflict, "argument conditions are not available: %s", a.cfg.ConditionsUnsupported)
	}
	var req ToolConditions
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	conds := schema.ArgumentConditions{Prefix: req.Prefix, Max: req.Max, Min: req.Min, OneOf: req.OneOf}
	if conds.Empty() {
		return 0, nil, problemf(http.StatusBadRequest, "no condition given: set at least one of prefix, max, min, one_of (DELETE removes them)")
	}
	if err := conds.Validate(); err != nil {
		return 0, nil, problemf(http.StatusBadRequest, "%v", err)
	}
	return a.putToolConditions(r, c, conds)
}

func (a *API) clearToolConditions(r *http.Request, c *caller) (int, any, error) {
	return a.putToolConditions(r, c, schema.ArgumentConditions{})
}

func (a *API) putToolConditions(r *http.Request, c *caller, conds schema.ArgumentConditions) (int, any, error) {
	ctx := r.Context()
	host, server, name := r.PathValue("host"), r.PathValue("server"), r.PathValue("tool")
	before, err := a.cfg.Store.GetTool(ctx, host, server, name)
	if err != nil {
		return 0, nil, err
	}
	t, err := a.cfg.Store.SetToolConditions(ctx, host, server, name, conds)
	if err != nil {
		return 0, nil, err
	}
	c.change.old, c.change.new = conditionsState(before.Conditions), conditionsState(t.Conditions)
	if c.change.old == c.change.new {
		c.change.none = true
	}
	return http.StatusOK, toolDoc(t), a.sync(ctx)
}

// conditionsState is a tool's conditions for audit entries.
func conditionsState(encoded string) string {
	c, err := schema.DecodeArgumentConditions(encoded)
	switch {
	case err != nil:
		return "conditions unreadable"
	case c.Empty():
		return "no conditions"
	}
	return "conditions: " + c.Describe()
}

func parseLevel(s string) (schema.Level, error) {
	l, err := schema.ParseLevel(s)
	if err != nil {
		return 0, problemf(http.StatusBadRequest, "%v", err)
	}
	return l, nil
}

func (a *API) listTools(r *http.Request, _ *caller) (int, any, error) {
	tools, err := a.cfg.Store.ListTools(r.Context(), r.PathValue("host"), r.PathValue("server"))
	if err != nil {
		return 0, nil, err
	}
	docs := make([]Tool, len(tools))
	for i, t := range tools {
		docs[i] = toolDoc(t)
	}
	page, err := paginate(r, docs, func(t Tool) string { return t.Name })
	return http.StatusOK, page, err
}

func (a *API) getTool(r *http.Request, _ *caller) (int, any, error) {
	t, err := a.cfg.Store.GetTool(r.Context(), r.PathValue("host"), r.PathValue("server"), r.PathValue("tool"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toolDoc(t), nil
}

func (a *API) createTool(r *http.Request, _ *caller) (int, any, error) {
	ctx := r.Context()
	var req ToolCreate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	t := store.Tool{Host: r.PathValue("host"), Server: r.PathValue("server"), Name: req.Name, Description: req.Description, Enabled: req.Enabled}
	if len(req.InputSchema) > 0 {
		t.InputSchema = string(req.InputSchema)
	}
	if req.Level != "" {
		l, err := parseLevel(req.Level)
		if err != nil {
			return 0, nil, err
		}
		t.Level, t.LevelOverridden = l, true
	}
	saved, err := a.cfg.Catalog.CreateTool(ctx, t)
	var schemaErr *catalog.InputSchemaError
	switch {
	case errors.Is(err, catalog.ErrToolExists):
		return 0, nil, problemf(http.StatusConflict, "server %s already has a tool %q", t.Server, t.Name)
	case errors.As(err, &schemaErr):
		return 0, nil, problemf(http.StatusBadRequest, "%v", schemaErr)
	case err != nil:
		return 0, nil, err
	}
	return http.StatusCreated, toolDoc(saved), a.sync(ctx)
}

func (a *API) updateTool(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req ToolUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	ch := catalog.ToolChange{Approve: req.Approve, Enabled: req.Enabled}
	if req.Level != nil {
		l, err := parseLevel(*req.Level)
		if err != nil {
			return 0, nil, err
		}
		ch.Level = &l
	}
	before, t, err := a.cfg.Catalog.UpdateTool(ctx, r.PathValue("host"), r.PathValue("server"), r.PathValue("tool"), ch)
	if errors.Is(err, catalog.ErrFlagged) {
		return 0, nil, problemf(http.StatusConflict, "tool %q is flagged for review: %s; approve it to enable it", before.Name, before.FlagReason)
	}
	if err != nil {
		return 0, nil, err
	}
	c.change.old, c.change.new = toolState(before), toolState(t)
	return http.StatusOK, toolDoc(t), a.sync(ctx)
}

func (a *API) deleteTool(r *http.Request, _ *caller) (int, any, error) {
	if err := a.cfg.Store.DeleteTool(r.Context(), r.PathValue("host"), r.PathValue("server"), r.PathValue("tool")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, a.sync(r.Context())
}

// toolState describes what an admin can change of a tool, for audit entries.
func toolState(t store.Tool) string {
	s := "level=" + t.Level.String() + " enabled=" + strconv.FormatBool(t.Enabled)
	if t.Flagged {
		s += " flagged"
	}
	return s
}
