package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/sdk"
)

// Admin changes to who may do what are audit entries. The routes below are audited (only
// host-scoped ones: an entry belongs to a host's chain): after the
// handler succeeds, wrap writes one entry (auditChange) with the route's action, the object
// (the request path below the host), the caller's token as the actor, and the old and new
// values the handler noted on the caller (caller.change).
var auditedActions = map[string]string{
	"createHost":             "host.create",
	"importServer":           "server.import",
	"updateServer":           "server.update",
	"syncServer":             "server.sync",
	"createHuman":            "human.create",
	"inviteHuman":            "human.invite",
	"updateAgent":            "agent.update",
	"deleteServer":           "server.delete",
	"updateTool":             "tool.update",
	"deleteTool":             "tool.delete",
	"createTool":             "tool.create",
	"setToolConditions":      "tool.conditions_set",
	"clearToolConditions":    "tool.conditions_clear",
	"updateHuman":            "human.update",
	"deleteHuman":            "human.delete",
	"setGrant":               "grant.set",
	"revokeGrant":            "grant.revoke",
	"setAgentLevel":          "agent_level.set",
	"revokeAgentServer":      "agent_level.revoke",
	"killAgent":              "agent.kill",
	"updateHost":             "host.update",
	"stopHost":               "host.emergency_stop",
	"liftHostStop":           "host.emergency_stop_lift",
	"deleteHost":             "host.delete",
	"setWebhook":             "webhook.set",
	"deleteWebhook":          "webhook.delete",
	"createHostToken":        "token.create",
	"deleteHostToken":        "token.delete",
	"setAuthMethod":          "auth_method.set",
	"deleteAuthMethod":       "auth_method.delete",
	"approveHeldCall":        "approval.approve",
	"denyHeldCall":           "approval.deny",
	"revokeStandingApproval": "approval.revoke",
	"retrySetAsideChange":    "relationship.retry",
	"discardSetAsideChange":  "relationship.discard",
}

// change is what a handler notes for the audit entry of its change.
type change struct {
	userID, userEmail string
	old, new          string
	// host is the host a global route changed (createHost), for its chain.
	host string
	// object names what a create made, when the path names only its collection.
	object string
	// none: the request changed nothing (an import with dry_run).
	none bool
}

// auditChange writes the entry of a successful audited change. The change is already
// committed, so a failure to write the entry is logged (the entry is lost) but not returned.
func (a *API) auditChange(r *http.Request, rt Route, c *caller, requestID string) {
	action, ok := auditedActions[rt.ID]
	if !ok || a.cfg.Audit == nil || c.change.none {
		return
	}
	host := r.PathValue("host")
	if host == "" {
		host = c.change.host
	}
	if host == "" {
		return // a global change outside any host's chain (global API tokens)
	}
	object := strings.TrimPrefix(r.URL.Path, pHosts+"/"+host+"/")
	if object == r.URL.Path || object == "" {
		object = "host/" + host
	}
	if c.change.object != "" {
		object = c.change.object
	}
	actor := c.actor()
	e := audit.Entry{
		Host: host, Time: time.Now(), Decision: audit.Admin, Actor: actor, Action: action, Object: object,
		AgentID: r.PathValue("agent"), Server: r.PathValue("server"), Tool: r.PathValue("tool"),
		UserID: c.change.userID, UserEmail: c.change.userEmail, OldValue: c.change.old, NewValue: c.change.new,
		Method: r.Method, RequestID: requestID,
	}
	if err := a.cfg.Audit.Append(r.Context(), e); err != nil {
		a.log.Error("audit entry of an admin change lost", "host", host, "action", action, "object", object, "err", err)
	}
}

// actor names the caller's API token in audit entries.
func (c *caller) actor() string {
	if c.person != "" {
		return c.person
	}
	actor := "token:" + c.token.ID
	if c.token.Name != "" {
		actor += " (" + c.token.Name + ")"
	}
	return actor
}

