package admin

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/trustgate/trustgate/discovery"
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
	if t.Annotations != "" {
		d.Annotations = json.RawMessage(t.Annotations)
	}
	return d
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
	host, server := r.PathValue("host"), r.PathValue("server")
	if _, err := a.cfg.Store.GetTool(ctx, host, server, req.Name); err == nil {
		return 0, nil, problemf(http.StatusConflict, "server %s already has a tool %q", server, req.Name)
	}
	t := store.Tool{Host: host, Server: server, Name: req.Name, Description: req.Description, Enabled: req.Enabled, Level: schema.ClassifyName(req.Name)}
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
	hash, err := discovery.DefinitionHash(t.Name, t.Description, json.RawMessage(orJSON(t.InputSchema)))
	if err != nil {
		return 0, nil, problemf(http.StatusBadRequest, "input_schema: %v", err)
	}
	t.DefinitionHash, t.ApprovedHash = hash, hash
	if t, err = a.cfg.Store.PutTool(ctx, t); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, toolDoc(t), a.sync(ctx)
}

func (a *API) updateTool(r *http.Request, c *caller) (int, any, error) {
	ctx := r.Context()
	var req ToolUpdate
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	t, err := a.cfg.Store.GetTool(ctx, r.PathValue("host"), r.PathValue("server"), r.PathValue("tool"))
	if err != nil {
		return 0, nil, err
	}
	c.change.old = toolState(t)
	if req.Level != nil {
		l, err := parseLevel(*req.Level)
		if err != nil {
			return 0, nil, err
		}
		t.Level, t.LevelOverridden = l, true
	}
	if req.Approve {
		t.ApprovedHash, t.Flagged, t.FlagReason = t.DefinitionHash, false, ""
		t.Enabled = true
	}
	if req.Enabled != nil {
		if *req.Enabled && t.Flagged {
			return 0, nil, problemf(http.StatusConflict, "tool %q changed upstream since it was approved (%s); approve it to enable it", t.Name, t.FlagReason)
		}
		if *req.Enabled && t.ApprovedHash == "" {
			t.ApprovedHash = t.DefinitionHash // enabling a new tool is its review
		}
		t.Enabled = *req.Enabled
	}
	c.change.new = toolState(t)
	if t, err = a.cfg.Store.PutTool(ctx, t); err != nil {
		return 0, nil, err
	}
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
