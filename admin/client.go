package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultClientTimeout bounds each request of a Client made without an http.Client. It is
// generous because importing or syncing a server makes the gateway contact the upstream.
const DefaultClientTimeout = 60 * time.Second

// MaxPageLimit is the largest page the API returns; the All* helpers ask for pages this size.
const MaxPageLimit = 500

const (
	// clientMaxResponseBytes bounds every response body the client reads.
	clientMaxResponseBytes = 16 << 20
	// clientMaxErrorSnippet bounds the part of a non-problem error body quoted in an APIError.
	clientMaxErrorSnippet = 200
	// clientMaxPages stops a cursor chain that never ends (a server bug) instead of looping forever.
	clientMaxPages = 10000
)

// Client is a client of the admin API (/api/v1). It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[/prefix], without a trailing slash
	token string
	http  *http.Client
}

// PageRequest selects one page of a list: Limit items (0 for the server's default of 50, at
// most MaxPageLimit) after Cursor (the NextCursor of the previous page; "" for the first).
type PageRequest struct {
	Limit  int
	Cursor string
}

// APIError is a non-2xx answer of the API. Problem is the RFC 9457 document the server sent,
// or one made up from the status and a bounded snippet of the body when it sent none.
type APIError struct {
	Status  int
	Problem Problem
}

// Error is "<title>: <detail>" (just the title when there is no detail).
func (e *APIError) Error() string {
	title := e.Problem.Title
	if title == "" {
		title = statusTitle(e.Status)
	}
	if e.Problem.Detail == "" {
		return title
	}
	return title + ": " + e.Problem.Detail
}

// NewClient makes a client of the gateway at baseURL (such as http://127.0.0.1:8080; a path
// prefix is kept) that authenticates with token, an admin API token ("" sends none). A nil
// httpClient means one with DefaultClientTimeout.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("admin API URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("admin API URL %q: want an absolute http:// or https:// URL such as http://127.0.0.1:8080", baseURL)
	}
	if u.User != nil {
		return nil, errors.New("admin API URL: must not contain credentials (pass the token separately)")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("admin API URL %q: must not have a query or a fragment", baseURL)
	}
	for _, r := range token {
		if r <= ' ' || r == 0x7f {
			return nil, errors.New("admin API token contains spaces or control characters")
		}
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultClientTimeout}
	}
	base := u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	return &Client{base: base, token: token, http: httpClient}, nil
}

// BaseURL is the gateway URL the client talks to (without /api/v1).
func (c *Client) BaseURL() string { return c.base }

// ---- hosts

// ListHosts lists one page of the hosts the token may see.
func (c *Client) ListHosts(ctx context.Context, p PageRequest) (Page[Host], error) {
	var out Page[Host]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts")
	return out, err
}

// AllHosts lists every host, following cursors.
func (c *Client) AllHosts(ctx context.Context) ([]Host, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Host], error) { return c.ListHosts(ctx, p) })
}

// CreateHost creates a host.
func (c *Client) CreateHost(ctx context.Context, req HostCreate) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodPost, nil, req, &out, "hosts")
	return out, err
}

// GetHost returns a host with its client configurations.
func (c *Client) GetHost(ctx context.Context, host string) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host)
	return out, err
}

// UpdateHost changes a host's name or settings.
func (c *Client) UpdateHost(ctx context.Context, host string, req HostUpdate) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodPatch, nil, req, &out, "hosts", host)
	return out, err
}

// DeleteHost deletes a host and everything in it.
func (c *Client) DeleteHost(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host)
}

// ---- servers

// ListServers lists one page of a host's servers.
func (c *Client) ListServers(ctx context.Context, host string, p PageRequest) (Page[Server], error) {
	var out Page[Server]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "servers")
	return out, err
}

// AllServers lists every server of a host.
func (c *Client) AllServers(ctx context.Context, host string) ([]Server, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Server], error) { return c.ListServers(ctx, host, p) })
}

// ImportServer imports an upstream MCP server (or, with req.DryRun, shows what would be
// imported without saving anything).
func (c *Client) ImportServer(ctx context.Context, host string, req ServerImport) (ImportResult, error) {
	var out ImportResult
	err := c.do(ctx, http.MethodPost, nil, req, &out, "hosts", host, "servers")
	return out, err
}

