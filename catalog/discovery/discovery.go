// Package discovery connects to an upstream MCP server over Streamable HTTP and lists its tools,
// classified by trust level, for import and sync.
//
// Discovery speaks the real protocol through the official Go SDK
// (github.com/modelcontextprotocol/go-sdk): initialize (declaring the roots, sampling and
// elicitation client capabilities, as agents' clients do), notifications/initialized, then
// tools/list page by page until the server stops returning a cursor. Failures are reported as
// errors matching one of the sentinels below with errors.Is; their text is short, names the
// upstream host, and never contains configured header values.
package discovery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/schema"
)

// Defaults and limits.
const (
	// DefaultTimeout bounds a whole discovery when Options.Timeout is zero.
	DefaultTimeout = 15 * time.Second
	// DefaultMaxTools is the number of tools accepted when Options.MaxTools is zero.
	DefaultMaxTools = 2000
	// MaxToolNameLen is the longest tool name (in characters) accepted from an upstream.
	MaxToolNameLen = 128
	// MaxResponseBytes bounds the body of each HTTP response read from the upstream.
	MaxResponseBytes = 8 << 20
)

// Options configure a discovery. The zero value is usable.
type Options struct {
	// Header is sent with every request (static upstream credentials, e.g. Authorization: Bearer …).
	// It is sent only to the upstream's own host, never to a host a redirect points at.
	Header http.Header
	// HTTPClient, when set, is used instead of a default client with Timeout. It is not modified:
	// discovery wraps its transport in a copy. It decides which addresses may be reached.
	HTTPClient *http.Client
	// Policy is what addresses the default client (no HTTPClient) may connect to, checked at
	// dial time; the zero value is public addresses only, without environment proxies.
	Policy ssrf.Policy
	// Timeout bounds the whole discovery (default 15s).
	Timeout time.Duration
	// MaxTools bounds how many tools are accepted (default 2000); more is an error.
	MaxTools int
	// CompareClients lists the tools a second time as a client declaring no capability (roots,
	// sampling, elicitation) would, to find tools the server lists only to some clients
	// (Result.ClientDependentTools). It costs a second session.
	CompareClients bool
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxTools <= 0 {
		o.MaxTools = DefaultMaxTools
	}
	return o
}

// Tool is one tool as the upstream declared it, with trustgate's classification.
type Tool struct {
	Name        string
	Title       string // the tool's own title; Annotations.Title is kept separately
	Description string
	// InputSchema is the tool's inputSchema as a compact JSON object with sorted keys; never nil.
	// A tool that declares no schema gets {"type":"object"}.
	InputSchema json.RawMessage
	// OutputSchema is the tool's outputSchema as compact JSON with sorted keys; nil when the
	// tool declares none.
	OutputSchema json.RawMessage
	Annotations  Annotations
	Level        schema.Level // schema.Classify(Name, hints from Annotations)
	// Hash is the v2 hash of the whole definition as clients read it (name, title, description,
	// input and output schema, annotations); LegacyHash the v1 DefinitionHash(Name,
	// Description, InputSchema) that approvals recorded before v2 carry. See Matches.
	Hash       string
	LegacyHash string
}

// Annotations are the tool's MCP annotations. Nil hints were not given by the server; see
// Discover for how the SDK reports readOnlyHint and idempotentHint.
type Annotations struct {
	Title           string `json:"title,omitempty"`
	ReadOnlyHint    *bool  `json:"readOnlyHint,omitempty"`
	DestructiveHint *bool  `json:"destructiveHint,omitempty"`
	IdempotentHint  *bool  `json:"idempotentHint,omitempty"`
	OpenWorldHint   *bool  `json:"openWorldHint,omitempty"`
}

// Result is what an upstream told about itself and its tools.
type Result struct {
	ServerName, ServerVersion, ProtocolVersion, Instructions string
	Tools                                                    []Tool // sorted by name
	// ClientCompared: with Options.CompareClients, the second listing succeeded, and
	// ClientDependentTools names the tools (sorted) the server lists to a client declaring
	// roots, sampling and elicitation but not to one declaring none.
	ClientCompared       bool
	ClientDependentTools []string
}

// Discover connects to the MCP server at rawURL, initializes a session and lists all its tools.
//
// Errors match (errors.Is) ErrInvalidURL, ErrUnreachable, ErrUnauthorized, ErrNotMCP,
// ErrInvalidTool or ErrTooManyTools; if ctx itself ends first, the error wraps ctx.Err().
//
// Annotation hints: the SDK decodes readOnlyHint and idempotentHint as plain booleans, so a
// tool that sends an annotations object gets both as explicit values (absent counts as false,
// the spec's default), and a tool without annotations gets all hints nil.
func Discover(ctx context.Context, rawURL string, opts Options) (*Result, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	d := &discovery{
		endpoint: u,
		opts:     opts,
		obs:      &observer{},
	}
	return d.run(ctx)
}

// parseURL accepts only absolute http(s) URLs with a host and without user info. The input is
// not echoed in errors: it may carry a password.
func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, invalidURL("must be an absolute http:// or https:// URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, invalidURL("scheme must be http or https")
	}
	if u.User != nil {
		return nil, invalidURL("user info (user:password@) is not allowed; configure credentials as a header")
	}
	if u.Hostname() == "" {
		return nil, invalidURL("URL has no host")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}
