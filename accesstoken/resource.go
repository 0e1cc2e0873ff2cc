package accesstoken

import (
	"net/url"
	"strings"
)

// The Dynamic MCP link: a host's MCP URL with the upstream server's URL in its query,
// …/mcp?upstream_mcp=<url>. On a host that allows Dynamic MCPs that whole URL is the resource:
// the 401 challenge points at its metadata, the metadata announces it, the authorization server
// grants it, and the proxy checks tokens for it. Its one spelling is UpstreamMCPResource's, so
// the resource a token is checked against is the one built from the query the proxy read.

// UpstreamMCPParam is the query parameter of the Dynamic MCP link.
const UpstreamMCPParam = "upstream_mcp"

// MaxUpstreamMCPLen bounds the upstream URL of a Dynamic MCP link.
const MaxUpstreamMCPLen = 2048

// UpstreamMCPResource is the resource of the Dynamic MCP link to upstream on the MCP URL mcpURL
// (which has no query): mcpURL?upstream_mcp=<upstream, query-escaped>.
func UpstreamMCPResource(mcpURL, upstream string) string {
	return mcpURL + "?" + UpstreamMCPParam + "=" + url.QueryEscape(upstream)
}

// UpstreamMCPOf reads the query of a Dynamic MCP link: ok when rawQuery is exactly one
// upstream_mcp parameter, given once, whose value is an absolute http(s) URL with a host and
// without userinfo or fragment, in printable ASCII, of at most MaxUpstreamMCPLen bytes. Any other query (another
// parameter beside it, the parameter twice, a malformed escape) is not a Dynamic MCP link.
func UpstreamMCPOf(rawQuery string) (upstream string, ok bool) {
	if rawQuery == "" {
		return "", false
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || len(q) != 1 || len(q[UpstreamMCPParam]) != 1 {
		return "", false
	}
	upstream = q[UpstreamMCPParam][0]
	if upstream == "" || len(upstream) > MaxUpstreamMCPLen || strings.ContainsFunc(upstream, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '#' }) {
		return "", false
	}
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return upstream, true
}

// IsUpstreamMCPResource reports whether resource is exactly the Dynamic MCP link resource on
// mcpURL of some upstream, in UpstreamMCPResource's spelling, and returns that upstream.
func IsUpstreamMCPResource(mcpURL, resource string) (upstream string, ok bool) {
	if len(resource) <= len(mcpURL)+1 || resource[:len(mcpURL)] != mcpURL || resource[len(mcpURL)] != '?' {
		return "", false
	}
	upstream, ok = UpstreamMCPOf(resource[len(mcpURL)+1:])
	if !ok || UpstreamMCPResource(mcpURL, upstream) != resource {
		return "", false
	}
	return upstream, true
}
