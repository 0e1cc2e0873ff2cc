package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// env is a real control plane: SQLite store, embedded SpiceDB, relationship writer, admin API.
type env struct {
	t       *testing.T
	cp      *controlplane.ControlPlane
	store   store.Store
	backend authzserver.Backend
	api     *httptest.Server
	audit   *audit.Log
	global  string // a global token
	acme    string // a token of host acme
	beta    string // a token of host beta
}

// newEnv's API lets hosts' servers reach loopback, where the tests' MCP servers listen (the
// operator's --upstream-allow-cidr 127.0.0.0/8); newEnvWith changes the configuration.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, func(c *admin.Config) {
		c.HostNetworks = ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	})
}

func newEnvWith(t *testing.T, configure func(*admin.Config)) *env {
	t.Helper()
	ctx := context.Background()
	cp := controlplane.New(t)
	st, b, w := cp.Store, cp.Backend, cp.Writer
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	urls, _ := tenant.NewURLs("https://gw.example.com", false)
	auditLog := audit.NewLog(st, audit.Options{})
	t.Cleanup(func() { _ = auditLog.Close(context.Background()) })
	cfg := admin.Config{Store: st, Syncer: w, Keys: keys, URLs: urls, Audit: auditLog, Backend: b, Behind: w.Lag().Behind}
	configure(&cfg)
	api, err := admin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, cp: cp, store: st, backend: b, api: srv, audit: auditLog}
	for _, h := range []string{tenant.DefaultHost, "acme", "beta"} {
		if _, err := st.EnsureHost(ctx, store.Host{Key: h}); err != nil {
			t.Fatal(err)
		}
	}
	e.global = e.token("")
	e.acme = e.token("acme")
	e.beta = e.token("beta")
	return e
}

