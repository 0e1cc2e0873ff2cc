package sdk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
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

// MaxPageLimit is the largest page the API returns; the iterators ask for pages this size.
const MaxPageLimit = 500

const (
	// clientMaxResponseBytes bounds every response body the client reads.
	clientMaxResponseBytes = 16 << 20
	// clientMaxErrorSnippet bounds the part of a non-problem error body quoted in an Error.
	clientMaxErrorSnippet = 200
	// clientMaxPages stops a cursor chain that never ends (a server bug) instead of looping forever.
	clientMaxPages = 10000
)

// Client is a client of the admin API (/api/v1). It is safe for concurrent use.
//
// Idempotent requests (GET, PUT, DELETE) are sent again when the gateway or a proxy in front of
// it answers 502, 503 or 504, or the connection fails, after an exponential backoff with
// jitter or the answer's Retry-After, within the Retry policy's bounds. POST and PATCH are
// sent once. Errors the API answers are *Error values carrying its RFC 9457 problem document.
//
// A 503 of type ProblemNotEnforced means that the change was saved but is not enforced yet (it
// is applied automatically): it is returned at once, never sent again (IsNotEnforced).
type Client struct {
	base  string // scheme://host[/prefix], without a trailing slash
	token string
	http  *http.Client
	retry Retry
}

// Retry bounds the retries of idempotent requests.
type Retry struct {
	// Attempts is how many times a request is sent at most (1: never retried).
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each further one (with up to
	// 50% jitter), up to MaxWait.
	Backoff time.Duration
	// MaxWait is the longest wait before a retry. A Retry-After longer than it is not waited
	// for: the error is returned at once.
	MaxWait time.Duration
}

// DefaultRetry is the Retry of a Client made without WithRetry: four attempts, waiting about
// 0.2, 0.4 and 0.8 seconds (or what Retry-After says, up to 30 seconds).
var DefaultRetry = Retry{Attempts: 4, Backoff: 200 * time.Millisecond, MaxWait: 30 * time.Second}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends the requests through hc (its Timeout bounds each attempt) instead of a
// client with DefaultClientTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithRetry replaces DefaultRetry; Retry{Attempts: 1} turns retries off.
func WithRetry(r Retry) Option {
	return func(c *Client) { c.retry = r }
}

// PageRequest selects one page of a list: Limit items (0 for the server's default of 50, at
// most MaxPageLimit) after Cursor (the NextCursor of the previous page; "" for the first).
type PageRequest struct {
	Limit  int
	Cursor string
}

// NewClient makes a client of the gateway at baseURL (such as http://127.0.0.1:8080; a path
// prefix is kept) that authenticates with token, an admin API token ("" sends none).
func NewClient(baseURL, token string, opts ...Option) (*Client, error) {
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
	base := u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	c := &Client{base: base, token: token, http: &http.Client{Timeout: DefaultClientTimeout}, retry: DefaultRetry}
	for _, o := range opts {
		o(c)
	}
	if c.retry.Attempts < 1 {
		c.retry.Attempts = 1
	}
	return c, nil
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

// Hosts iterates over every host, following cursors.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) Hosts(ctx context.Context) iter.Seq2[Host, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Host], error) { return c.ListHosts(ctx, p) })
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

// StopHost is the host's emergency stop: every call on the host is refused (reason
// emergency_stop) until LiftHostStop, on every replica at once. reason is shown to agents.
func (c *Client) StopHost(ctx context.Context, host, reason string) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodPost, nil, EmergencyStopRequest{Reason: reason}, &out, "hosts", host, "emergency-stop")
	return out, err
}

// LiftHostStop lifts the host's emergency stop.
func (c *Client) LiftHostStop(ctx context.Context, host string) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodDelete, nil, nil, &out, "hosts", host, "emergency-stop")
	return out, err
}

// DeleteHost deletes a host and everything in it.
func (c *Client) DeleteHost(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host)
}

// ---- sign-in settings

// GetAuthSettings returns a host's sign-in settings.
func (c *Client) GetAuthSettings(ctx context.Context, host string) (AuthSettings, error) {
	var out AuthSettings
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "auth")
	return out, err
}

