package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// requestedProtocolVersion is the version offered in initialize. Pinning it makes the SDK use
// the initialize handshake (newer versions probe with server/discover first); the server may
// answer with an older version it supports.
const requestedProtocolVersion = "2025-11-25"

// discovery is the state of one Discover call.
type discovery struct {
	endpoint *url.URL
	opts     Options
	obs      *observer
}

func (d *discovery) run(parent context.Context) (*Result, error) {
	ctx, cancel := context.WithTimeout(parent, d.opts.Timeout)
	defer cancel()
	res, err := d.session(parent, ctx, declaredCapabilities())
	if err != nil || !d.opts.CompareClients {
		return res, err
	}
	// The same listing as a client that declares no capability sees it: tools only the first
	// listing has are offered to some clients and not to others. Best effort: a failure here
	// leaves the comparison unknown and the import as it is.
	bare := &discovery{endpoint: d.endpoint, opts: d.opts, obs: &observer{}}
	plain, err := bare.session(parent, ctx, &mcp.ClientCapabilities{})
	if err != nil {
		return res, nil
	}
	res.ClientCompared = true
	listed := map[string]bool{}
	for _, t := range plain.Tools {
		listed[t.Name] = true
	}
	for _, t := range res.Tools {
		if !listed[t.Name] {
			res.ClientDependentTools = append(res.ClientDependentTools, t.Name)
		}
	}
	return res, nil
}

// declaredCapabilities are the client capabilities discovery declares: those an agent's client
// may declare too (roots, sampling, elicitation), since some servers list tools only to clients
// that declare them. The gateway passes the server's requests for them (roots/list,
// sampling/createMessage, elicitation/create) through to the agent; discovery itself answers
// them with an error, having no human or model behind it.
func declaredCapabilities() *mcp.ClientCapabilities {
	// Roots and sampling are deprecated from protocol revision 2026-07-28 but still declared
	// by agents' clients, and servers still list tools to them only.
	return &mcp.ClientCapabilities{
		//lint:ignore SA1019 servers still gate tools on the roots capability
		RootsV2: &mcp.RootCapabilities{ListChanged: true},
		//lint:ignore SA1019 servers still gate tools on the sampling capability
		Sampling:    &mcp.SamplingCapabilities{},
		Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}},
	}
}

// session initializes one session declaring caps and lists its tools.
func (d *discovery) session(parent, ctx context.Context, caps *mcp.ClientCapabilities) (*Result, error) {
	deadline, _ := ctx.Deadline()
	client := mcp.NewClient(&mcp.Implementation{Name: "trustgate", Title: "trustgate discovery", Version: "1"}, &mcp.ClientOptions{Capabilities: caps})
	transport := &mcp.StreamableClientTransport{
		Endpoint:   d.endpoint.String(),
		HTTPClient: newHTTPClient(d.endpoint, d.opts, d.obs, deadline),
		// Fail fast instead of reconnecting an interrupted stream; the admin can retry.
		MaxRetries: -1,
		// Discovery only needs answers to its own requests, not server-initiated messages.
		DisableStandaloneSSE: true,
	}
	cs, err := client.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: requestedProtocolVersion})
	if err != nil {
		return nil, d.failure(parent, ctx, "initialize", err)
	}
	res, err := d.list(ctx, cs)
	if err != nil {
		err = d.failure(parent, ctx, "tools/list", err)
	}
	// Closing ends the session (a DELETE, held to the deadline by the transport); its outcome
	// does not matter.
	_ = cs.Close()
	if err != nil {
		return nil, err
	}
	return res, nil
}