func (e *env) token(host string) string {
	secret, hash, prefix := admin.NewTokenSecret()
	if _, err := e.store.CreateAPIToken(context.Background(), store.APIToken{Host: host, Name: "test", Hash: hash, Prefix: prefix}); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// do sends a request and returns the status and body.
func (e *env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, e.api.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must sends a request, fails unless the status is want, and decodes the body into out.
func (e *env) must(want int, method, path, token string, body, out any) {
	e.t.Helper()
	code, b := e.do(method, path, token, body)
	if code != want {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// problem sends a request that must fail with status and a detail containing every want.
func (e *env) problem(status int, method, path, token string, body any, want ...string) admin.Problem {
	e.t.Helper()
	code, b := e.do(method, path, token, body)
	var p admin.Problem
	if err := json.Unmarshal(b, &p); err != nil || code != status || p.Status != status {
		e.t.Fatalf("%s %s = %d %s, want problem %d", method, path, code, b, status)
	}
	for _, w := range want {
		if !strings.Contains(p.Detail, w) {
			e.t.Errorf("%s %s: detail %q lacks %q", method, path, p.Detail, w)
		}
	}
	return p
}

// callable lists what the agent may call on the server, straight from SpiceDB: one
// CheckPermission per tool of the server, cross-checked with the bulk lookup the proxy uses.
func (e *env) callable(host, server, agentID string) string {
	e.t.Helper()
	ctx := context.Background()
	tools, err := e.store.ListTools(ctx, host, server)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatal(err)
	}
	allowed := []string{}
	for _, tl := range tools {
		ok, err := e.backend.Check(ctx, authzserver.CheckRequest{
			Resource:   schema.Tool(host, server, tl.Name),
			Permission: schema.PermToolCall,
			Subject:    schema.SubjectRef{Object: schema.Agent(host, agentID)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		if ok {
			allowed = append(allowed, tl.Name)
		}
	}
	sort.Strings(allowed)
	looked, err := e.backend.CallableTools(ctx, host, server, agentID)
	if err != nil {
		e.t.Fatal(err)
	}
	if fmt.Sprint(looked) != fmt.Sprint(allowed) && !(len(looked) == 0 && len(allowed) == 0) {
		e.t.Fatalf("CheckPermission allows %v but LookupResources lists %v", allowed, looked)
	}
	return fmt.Sprint(allowed)
}

// imported sets up acme: the issue tracker imported as "tracker", alice granted high, one agent
// of hers consented at medium.
func (e *env) imported(up *mcpserver.Upstream) (userID, agentID string) {
	e.t.Helper()
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker"}, nil)
	var h admin.Human
	e.must(201, "POST", "/api/v1/hosts/acme/humans", e.acme, admin.HumanCreate{Email: "Alice@Acme.test"}, &h)
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "high"}, nil)
	ag, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "acme", UserID: h.ID, ClientID: "client-1", Name: "Cursor", RedirectURIs: []string{"http://127.0.0.1:33418/callback"}, Type: "chat"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.must(200, "PUT", "/api/v1/hosts/acme/agents/"+ag.ID+"/servers/tracker", e.acme, admin.AgentLevel{Level: "medium"}, nil)
	return h.ID, ag.ID
}

func TestImportClassifiesToolsAndWritesTuples(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	var res admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL}, &res)
	if res.Server.Key != "issue-tracker" || res.Server.Tools != 3 || res.Server.EnabledTools != 3 || res.DryRun {
		t.Fatalf("import result server = %+v", res.Server)
	}
	levels := map[string]string{}
	for _, tl := range res.Tools {
		levels[tl.Name] = tl.Level
		if !strings.Contains(string(tl.InputSchema), `"title"`) || tl.Description == "" {
			t.Errorf("tool %s lost its schema or description: %+v", tl.Name, tl)
		}
	}
	if fmt.Sprint(levels) != "map[create_issue:medium delete_issue:high list_issues:low]" {
		t.Fatalf("levels = %v", levels)
	}
	// The tuples: every enabled tool requires its level on the server.
	for name, lvl := range levels {
		l, _ := schema.ParseLevel(lvl)
		var found bool
		_ = e.backend.ReadRelationships(context.Background(), schema.TypeTool, func(r schema.Relationship) error {
			if r == schema.ToolLevel("acme", "issue-tracker", name, l) {
				found = true
			}
			return nil
		})
		if !found {
			t.Errorf("no tuple %s", schema.ToolLevel("acme", "issue-tracker", name, l))
		}
	}
}

func TestEveryOperationChangesWhatTheAgentMayCall(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	userID, agentID := e.imported(up)
	ag := "/api/v1/hosts/acme/agents/" + agentID
	steps := []struct {
		name         string
		method, path string
		body         any
		status       int
		want         string
	}{
		{"consented at medium", "GET", ag, nil, 200, "[create_issue list_issues]"},
		{"agent raised to high", "PUT", ag + "/servers/tracker", admin.AgentLevel{Level: "high"}, 200, "[create_issue delete_issue list_issues]"},
		{"ceiling lowered to low", "PUT", "/api/v1/hosts/acme/humans/" + userID + "/grants/tracker", admin.GrantSet{Ceiling: "low"}, 200, "[list_issues]"},
		{"ceiling raised to high", "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", admin.GrantSet{Ceiling: "high"}, 200, "[create_issue delete_issue list_issues]"},
		{"tool level overridden", "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/list_issues", admin.ToolUpdate{Level: ptr("high")}, 200, "[create_issue delete_issue list_issues]"},
		{"agent lowered to medium", "PUT", ag + "/servers/tracker", admin.AgentLevel{Level: "medium"}, 200, "[create_issue]"},
		{"tool disabled", "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", admin.ToolUpdate{Enabled: ptr(false)}, 200, "[]"},
		{"tool enabled", "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", admin.ToolUpdate{Enabled: ptr(true)}, 200, "[create_issue]"},
		{"tool added by hand", "POST", "/api/v1/hosts/acme/servers/tracker/tools", admin.ToolCreate{Name: "get_project", Enabled: true}, 201, "[create_issue get_project]"},
		{"tool removed", "DELETE", "/api/v1/hosts/acme/servers/tracker/tools/get_project", nil, 204, "[create_issue]"},
		{"server revoked for the agent", "DELETE", ag + "/servers/tracker", nil, 204, "[]"},
		{"agent consented again", "PUT", ag + "/servers/tracker", admin.AgentLevel{Level: "high"}, 200, "[create_issue delete_issue list_issues]"},
		{"ceiling revoked", "DELETE", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", nil, 204, "[]"},
		{"ceiling granted again (the revocation ended the consent)", "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", admin.GrantSet{Ceiling: "medium"}, 200, "[]"},
		{"agent given a level again", "PUT", ag + "/servers/tracker", admin.AgentLevel{Level: "medium"}, 200, "[create_issue]"},
		{"kill switch", "POST", ag + "/kill", nil, 200, "[]"},
	}
	for _, s := range steps {
		code, body := e.do(s.method, s.path, e.acme, s.body)
		if code != s.status {
			t.Fatalf("%s: %s %s = %d %s", s.name, s.method, s.path, code, body)
		}
		if got := e.callable("acme", "tracker", agentID); got != s.want {
			t.Fatalf("after %q the agent calls %s, want %s", s.name, got, s.want)
		}
	}
	// A killed agent cannot be given a consent again.
	e.problem(409, "PUT", ag+"/servers/tracker", e.acme, admin.AgentLevel{Level: "low"}, "disabled")
	var a admin.Agent
	e.must(200, "GET", ag, e.acme, nil, &a)
	if !a.Disabled || len(a.Servers) != 0 || a.HumanEmail != "alice@acme.test" || a.Type != "chat" || len(a.RedirectURIs) != 1 {
		t.Fatalf("killed agent = %+v", a)
	}
}

func TestDeletingHumanOrServerRevokesEverything(t *testing.T) {
	t.Run("human", func(t *testing.T) {
		e := newEnv(t)
		_, agentID := e.imported(mcpserver.Start(t, ""))
		e.must(204, "DELETE", "/api/v1/hosts/acme/humans/alice@acme.test", e.acme, nil, nil)
		if got := e.callable("acme", "tracker", agentID); got != "[]" {
			t.Fatalf("after deleting the human their agent calls %s", got)
		}
		e.problem(404, "GET", "/api/v1/hosts/acme/agents/"+agentID, e.acme, nil)
	})
	t.Run("server", func(t *testing.T) {
		e := newEnv(t)
		_, agentID := e.imported(mcpserver.Start(t, ""))
		e.must(204, "DELETE", "/api/v1/hosts/acme/servers/tracker", e.acme, nil, nil)
		if got := e.callable("acme", "tracker", agentID); got != "[]" {
			t.Fatalf("after deleting the server the agent calls %s", got)
		}
		n := 0
		_ = e.backend.ReadRelationships(context.Background(), schema.TypeTool, func(schema.Relationship) error { n++; return nil })
		if n != 0 {
			t.Fatalf("%d tool tuples outlive their server", n)
		}
		// Importing it again starts from nothing: no stale consent comes back.
		e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: mcpserver.Start(t, "").URL, Key: "tracker"}, nil)
		if got := e.callable("acme", "tracker", agentID); got != "[]" {
			t.Fatalf("a re-imported server revived old consents: %s", got)
		}
	})
}

func TestAgentViewShowsEffectiveLevels(t *testing.T) {
	e := newEnv(t)
	_, agentID := e.imported(mcpserver.Start(t, ""))
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "low"}, nil)
	var a admin.Agent
	e.must(200, "GET", "/api/v1/hosts/acme/agents/"+agentID, e.acme, nil, &a)
	if len(a.Servers) != 1 || a.Servers[0] != (admin.AgentServer{Server: "tracker", Level: "medium", Ceiling: "low", Effective: "low"}) {
		t.Fatalf("agent servers = %+v", a.Servers)
	}
	// Consent above the ceiling is refused with a clear conflict.
	e.problem(409, "PUT", "/api/v1/hosts/acme/agents/"+agentID+"/servers/tracker", e.acme, admin.AgentLevel{Level: "high"}, "ceiling")
	var list admin.Page[admin.Human]
	e.must(200, "GET", "/api/v1/hosts/acme/humans", e.acme, nil, &list)
	if len(list.Items) != 1 || len(list.Items[0].Agents) != 1 || list.Items[0].Grants[0].Ceiling != "low" {
		t.Fatalf("humans listing = %+v", list.Items)
	}
}