// SetAuthMethod replaces the settings of one sign-in method of a host.
func (c *Client) SetAuthMethod(ctx context.Context, host, method string, req AuthMethodSet) (AuthMethod, error) {
	var out AuthMethod
	err := c.do(ctx, http.MethodPut, nil, req, &out, "hosts", host, "auth", "methods", method)
	return out, err
}

// DeleteAuthMethod removes a method's settings: the method returns to its default (password
// on, every other method off).
func (c *Client) DeleteAuthMethod(ctx context.Context, host, method string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "auth", "methods", method)
}

// ---- servers

// ListServers lists one page of a host's servers.
func (c *Client) ListServers(ctx context.Context, host string, p PageRequest) (Page[Server], error) {
	var out Page[Server]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "servers")
	return out, err
}

// Servers iterates over every server of a host.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) Servers(ctx context.Context, host string) iter.Seq2[Server, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Server], error) { return c.ListServers(ctx, host, p) })
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

// Tools iterates over every tool of a server.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) Tools(ctx context.Context, host, server string) iter.Seq2[Tool, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Tool], error) { return c.ListTools(ctx, host, server, p) })
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

// Humans iterates over every human of a host.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) Humans(ctx context.Context, host string) iter.Seq2[Human, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Human], error) { return c.ListHumans(ctx, host, p) })
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

// Agents iterates over every agent of a host (of one human when human is not "").
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) Agents(ctx context.Context, host, human string) iter.Seq2[Agent, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Agent], error) {
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

// HostTokens iterates over every API token of a host.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) HostTokens(ctx context.Context, host string) iter.Seq2[Token, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Token], error) { return c.ListHostTokens(ctx, host, p) })
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

// GlobalTokens iterates over every global API token.
// It follows the cursors page by page; an error ends the sequence.
func (c *Client) GlobalTokens(ctx context.Context) iter.Seq2[Token, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[Token], error) { return c.ListGlobalTokens(ctx, p) })
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