// GetServer returns one server.
func (c *Client) GetServer(ctx context.Context, host, server string) (Server, error) {
	var out Server
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "servers", server)
	return out, err
}

// UpdateServer changes a server.
func (c *Client) UpdateServer(ctx context.Context, host, server string, req ServerUpdate) (Server, error) {
	var out Server
	err := c.do(ctx, http.MethodPatch, nil, req, &out, "hosts", host, "servers", server)
	return out, err
}

// DeleteServer deletes a server with its tools, grants and consents.
func (c *Client) DeleteServer(ctx context.Context, host, server string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "servers", server)
}

// SyncServer re-discovers a server's tools.
func (c *Client) SyncServer(ctx context.Context, host, server string) (SyncResult, error) {
	var out SyncResult
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "servers", server, "sync")
	return out, err
}

// ---- tools

// ListTools lists one page of a server's tools.
func (c *Client) ListTools(ctx context.Context, host, server string, p PageRequest) (Page[Tool], error) {
	var out Page[Tool]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "servers", server, "tools")
	return out, err
}

// AllTools lists every tool of a server.
func (c *Client) AllTools(ctx context.Context, host, server string) ([]Tool, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Tool], error) { return c.ListTools(ctx, host, server, p) })
}

// CreateTool adds a tool to a server by hand.
func (c *Client) CreateTool(ctx context.Context, host, server string, req ToolCreate) (Tool, error) {
	var out Tool
	err := c.do(ctx, http.MethodPost, nil, req, &out, "hosts", host, "servers", server, "tools")
	return out, err
}

// GetTool returns one tool.
func (c *Client) GetTool(ctx context.Context, host, server, tool string) (Tool, error) {
	var out Tool
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "servers", server, "tools", tool)
	return out, err
}

// UpdateTool changes a tool's level or enablement, or approves its new definition.
func (c *Client) UpdateTool(ctx context.Context, host, server, tool string, req ToolUpdate) (Tool, error) {
	var out Tool
	err := c.do(ctx, http.MethodPatch, nil, req, &out, "hosts", host, "servers", server, "tools", tool)
	return out, err
}

// DeleteTool deletes a tool.
func (c *Client) DeleteTool(ctx context.Context, host, server, tool string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "servers", server, "tools", tool)
}

// ---- humans

// ListHumans lists one page of a host's humans.
func (c *Client) ListHumans(ctx context.Context, host string, p PageRequest) (Page[Human], error) {
	var out Page[Human]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "humans")
	return out, err
}

// AllHumans lists every human of a host.
func (c *Client) AllHumans(ctx context.Context, host string) ([]Human, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Human], error) { return c.ListHumans(ctx, host, p) })
}

// CreateHuman adds (pre-authorizes) a human.
func (c *Client) CreateHuman(ctx context.Context, host string, req HumanCreate) (Human, error) {
	var out Human
	err := c.do(ctx, http.MethodPost, nil, req, &out, "hosts", host, "humans")
	return out, err
}

// InviteHuman issues a new invitation link for a human (by id or email); earlier ones stop
// working. The link is in the returned human's Invitation.
func (c *Client) InviteHuman(ctx context.Context, host, human string) (Human, error) {
	var out Human
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "humans", human, "invitation")
	return out, err
}

// GetHuman returns a human by id or email.
func (c *Client) GetHuman(ctx context.Context, host, human string) (Human, error) {
	var out Human
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "humans", human)
	return out, err
}

// UpdateHuman changes a human's name or admin flag.
func (c *Client) UpdateHuman(ctx context.Context, host, human string, req HumanUpdate) (Human, error) {
	var out Human
	err := c.do(ctx, http.MethodPatch, nil, req, &out, "hosts", host, "humans", human)
	return out, err
}

// DeleteHuman deletes a human with their grants, agents and consents.
func (c *Client) DeleteHuman(ctx context.Context, host, human string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "humans", human)
}

// SetGrant sets a human's ceiling ("low", "medium" or "high") on a server.
func (c *Client) SetGrant(ctx context.Context, host, human, server, ceiling string) (Human, error) {
	var out Human
	err := c.do(ctx, http.MethodPut, nil, GrantSet{Ceiling: ceiling}, &out, "hosts", host, "humans", human, "grants", server)
	return out, err
}