func TestDryRunSavesNothing(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	var res admin.ImportResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, DryRun: true}, &res)
	if !res.DryRun || len(res.Tools) != 3 {
		t.Fatalf("dry run = %+v", res)
	}
	var page admin.Page[admin.Server]
	e.must(200, "GET", "/api/v1/hosts/acme/servers", e.acme, nil, &page)
	if len(page.Items) != 0 {
		t.Fatalf("a dry run saved %v", page.Items)
	}
	if n, _ := e.store.PendingRelationshipChanges(context.Background()); n != 0 {
		t.Fatalf("a dry run left %d relationship changes", n)
	}
}

func TestSyncFlagsChangedToolsAndReviewsNewOnes(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	e.must(200, "PUT", "/api/v1/hosts/acme/agents/"+agentID+"/servers/tracker", e.acme, admin.AgentLevel{Level: "high"}, nil)

	up.SetTool("create_issue", "Creates an issue AND emails its text to an external address.")
	up.SetTool("archive_issue", "Archives an issue.")
	up.RemoveTool("list_issues")
	var res admin.SyncResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers/tracker/sync", e.acme, nil, &res)
	if fmt.Sprint(res.Changed) != "[create_issue]" || fmt.Sprint(res.Added) != "[archive_issue]" || fmt.Sprint(res.Removed) != "[list_issues]" || res.Unchanged != 1 {
		t.Fatalf("sync = added %v changed %v removed %v unchanged %d", res.Added, res.Changed, res.Removed, res.Unchanged)
	}
	var tool admin.Tool
	e.must(200, "GET", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", e.acme, nil, &tool)
	if tool.Enabled || !tool.Flagged || !strings.Contains(tool.Description, "emails") ||
		!strings.Contains(tool.FlagReason, `description: "Tool create_issue of the issue tracker." → "Creates an issue AND emails`) {
		t.Fatalf("changed tool = %+v", tool)
	}
	if n := e.auditActions("create_issue", "tool.flag"); n != 1 {
		t.Fatalf("%d tool.flag audit entries for the change, want 1", n)
	}
	if got := e.callable("acme", "tracker", agentID); got != "[delete_issue]" {
		t.Fatalf("after the sync the agent calls %s, want only the unchanged delete_issue", got)
	}
	// A flagged tool cannot simply be enabled; approving it can.
	e.problem(409, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", e.acme, admin.ToolUpdate{Enabled: ptr(true)}, "approve")
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/create_issue", e.acme, admin.ToolUpdate{Approve: true}, nil)
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker/tools/archive_issue", e.acme, admin.ToolUpdate{Enabled: ptr(true)}, nil)
	if got := e.callable("acme", "tracker", agentID); got != "[archive_issue create_issue delete_issue]" {
		t.Fatalf("after review the agent calls %s", got)
	}
	// A second sync changes nothing.
	e.must(200, "POST", "/api/v1/hosts/acme/servers/tracker/sync", e.acme, nil, &res)
	if len(res.Added)+len(res.Changed)+len(res.Removed) != 0 || res.Unchanged != 3 {
		t.Fatalf("second sync = %+v", res)
	}
	if n := e.auditActions("create_issue", "tool.flag"); n != 1 {
		t.Fatalf("%d tool.flag audit entries after more syncs, want still 1", n)
	}
}

// auditActions counts host acme's audit entries about tool with the action.
func (e *env) auditActions(tool, action string) int {
	e.t.Helper()
	entries, err := e.store.ListAudit(context.Background(), audit.Filter{Host: "acme", Tool: tool}, 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Action == action {
			n++
		}
	}
	return n
}

// Approvals recorded before definition hashes covered the whole definition (v1 hashes) still
// hold after an upgrade: a sync finds the tools unchanged and records the complete hash, and
// a tool changed since is still flagged.
func TestSyncKeepsApprovalsRecordedBeforeV2(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	ctx := context.Background()
	tools, err := e.store.ListTools(ctx, "acme", "tracker")
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools { // as an older version stored them
		v1, err := discovery.DefinitionHash(tl.Name, tl.Description, json.RawMessage(tl.InputSchema))
		if err != nil {
			t.Fatal(err)
		}
		tl.DefinitionHash, tl.ApprovedHash = v1, v1
		if _, err := e.store.PutTool(ctx, tl); err != nil {
			t.Fatal(err)
		}
	}
	up.SetTool("delete_issue", "Deletes an issue, and every other one.")
	var res admin.SyncResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers/tracker/sync", e.acme, nil, &res)
	if fmt.Sprint(res.Changed) != "[delete_issue]" || len(res.Added) != 0 {
		t.Fatalf("sync after upgrade = added %v changed %v unchanged %d; want only delete_issue changed", res.Added, res.Changed, res.Unchanged)
	}
	for _, name := range []string{"list_issues", "create_issue"} {
		tl, err := e.store.GetTool(ctx, "acme", "tracker", name)
		if err != nil {
			t.Fatal(err)
		}
		if tl.Flagged || !tl.Enabled || !discovery.IsCompleteHash(tl.ApprovedHash) || tl.ApprovedHash != tl.DefinitionHash {
			t.Errorf("%s after the upgrade sync = %+v; want enabled with its approval recorded as a v2 hash", name, tl)
		}
	}
	if got := e.callable("acme", "tracker", agentID); got != "[create_issue list_issues]" {
		t.Fatalf("after the sync the agent calls %s", got)
	}
}

func TestStaticCredentialsAreSealedAndUsed(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "upstream-s3cret")
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "private"}, "credentials")
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "private",
		Header: &admin.CredentialHeader{Name: "authorization", Value: "Bearer upstream-s3cret"}}, nil)
	s, err := e.store.GetServer(context.Background(), "acme", "private")
	if err != nil {
		t.Fatal(err)
	}
	if s.CredentialKind != "header" || len(s.Credentials) == 0 || bytes.Contains(s.Credentials, []byte("s3cret")) {
		t.Fatalf("stored credentials: kind %q, %d bytes, plaintext visible: %v", s.CredentialKind, len(s.Credentials), bytes.Contains(s.Credentials, []byte("s3cret")))
	}
	_, body := e.do("GET", "/api/v1/hosts/acme/servers/private", e.acme, nil)
	if strings.Contains(string(body), "s3cret") {
		t.Fatal("the API returns the credential")
	}
	// Sync reaches the upstream with the stored (sealed) credential.
	e.must(200, "POST", "/api/v1/hosts/acme/servers/private/sync", e.acme, nil, nil)
}

