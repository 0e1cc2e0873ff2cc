package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/permitstandin"
)

// toolChecks counts the /allowed requests the stand-in received for tools.
func toolChecks(t *testing.T, s *permitstandin.Server) int {
	t.Helper()
	n := 0
	for _, r := range s.Requests() {
		if r.Method != http.MethodPost || r.Path != "/allowed" {
			continue
		}
		var body struct {
			Resource struct {
				Type string `json:"type"`
			} `json:"resource"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("an /allowed body is not JSON: %v", err)
		}
		if body.Resource.Type == "tool" {
			n++
		}
	}
	return n
}

// TestPermitBackendConsentAndCalls runs the whole flow with --authz-backend permit against the
// Permit stand-in: the consent becomes a role assignment in Permit, every tools/call is one
// /allowed check at the PDP, a lowered level denies the next call, and with the PDP gone calls
// are denied (fail closed).
func TestPermitBackendConsentAndCalls(t *testing.T) {
	const apiKey = "permit_key_e2e_secret"
	standin := permitstandin.New(apiKey)
	api := httptest.NewServer(standin.API())
	defer api.Close()
	pdp := httptest.NewServer(standin.PDP())
	defer pdp.Close()

	dir := t.TempDir()
	addr := freeAddr(t)
	p := waitReady(t, launchEnv(t, addr, []string{"TRUSTGATE_PERMIT_API_KEY=" + apiKey},
		"serve", "--listen", addr, "--data-dir", dir, "--metrics-listen", "",
		"--authz-backend", "permit", "--permit-api-url", api.URL, "--permit-pdp-url", pdp.URL))
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	resource := p.url + "/h/acme/mcp/tracker"

	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	var assigned []permitstandin.Assignment
	for _, a := range standin.Assignments() {
		if a.ResourceInstance == "mcp_server:acme~tracker" {
			assigned = append(assigned, a)
		}
	}
	if len(assigned) != 1 || assigned[0].Role != "medium" || assigned[0].Tenant != "acme" || !strings.HasPrefix(assigned[0].User, "acme~a_") {
		t.Fatalf("role assignments in Permit after consent at medium = %+v, want the agent at medium on the server", standin.Assignments())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	session := connectSDK(ctx, t, resource, token)
	if names := toolNamesOf(ctx, t, session); !slices.Equal(names, []string{"create_issue", "list_issues"}) {
		t.Fatalf("tools/list with Permit = %v, want the medium and low tools", names)
	}

	before := toolChecks(t, standin)
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "hello"}})
	if err != nil || res.IsError {
		t.Fatalf("allowed call: %+v %v", res, err)
	}
	if n := toolChecks(t, standin) - before; n != 1 {
		t.Errorf("one tools/call made %d /allowed checks at the PDP, want 1", n)
	}
	if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok || !strings.Contains(text, "needs trust level high") {
		t.Fatalf("a high tool was called with a medium consent: %q", text)
	}
	if n := toolChecks(t, standin) - before; n != 2 {
		t.Errorf("two tools/call made %d /allowed checks, want 2", n)
	}

	// The admin lowers alice's ceiling to low: the very next medium call is denied.
	cli(t, p, admin, "human", "grant", "alice@acme.test", "tracker", "--level", "low", "--host", "acme")
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "again"}); ok {
		t.Fatalf("a medium call went through after the ceiling was lowered to low: %q", text)
	}
	for _, a := range standin.Assignments() {
		if a.ResourceInstance == "mcp_server:acme~tracker" && a.Role != "low" {
			t.Errorf("after the ceiling was lowered Permit still holds %+v", a)
		}
	}
	if res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "list_issues"}); err != nil || res.IsError {
		t.Fatalf("a low call after the ceiling was lowered: %+v %v", res, err)
	}

	// Why? Permit cannot trace its checks: the explanation says so and comes from the store.
	var agents []struct {
		ID string `json:"id"`
	}
	cliJSON(t, p, admin, &agents, "agent", "list", "--host", "acme")
	if len(agents) != 1 {
		t.Fatalf("agents = %+v", agents)
	}
	why := cli(t, p, admin, "explain", agents[0].ID, "tracker", "create_issue", "--host", "acme")
	if !strings.Contains(why, "trustgate denied ") || !strings.Contains(why, "does not trace its checks") || strings.Contains(why, "trace of the check:") ||
		!strings.Contains(why, "The ceiling of alice@acme.test on tracker is low, below the tool's level medium.") {
		t.Errorf("explain on Permit:\n%s", why)
	}

	// The PDP goes away: calls are denied, readiness says so.
	pdp.Close()
	if _, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "list_issues"}); err == nil {
		t.Fatal("a call went through with the PDP down")
	}
	if code, body := getJSON(t, p.url+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"permit":"failing`) {
		t.Errorf("readyz with the PDP down = %d %s", code, body)
	}
	if strings.Contains(p.output(), apiKey) {
		t.Error("the Permit API key appears in trustgate's output")
	}
}

// A Permit backend without its key or PDP does not start, and says which flag is missing.
func TestPermitBackendNeedsItsFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--authz-backend", "permit", "--permit-pdp-url", "http://127.0.0.1:7766"}, "--permit-api-key"},
		{[]string{"--authz-backend", "permit", "--permit-api-key", "k"}, "--permit-pdp-url"},
		{[]string{"--authz-backend", "opa"}, "want spicedb or permit"},
		{[]string{"--authz-backend", "permit", "--permit-api-key", "k", "--permit-host-environment", "acme=production"}, "HOST=PROJECT/ENVIRONMENT"},
	} {
		out, err := run(t, 30*time.Second, append([]string{"serve", "--listen", freeAddr(t), "--data-dir", t.TempDir(), "--metrics-listen", ""}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("serve %v = %v:\n%s\nwant an error naming %s", c.args, err, out, c.want)
		}
	}
}

