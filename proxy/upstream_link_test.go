package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
)

// The Dynamic MCP link …/mcp?upstream_mcp=<url>, on a host that allows Dynamic MCPs, is its own
// resource: the challenge points at its metadata (query kept), a token for the link is
// accepted there and only there, and a token for the bare MCP URL is not accepted at the link.
// Elsewhere (another query, or a host without Dynamic MCPs) the query is not part of the
// resource, as before.
func TestDynamicMCPLinkResource(t *testing.T) {
	e := newEnv(t)
	const upstream = "https://mcp.example.com/mcp"
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	post := func(rawQuery, token string, want int) http.Header {
		t.Helper()
		target := e.endpoint("")
		if rawQuery != "" {
			target += "?" + rawQuery
		}
		req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(ping))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("POST ?%s = %d, want %d: %s", rawQuery, resp.StatusCode, want, body)
		}
		return resp.Header
	}
	setDynamic := func(on bool) {
		t.Helper()
		h, err := e.st.GetHost(context.Background(), host)
		if err != nil {
			t.Fatal(err)
		}
		h.Settings.DynamicMCPs = on
		if _, err := e.st.UpdateHost(context.Background(), h); err != nil {
			t.Fatal(err)
		}
	}
	escaped := "upstream_mcp=" + url.QueryEscape(upstream)
	link := accesstoken.UpstreamMCPResource(e.endpoint(""), upstream)
	bare := e.token(e.endpoint(""), nil)
	forLink := e.token(link, nil)
	plainMetadata := `resource_metadata="` + e.urls.Base(host) + `/.well-known/oauth-protected-resource/mcp"`
	linkMetadata := `resource_metadata="` + e.urls.Base(host) + `/.well-known/oauth-protected-resource/mcp?` + escaped + `"`

	// Without Dynamic MCPs the query is not part of the resource.
	if got := post(escaped, "", http.StatusUnauthorized).Get("WWW-Authenticate"); !strings.Contains(got, plainMetadata) {
		t.Errorf("no Dynamic MCPs: WWW-Authenticate %q, want %s", got, plainMetadata)
	}
	post(escaped, bare, http.StatusOK)
	post(escaped, forLink, http.StatusUnauthorized)

	setDynamic(true)
	for _, q := range []string{escaped, "upstream_mcp=" + upstream} {
		if got := post(q, "", http.StatusUnauthorized).Get("WWW-Authenticate"); !strings.Contains(got, linkMetadata) {
			t.Errorf("?%s: WWW-Authenticate %q, want %s", q, got, linkMetadata)
		}
		post(q, forLink, http.StatusOK)
		if got := post(q, bare, http.StatusUnauthorized).Get("WWW-Authenticate"); !strings.Contains(got, linkMetadata) || !strings.Contains(got, `error="invalid_token"`) {
			t.Errorf("?%s with a token for the bare MCP URL: WWW-Authenticate %q", q, got)
		}
	}
	// The link's token is for the link only: not the bare URL, not a link to another upstream.
	post("", forLink, http.StatusUnauthorized)
	post("upstream_mcp="+url.QueryEscape("https://evil.example/mcp"), forLink, http.StatusUnauthorized)
	// Any other query is not a link: the bare URL's resource.
	for _, q := range []string{escaped + "&x=1", escaped + "&" + escaped, "x=1", "upstream_mcp=not-a-url"} {
		if got := post(q, "", http.StatusUnauthorized).Get("WWW-Authenticate"); !strings.Contains(got, plainMetadata) {
			t.Errorf("?%s: WWW-Authenticate %q, want %s", q, got, plainMetadata)
		}
		post(q, bare, http.StatusOK)
		post(q, forLink, http.StatusUnauthorized)
	}
}
