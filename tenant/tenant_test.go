package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/internal/route"
)

// TestURLsAndMount: the route table finds the host a request is for, and the path within it.
func TestURLsAndMount(t *testing.T) {
	paths, err := NewURLs("https://gw.example.com/", false)
	if err != nil {
		t.Fatal(err)
	}
	subs, _ := NewURLs("https://gw.example.com", true)
	if got := paths.MCP("default"); got != "https://gw.example.com/mcp" {
		t.Errorf("default MCP URL = %s", got)
	}
	if got := paths.MCP("acme"); got != "https://gw.example.com/h/acme/mcp" {
		t.Errorf("path MCP URL = %s", got)
	}
	if got := subs.MCP("acme"); got != "https://acme.gw.example.com/mcp" {
		t.Errorf("subdomain MCP URL = %s", got)
	}
	cases := []struct {
		urls       URLs
		host, path string
		wantHost   string
		wantPath   string
	}{
		{paths, "gw.example.com", "/mcp", "default", "/mcp"},
		{paths, "gw.example.com", "/h/acme/mcp/linear", "acme", "/mcp/linear"},
		{paths, "gw.example.com", "/h/acme", "acme", "/"},
		{paths, "acme.gw.example.com", "/mcp", "default", "/mcp"}, // subdomains off
		{subs, "acme.gw.example.com", "/mcp", "acme", "/mcp"},
		{subs, "ACME.gw.example.com:443", "/mcp", "acme", "/mcp"},
		{subs, "a.b.gw.example.com", "/mcp", "default", "/mcp"},
		{subs, "gw.example.com", "/h/beta/x", "beta", "/x"},
		{subs, "evil.com", "/mcp", "default", "/mcp"},
		{paths, "gw.example.com", "/.well-known/oauth-authorization-server/h/acme", "acme", "/.well-known/oauth-authorization-server"},
		{paths, "gw.example.com", "/.well-known/oauth-protected-resource/h/acme/mcp/linear", "acme", "/.well-known/oauth-protected-resource/mcp/linear"},
		{paths, "gw.example.com", "/.well-known/oauth-protected-resource/mcp", "default", "/.well-known/oauth-protected-resource/mcp"},
		{paths, "gw.example.com", "/h/acme/.well-known/openid-configuration", "acme", "/.well-known/openid-configuration"},
	}
	for _, c := range cases {
		var got Request
		root := route.NewRouter()
		c.urls.Mount(root, func(w http.ResponseWriter, r *http.Request, req Request) (context.Context, bool) {
			got = req
			return nil, false
		})
		root.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://"+c.host+c.path, nil))
		if got.Key != c.wantHost || got.Path != c.wantPath {
			t.Errorf("%s%s, subdomains=%v: host %q path %q, want %s %s", c.host, c.path, c.urls.Subdomains, got.Key, got.Path, c.wantHost, c.wantPath)
		}
	}
	if _, err := NewURLs("gw.example.com", false); err == nil {
		t.Error("a public URL without scheme was accepted")
	}
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"acme", "my-tenant-round-moccasin-19", "a", "0"} {
		if !ValidKey(k) {
			t.Errorf("%q rejected", k)
		}
	}
	for _, k := range []string{"", "-a", "a-", "Acme", "a_b", "a.b", "x" + string(make([]byte, 63))} {
		if ValidKey(k) {
			t.Errorf("%q accepted", k)
		}
	}
}