// TestPermitBackendHostInItsEnvironment maps host acme to an environment of its own with a
// project-level key: the consent's role assignment is written there and not in the other
// environment, and its calls are checked at that environment's PDP. A key that cannot address
// the environment stops start-up, naming the host.
func TestPermitBackendHostInItsEnvironment(t *testing.T) {
	const envKey, projectKey = "permit_key_e2e_env", "permit_key_e2e_project"
	standin := permitstandin.New(envKey)
	standin.AddEnvironment(permitstandin.ProjectID, "acme-env")
	standin.AddKey(projectKey, permitstandin.ProjectID)
	api := httptest.NewServer(standin.API())
	defer api.Close()
	pdp := httptest.NewServer(standin.PDP())
	defer pdp.Close()
	acmePDP := httptest.NewServer(standin.PDPFor(permitstandin.ProjectID, "acme-env"))
	defer acmePDP.Close()
	mapping := "acme=" + permitstandin.ProjectID + "/acme-env@" + acmePDP.URL
	args := []string{"--metrics-listen", "", "--authz-backend", "permit", "--permit-api-url", api.URL, "--permit-pdp-url", pdp.URL}

	out, err := run(t, 30*time.Second, append([]string{"serve", "--listen", freeAddr(t), "--data-dir", t.TempDir(), "--permit-api-key", envKey,
		"--permit-host-environment", mapping}, args...)...)
	if err == nil || !strings.Contains(out, "cannot address") || !strings.Contains(out, "host acme") {
		t.Errorf("serve with an environment-level key mapped to another environment = %v:\n%s\nwant an error naming host acme", err, out)
	}

	dir := t.TempDir()
	addr := freeAddr(t)
	p := waitReady(t, launchEnv(t, addr, []string{"TRUSTGATE_PERMIT_API_KEY=" + projectKey, "TRUSTGATE_PERMIT_HOST_ENVIRONMENTS=" + mapping},
		append([]string{"serve", "--listen", addr, "--data-dir", dir}, args...)...))
	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	if got := standin.AssignmentsIn(permitstandin.ProjectID, "acme-env"); len(got) != 1 || got[0].Role != "medium" || got[0].ResourceInstance != "mcp_server:acme~tracker" {
		t.Fatalf("role assignments in acme's environment = %+v, want the agent at medium on the server", got)
	}
	if got := standin.Tuples(); len(got) != 0 {
		t.Errorf("the other environment holds acme's tuples: %+v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	session := connectSDK(ctx, t, resource, token)
	if res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "create_issue", Arguments: map[string]any{"title": "hello"}}); err != nil || res.IsError {
		t.Fatalf("allowed call: %+v %v", res, err)
	}
	if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok || !strings.Contains(text, "needs trust level high") {
		t.Fatalf("a high tool was called with a medium consent: %q", text)
	}
	checks := 0
	for _, r := range standin.Requests() {
		if r.Path == "/allowed" {
			checks++
			if r.PDPEnv != permitstandin.ProjectID+"/acme-env" {
				t.Errorf("a check of acme went to the PDP of %s", r.PDPEnv)
			}
		}
	}
	if checks == 0 {
		t.Error("no check reached acme's PDP")
	}
}
