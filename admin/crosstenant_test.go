package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/store"
)

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// openAPIOperations returns "METHOD path" for every operation of the served document.
func openAPIOperations(t *testing.T, e *env) []string {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	e.must(200, "GET", "/api/v1/openapi.json", "", nil, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var ops []string
	for path, item := range doc.Paths {
		for method := range item {
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	return ops
}

// TestOpenAPIDocumentsEveryRoute fails when a route the CLI and users rely on is missing from the
// document, and when a documented operation is not actually routed.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	e := newEnv(t)
	ops := openAPIOperations(t, e)
	documented := map[string]bool{}
	for _, op := range ops {
		documented[op] = true
	}
	required := []string{
		"GET /api/v1/hosts", "POST /api/v1/hosts", "GET /api/v1/hosts/{host}", "PATCH /api/v1/hosts/{host}", "DELETE /api/v1/hosts/{host}",
		"GET /api/v1/hosts/{host}/servers", "POST /api/v1/hosts/{host}/servers", "GET /api/v1/hosts/{host}/servers/{server}",
		"PATCH /api/v1/hosts/{host}/servers/{server}", "DELETE /api/v1/hosts/{host}/servers/{server}", "POST /api/v1/hosts/{host}/servers/{server}/sync",
		"GET /api/v1/hosts/{host}/servers/{server}/tools", "POST /api/v1/hosts/{host}/servers/{server}/tools",
		"GET /api/v1/hosts/{host}/servers/{server}/tools/{tool}", "PATCH /api/v1/hosts/{host}/servers/{server}/tools/{tool}",
		"DELETE /api/v1/hosts/{host}/servers/{server}/tools/{tool}",
		"GET /api/v1/hosts/{host}/humans", "POST /api/v1/hosts/{host}/humans", "GET /api/v1/hosts/{host}/humans/{human}",
		"PATCH /api/v1/hosts/{host}/humans/{human}", "DELETE /api/v1/hosts/{host}/humans/{human}",
		"PUT /api/v1/hosts/{host}/humans/{human}/grants/{server}", "DELETE /api/v1/hosts/{host}/humans/{human}/grants/{server}",
		"GET /api/v1/hosts/{host}/agents", "GET /api/v1/hosts/{host}/agents/{agent}", "PATCH /api/v1/hosts/{host}/agents/{agent}",
		"PUT /api/v1/hosts/{host}/agents/{agent}/servers/{server}", "DELETE /api/v1/hosts/{host}/agents/{agent}/servers/{server}",
		"POST /api/v1/hosts/{host}/agents/{agent}/kill",
		"GET /api/v1/hosts/{host}/audit", "GET /api/v1/hosts/{host}/tokens", "POST /api/v1/hosts/{host}/tokens", "DELETE /api/v1/hosts/{host}/tokens/{token}",
		"GET /api/v1/tokens", "POST /api/v1/tokens", "DELETE /api/v1/tokens/{token}", "GET /api/v1/openapi.json",
	}
	for _, op := range required {
		if !documented[op] {
			t.Errorf("openapi.json lacks %s", op)
		}
	}
	// Every documented operation is routed: it never gets the router's "no API route" answer.
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{host}", "acme", "{server}", "none", "{tool}", "none", "{human}", "none", "{agent}", "none", "{token}", "none").Replace(path)
		_, body := e.do(method, concrete, e.global, "{}")
		if strings.Contains(string(body), "no API route") {
			t.Errorf("%s is documented but not routed", op)
		}
	}
}

// TestCrossTenantRequestsAreRefused loops over every operation: a token of host beta can do
// nothing on host acme, and acme's token cannot reach beta's objects through acme's paths.
func TestCrossTenantRequestsAreRefused(t *testing.T) {
	e := newEnv(t)
	_, acmeAgent := e.imported(mcpserver.Start(t, ""))
	// beta gets its own objects with distinct ids.
	e.must(201, "POST", "/api/v1/hosts/beta/humans", e.beta, admin.HumanCreate{Email: "mallory@beta.test"}, nil)
	var betaTok admin.TokenCreated
	e.must(201, "POST", "/api/v1/hosts/beta/tokens", e.beta, admin.TokenCreate{Name: "x"}, &betaTok)

	ops := openAPIOperations(t, e)
	checked := 0
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		if !strings.Contains(path, "{host}") {
			continue
		}
		concrete := strings.NewReplacer("{host}", "acme", "{server}", "tracker", "{tool}", "list_issues",
			"{human}", "alice@acme.test", "{agent}", acmeAgent, "{token}", "t_none").Replace(path)
		code, body := e.do(method, concrete, e.beta, `{}`)
		if code != http.StatusForbidden || !strings.Contains(string(body), `scoped to host \"beta\"`) {
			t.Errorf("beta's token on %s %s = %d %s, want 403", method, concrete, code, body)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d host-scoped operations checked", checked)
	}
	// acme's token with beta's ids under acme's paths, for every operation: never a success,
	// and nothing of beta's changes.
	betaUp := mcpserver.Start(t, "")
	e.must(201, "POST", "/api/v1/hosts/beta/servers", e.beta, admin.ServerImport{URL: betaUp.URL, Key: "beta-tracker"}, nil)
	var mallory admin.Human
	e.must(200, "PUT", "/api/v1/hosts/beta/humans/mallory@beta.test/grants/beta-tracker", e.beta, admin.GrantSet{Ceiling: "high"}, &mallory)
	betaAgent, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "beta", UserID: mallory.ID, ClientID: "beta-client"})
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, "PUT", "/api/v1/hosts/beta/agents/"+betaAgent.ID+"/servers/beta-tracker", e.beta, admin.AgentLevel{Level: "high"}, nil)
	before := e.callable("beta", "beta-tracker", betaAgent.ID)
	e.cp.SetAside(t, "beta") // a relationship change of beta's that SpiceDB refused
	betaAside, err := e.store.ListQuarantinedChanges(context.Background(), "beta")
	if err != nil || len(betaAside) != 1 {
		t.Fatalf("beta's set-aside changes: %+v, %v", betaAside, err)
	}
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		if !strings.Contains(path, "{host}") || path == "/api/v1/hosts/{host}" || path == "/api/v1/hosts/{host}/emergency-stop" ||
			strings.HasPrefix(path, "/api/v1/hosts/{host}/webhook") { // the host's own settings: no ids in the path
			continue
		}
		concrete := strings.NewReplacer("{host}", "acme", "{server}", "beta-tracker", "{tool}", "list_issues",
			"{human}", "mallory@beta.test", "{agent}", betaAgent.ID, "{token}", betaTok.ID, "{id}", strconv.FormatInt(betaAside[0].ID, 10)).Replace(path)
		body := map[string]string{"PUT": `{"ceiling":"high","level":"high"}`, "PATCH": `{}`, "POST": `{}`}[method]
		if method == "POST" && strings.HasSuffix(path, "/humans") {
			continue // creating a human in acme is acme's right; ids are not involved
		}
		code, resp := e.do(method, concrete, e.acme, body)
		isList := method == "GET" && (strings.HasSuffix(path, "s") || strings.HasSuffix(path, "/audit") || strings.HasSuffix(path, "/auth")) // no ids in the path
		if code < 400 && !isList {
			t.Errorf("acme's token with beta's ids: %s %s = %d %s", method, concrete, code, resp)
		}
		if code < 400 && (strings.Contains(string(resp), "mallory") || strings.Contains(string(resp), betaAgent.ID)) {
			t.Errorf("acme's token read beta's data: %s %s = %s", method, concrete, resp)
		}
	}
	e.must(200, "GET", "/api/v1/hosts/beta/humans/mallory@beta.test", e.beta, nil, nil)
	e.must(200, "GET", "/api/v1/hosts/beta/servers", betaTok.Secret, nil, nil)
	if after, err := e.store.ListQuarantinedChanges(context.Background(), "beta"); err != nil || len(after) != 1 || after[0].ID != betaAside[0].ID {
		t.Fatalf("beta's set-aside changes after acme's requests: %+v, %v", after, err)
	}
	if after := e.callable("beta", "beta-tracker", betaAgent.ID); after != before || before == "[]" {
		t.Fatalf("beta's agent could call %s before and %s after acme's requests", before, after)
	}
}
