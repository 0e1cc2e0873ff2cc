package oauthserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
)

func setDynamicMCPs(t *testing.T, e *env, host string, on bool) {
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

// The Dynamic MCP link …/mcp?upstream_mcp=<url>: on a host that allows Dynamic MCPs its
// metadata announces it, query included, as the resource, and the authorization server grants
// exactly that resource (and no other spelling of it); elsewhere the query is not part of the
// resource, as before.
func TestDynamicMCPLink(t *testing.T) {
	e := newEnv(t)
	const upstream = "https://mcp.linear.app/mcp" // the URL of acme's server linear
	link := accesstoken.UpstreamMCPResource(e.urls.MCP("acme"), upstream)
	metadataResource := func(query string) string {
		t.Helper()
		resp, err := http.Get(e.path("acme", "/.well-known/oauth-protected-resource/mcp?"+query))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("metadata ?%s: %d %v", query, resp.StatusCode, err)
		}
		s, _ := m["resource"].(string)
		return s
	}
	conf := e.register("acme")
	authorize := func(b *browser, resource, verifier string) testbrowserPage {
		t.Helper()
		return b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	}
	invalidTarget := func(p testbrowserPage) bool {
		return p.Loc != nil && p.Loc.Query().Get("error") == "invalid_target"
	}

	// Without Dynamic MCPs: the query is not part of the resource, and the link is no resource.
	if got := metadataResource("upstream_mcp=" + url.QueryEscape(upstream)); got != e.urls.MCP("acme") {
		t.Fatalf("metadata without Dynamic MCPs: resource %s, want %s", got, e.urls.MCP("acme"))
	}
	if p := authorize(e.browser(), link, oauth2.GenerateVerifier()); !invalidTarget(p) {
		t.Fatalf("link as resource without Dynamic MCPs: %d %v", p.Status, p.Loc)
	}

	setDynamicMCPs(t, e, "acme", true)
	for _, q := range []string{"upstream_mcp=" + url.QueryEscape(upstream), "upstream_mcp=" + upstream} {
		if got := metadataResource(q); got != link {
			t.Fatalf("metadata ?%s: resource %s, want %s", q, got, link)
		}
	}
	for _, q := range []string{"upstream_mcp=" + upstream + "&x=1", "x=1", "upstream_mcp=ftp%3A%2F%2Fx", "upstream_mcp=a&upstream_mcp=a"} {
		if got := metadataResource(q); got != e.urls.MCP("acme") {
			t.Fatalf("metadata ?%s: resource %s, want %s", q, got, e.urls.MCP("acme"))
		}
	}

	// Only the spelling the metadata announces, on this host, is a resource.
	for _, res := range []string{
		e.urls.MCP("acme") + "?upstream_mcp=" + upstream,
		link + "&x=1",
		link + "&upstream_mcp=" + url.QueryEscape("https://evil.example/mcp"),
		e.urls.MCP("acme") + "/linear?upstream_mcp=" + url.QueryEscape(upstream),
		accesstoken.UpstreamMCPResource(e.urls.MCP("other"), upstream),
	} {
		if p := authorize(e.browser(), res, oauth2.GenerateVerifier()); !invalidTarget(p) {
			t.Fatalf("resource %s: %d %v, want invalid_target", res, p.Status, p.Loc)
		}
	}

	// The link is granted: the server it names is pre-selected, and the token is for the link.
	b := e.browser()
	v := oauth2.GenerateVerifier()
	p := e.signIn(b, authorize(b, link, v), email, password)
	if m := regexp.MustCompile(`value="([a-z]+)"[^>]*checked`).FindStringSubmatch(p.Body); m == nil || m[1] != "linear" {
		t.Fatalf("choose server for the link: %d %s", p.Status, p.Body)
	}
	p = b.Submit(p, map[string]string{"server": "linear"})
	p = b.Submit(p, map[string]string{"trust_level": "low", "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("code") == "" {
		t.Fatalf("consent: %d %v %s", p.Status, p.Loc, p.Body)
	}
	tok, err := conf.Exchange(context.Background(), p.Loc.Query().Get("code"), oauth2.VerifierOption(v), oauth2.SetAuthURLParam("resource", link))
	if err != nil {
		t.Fatalf("exchange naming the link: %v", err)
	}
	claims, err := e.ks.Verify(tok.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: link})
	if err != nil || !slices.Equal(claims.Audience, []string{link}) {
		t.Fatalf("access token for the link: %+v, %v", claims, err)
	}
	// A refresh keeps the audience.
	tok2, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := e.ks.Verify(tok2.AccessToken, accesstoken.Expect{Issuer: e.base("acme"), Audience: link}); err != nil {
		t.Fatalf("refreshed token: %v", err)
	}
}
