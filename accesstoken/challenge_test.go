package accesstoken_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
)

func TestProtectedResourceMetadataPath(t *testing.T) {
	cases := []struct{ got, want string }{
		{accesstoken.ProtectedResourceMetadataPath("/mcp"), "/.well-known/oauth-protected-resource/mcp"},
		{accesstoken.ProtectedResourceMetadataPath("/mcp/linear"), "/.well-known/oauth-protected-resource/mcp/linear"},
		{accesstoken.ProtectedResourceMetadataPath("/h/acme/mcp"), "/.well-known/oauth-protected-resource/h/acme/mcp"},
		{accesstoken.ProtectedResourceMetadataPath("/h/acme/mcp/linear"), "/.well-known/oauth-protected-resource/h/acme/mcp/linear"},
		{accesstoken.ProtectedResourceMetadataPath("/mcp/"), "/.well-known/oauth-protected-resource/mcp"},
		{accesstoken.ProtectedResourceMetadataPath("mcp"), "/.well-known/oauth-protected-resource/mcp"},
		{accesstoken.ProtectedResourceMetadataPath(""), "/.well-known/oauth-protected-resource"},
		{accesstoken.ProtectedResourceMetadataPath("/"), "/.well-known/oauth-protected-resource"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestProtectedResourceMetadataURL(t *testing.T) {
	ok := map[string]string{
		"https://gw.example.com/mcp":                "https://gw.example.com/.well-known/oauth-protected-resource/mcp",
		"https://gw.example.com/h/acme/mcp/linear":  "https://gw.example.com/.well-known/oauth-protected-resource/h/acme/mcp/linear",
		"https://acme.gw.example.com:8443/mcp":      "https://acme.gw.example.com:8443/.well-known/oauth-protected-resource/mcp",
		"http://127.0.0.1:8080/mcp":                 "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
		"https://gw.example.com/mcp/my%2Fserver":    "https://gw.example.com/.well-known/oauth-protected-resource/mcp/my%2Fserver",
		"https://gw.example.com":                    "https://gw.example.com/.well-known/oauth-protected-resource",
		"https://gw.example.com/h/acme/mcp/linear/": "https://gw.example.com/.well-known/oauth-protected-resource/h/acme/mcp/linear",
		// The Dynamic MCP link keeps its query, exactly as it is.
		"https://gw.example.com/h/acme/mcp?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp": "https://gw.example.com/.well-known/oauth-protected-resource/h/acme/mcp?upstream_mcp=https%3A%2F%2Fmcp.example.com%2Fmcp",
		"https://gw.example.com/mcp?x=1": "https://gw.example.com/.well-known/oauth-protected-resource/mcp?x=1",
	}
	for in, want := range ok {
		got, err := accesstoken.ProtectedResourceMetadataURL(in)
		if err != nil || got != want {
			t.Errorf("ProtectedResourceMetadataURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/mcp", "gw.example.com/mcp", "ftp://gw.example.com/mcp", "https://gw.example.com/mcp#f", "https://gw.example.com/mcp?x=1#f", "https://gw.example.com/mcp#", "https://u@gw.example.com/mcp", "://"} {
		if got, err := accesstoken.ProtectedResourceMetadataURL(in); err == nil {
			t.Errorf("ProtectedResourceMetadataURL(%q) = %q, want error", in, got)
		}
	}
}

func TestWWWAuthenticate(t *testing.T) {
	const prm = "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
	cases := []struct {
		url, err, desc, want string
	}{
		{prm, "", "", `Bearer resource_metadata="` + prm + `"`},
		{prm, "", "ignored without an error code", `Bearer resource_metadata="` + prm + `"`},
		{prm, "invalid_token", "", `Bearer resource_metadata="` + prm + `", error="invalid_token"`},
		{prm, "invalid_token", "The access token expired",
			`Bearer resource_metadata="` + prm + `", error="invalid_token", error_description="The access token expired"`},
		{prm, "insufficient_scope", "needs mcp",
			`Bearer resource_metadata="` + prm + `", error="insufficient_scope", error_description="needs mcp"`},
		{"", "invalid_token", "x", `Bearer error="invalid_token", error_description="x"`},
		{"", "", "", `Bearer`},
		// hostile inputs
		{prm, "invalid_token", `say "hi"`, `Bearer resource_metadata="` + prm + `", error="invalid_token", error_description="say 'hi'"`},
		{prm, "invalid_token", "a\\\" , error=\"x", `Bearer resource_metadata="` + prm + `", error="invalid_token", error_description="a/' , error='x"`},
		{prm, "invalid_token", "line1\r\nSet-Cookie: a=b", `Bearer resource_metadata="` + prm + `", error="invalid_token", error_description="line1  Set-Cookie: a=b"`},
		{prm, "invalid_token", "caf\u00e9 \u2028", `Bearer resource_metadata="` + prm + `", error="invalid_token", error_description="caf? ?"`},
		{prm, "bad\"code\n", "d", `Bearer resource_metadata="` + prm + `", error="bad'code", error_description="d"`},
		{`https://gw/x" , error="evil`, "", "", `Bearer resource_metadata="https://gw/x%22%20,%20error=%22evil"`},
		{"https://gw/a\r\nb\\c\u00e9", "", "", `Bearer resource_metadata="https://gw/a%0D%0Ab%5Cc%C3%A9"`},
	}
	for _, c := range cases {
		got := accesstoken.WWWAuthenticate(c.url, c.err, c.desc)
		if got != c.want {
			t.Errorf("WWWAuthenticate(%q, %q, %q)\n got %s\nwant %s", c.url, c.err, c.desc, got, c.want)
		}
		if strings.ContainsAny(got, "\r\n\x00") {
			t.Errorf("WWWAuthenticate(%q, %q, %q) contains CR/LF/NUL: %q", c.url, c.err, c.desc, got)
		}
		// Every quote in the output delimits a value: the count is even and nothing escapes.
		if strings.Count(got, `"`)%2 != 0 || strings.Contains(got, `\`) {
			t.Errorf("WWWAuthenticate(%q, %q, %q) has unbalanced quoting: %s", c.url, c.err, c.desc, got)
		}
	}
	// The value must be accepted as a header value by net/http.
	rec := httptest.NewRecorder()
	rec.Header().Set("WWW-Authenticate", accesstoken.WWWAuthenticate(prm, "invalid_token", "x\r\ny"))
	if len(rec.Header().Values("WWW-Authenticate")) != 1 {
		t.Error("header split")
	}
}