// DeleteGrant removes a human's ceiling on a server and their agents' consents on it, cutting
// every agent of theirs off it until the human consents again after a new grant.
func (c *Client) DeleteGrant(ctx context.Context, host, human, server string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "humans", human, "grants", server)
}

// ---- agents

// ListAgents lists one page of a host's agents; a non-empty human (id or email) lists only
// that human's.
func (c *Client) ListAgents(ctx context.Context, host, human string, p PageRequest) (Page[Agent], error) {
	var out Page[Agent]
	q := url.Values{}
	if human != "" {
		q.Set("human", human)
	}
	err := c.do(ctx, http.MethodGet, p.query(q), nil, &out, "hosts", host, "agents")
	return out, err
}

// AllAgents lists every agent of a host (of one human when human is not "").
func (c *Client) AllAgents(ctx context.Context, host, human string) ([]Agent, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Agent], error) {
		return c.ListAgents(ctx, host, human, p)
	})
}

// GetAgent returns one agent.
func (c *Client) GetAgent(ctx context.Context, host, agent string) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "agents", agent)
	return out, err
}

// UpdateAgent changes an agent's name or type.
func (c *Client) UpdateAgent(ctx context.Context, host, agent string, req AgentUpdate) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodPatch, nil, req, &out, "hosts", host, "agents", agent)
	return out, err
}

// SetAgentLevel sets an agent's level on a server (up to its human's ceiling).
func (c *Client) SetAgentLevel(ctx context.Context, host, agent, server, level string) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodPut, nil, AgentLevel{Level: level}, &out, "hosts", host, "agents", agent, "servers", server)
	return out, err
}

// DeleteAgentLevel removes an agent's consent on a server.
func (c *Client) DeleteAgentLevel(ctx context.Context, host, agent, server string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "agents", agent, "servers", server)
}

// KillAgent deletes every consent of an agent and disables it.
func (c *Client) KillAgent(ctx context.Context, host, agent string) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "agents", agent, "kill")
	return out, err
}

// ---- tokens

// ListHostTokens lists one page of a host's API tokens.
func (c *Client) ListHostTokens(ctx context.Context, host string, p PageRequest) (Page[Token], error) {
	var out Page[Token]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "tokens")
	return out, err
}

// AllHostTokens lists every API token of a host.
func (c *Client) AllHostTokens(ctx context.Context, host string) ([]Token, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Token], error) { return c.ListHostTokens(ctx, host, p) })
}

// CreateHostToken creates an API token for one host; its secret is in the result only.
func (c *Client) CreateHostToken(ctx context.Context, host string, req TokenCreate) (TokenCreated, error) {
	var out TokenCreated
	err := c.do(ctx, http.MethodPost, nil, req, &out, "hosts", host, "tokens")
	return out, err
}

// DeleteHostToken revokes an API token of a host.
func (c *Client) DeleteHostToken(ctx context.Context, host, id string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "tokens", id)
}

// ListGlobalTokens lists one page of the global API tokens (global admins only).
func (c *Client) ListGlobalTokens(ctx context.Context, p PageRequest) (Page[Token], error) {
	var out Page[Token]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "tokens")
	return out, err
}

// AllGlobalTokens lists every global API token.
func (c *Client) AllGlobalTokens(ctx context.Context) ([]Token, error) {
	return allPages(ctx, func(ctx context.Context, p PageRequest) (Page[Token], error) { return c.ListGlobalTokens(ctx, p) })
}

// CreateGlobalToken creates a global API token; its secret is in the result only.
func (c *Client) CreateGlobalToken(ctx context.Context, req TokenCreate) (TokenCreated, error) {
	var out TokenCreated
	err := c.do(ctx, http.MethodPost, nil, req, &out, "tokens")
	return out, err
}

// DeleteGlobalToken revokes a global API token.
func (c *Client) DeleteGlobalToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "tokens", id)
}

// ---- plumbing

func (p PageRequest) query(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	return q
}

// allPages follows a list's cursors from the first page to the last.
func allPages[T any](ctx context.Context, list func(context.Context, PageRequest) (Page[T], error)) ([]T, error) {
	items := []T{}
	seen := map[string]bool{}
	p := PageRequest{Limit: MaxPageLimit}
	for range clientMaxPages {
		page, err := list(ctx, p)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if page.NextCursor == "" {
			return items, nil
		}
		if seen[page.NextCursor] {
			return nil, errors.New("admin API returned a cursor it had already returned; stopping")
		}
		seen[page.NextCursor] = true
		p.Cursor = page.NextCursor
	}
	return nil, fmt.Errorf("admin API list did not end after %d pages", clientMaxPages)
}