// auditDoc is the API's document of an audit log entry.
func auditDoc(e audit.Entry) AuditEntry {
	return AuditEntry{
		Host: e.Host, Seq: e.Seq, Time: e.Time,
		UserID: e.UserID, UserEmail: e.UserEmail, AgentID: e.AgentID, ClientID: e.ClientID, ClientName: e.ClientName,
		Server: e.Server, Tool: e.Tool, Method: e.Method, Decision: string(e.Decision), Reason: e.Reason,
		RequiredLevel: e.RequiredLevel, AgentLevel: e.AgentLevel, Ceiling: e.Ceiling,
		UpstreamStatus: e.UpstreamStatus, LatencyMS: e.LatencyMS, RequestID: e.RequestID, TraceID: e.TraceID,
		Arguments: e.Arguments, ClientAddr: e.ClientAddr, Flags: e.Flags, Actor: e.Actor, Action: e.Action, Object: e.Object, OldValue: e.OldValue, NewValue: e.NewValue,
		Version: e.Version, PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

const auditJSONL = "application/x-ndjson"

// listAudit lists a host's audit log, oldest first (order=desc: newest first), one page at a
// time, or streams every matching entry as JSON Lines (format=jsonl or Accept:
// application/x-ndjson). Entries of deleted hosts stay readable with a global token.
func (a *API) listAudit(r *http.Request, _ *caller) (int, any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	f := audit.Filter{Host: r.PathValue("host"), AgentID: q.Get("agent"), Server: q.Get("server"), Tool: q.Get("tool"), Decision: audit.Decision(q.Get("decision")), Flag: q.Get("flag")}
	if ref := q.Get("human"); ref != "" {
		if u, err := a.findUser(ctx, f.Host, ref); err == nil {
			f.UserID = u.ID
		} else if isNotFound(err) && !strings.Contains(ref, "@") {
			f.UserID = ref // a deleted human's id still selects their entries
		} else {
			return 0, nil, err
		}
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := parseTimeParam(v)
			if err != nil {
				return 0, nil, problemf(http.StatusBadRequest, "%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (24h)", p.name, v)
			}
			*p.t = t
		}
	}
	f.Descending = q.Get("order") == "desc" // checkQuery allows asc and desc only
	var cursor int64
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		n, perr := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || perr != nil || n < 0 {
			return 0, nil, problemf(http.StatusBadRequest, "cursor is malformed; pass next_cursor from the previous page")
		}
		cursor = n
	}
	if wantsJSONL(r) {
		return http.StatusOK, jsonlStream(func(w http.ResponseWriter) error { return a.streamAudit(ctx, w, f, cursor) }), nil
	}
	limit := defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return 0, nil, problemf(http.StatusBadRequest, "limit must be a number from 1 to %d", maxPageSize)
		}
		limit = n
	}
	entries, err := a.cfg.Store.ListAudit(ctx, f, cursor, limit)
	if err != nil {
		return 0, nil, err
	}
	page := Page[AuditEntry]{Items: make([]AuditEntry, len(entries))}
	for i, e := range entries {
		page.Items[i] = auditDoc(e)
	}
	if len(entries) == limit {
		page.NextCursor = sdk.AuditCursor(entries[len(entries)-1].Seq)
	}
	return http.StatusOK, page, nil
}

// parseTimeParam reads an RFC 3339 time or a duration back from now.
func parseTimeParam(v string) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Parse(time.RFC3339, v)
}

func wantsJSONL(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "jsonl"
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == auditJSONL {
			return true
		}
	}
	return false
}

// jsonlStream is a response body written as a stream (see wrap).
type jsonlStream func(w http.ResponseWriter) error

// streamAudit writes every matching entry after cursor as one JSON line, flushing per page.
func (a *API) streamAudit(ctx context.Context, w http.ResponseWriter, f audit.Filter, cursor int64) error {
	w.Header().Set("Content-Type", auditJSONL)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	for {
		entries, err := a.cfg.Store.ListAudit(ctx, f, cursor, maxPageSize)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := enc.Encode(auditDoc(e)); err != nil {
				return err
			}
			cursor = e.Seq
		}
		_ = rc.Flush()
		if len(entries) < maxPageSize {
			return nil
		}
	}
}