// pages iterates over a list's items, following its cursors from the first page to the last.
// A failed page, a cursor returned twice or a list of more than clientMaxPages pages yields
// one error and ends the sequence.
func pages[T any](ctx context.Context, list func(context.Context, PageRequest) (Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		seen := map[string]bool{}
		p := PageRequest{Limit: MaxPageLimit}
		for range clientMaxPages {
			page, err := list(ctx, p)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range page.Items {
				if !yield(item, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if seen[page.NextCursor] {
				yield(zero, errors.New("admin API returned a cursor it had already returned; stopping"))
				return
			}
			seen[page.NextCursor] = true
			p.Cursor = page.NextCursor
		}
		yield(zero, fmt.Errorf("admin API list did not end after %d pages", clientMaxPages))
	}
}

// Collect gathers a sequence of the Client's iterators into a slice (never nil), or returns
// its first error.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	items := []T{}
	for item, err := range seq {
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	return items, nil
}

// do sends one request to /api/v1/<segments…> (each segment path-escaped) with in as its JSON
// body (none when nil) and decodes a 2xx answer's body into out (ignored when nil). Idempotent
// methods are retried (see Client).
func (c *Client) do(ctx context.Context, method string, q url.Values, in, out any, segments ...string) error {
	return c.call(ctx, idempotent(method), method, q, in, out, segments...)
}

// call is do, retried when retry is set (idempotent methods, and POSTs that only read).
func (c *Client) call(ctx context.Context, retry bool, method string, q url.Values, in, out any, segments ...string) error {
	var payload []byte
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		payload = data
	}
	target := c.endpoint(q, segments...)
	attempts := 1
	if retry {
		attempts = c.retry.Attempts
	}
	for attempt := 1; ; attempt++ {
		status, data, header, err := c.send(ctx, method, target, payload, in != nil)
		if err == nil && status >= 200 && status <= 299 {
			if out == nil || status == http.StatusNoContent {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%s %s: decode %d response: %w", method, pathOf(target), status, err)
			}
			return nil
		}
		if err == nil {
			err = c.errorFrom(status, header, data)
		}
		if attempt >= attempts || !retryable(ctx, status, err) {
			return err
		}
		wait, ok := c.retry.wait(attempt, header)
		if !ok {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// send makes one attempt: the status, the bounded body and the header of the answer, or the
// error of a request that got no answer.
func (c *Client) send(ctx context.Context, method, target string, payload []byte, hasBody bool) (int, []byte, http.Header, error) {
	var body io.Reader
	if hasBody {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err // a *url.Error naming the method and URL; the token is only in a header
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, clientMaxResponseBytes+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read response: %w", method, req.URL.Path, err)
	}
	if len(data) > clientMaxResponseBytes {
		return 0, nil, nil, &responseTooLarge{fmt.Sprintf("%s %s: response larger than %d MiB", method, req.URL.Path, clientMaxResponseBytes>>20)}
	}
	return resp.StatusCode, data, resp.Header, nil
}

// responseTooLarge is the error of an answer over clientMaxResponseBytes; it is not retried.
type responseTooLarge struct{ msg string }

func (e *responseTooLarge) Error() string { return e.msg }

// idempotent methods may be sent again without changing the outcome.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryable: a 502, 503 (but a change saved and not enforced yet) or 504 answer, or a request that got no answer for another reason than
// the caller's context (cancelled or past its deadline) or an oversized answer.
func retryable(ctx context.Context, status int, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch status {
	case http.StatusServiceUnavailable:
		return !IsNotEnforced(err) // saved: sending it again changes nothing, or finds it gone
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	case 0:
		var tooLarge *responseTooLarge
		return !errors.As(err, &tooLarge)
	}
	return false
}

// wait is how long to wait before retry number attempt (1 for the first): the answer's
// Retry-After (seconds or an HTTP date) when it has one, else the backoff doubled per attempt
// with up to 50% jitter. ok is false when Retry-After asks for longer than MaxWait.
func (r Retry) wait(attempt int, header http.Header) (time.Duration, bool) {
	if v := header.Get("Retry-After"); v != "" {
		var d time.Duration
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && secs >= 0 {
			d = time.Duration(min(secs, int64(r.MaxWait/time.Second)+1)) * time.Second
		} else if at, err := http.ParseTime(v); err == nil {
			d = max(time.Until(at), 0)
		}
		if d > r.MaxWait {
			return 0, false
		}
		return d, true
	}
	d := r.Backoff << min(attempt-1, 20)
	if d <= 0 || d > r.MaxWait {
		d = r.MaxWait
	}
	if half := int64(d / 2); half > 0 {
		d = d/2 + time.Duration(rand.Int64N(half+1))
	}
	return d, true
}

// pathOf is the path of a URL the client built, for error messages.
func pathOf(target string) string {
	if u, err := url.Parse(target); err == nil {
		return u.Path
	}
	return target
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

// errorFrom turns a non-2xx answer into an *Error.
func (c *Client) errorFrom(status int, header http.Header, body []byte) *Error {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p Problem
		if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "") {
			p.Title, p.Detail = c.redact(p.Title), c.redact(p.Detail)
			p.Status = status // the HTTP status is what happened, whatever the body claims
			if p.Type == "" {
				p.Type = "about:blank"
			}
			return &Error{Problem: p}
		}
	}
	return &Error{Problem: Problem{
		Type:   "about:blank",
		Title:  statusTitle(status),
		Status: status,
		Detail: bodySnippet(c.redact(string(body))),
	}}
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
	Flag     string // only entries with this anomaly flag (new_tool, denial_streak, …)
	// Since and Until: RFC 3339 times, or durations back from now ("24h").
	Since, Until string
	// Descending lists newest first.
	Descending bool
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"human": q.Human, "agent": q.Agent, "server": q.Server, "tool": q.Tool,
		"decision": q.Decision, "flag": q.Flag, "since": q.Since, "until": q.Until} {
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

// Audit iterates over every entry of a host's audit log matching q, page by page.
func (c *Client) Audit(ctx context.Context, host string, q AuditQuery) iter.Seq2[AuditEntry, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[AuditEntry], error) {
		return c.ListAudit(ctx, host, q, p)
	})
}

// AuditCursor is the cursor that lists the entries after (or, newest first, before) seq: the
// entries added since one was seen.
func AuditCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
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
		return c.errorFrom(resp.StatusCode, resp.Header, data)
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

// GetWebhook says whether the host's incoming webhook is set (its URL is never returned).
func (c *Client) GetWebhook(ctx context.Context, host string) (WebhookStatus, error) {
	var out WebhookStatus
	err := c.do(ctx, http.MethodGet, nil, nil, &out, "hosts", host, "webhook")
	return out, err
}

// SetWebhook sets the host's Slack-compatible incoming webhook URL (stored sealed, write-only).
func (c *Client) SetWebhook(ctx context.Context, host, url string) (WebhookStatus, error) {
	var out WebhookStatus
	err := c.do(ctx, http.MethodPut, nil, WebhookSet{URL: url}, &out, "hosts", host, "webhook")
	return out, err
}

// DeleteWebhook removes the host's incoming webhook.
func (c *Client) DeleteWebhook(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "webhook")
}

// TestWebhook posts a test message to the host's webhook now, once, and reports the outcome.
func (c *Client) TestWebhook(ctx context.Context, host string) (WebhookTestResult, error) {
	var out WebhookTestResult
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "webhook", "test")
	return out, err
}

