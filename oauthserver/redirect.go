package oauthserver

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxRedirectURILen is the longest redirect URI accepted, in bytes.
const MaxRedirectURILen = 2048

// dangerousRedirectSchemes are never accepted as redirect URI schemes: they run script, read
// local files or reach content that is not an application's callback.
var dangerousRedirectSchemes = map[string]bool{
	"javascript":  true,
	"vbscript":    true,
	"data":        true,
	"file":        true,
	"about":       true,
	"blob":        true,
	"ftp":         true,
	"filesystem":  true,
	"view-source": true,
}

// ValidateRedirectURI checks a redirect URI a client registers, following OAuth 2.1 and
// RFC 8252 (native apps):
//
//   - https URLs with a host;
//   - http URLs only on loopback: a 127.0.0.0/8 literal, [::1], or the name "localhost" (RFC
//     8252 §7.3; any port, since native apps bind ephemeral ones);
//   - private-use schemes of native apps (RFC 8252 §7.1), such as com.example.app:/callback or
//     cursor://…, except schemes that run script or read local content (javascript:, data:,
//     file:, vbscript:, about:, blob:, ftp:, filesystem:, view-source:).
//
// It refuses relative URIs, fragments, userinfo, wildcards ('*'), whitespace, control and
// non-ASCII characters (percent-encode them), and URIs longer than MaxRedirectURILen.
func ValidateRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("redirect URI is empty")
	}
	if len(raw) > MaxRedirectURILen {
		return fmt.Errorf("redirect URI is longer than %d characters", MaxRedirectURILen)
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c <= ' ' || c == 0x7f:
			return errors.New("redirect URI contains whitespace or a control character")
		case c >= 0x80:
			return errors.New("redirect URI contains a non-ASCII character (percent-encode it)")
		case c == '*':
			return errors.New("redirect URI contains a wildcard ('*'); register each URI exactly")
		case c == '#':
			return errors.New("redirect URI must not contain a fragment ('#')")
		case c == '\\':
			return errors.New("redirect URI contains a backslash")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect URI is not a valid URI: %v", parseErrReason(err))
	}
	if u.Scheme == "" {
		return errors.New("redirect URI must be absolute (with a scheme such as https:)")
	}
	if u.User != nil {
		return errors.New("redirect URI must not contain userinfo (user:password@)")
	}
	switch scheme := u.Scheme; {
	case scheme == "https":
		if u.Opaque != "" || u.Hostname() == "" {
			return errors.New("https redirect URI must have a host (https://host/path)")
		}
		if err := checkPort(u); err != nil {
			return err
		}
	case scheme == "http":
		if u.Opaque != "" || u.Hostname() == "" {
			return errors.New("http redirect URI must have a host (http://127.0.0.1:port/path)")
		}
		if err := checkPort(u); err != nil {
			return err
		}
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("http redirect URIs are allowed only on loopback (127.0.0.1, [::1] or localhost), not %q; use https", u.Hostname())
		}
	case dangerousRedirectSchemes[scheme]:
		return fmt.Errorf("redirect URI scheme %q is not allowed", scheme)
	default:
		// A private-use scheme (native app). It must say something after the colon.
		if u.Opaque == "" && u.Host == "" && u.Path == "" {
			return fmt.Errorf("redirect URI with scheme %q has nothing after the colon", scheme)
		}
	}
	return nil
}

// checkPort refuses an empty port ("host:") and one outside 1..65535.
func checkPort(u *url.URL) error {
	if strings.HasSuffix(u.Host, ":") {
		return errors.New("redirect URI has an empty port")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("redirect URI port %q is not in 1..65535", p)
		}
	}
	return nil
}

// isLoopbackHost reports whether host (as url.URL.Hostname returns it, brackets removed) is a
// loopback host for http redirect URIs: an IPv4 literal in 127.0.0.0/8, the IPv6 literal ::1,
// or the name localhost (any case).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return false
	}
	if addr.Is4() {
		return addr.IsLoopback()
	}
	return addr == netip.IPv6Loopback()
}

// MatchRedirectURI reports whether presented (the redirect_uri of an authorization request) is
// one of the registered redirect URIs. Comparison is exact string comparison (OAuth 2.1), with
// one exception from RFC 8252 §7.3: for http loopback URIs (127.0.0.1, [::1], localhost) the
// port is ignored, since native apps listen on an ephemeral port; scheme, host, path and query
// must still match exactly.
func MatchRedirectURI(registered []string, presented string) bool {
	if presented == "" {
		return false
	}
	for _, r := range registered {
		if r == presented {
			return true
		}
	}
	p, ok := parseLoopbackRedirect(presented)
	if !ok {
		return false
	}
	for _, r := range registered {
		if q, ok := parseLoopbackRedirect(r); ok &&
			p.Hostname() == q.Hostname() && p.EscapedPath() == q.EscapedPath() &&
			p.RawQuery == q.RawQuery && p.ForceQuery == q.ForceQuery {
			return true
		}
	}
	return false
}

// parseLoopbackRedirect parses raw if it is a valid http loopback redirect URI.
func parseLoopbackRedirect(raw string) (*url.URL, bool) {
	if !strings.HasPrefix(raw, "http://") || ValidateRedirectURI(raw) != nil {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || !isLoopbackHost(u.Hostname()) {
		return nil, false
	}
	return u, true
}

// parseErrReason strips url.Parse's echo of the input from its error.
func parseErrReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