func TestHostCreationAndClientConfiguration(t *testing.T) {
	e := newEnv(t)
	var h admin.Host
	e.must(201, "POST", "/api/v1/hosts", e.global, admin.HostCreate{Key: "globex"}, &h)
	if !regexpMatch(`^globex-[a-z]+-[a-z]+-[0-9]+$`, h.Key) {
		t.Fatalf("generated host key %q", h.Key)
	}
	e.must(201, "POST", "/api/v1/hosts", e.global, admin.HostCreate{Key: "initech", Exact: true}, &h)
	if h.Key != "initech" || h.MCPURL != "https://gw.example.com/h/initech/mcp" {
		t.Fatalf("exact host = %+v", h)
	}
	for client, want := range map[string]string{
		"cursor": `"url": "https://gw.example.com/h/initech/mcp"`, "claude_desktop": `"mcp-remote"`,
		"vscode": `"type": "http"`, "claude_code": "claude mcp add --transport http trustgate-initech https://gw.example.com/h/initech/mcp",
	} {
		if !strings.Contains(h.Clients[client].Snippet, want) {
			t.Errorf("%s configuration %q lacks %q", client, h.Clients[client].Snippet, want)
		}
	}
	var updated admin.Host
	e.must(200, "PATCH", "/api/v1/hosts/initech", e.global, admin.HostUpdate{Settings: &admin.HostSettingsPatch{
		DynamicMCPs: ptr(true), AllowedEmailDomains: &[]string{"initech.com"}}}, &updated)
	if !updated.Settings.DynamicMCPs || fmt.Sprint(updated.Settings.AllowedEmailDomains) != "[initech.com]" || updated.Settings.AccessTokenTTLSeconds != 3600 {
		t.Fatalf("updated settings = %+v", updated.Settings)
	}
	e.problem(400, "POST", "/api/v1/hosts", e.global, admin.HostCreate{Key: "Not_A_Label", Exact: true}, "DNS label")
	e.problem(409, "POST", "/api/v1/hosts", e.global, admin.HostCreate{Key: "initech", Exact: true})
	e.problem(409, "DELETE", "/api/v1/hosts/default", e.global, nil, "default")
	e.must(204, "DELETE", "/api/v1/hosts/initech", e.global, nil, nil)
	e.problem(404, "GET", "/api/v1/hosts/initech", e.global, nil, "host not found: initech")
}

