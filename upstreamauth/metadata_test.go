package upstreamauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/internal/ssrf"
)

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want Challenge
	}{
		{[]string{`Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="read write"`},
			Challenge{ResourceMetadata: "https://mcp.example.com/.well-known/oauth-protected-resource/mcp", Scope: "read write"}},
		{[]string{`Basic realm="x"`, `Bearer error="invalid_token", resource_metadata=https://a.example/prm`},
			Challenge{ResourceMetadata: "https://a.example/prm"}},
		{[]string{`bearer scope="a \"quoted\" b"`}, Challenge{Scope: `a "quoted" b`}},
		{[]string{`Bearer`}, Challenge{}},
		{[]string{`Bearer resource_metadata="unterminated`}, Challenge{}},
		{nil, Challenge{}},
	} {
		if got := ParseChallenge(tc.in); got != tc.want {
			t.Errorf("ParseChallenge(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// metadataServer serves documents at paths; anything else is 404.
func metadataServer(t *testing.T, docs func(base string) map[string]any) string {
	t.Helper()
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := docs(base)[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d)
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	return base
}

func testClient() *Client {
	return &Client{http: ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: true})}
}

func TestDiscoverFallbacks(t *testing.T) {
	ctx := context.Background()
	asMeta := func(issuer string, methods ...string) map[string]any {
		return map[string]any{"issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
			"code_challenge_methods_supported": methods}
	}

	// Root protected resource metadata, an issuer with a path, OpenID discovery appended.
	base := metadataServer(t, func(base string) map[string]any {
		return map[string]any{
			"/.well-known/oauth-protected-resource":     map[string]any{"resource": base + "/mcp", "authorization_servers": []string{base + "/tenant1"}, "scopes_supported": []string{"s"}},
			"/tenant1/.well-known/openid-configuration": asMeta(base+"/tenant1", "S256"),
		}
	})
	md, err := testClient().discover(ctx, base+"/mcp", Challenge{})
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != base+"/tenant1" || md.TokenEndpoint != base+"/tenant1/token" || md.Resource != base+"/mcp" || len(md.Scopes) != 1 {
		t.Errorf("metadata = %+v", md)
	}

	// No RFC 9728 document: the server's origin is the authorization server (2025-03-26).
	base = metadataServer(t, func(base string) map[string]any {
		return map[string]any{"/.well-known/oauth-authorization-server": asMeta(base, "S256")}
	})
	if md, err := testClient().discover(ctx, base+"/mcp", Challenge{Scope: "x y"}); err != nil || md.Issuer != base || len(md.Scopes) != 2 {
		t.Errorf("origin fallback: %+v %v", md, err)
	}

	// Refusals: no S256, an issuer that does not match, a resource of another origin.
	for name, docs := range map[string]func(string) map[string]any{
		"no S256": func(base string) map[string]any {
			return map[string]any{"/.well-known/oauth-authorization-server": asMeta(base, "plain")}
		},
		"issuer mismatch": func(base string) map[string]any {
			return map[string]any{"/.well-known/oauth-authorization-server": asMeta("https://evil.example", "S256")}
		},
		"other resource": func(base string) map[string]any {
			return map[string]any{
				"/.well-known/oauth-protected-resource/mcp": map[string]any{"resource": "https://other.example/mcp", "authorization_servers": []string{base}},
				"/.well-known/oauth-authorization-server":   asMeta(base, "S256"),
			}
		},
	} {
		base := metadataServer(t, docs)
		if _, err := testClient().discover(ctx, base+"/mcp", Challenge{}); !errors.Is(err, ErrDiscovery) {
			t.Errorf("%s: err = %v, want ErrDiscovery", name, err)
		}
	}
}

func TestDiscoveryIsSSRFSafe(t *testing.T) {
	base := metadataServer(t, func(string) map[string]any { return map[string]any{} })
	c := &Client{http: ssrf.NewClient(ssrf.Options{AllowHTTP: true})}
	_, err := c.discover(context.Background(), base+"/mcp", Challenge{ResourceMetadata: base + "/prm"})
	if !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Errorf("discovery of a loopback server without the override: %v, want ErrForbiddenAddress", err)
	}
}