// SetToolConditions replaces the conditions on a tool's arguments (checked by SpiceDB as a
// caveat on the tool's relationship).
func (c *Client) SetToolConditions(ctx context.Context, host, server, tool string, conds ToolConditions) (Tool, error) {
	var out Tool
	err := c.do(ctx, http.MethodPut, nil, conds, &out, "hosts", host, "servers", server, "tools", tool, "conditions")
	return out, err
}

// ClearToolConditions removes the conditions on a tool's arguments.
func (c *Client) ClearToolConditions(ctx context.Context, host, server, tool string) (Tool, error) {
	var out Tool
	err := c.do(ctx, http.MethodDelete, nil, nil, &out, "hosts", host, "servers", server, "tools", tool, "conditions")
	return out, err
}

// ListHeldCalls lists a page of the calls waiting for a person's approval on a host.
func (c *Client) ListHeldCalls(ctx context.Context, host string, p PageRequest) (Page[HeldCall], error) {
	var out Page[HeldCall]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "approvals")
	return out, err
}

// ApproveHeldCall approves a held call: it is forwarded now.
func (c *Client) ApproveHeldCall(ctx context.Context, host, id string) (HeldCall, error) {
	var out HeldCall
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "approvals", id, "approve")
	return out, err
}

// DenyHeldCall denies a held call: the agent gets the error (reason approval_denied).
func (c *Client) DenyHeldCall(ctx context.Context, host, id string) (HeldCall, error) {
	var out HeldCall
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "approvals", id, "deny")
	return out, err
}

// ListStandingApprovals lists a page of the approvals standing on a host.
func (c *Client) ListStandingApprovals(ctx context.Context, host string, p PageRequest) (Page[StandingApproval], error) {
	var out Page[StandingApproval]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "standing-approvals")
	return out, err
}

// RevokeStandingApproval revokes the approval standing for an agent's calls of a tool.
func (c *Client) RevokeStandingApproval(ctx context.Context, host, agent, server, tool string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "standing-approvals", agent, server, tool)
}

// ListSetAsideChanges lists a page of the host's relationship changes the authorization backend
// refused for good, oldest first; while there is one, every call on the host is refused.
func (c *Client) ListSetAsideChanges(ctx context.Context, host string, p PageRequest) (Page[SetAsideChange], error) {
	var out Page[SetAsideChange]
	err := c.do(ctx, http.MethodGet, p.query(nil), nil, &out, "hosts", host, "set-aside-changes")
	return out, err
}

// SetAsideChanges iterates over the host's set-aside relationship changes, every page.
func (c *Client) SetAsideChanges(ctx context.Context, host string) iter.Seq2[SetAsideChange, error] {
	return pages(ctx, func(ctx context.Context, p PageRequest) (Page[SetAsideChange], error) {
		return c.ListSetAsideChanges(ctx, host, p)
	})
}

// RetrySetAsideChange takes a set-aside change out of the list and queues what the store
// implies for its relationship now; the result says whether the backend refused that too.
func (c *Client) RetrySetAsideChange(ctx context.Context, host string, id int64) (SetAsideRetry, error) {
	var out SetAsideRetry
	err := c.do(ctx, http.MethodPost, nil, nil, &out, "hosts", host, "set-aside-changes", strconv.FormatInt(id, 10), "retry")
	return out, err
}

// DiscardSetAsideChange removes a set-aside change without applying anything: the
// authorization backend then lacks it, and the host's calls are decided again.
func (c *Client) DiscardSetAsideChange(ctx context.Context, host string, id int64) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "hosts", host, "set-aside-changes", strconv.FormatInt(id, 10))
}