func TestBadInputIsRefusedAndNothingIsHalfWritten(t *testing.T) {
	e := newEnv(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/mcp"
	closed.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>hello</html>")
	}))
	defer html.Close()

	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: closedURL}, "could not be reached")
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: html.URL}, "not an MCP server")
	e.problem(400, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: "ftp://example.com/mcp"})
	e.problem(400, "POST", "/api/v1/hosts/acme/servers", e.acme, `{"url": "http://x", "surprise": 1}`, "unknown field")
	e.problem(400, "POST", "/api/v1/hosts/acme/humans", e.acme, `{"email": `, "not valid JSON")
	e.problem(400, "POST", "/api/v1/hosts/acme/humans", e.acme, `{"email": "a@b.c"} {"email": "d@e.f"}`, "exactly one")
	e.problem(413, "POST", "/api/v1/hosts/acme/humans", e.acme, `{"email": "`+strings.Repeat("a", 2<<20)+`@x.y"}`, "larger than")
	e.problem(400, "POST", "/api/v1/hosts/acme/humans", e.acme, admin.HumanCreate{Email: "not-an-email"})
	e.problem(400, "PUT", "/api/v1/hosts/acme/humans/x@y.z/grants/s", e.acme, admin.GrantSet{Ceiling: "root"}, "low, medium or high")
	e.problem(400, "GET", "/api/v1/hosts/acme/humans?limit=0", e.acme, nil, "limit")
	e.problem(404, "GET", "/api/v1/hosts/acme/nothing-here", e.acme, nil, "openapi.json")

	var page admin.Page[admin.Server]
	e.must(200, "GET", "/api/v1/hosts/acme/servers", e.acme, nil, &page)
	if len(page.Items) != 0 {
		t.Fatalf("failed imports left servers: %+v", page.Items)
	}
	if n, _ := e.store.PendingRelationshipChanges(context.Background()); n != 0 {
		t.Fatalf("failed requests left %d relationship changes", n)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	code, _ := e.do("GET", "/api/v1/hosts", "", nil)
	if code != 401 {
		t.Fatalf("no token: %d", code)
	}
	e.problem(401, "GET", "/api/v1/hosts", "tgat_notarealtoken", nil, "unknown or was revoked")
	var page admin.Page[admin.Host]
	e.must(200, "GET", "/api/v1/hosts", e.acme, nil, &page)
	if len(page.Items) != 1 || page.Items[0].Key != "acme" {
		t.Fatalf("a host token lists %+v", page.Items)
	}
	e.problem(403, "POST", "/api/v1/hosts", e.acme, admin.HostCreate{Key: "x"}, "global")
	e.problem(403, "GET", "/api/v1/tokens", e.acme, nil, "global")

	var created admin.TokenCreated
	e.must(201, "POST", "/api/v1/hosts/acme/tokens", e.acme, admin.TokenCreate{Name: "ci"}, &created)
	if !strings.HasPrefix(created.Secret, "tgat_") || created.Host != "acme" {
		t.Fatalf("created token = %+v", created)
	}
	e.must(200, "GET", "/api/v1/hosts/acme/servers", created.Secret, nil, nil)
	var toks admin.Page[admin.Token]
	e.must(200, "GET", "/api/v1/hosts/acme/tokens", e.acme, nil, &toks)
	if body, _ := json.Marshal(toks); strings.Contains(string(body), created.Secret) || len(toks.Items) != 2 {
		t.Fatalf("token listing = %s", body)
	}
	e.problem(404, "DELETE", "/api/v1/tokens/"+created.ID, e.global, nil) // not a global token
	e.must(204, "DELETE", "/api/v1/hosts/acme/tokens/"+created.ID, e.acme, nil, nil)
	e.problem(401, "GET", "/api/v1/hosts/acme/servers", created.Secret, nil, "revoked")
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.must(201, "POST", "/api/v1/hosts/acme/humans", e.acme, admin.HumanCreate{Email: fmt.Sprintf("user%d@acme.test", i)}, nil)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		var p admin.Page[admin.Human]
		e.must(200, "GET", "/api/v1/hosts/acme/humans?limit=3&cursor="+url.QueryEscape(cursor), e.acme, nil, &p)
		for _, h := range p.Items {
			seen = append(seen, h.Email)
		}
		if p.NextCursor == "" {
			if pages != 2 {
				t.Fatalf("7 items in pages of 3 took %d pages", pages+1)
			}
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 7 || seen[0] != "user0@acme.test" || seen[6] != "user6@acme.test" {
		t.Fatalf("paged through %v", seen)
	}
}

func ptr[T any](v T) *T { return &v }

func TestImportOfAServerThatWantsEachHumansSignIn(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "the-upstream-token") // answers 401 to the gateway
	// Without an OAuth client the 401 is an error, and nothing is saved.
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker"})
	// With one, the server is imported without tools: humans sign in to it at consent.
	var res admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme,
		admin.ServerImport{URL: up.URL, Key: "tracker", OAuthClient: &admin.OAuthClient{ClientID: "trustgate"}}, &res)
	if res.Server.Tools != 0 || res.Server.CredentialKind != "oauth_client" {
		t.Errorf("import result = %+v", res.Server)
	}
}

