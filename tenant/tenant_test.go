package tenant

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"

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
		// Only the bare public URL (or a Host the table does not know) is the origin.
		wantOrigin := c.wantHost == "default" && !strings.Contains(c.path, "/h/")
		if got.Origin != wantOrigin {
			t.Errorf("%s%s, subdomains=%v: origin %v, want %v", c.host, c.path, c.urls.Subdomains, got.Origin, wantOrigin)
		}
	}
	if _, err := NewURLs("gw.example.com", false); err == nil {
		t.Error("a public URL without scheme was accepted")
	}
}

// TestAtOrigin: a handler sees whether its request came to the bare public URL.
func TestAtOrigin(t *testing.T) {
	urls, _ := NewURLs("https://gw.example.com", true)
	for target, want := range map[string]bool{
		"https://gw.example.com/token":           true,
		"https://other.example/token":            true,
		"https://gw.example.com/h/acme/token":    false,
		"https://gw.example.com/h/default/token": false,
		"https://acme.gw.example.com/token":      false,
	} {
		var got, served bool
		root := route.NewRouter()
		urls.Mount(root, nil, func(r *mux.Router) {
			r.Path("/token").HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, served = AtOrigin(r.Context()), true })
		})
		root.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", target, nil))
		if !served || got != want {
			t.Errorf("%s: served %v, AtOrigin %v, want %v", target, served, got, want)
		}
	}
}

// TestHostOfMCP: the host an MCP URL (a resource) names, the inverse of MCP.
func TestHostOfMCP(t *testing.T) {
	paths, _ := NewURLs("https://gw.example.com", false)
	subs, _ := NewURLs("https://gw.example.com:8443", true)
	for _, c := range []struct {
		urls     URLs
		resource string
		want     string // "" for none
	}{
		{paths, "https://gw.example.com/mcp", "default"},
		{paths, "https://gw.example.com/mcp/linear", "default"},
		{paths, "https://gw.example.com/h/acme/mcp", "acme"},
		{paths, "https://gw.example.com/h/acme/mcp/linear", "acme"},
		{paths, "https://gw.example.com/h/acme/mcp?upstream_mcp=https%3A%2F%2Fx.example%2Fmcp", "acme"},
		{paths, "https://gw.example.com/h/acme/mcpx", ""},
		{paths, "https://gw.example.com/h/acme", ""},
		{paths, "https://gw.example.com/h/Acme/mcp", ""},
		{paths, "https://gw.example.com/h/a.b/mcp", ""},
		{paths, "http://gw.example.com/h/acme/mcp", ""},
		{paths, "https://gw.example.com.evil/h/acme/mcp", ""},
		{paths, "https://acme.gw.example.com/mcp", ""},
		{paths, "", ""},
		{subs, "https://acme.gw.example.com:8443/mcp", "acme"},
		{subs, "https://acme.gw.example.com:8443/mcp/linear", "acme"},
		{subs, "https://gw.example.com:8443/mcp", "default"},
		{subs, "https://acme.gw.example.com/mcp", ""},
		{subs, "https://a.b.gw.example.com:8443/mcp", ""},
		{subs, "https://gw.example.com:8443/h/acme/mcp", ""},
		{subs, "https://acme.evil.example/mcp", ""},
	} {
		got, ok := c.urls.HostOfMCP(c.resource)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("HostOfMCP(%q), subdomains=%v = %q, %v; want %q", c.resource, c.urls.Subdomains, got, ok, c.want)
		}
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