// list reads the session's initialize result and every page of tools/list.
func (d *discovery) list(ctx context.Context, cs *mcp.ClientSession) (*Result, error) {
	res := &Result{}
	ir := cs.InitializeResult()
	if ir != nil {
		res.ProtocolVersion = ir.ProtocolVersion
		res.Instructions = ir.Instructions
		if ir.ServerInfo != nil {
			res.ServerName = ir.ServerInfo.Name
			res.ServerVersion = ir.ServerInfo.Version
		}
	}
	hasTools := ir != nil && ir.Capabilities != nil && ir.Capabilities.Tools != nil

	c := newCollector(d.opts.MaxTools)
	params := &mcp.ListToolsParams{}
	seenCursors := map[string]bool{}
	// Pages may be empty, so the tool limit alone does not end a listing that never ends.
	maxPages := d.opts.MaxTools + 1
	for pages := 1; ; pages++ {
		page, err := cs.ListTools(ctx, params)
		if err != nil {
			var rpcErr *jsonrpc.Error
			if !hasTools && errors.As(err, &rpcErr) && rpcErr.Code == jsonrpc.CodeMethodNotFound {
				// A server without the tools capability that does not list tools has none.
				break
			}
			return nil, err
		}
		for _, t := range page.Tools {
			if err := c.add(t); err != nil {
				return nil, d.toolError(err)
			}
		}
		if page.NextCursor == "" {
			break
		}
		if seenCursors[page.NextCursor] {
			return nil, d.notMCP("tools/list returned the same page cursor twice", nil)
		}
		if pages >= maxPages {
			return nil, d.notMCP(fmt.Sprintf("tools/list did not end after %d pages", pages), nil)
		}
		seenCursors[page.NextCursor] = true
		params = &mcp.ListToolsParams{Cursor: page.NextCursor}
	}
	res.Tools = c.sorted()
	return res, nil
}

// failure turns an error from the SDK into one of the package's errors. What the transport saw
// on the wire (status codes, content types, network errors) is more reliable than the SDK's
// error text, so it is consulted first.
func (d *discovery) failure(parent, ctx context.Context, phase string, err error) error {
	var de *discoveryError
	if errors.As(err, &de) {
		return err // already classified (invalid tools, pagination loops)
	}
	if parent.Err() != nil {
		return fmt.Errorf("discovery of MCP server at %q: %w", d.endpoint.Host, parent.Err())
	}
	if o := d.obs.first(); o != nil {
		return d.fromObservation(o)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return d.unreachable(fmt.Sprintf("no answer within %s", d.opts.Timeout), err)
	}
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return d.notMCP(fmt.Sprintf("%s failed with JSON-RPC error %d: %s", phase, rpcErr.Code, d.sanitize(rpcErr.Message)), err)
	}
	return d.notMCP(fmt.Sprintf("invalid answer to %s: %s", phase, d.sanitize(trimSDKContext(err.Error()))), err)
}

// trimSDKContext drops the SDK's `calling "initialize": sending "initialize": ` prefixes, which
// only repeat the phase.
func trimSDKContext(s string) string {
	for _, prefix := range []string{"calling ", "sending "} {
		if rest, ok := strings.CutPrefix(s, prefix); ok && strings.HasPrefix(rest, `"`) {
			if i := strings.Index(rest, `": `); i > 0 {
				s = rest[i+3:]
			}
		}
	}
	return s
}

func (d *discovery) fromObservation(o *observation) error {
	switch o.kind {
	case ErrUnauthorized:
		return d.unauthorized(o.status, o.cause)
	case ErrUnreachable:
		return d.unreachable(o.reason, o.cause)
	default:
		return d.notMCP(o.reason, o.cause)
	}
}

// sanitize shortens text that came from the SDK or the upstream for an error message: the
// endpoint URL becomes its redacted form, and configured header values and the URL's query
// (which may carry a token) are removed.
func (d *discovery) sanitize(s string) string {
	s = strings.ReplaceAll(s, d.endpoint.String(), redactedURL(d.endpoint))
	for _, secret := range d.secrets() {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	const max = 300
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// secrets lists the strings that must not appear in error text, longest first so that a value
// is redacted as a whole before its parts.
func (d *discovery) secrets() []string {
	var out []string
	for _, vs := range d.opts.Header {
		for _, v := range vs {
			out = append(out, secretParts(v)...)
		}
	}
	if q := d.endpoint.RawQuery; q != "" {
		out = append(out, q)
		for _, vs := range d.endpoint.Query() {
			for _, v := range vs {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	// Very short pieces are no secrets; replacing them would garble the message.
	out = slices.DeleteFunc(out, func(p string) bool { return len(p) < 4 })
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(out)
}

// secretParts returns the pieces of a header value to redact: the value and, for a value like
// "Bearer tok", the token after the scheme.
func secretParts(v string) []string {
	parts := []string{v}
	if fields := strings.Fields(v); len(fields) > 1 {
		parts = append(parts, fields[1:]...)
	}
	return parts
}

// redactedURL is u without user info, query and fragment, for messages.
func redactedURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