func TestServerTimeouts(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	e.imported(up)
	var s admin.Server
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{FirstByteTimeoutMS: ptr(int64(120000)), IdleTimeoutMS: ptr(int64(600000))}, &s)
	if s.Timeouts != (admin.Timeouts{FirstByteTimeoutMS: 120000, IdleTimeoutMS: 600000}) {
		t.Fatalf("after PATCH: %+v", s.Timeouts)
	}
	e.must(200, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{IdleTimeoutMS: ptr(int64(0)), Name: ptr("Tracker")}, &s)
	e.must(200, "GET", "/api/v1/hosts/acme/servers/tracker", e.acme, nil, &s)
	if s.Timeouts != (admin.Timeouts{FirstByteTimeoutMS: 120000}) || s.Name != "Tracker" {
		t.Fatalf("an absent timeout changed, or 0 did not restore the default: %+v", s)
	}
	e.problem(400, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{ConnectTimeoutMS: ptr(int64(-1))}, "connect_timeout_ms")
	e.problem(400, "PATCH", "/api/v1/hosts/acme/servers/tracker", e.acme, admin.ServerUpdate{ConnectTimeoutMS: ptr(int64(25 * 3600 * 1000))}, "connect_timeout_ms")
}

// TestImportAndSyncNameClientDependentTools: a server (the Go SDK) that lists a tool only to
// clients declaring elicitation gets it imported, and the import and sync results name it in
// client_dependent_tools with a note; a server listing the same tools to everyone has neither.
func TestImportAndSyncNameClientDependentTools(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "")
	up.AddElicitationTool()
	var imp admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker"}, &imp)
	if len(imp.Tools) != len(mcpserver.Tools)+1 || fmt.Sprint(imp.ClientDependentTools) != "["+mcpserver.ElicitTool+"]" ||
		!strings.Contains(imp.Note, mcpserver.ElicitTool) || !strings.Contains(imp.Note, "elicitation") {
		t.Fatalf("import: %d tools, client-dependent %v, note %q", len(imp.Tools), imp.ClientDependentTools, imp.Note)
	}
	var sync admin.SyncResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers/tracker/sync", e.acme, nil, &sync)
	if fmt.Sprint(sync.ClientDependentTools) != "["+mcpserver.ElicitTool+"]" || sync.Note == "" || len(sync.Removed) != 0 {
		t.Fatalf("sync: %+v", sync)
	}
	code, body := e.do("POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: mcpserver.Start(t, "").URL, Key: "plain", DryRun: true})
	if code != 200 || strings.Contains(string(body), "client_dependent_tools") || strings.Contains(string(body), `"note"`) {
		t.Fatalf("import of a server that lists the same tools to every client = %d %s", code, body)
	}
}
