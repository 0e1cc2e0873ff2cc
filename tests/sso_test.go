package tests

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/githubstandin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/oidcprovider"
)

// putAuthMethod sets host's sign-in method through the admin API.
func putAuthMethod(t *testing.T, p *process, token, host, method string, body map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, p.url+"/api/v1/hosts/"+host+"/auth/methods/"+method, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if out := readAll(resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT auth method %s: %d %s", method, resp.StatusCode, out)
	}
}

// TestSSOSignInsWithTheTypeScriptSDK: through the real binary, alice (pre-authorized by an
// admin, no password) signs in with OIDC at a real OpenID provider on loopback, consents, and
// the official TypeScript SDK client calls a tool with the token that came out; then she signs
// in with GitHub (a stand-in speaking GitHub's OAuth and API), which vouches for the same
// verified address: she is the same human. The audit log has both sign-ins with their method.
func TestSSOSignInsWithTheTypeScriptSDK(t *testing.T) {
	dir := t.TempDir()
	// The providers are on loopback: the operator allows it as for upstreams.
	p := start(t, "--data-dir", dir, "--upstream-allow-cidr", "127.0.0.0/8")
	up := mcpserver.Start(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, token, "host", "create", "acme", "--exact")
	cli(t, p, token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	cli(t, p, token, "human", "add", "alice@acme.test", "--host", "acme")
	cli(t, p, token, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")

	op := oidcprovider.Start(t, oidcprovider.Options{
		Users:   []oidcprovider.User{{ID: "op-alice", Username: "alice", Password: "alice at the provider", Email: "alice@acme.test", EmailVerified: true}},
		Clients: []oidcprovider.Client{{ID: "trustgate", Secret: "oidc client secret", RedirectURIs: []string{p.url + "/h/acme/auth/oidc/callback"}}},
	})
	putAuthMethod(t, p, token, "acme", "oidc", map[string]any{
		"enabled": true, "config": map[string]string{"issuer": op.Issuer, "client_id": "trustgate"}, "secret": "oidc client secret"})
	gh := githubstandin.Start(t, "Iv1.trustgate", "github client secret", githubstandin.Account{ID: 777, Login: "alice-gh",
		Emails: []githubstandin.Email{{Email: "alice@acme.test", Primary: true, Verified: true}}})
	putAuthMethod(t, p, token, "acme", "github", map[string]any{
		"enabled": true, "secret": "github client secret",
		"config": map[string]string{"client_id": "Iv1.trustgate", "auth_url": gh.URL + "/login/oauth/authorize", "token_url": gh.URL + "/login/oauth/access_token", "api_url": gh.URL}})

	type result struct {
		OK            bool     `json:"ok"`
		Button        string   `json:"button"`
		Provider      string   `json:"provider"`
		Callback      string   `json:"callback"`
		ProviderPages int      `json:"provider_pages"`
		SignedIn      bool     `json:"signed_in"`
		Consented     bool     `json:"consented"`
		Tools         []string `json:"tools"`
		Allowed       string   `json:"allowed"`
		Denied        string   `json:"denied"`
	}
	resource := p.url + "/h/acme/mcp/tracker"
	for _, tc := range []struct{ method, provider string }{{"oidc", op.URL}, {"github", gh.URL}} {
		out := runNode(t, "sso.mjs", "MCP_URL="+resource, "EMAIL=alice@acme.test", "PASSWORD=unused",
			"SSO_METHOD="+tc.method, "SSO_USERNAME=alice", "SSO_PASSWORD=alice at the provider")
		var res result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("sso.mjs output is not JSON: %v\n%s", err, out)
		}
		if !res.OK || !res.SignedIn || !res.Consented || res.Button != "/h/acme/auth/"+tc.method+"/start" ||
			res.Provider != tc.provider || res.Callback != "/h/acme/auth/"+tc.method+"/callback" {
			t.Fatalf("%s: %+v", tc.method, res)
		}
		if tc.method == "oidc" && res.ProviderPages != 1 {
			t.Errorf("oidc: the person signed in on %d provider pages, want 1", res.ProviderPages)
		}
		if !strings.Contains(res.Allowed, "create_issue called: sso") || !strings.Contains(res.Denied, "high") {
			t.Errorf("%s: calls with the token: allowed %q, denied %q", tc.method, res.Allowed, res.Denied)
		}
		if strings.Join(res.Tools, ",") != "create_issue,list_issues" {
			t.Errorf("%s: tools/list = %v", tc.method, res.Tools)
		}
	}

	// One human: both providers vouched for alice@acme.test.
	var humans []admin.Human
	cliJSON(t, p, token, &humans, "human", "list", "--host", "acme")
	if len(humans) != 1 || humans[0].Email != "alice@acme.test" {
		t.Errorf("humans after two sign-in methods: %+v", humans)
	}
	var agents []admin.Agent
	cliJSON(t, p, token, &agents, "agent", "list", "--host", "acme")
	for _, a := range agents {
		if a.HumanID != humans[0].ID {
			t.Errorf("agent %s acts for %s, want alice %s", a.ID, a.HumanID, humans[0].ID)
		}
	}
	if len(agents) != 2 {
		t.Errorf("agents = %d, want one per sign-in", len(agents))
	}

	var entries []admin.AuditEntry
	cliJSON(t, p, token, &entries, "audit", "list", "--host", "acme", "--all")
	var methods []string
	for _, e := range entries {
		if strings.HasPrefix(e.Action, "signin.") {
			methods = append(methods, e.Method+" "+e.Action)
			if strings.Contains(string(mustJSON(e)), "secret") {
				t.Errorf("a sign-in audit entry names a secret: %+v", e)
			}
		}
	}
	for _, want := range []string{"oidc signin.success", "github signin.success"} {
		if !slices.Contains(methods, want) {
			t.Errorf("audit sign-ins %v lack %q", methods, want)
		}
	}
	for _, secret := range []string{"oidc client secret", "github client secret"} {
		if strings.Contains(p.output(), secret) {
			t.Errorf("the gateway's log shows a client secret")
		}
	}
}
