package proxy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The transport rules of the MCP protocol revisions, checked before anything is forwarded.
//
//   - MCP-Protocol-Version: a value that is not a known revision is answered 400 with an
//     UnsupportedProtocolVersion error listing the known ones (2025-06-18 and later: "invalid or
//     unsupported → 400 Bad Request"). A missing header is the spec's default: 2025-03-26 for a
//     Streamable HTTP request without one, which has none of the checks below.
//   - 2026-07-28 mirrors body fields into headers for intermediaries to route and authorize on:
//     Mcp-Method = method on every request, Mcp-Name = params.name (tools/call, prompts/get) or
//     params.uri (resources/read), Base64 sentinel "=?base64?…?=" decoded first, and the header
//     version = params._meta["io.modelcontextprotocol/protocolVersion"]. A missing or
//     mismatching header is refused with 400 and HeaderMismatch (-32020) and never forwarded:
//     trustgate authorizes on the body, a component behind it may trust the header. On older
//     revisions the headers are optional, but a present one must still match.
//   - 2026-07-28 has no GET stream and no sessions: GET and DELETE are answered 405 (Allow:
//     POST), Mcp-Session-Id and Last-Event-ID are ignored (not forwarded), and an upstream's
//     session id is not passed back.

// Protocol revisions.
const (
	rev20241105 = "2024-11-05"
	rev20250326 = "2025-03-26"
	rev20250618 = "2025-06-18"
	rev20251125 = "2025-11-25"
	rev20260728 = "2026-07-28"
)

// knownRevisions are the protocol revisions the proxy forwards, newest first.
var knownRevisions = []string{rev20260728, rev20251125, rev20250618, rev20250326, rev20241105}

// defaultRevision is the revision of a request without MCP-Protocol-Version (2025-06-18:
// "the server SHOULD assume protocol version 2025-03-26").
const defaultRevision = rev20250326

// JSON-RPC error codes of the 2026-07-28 revision that the proxy answers with.
const (
	// ErrCodeHeaderMismatch: the Mcp-Method, Mcp-Name or MCP-Protocol-Version header is missing
	// or does not match the body (2026-07-28 "HeaderMismatch").
	ErrCodeHeaderMismatch = -32020
	// ErrCodeUnsupportedVersion: the MCP-Protocol-Version is not a revision the proxy knows
	// (2026-07-28 "UnsupportedProtocolVersionError"); data lists the supported revisions.
	ErrCodeUnsupportedVersion = -32022
)

const (
	metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"
	base64Prefix        = "=?base64?"
	base64Suffix        = "?="
)

// protocol is what the proxy knows of a request's revision.
type protocol struct {
	version string
	// stateless: 2026-07-28 or later (no GET stream, no sessions).
	stateless bool
}

// checkProtocol applies the revision's transport rules to a request (httpMethod POST, GET or
// DELETE; m is nil for GET and DELETE). A refusal is answered without an audit entry.
func checkProtocol(httpMethod string, h http.Header, m *message) (protocol, *refusal) {
	var id json.RawMessage
	if m != nil && m.kind == kindRequest {
		id = m.id
	}
	header, present := h.Get("Mcp-Protocol-Version"), len(h.Values("Mcp-Protocol-Version")) > 0
	proto := protocol{version: defaultRevision}
	if present {
		if !slices.Contains(knownRevisions, header) {
			return protocol{}, &refusal{form: formRPC, status: http.StatusBadRequest, id: id, code: ErrCodeUnsupportedVersion,
				message: fmt.Sprintf("unsupported protocol version %q: trustgate supports %s", header, strings.Join(knownRevisions, ", ")),
				data:    map[string]any{"supported": knownRevisions, "requested": header}}
		}
		proto.version = header
	}
	proto.stateless = proto.version >= rev20260728
	if httpMethod != http.MethodPost {
		if proto.stateless {
			return protocol{}, &refusal{form: formText, status: http.StatusMethodNotAllowed, allow: http.MethodPost,
				message: "method not allowed: protocol version " + proto.version + " has no GET stream and no sessions"}
		}
		return proto, nil
	}
	if m == nil || m.kind != kindRequest {
		return proto, nil // 2026-07-28 defines header rules for requests only
	}
	if msg := headerMismatch(h, m, proto, present); msg != "" {
		return protocol{}, &refusal{form: formRPC, status: http.StatusBadRequest, id: id, code: ErrCodeHeaderMismatch,
			message: "header mismatch: " + msg}
	}
	return proto, nil
}

// headerMismatch is why the request's mirrored headers do not match its body ("" when they do).
func headerMismatch(h http.Header, m *message, proto protocol, versionPresent bool) string {
	if m.metaHasVer {
		var metaVersion string
		if m.metaVersion != nil {
			metaVersion = *m.metaVersion
		}
		switch {
		case !versionPresent:
			return fmt.Sprintf("the MCP-Protocol-Version header is required for requests carrying _meta %q", metaProtocolVersion)
		case metaVersion != proto.version:
			return fmt.Sprintf("MCP-Protocol-Version header %q does not match _meta %q %q", proto.version, metaProtocolVersion, metaVersion)
		}
	}

	methods := h.Values("Mcp-Method")
	switch {
	case len(methods) > 1:
		return "more than one Mcp-Method header"
	case len(methods) == 0 && proto.stateless:
		return "the Mcp-Method header is required"
	case len(methods) == 1 && methods[0] != m.method:
		return fmt.Sprintf("Mcp-Method header value %q does not match body value %q", methods[0], m.method)
	}

	var bodyName string
	switch m.method {
	case "tools/call", "prompts/get":
		bodyName = m.name
	case "resources/read":
		bodyName = m.uri
	default:
		return "" // Mcp-Name is defined only for the methods above
	}
	names := h.Values("Mcp-Name")
	switch {
	case len(names) > 1:
		return "more than one Mcp-Name header"
	case len(names) == 0 && proto.stateless && bodyName != "":
		return "the Mcp-Name header is required for " + m.method
	case len(names) == 0:
		return ""
	}
	name, err := decodeHeaderValue(names[0])
	if err != nil {
		return "Mcp-Name header: " + err.Error()
	}
	if name != bodyName {
		return fmt.Sprintf("Mcp-Name header value %q does not match body value %q", name, bodyName)
	}
	return ""
}

// decodeHeaderValue undoes the 2026-07-28 Base64 sentinel ("=?base64?<std base64>?=").
func decodeHeaderValue(v string) (string, error) {
	inner, ok := strings.CutPrefix(v, base64Prefix)
	if !ok {
		return v, nil
	}
	inner, ok = strings.CutSuffix(inner, base64Suffix)
	if !ok {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", fmt.Errorf("invalid Base64 value")
	}
	return string(b), nil
}

// forwardParamHeaders copies the 2026-07-28 Mcp-Param-* headers (an intermediary forwards the
// ones it does not check) into out, and drops what a stateless revision ignores.
func forwardParamHeaders(in, out http.Header, stateless bool) {
	for name, v := range in {
		if strings.HasPrefix(http.CanonicalHeaderKey(name), "Mcp-Param-") {
			out[http.CanonicalHeaderKey(name)] = append([]string(nil), v...)
		}
	}
	if stateless {
		out.Del("Mcp-Session-Id")
		out.Del("Last-Event-Id")
	}
}
