package admin_test

import (
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// TestImportUpstreamSignIn: a server that answers 401 is refused at import unless it gets
// credentials; with upstream_sign_in (each human signs in at consent, the gateway registering
// itself there) it is imported without tools and without stored credentials; a header and
// upstream_sign_in exclude each other.
func TestImportUpstreamSignIn(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "the-humans-token")
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker"}, "needs credentials")
	e.problem(400, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true,
		Header: &admin.CredentialHeader{Name: "Authorization", Value: "Bearer x"}}, "exclude each other")
	var dry admin.ImportResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true, DryRun: true}, &dry)
	if !dry.DryRun || len(dry.Tools) != 0 {
		t.Fatalf("dry run = %+v", dry)
	}
	var res admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true}, &res)
	if res.Server.Key != "tracker" || res.Server.Tools != 0 || res.Server.CredentialKind != "" {
		t.Fatalf("imported = %+v", res.Server)
	}
}

// TestImportDiscoveryToken: an admin's own token at a server of humans' own sign-ins discovers
// its tools at import (the dashboard's sign-in at the server gives it); the token is not
// stored as a credential, a token the server refuses fails the import instead of saving it
// without tools, and the token is refused without upstream_sign_in or an OAuth client.
func TestImportDiscoveryToken(t *testing.T) {
	e := newEnv(t)
	up := mcpserver.Start(t, "the-admins-token")
	e.problem(400, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", DiscoveryToken: "the-admins-token"}, "discovery_token is for a server")
	e.problem(400, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true, DiscoveryToken: "two words"}, "without spaces")
	e.problem(502, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true, DiscoveryToken: "not-the-token"}, "credentials were refused")
	var dry admin.ImportResult
	e.must(200, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker", UpstreamSignIn: true, DiscoveryToken: "the-admins-token", DryRun: true}, &dry)
	if len(dry.Tools) != len(mcpserver.Tools) {
		t.Fatalf("dry run with the admin's token = %+v; want the %d tools", dry, len(mcpserver.Tools))
	}
	var res admin.ImportResult
	e.must(201, "POST", "/api/v1/hosts/acme/servers", e.acme, admin.ServerImport{URL: up.URL, Key: "tracker",
		OAuthClient: &admin.OAuthClient{ClientID: "tg"}, DiscoveryToken: "the-admins-token"}, &res)
	if res.Server.Tools != len(mcpserver.Tools) || res.Server.CredentialKind != "oauth_client" {
		t.Fatalf("imported = %+v", res.Server)
	}
}
