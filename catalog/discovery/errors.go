package discovery

import (
	"errors"
	"fmt"
	"net/http"
)

// Kinds of discovery failure. Every error Discover returns (except the caller's own context
// ending) matches exactly one of them with errors.Is.
var (
	// ErrInvalidURL: the URL is not an absolute http(s) URL, or it carries user info.
	ErrInvalidURL = errors.New("invalid MCP server URL")
	// ErrUnreachable: connection refused, DNS or TLS failure, timeout, or a gateway error
	// (HTTP 429, 502, 503, 504) in front of the server.
	ErrUnreachable = errors.New("MCP server unreachable")
	// ErrUnauthorized: the upstream answered HTTP 401 or 403.
	ErrUnauthorized = errors.New("MCP server requires other credentials")
	// ErrNotMCP: the URL answers, but not as an MCP server speaking Streamable HTTP.
	ErrNotMCP = errors.New("not an MCP server")
	// ErrInvalidTool: the server lists a tool trustgate cannot accept (empty, overlong or
	// duplicate name, input schema that is not a JSON object).
	ErrInvalidTool = errors.New("invalid tool")
	// ErrTooManyTools: the server lists more tools than Options.MaxTools.
	ErrTooManyTools = errors.New("too many tools")
)

// discoveryError carries a kind (one of the sentinels), a message fit for an admin, and the
// underlying cause. The cause is reachable through errors.Is/As but kept out of the text: it
// may quote the full URL, query string included.
type discoveryError struct {
	kind  error
	msg   string
	cause error
}

func (e *discoveryError) Error() string { return e.msg }

func (e *discoveryError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func invalidURL(reason string) error {
	return &discoveryError{kind: ErrInvalidURL, msg: "invalid MCP server URL: " + reason}
}

func (d *discovery) unreachable(reason string, cause error) error {
	return &discoveryError{
		kind:  ErrUnreachable,
		msg:   fmt.Sprintf("MCP server at host %q could not be reached: %s", d.endpoint.Host, reason),
		cause: cause,
	}
}

func (d *discovery) notMCP(reason string, cause error) error {
	return &discoveryError{
		kind:  ErrNotMCP,
		msg:   fmt.Sprintf("%s is not an MCP server (Streamable HTTP): %s", redactedURL(d.endpoint), reason),
		cause: cause,
	}
}

func (d *discovery) unauthorized(status int, cause error) error {
	what := "it needs credentials; configure them as a request header (e.g. Authorization)"
	if len(d.opts.Header) > 0 {
		what = "the configured credentials were refused"
	}
	return &discoveryError{
		kind:  ErrUnauthorized,
		msg:   fmt.Sprintf("MCP server at host %q answered HTTP %d %s: %s", d.endpoint.Host, status, http.StatusText(status), what),
		cause: cause,
	}
}

// toolError places a collector error (see tools.go) in context.
func (d *discovery) toolError(err error) error {
	kind := ErrInvalidTool
	if errors.Is(err, ErrTooManyTools) {
		kind = ErrTooManyTools
	}
	return &discoveryError{
		kind:  kind,
		msg:   fmt.Sprintf("MCP server at host %q: %s", d.endpoint.Host, err.Error()),
		cause: err,
	}
}
