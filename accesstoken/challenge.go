package accesstoken

import (
	"fmt"
	"net/url"
	"strings"
)

// What a protected resource (an MCP endpoint of the gateway) tells a client that presents no
// valid access token: the RFC 9728 metadata URL of the resource, and the WWW-Authenticate
// challenge that points at it. The proxy answers with them; the authorization server serves
// the metadata at that URL.

// ProtectedResourceMetadataWellKnown is the RFC 9728 well-known URI suffix (RFC 8615).
const ProtectedResourceMetadataWellKnown = "/.well-known/oauth-protected-resource"

// WellKnownPath inserts a well-known suffix before a path, as RFC 8414 §3.1 and RFC 9728 §3.1
// do for issuers and resources that have one: ("/.well-known/x", "/h/acme") →
// "/.well-known/x/h/acme"; an empty path or "/" gives the suffix alone. A trailing slash of
// path is dropped.
func WellKnownPath(wellKnown, path string) string {
	path = strings.TrimSuffix(path, "/")
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return wellKnown + path
}

// ProtectedResourceMetadataPath is where the metadata of the MCP resource at mcpPath is
// served: "/mcp" → "/.well-known/oauth-protected-resource/mcp", "/mcp/linear" →
// "/.well-known/oauth-protected-resource/mcp/linear", "/h/acme/mcp" →
// "/.well-known/oauth-protected-resource/h/acme/mcp".
func ProtectedResourceMetadataPath(mcpPath string) string {
	return WellKnownPath(ProtectedResourceMetadataWellKnown, mcpPath)
}

// ProtectedResourceMetadataURL is the metadata URL of the resource at resourceURL (absolute,
// http or https, without fragment or userinfo): the path-inserted well-known URL on the
// resource's origin, with the resource's query kept as it is (RFC 9728 §3.1: the well-known
// string goes between the host and the path and/or query). It is what WWWAuthenticate points
// clients at.
func ProtectedResourceMetadataURL(resourceURL string) (string, error) {
	u, err := url.Parse(resourceURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("resource %q is not an absolute http(s) URL", resourceURL)
	}
	if u.Fragment != "" || strings.Contains(resourceURL, "#") || u.User != nil {
		return "", fmt.Errorf("resource %q must have no fragment or userinfo", resourceURL)
	}
	m := url.URL{Scheme: u.Scheme, Host: u.Host, Path: ProtectedResourceMetadataPath(u.Path), RawQuery: u.RawQuery}
	if u.RawPath != "" {
		m.RawPath = ProtectedResourceMetadataPath(u.RawPath)
	}
	return m.String(), nil
}

// WWWAuthenticate builds the WWW-Authenticate value of a 401 (or 403) from an MCP resource:
// `Bearer resource_metadata="<url>"` (RFC 9728 §5.1), followed, when errCode is set, by
// `, error="<errCode>"` and, when description is also set, `, error_description="<…>"`
// (RFC 6750 §3; errCode is typically "invalid_token", or "insufficient_scope" for a 403).
//
// Values are made safe for a quoted-string whatever the input: in the URL, characters outside
// printable ASCII, '"' and '\' are percent-encoded; in error and error_description (whose
// RFC 6750 alphabet is printable ASCII except '"' and '\'), '"' becomes '\”, '\' becomes '/',
// control characters (CR, LF, …) become spaces and other characters '?'. No input can end the
// quoted string, add a parameter or split the header.
func WWWAuthenticate(resourceMetadataURL string, errCode, description string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	if resourceMetadataURL != "" {
		b.WriteString(sep + `resource_metadata="` + quoteURLForHeader(resourceMetadataURL) + `"`)
		sep = ", "
	}
	if errCode = sanitizeRFC6750(errCode); errCode != "" {
		b.WriteString(sep + `error="` + errCode + `"`)
		if description = sanitizeRFC6750(description); description != "" {
			b.WriteString(`, error_description="` + description + `"`)
		}
	}
	return b.String()
}

// quoteURLForHeader percent-encodes the bytes of s that may not appear inside a quoted URL.
func quoteURLForHeader(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// sanitizeRFC6750 maps s into RFC 6750's error and error_description alphabet (%x20-21 /
// %x23-5B / %x5D-7E) and trims it.
func sanitizeRFC6750(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r == 0x7f:
			return ' '
		case r > 0x7f:
			return '?'
		}
		return r
	}, s))
}
