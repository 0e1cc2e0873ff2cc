package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/dlp"
	"github.com/trustgate/trustgate/proxy/argcheck"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/store"
)

// storeFacts are decide's facts read from the store (the control-plane cache in the gateway)
// and the authorization backend.
type storeFacts struct {
	st       store.HotReads
	backend  authzserver.Backend
	behind   HostBehind // nil: no host is behind
	defs     *defMemo
	schemas  *argcheck.Cache
	limiter  ratelimit.Limiter
	scanners *scannerMemo
	// approvals holds the standing approvals (nil: none stand).
	approvals store.Approvals
}

func (f storeFacts) agent(ctx context.Context, host, id string) (store.Agent, bool, error) {
	a, err := f.st.GetAgent(ctx, host, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Agent{}, false, nil
	case err != nil:
		return store.Agent{}, false, fmt.Errorf("read agent: %w", err)
	}
	return a, true, nil
}

func (f storeFacts) standingApproval(ctx context.Context, host, agentID, server, tool string) (bool, error) {
	if f.approvals == nil {
		return false, nil
	}
	_, err := f.approvals.StandingApprovalFor(ctx, host, agentID, server, tool, time.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read standing approval: %w", err)
	}
	return true, nil
}

func (f storeFacts) takeTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error) {
	return f.limiter.Take(ctx, buckets)
}

func (f storeFacts) peekTokens(ctx context.Context, buckets []ratelimit.Bucket) (ratelimit.Result, error) {
	return f.limiter.Peek(ctx, buckets)
}

func (f storeFacts) resultScanner(host string, settings dlp.Settings) (*dlp.Scanner, error) {
	return f.scanners.scannerOf(host, settings)
}

func (f storeFacts) hostSettings(ctx context.Context, host string) (store.HostSettings, error) {
	h, err := f.st.GetHost(ctx, host)
	if err != nil {
		return store.HostSettings{}, fmt.Errorf("read host settings: %w", err)
	}
	return h.Settings, nil
}

func (f storeFacts) tool(ctx context.Context, host, server, name string) (store.Tool, bool, error) {
	t, err := f.st.GetTool(ctx, host, server, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Tool{}, false, nil
	case err != nil:
		return store.Tool{}, false, fmt.Errorf("read tool: %w", err)
	}
	return t, true, nil
}

func (f storeFacts) checkArguments(inputSchema string, arguments json.RawMessage) error {
	return f.schemas.Check(inputSchema, arguments)
}

func (f storeFacts) latestConsent(ctx context.Context, host, agentID string) (string, bool, error) {
	consents, err := f.st.ListConsents(ctx, host, agentID)
	if err != nil {
		return "", false, err
	}
	if len(consents) == 0 {
		return "", false, nil
	}
	latest := consents[0]
	for _, c := range consents[1:] {
		if c.UpdatedAt.After(latest.UpdatedAt) {
			latest = c
		}
	}
	return latest.Server, true, nil
}

func (f storeFacts) server(ctx context.Context, host, key string) (store.Server, bool, error) {
	srv, err := f.st.GetServer(ctx, host, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Server{}, false, nil
	case err != nil:
		return store.Server{}, false, err
	}
	return srv, true, nil
}

func (f storeFacts) check(ctx context.Context, req authzserver.CheckRequest) (bool, error) {
	return f.backend.Check(ctx, req)
}

// denialQuery names a denied message: server is its server's key ("" for bare /mcp without a
// consent), tool the tool of a tools/call ("" otherwise).
type denialQuery struct {
	host, userID, agentID, method, server, tool string
}

// denialFacts reads the facts of a denied message from the store (on the denial path only).
func (f storeFacts) denialFacts(ctx context.Context, q denialQuery) (denialFacts, error) {
	df := denialFacts{Method: q.method, Server: q.server, Tool: q.tool}
	df.Behind = f.behind != nil && f.behind.Behind(q.host)
	a, err := f.st.GetAgent(ctx, q.host, q.agentID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return df, nil
	case err != nil:
		return df, fmt.Errorf("read agent: %w", err)
	}
	df.AgentFound, df.AgentDisabled = true, a.Disabled
	if a.Disabled {
		return df, nil
	}
	if q.server == "" {
		grants, err := f.st.ListGrants(ctx, q.host, q.userID)
		if err != nil {
			return df, fmt.Errorf("list grants: %w", err)
		}
		df.AnyGrant = len(grants) > 0
		return df, nil
	}
	if _, err := f.st.GetServer(ctx, q.host, q.server); errors.Is(err, store.ErrNotFound) {
		return df, nil
	} else if err != nil {
		return df, fmt.Errorf("read server: %w", err)
	}
	df.ServerFound = true
	if g, err := f.st.GetGrant(ctx, q.host, q.server, q.userID); err == nil {
		df.HasGrant, df.Ceiling = true, g.Ceiling
	} else if !errors.Is(err, store.ErrNotFound) {
		return df, fmt.Errorf("read grant: %w", err)
	}
	if c, err := f.st.GetConsent(ctx, q.host, q.agentID, q.server); err == nil {
		df.HasConsent, df.Level = true, c.Level
	} else if !errors.Is(err, store.ErrNotFound) {
		return df, fmt.Errorf("read consent: %w", err)
	}
	if q.tool != "" {
		if t, err := f.st.GetTool(ctx, q.host, q.server, q.tool); err == nil {
			df.ToolFound, df.ToolEnabled, df.ToolFlagged, df.ToolLevel = true, t.Enabled, t.Flagged, t.Level
			df.ToolHasOutputSchema = t.OutputSchema != ""
		} else if !errors.Is(err, store.ErrNotFound) {
			return df, fmt.Errorf("read tool: %w", err)
		}
	}
	return df, nil
}

// visibleTools is the per-tool decision of the tools/list filter (filter.go): the tools the
// agent may see whose definition is the approved one (pinning.go).
func (f storeFacts) visibleTools(ctx context.Context, host, server, agentID string) (*pinCheck, error) {
	h, err := f.st.GetHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("read host settings: %w", err)
	}
	tools, err := f.toolsByName(ctx, host, server)
	if err != nil {
		return nil, err
	}
	check := &pinCheck{defs: f.defs, tools: tools}
	if h.Settings.ToolVisibility == "all" {
		check.visible = func(name string) bool {
			t, ok := tools[name]
			return ok && t.Enabled && !t.Flagged
		}
		return check, nil
	}
	names, err := f.backend.CallableTools(ctx, host, server, agentID)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	check.visible = func(name string) bool { return set[name] }
	return check, nil
}

// toolsByName are the server's stored tools by name, from the control-plane cache when the
// store has one (cache.Store.ToolsByName).
func (f storeFacts) toolsByName(ctx context.Context, host, server string) (map[string]store.Tool, error) {
	if c, ok := f.st.(interface {
		ToolsByName(ctx context.Context, host, server string) (map[string]store.Tool, error)
	}); ok {
		tools, err := c.ToolsByName(ctx, host, server)
		if err != nil {
			return nil, fmt.Errorf("list tools: %w", err)
		}
		return tools, nil
	}
	list, err := f.st.ListTools(ctx, host, server)
	if err != nil {
		return nil, fmt.Errorf("list tools: %w", err)
	}
	tools := make(map[string]store.Tool, len(list))
	for _, t := range list {
		tools[t.Name] = t
	}
	return tools, nil
}