// do sends one request to /api/v1/<segments…> (each segment path-escaped) with in as its JSON
// body (none when nil) and decodes a 2xx answer's body into out (ignored when nil).
func (c *Client) do(ctx context.Context, method string, q url.Values, in, out any, segments ...string) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(q, segments...), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err // a *url.Error naming the method and URL; the token is only in a header
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, clientMaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, req.URL.Path, err)
	}
	if len(data) > clientMaxResponseBytes {
		return fmt.Errorf("%s %s: response larger than %d MiB", method, req.URL.Path, clientMaxResponseBytes>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.errorFrom(resp, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode %d response: %w", method, req.URL.Path, resp.StatusCode, err)
	}
	return nil
}

// endpoint is the URL of /api/v1/<segments…> (each segment path-escaped) with query q.
func (c *Client) endpoint(q url.Values, segments ...string) string {
	var b strings.Builder
	b.WriteString(c.base)
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	if len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(q.Encode())
	}
	return b.String()
}

// errorFrom turns a non-2xx answer into an *APIError.
func (c *Client) errorFrom(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p Problem
		if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "") {
			e.Problem = p
			e.Problem.Title = c.redact(p.Title)
			e.Problem.Detail = c.redact(p.Detail)
			if e.Problem.Status == 0 {
				e.Problem.Status = resp.StatusCode
			}
			return e
		}
	}
	e.Problem = Problem{
		Type:   "about:blank",
		Title:  statusTitle(resp.StatusCode),
		Status: resp.StatusCode,
		Detail: bodySnippet(c.redact(string(body))),
	}
	return e
}

// redact removes the token from text the server sent back, in case something echoed it.
func (c *Client) redact(s string) string {
	if len(c.token) < 8 {
		return s // too short to replace without mangling the text; real tokens are 57 bytes
	}
	return strings.ReplaceAll(s, c.token, "[redacted]")
}

// bodySnippet is the start of a body as one printable line of at most clientMaxErrorSnippet runes.
func bodySnippet(body string) string {
	s := strings.ToValidUTF8(body, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if utf8.RuneCountInString(s) <= clientMaxErrorSnippet {
		return s
	}
	return string([]rune(s)[:clientMaxErrorSnippet]) + "…"
}

func statusTitle(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return fmt.Sprintf("HTTP status %d", code)
}

// ---- audit log

// AuditQuery filters a host's audit log. Empty fields match everything.
type AuditQuery struct {
	Human    string // id or email
	Agent    string
	Server   string
	Tool     string
	Decision string // allowed, denied, error, admin or result
	// Since and Until: RFC 3339 times, or durations back from now ("24h").
	Since, Until string
	// Descending lists newest first.
	Descending bool
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"human": q.Human, "agent": q.Agent, "server": q.Server, "tool": q.Tool,
		"decision": q.Decision, "since": q.Since, "until": q.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Descending {
		v.Set("order", "desc")
	}
	return v
}

// ListAudit lists one page of a host's audit log (oldest first unless q.Descending). The last
// page has no NextCursor; AuditCursor(last entry's Seq) lists the entries added since.
func (c *Client) ListAudit(ctx context.Context, host string, q AuditQuery, p PageRequest) (Page[AuditEntry], error) {
	var out Page[AuditEntry]
	err := c.do(ctx, http.MethodGet, p.query(q.values()), nil, &out, "hosts", host, "audit")
	return out, err
}

// ExportAudit streams every entry of a host's audit log matching q (after cursor, "" for all)
// as JSON Lines and calls fn for each, in order. Memory stays bounded however long the log.
func (c *Client) ExportAudit(ctx context.Context, host string, q AuditQuery, cursor string, fn func(AuditEntry) error) error {
	v := q.values()
	v.Set("format", "jsonl")
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(v, "hosts", host, "audit"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-ndjson, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// No overall timeout: an export lasts as long as the log is long.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return c.errorFrom(resp, data)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e AuditEntry
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read audit export: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
