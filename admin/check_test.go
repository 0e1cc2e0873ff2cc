package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/tenant"
)

// newDecidingEnv is newEnv whose check routes are answered by a real MCP proxy on the same
// store and SpiceDB, as in the gateway.
func newDecidingEnv(t *testing.T) *env {
	t.Helper()
	var e *env
	e = newEnvWith(t, func(c *admin.Config) {
		c.HostNetworks = ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		c.Decider = &lazyDecider{e: &e, cfg: c}
	})
	return e
}

// lazyDecider makes a proxy when first asked (newEnvWith opens the store after configure
// runs) and keeps it, as the gateway does (its rate limiter lives in it).
type lazyDecider struct {
	e   **env
	cfg *admin.Config
	p   *proxy.Proxy
}

func (d *lazyDecider) proxy() *proxy.Proxy {
	if d.p != nil {
		return d.p
	}
	e := *d.e
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		e.t.Fatal(err)
	}
	ks, err := accesstoken.Open(context.Background(), e.store, keys, accesstoken.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	urls, _ := tenant.NewURLs("https://gw.example.com", false)
	p, err := proxy.New(proxy.Config{Store: e.store, Backend: e.backend, KeySet: ks, URLs: urls, Keys: keys})
	if err != nil {
		e.t.Fatal(err)
	}
	d.p = p
	return p
}

func (d *lazyDecider) CheckToolCall(ctx context.Context, host, agentID, server, tool string, arguments json.RawMessage) (proxy.ToolDecision, error) {
	return d.proxy().CheckToolCall(ctx, host, agentID, server, tool, arguments)
}

func (d *lazyDecider) CallableTools(ctx context.Context, host, agentID, server string) ([]string, error) {
	return d.proxy().CallableTools(ctx, host, agentID, server)
}

// checkToken makes a token with scope check, through the API.
func (e *env) checkToken(host, adminToken string) string {
	e.t.Helper()
	var created admin.TokenCreated
	path := "/api/v1/tokens"
	if host != "" {
		path = "/api/v1/hosts/" + host + "/tokens"
	}
	e.must(201, "POST", path, adminToken, admin.TokenCreate{Name: "svc", Scope: "check"}, &created)
	if created.Scope != "check" {
		e.t.Fatalf("created token has scope %q", created.Scope)
	}
	return created.Secret
}

func TestCheckAnswersAsTheProxyDecides(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up) // alice: ceiling high; her agent: medium
	tok := e.checkToken("acme", e.acme)
	check := func(agent, server, tool string) admin.Decision {
		t.Helper()
		var d admin.Decision
		e.must(200, "POST", "/api/v1/hosts/acme/check", tok, admin.CheckRequest{Agent: agent, Server: server, Tool: tool}, &d)
		if d.Agent != agent || d.Server != server || d.Tool != tool {
			t.Fatalf("decision names %+v", d)
		}
		return d
	}
	if d := check(agentID, "tracker", "create_issue"); !d.Allowed || d.Reason != "allowed" || d.Message != "" {
		t.Fatalf("medium tool at medium: %+v", d)
	}
	d := check(agentID, "tracker", "delete_issue")
	if d.Allowed || d.Reason != "level_too_low" || d.RequiredLevel != "high" || d.AgentLevel != "medium" || d.Ceiling != "high" ||
		!strings.Contains(d.Message, "Reconnect the client and choose trust level high") {
		t.Fatalf("high tool at medium: %+v", d)
	}
	for _, c := range []struct{ agent, server, tool, reason string }{
		{agentID, "tracker", "no_such_tool", "unknown_tool"},
		{agentID, "nope", "create_issue", "unknown_server"},
		{"a_nobody", "tracker", "create_issue", "agent_removed"},
	} {
		if d := check(c.agent, c.server, c.tool); d.Allowed || d.Reason != c.reason {
			t.Errorf("check(%s, %s, %s) = %+v, want denied %s", c.agent, c.server, c.tool, d, c.reason)
		}
	}
	var tools admin.CallableTools
	e.must(200, "POST", "/api/v1/hosts/acme/callable-tools", tok, admin.CallableToolsRequest{Agent: agentID, Server: "tracker"}, &tools)
	if strings.Join(tools.Tools, ",") != "create_issue,list_issues" {
		t.Fatalf("callable tools at medium = %v", tools.Tools)
	}

	// A change through the API is seen by the very next check.
	e.must(200, "PUT", "/api/v1/hosts/acme/humans/alice@acme.test/grants/tracker", e.acme, admin.GrantSet{Ceiling: "low"}, nil)
	if d := check(agentID, "tracker", "create_issue"); d.Allowed || d.Reason != "ceiling_too_low" || d.Ceiling != "low" {
		t.Fatalf("medium tool under ceiling low: %+v", d)
	}
	e.must(200, "POST", "/api/v1/hosts/acme/callable-tools", tok, admin.CallableToolsRequest{Agent: agentID, Server: "tracker"}, &tools)
	if strings.Join(tools.Tools, ",") != "list_issues" {
		t.Fatalf("callable tools under ceiling low = %v", tools.Tools)
	}
	e.must(200, "POST", "/api/v1/hosts/acme/agents/"+agentID+"/kill", e.acme, nil, nil)
	if d := check(agentID, "tracker", "list_issues"); d.Allowed || d.Reason != "agent_disabled" {
		t.Fatalf("killed agent: %+v", d)
	}
	e.must(200, "POST", "/api/v1/hosts/acme/callable-tools", tok, admin.CallableToolsRequest{Agent: agentID, Server: "tracker"}, &tools)
	if tools.Tools == nil || len(tools.Tools) != 0 {
		t.Fatalf("callable tools of a killed agent = %#v, want []", tools.Tools)
	}

	// Bad requests, and the token's host.
	e.problem(400, "POST", "/api/v1/hosts/acme/check", tok, admin.CheckRequest{Agent: agentID, Server: "tracker"}, `"tool" is required`)
	e.problem(400, "POST", "/api/v1/hosts/acme/check", tok, `{"agent":"a","server":"s","tool":"t","extra":1}`, "unknown field")
	e.problem(400, "POST", "/api/v1/hosts/acme/check", tok, admin.CheckRequest{Agent: strings.Repeat("a", 513), Server: "s", Tool: "t"}, "longer than")
	e.problem(403, "POST", "/api/v1/hosts/beta/check", tok, admin.CheckRequest{Agent: agentID, Server: "tracker", Tool: "x"}, "scoped to host")
	global := e.checkToken("", e.global)
	e.must(200, "POST", "/api/v1/hosts/acme/check", global, admin.CheckRequest{Agent: agentID, Server: "tracker", Tool: "list_issues"}, nil)
	e.problem(404, "POST", "/api/v1/hosts/nope/check", global, admin.CheckRequest{Agent: agentID, Server: "tracker", Tool: "list_issues"}, "host not found")
}

// The check runs the proxy's safety stages too: the emergency stop, the arguments when the
// question gives some, and the rate limits, which it reads without taking a token.
func TestCheckAnswersTheSafetyStages(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	tok := e.checkToken("acme", e.acme)
	check := func(req admin.CheckRequest) admin.Decision {
		t.Helper()
		var d admin.Decision
		e.must(200, "POST", "/api/v1/hosts/acme/check", tok, req, &d)
		return d
	}
	call := admin.CheckRequest{Agent: agentID, Server: "tracker", Tool: "create_issue"}

	bad := call
	bad.Arguments = json.RawMessage(`{"title":5}`)
	if d := check(bad); d.Allowed || d.Reason != "invalid_arguments" || !strings.Contains(d.Message, "input schema") {
		t.Fatalf("arguments that do not fit: %+v", d)
	}
	good := call
	good.Arguments = json.RawMessage(`{"title":"Printer on fire"}`)
	if d := check(good); !d.Allowed {
		t.Fatalf("arguments that fit: %+v", d)
	}

	// One call a minute: the check reads the bucket and takes nothing, however often it asks.
	limits := []admin.RateLimit{{Scope: "agent", PerMinute: 1, Burst: 1}}
	e.must(200, "PATCH", "/api/v1/hosts/acme", e.acme, admin.HostUpdate{Settings: &admin.HostSettingsPatch{RateLimits: &limits}}, nil)
	for i := range 3 {
		if d := check(call); !d.Allowed {
			t.Fatalf("check %d under a limit of one a minute: %+v (a check took the token)", i, d)
		}
	}

	e.must(200, "POST", "/api/v1/hosts/acme/emergency-stop", e.acme, admin.EmergencyStopRequest{Reason: "incident 7"}, nil)
	if d := check(call); d.Allowed || d.Reason != "emergency_stop" || !strings.Contains(d.Message, "incident 7") {
		t.Fatalf("stopped host: %+v", d)
	}
	e.must(200, "DELETE", "/api/v1/hosts/acme/emergency-stop", e.acme, nil, nil)
	if d := check(call); !d.Allowed {
		t.Fatalf("after the stop was lifted: %+v", d)
	}
}

// A token with scope check reaches the two check routes and nothing else: every other
// operation of the OpenAPI document (the router's own table) answers it 403 and changes
// nothing.
func TestCheckTokenCannotAdminister(t *testing.T) {
	e := newDecidingEnv(t)
	up := mcpserver.Start(t, "")
	_, agentID := e.imported(up)
	for _, host := range []string{"acme", ""} {
		adminToken := e.acme
		if host == "" {
			adminToken = e.global
		}
		tok := e.checkToken(host, adminToken)
		code, body := e.do("GET", "/api/v1/openapi.json", "", nil)
		if code != 200 {
			t.Fatalf("openapi.json: %d", code)
		}
		var doc struct {
			Paths map[string]map[string]struct {
				OperationID string `json:"operationId"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		param := regexp.MustCompile(`\{[a-z]+\}`)
		var ops []string
		for path, methods := range doc.Paths {
			for method, op := range methods {
				if op.OperationID == "openapi" {
					continue
				}
				concrete := param.ReplaceAllStringFunc(path, func(p string) string {
					switch p {
					case "{host}":
						return "acme"
					case "{agent}":
						return agentID
					case "{server}":
						return "tracker"
					case "{human}":
						return "alice@acme.test"
					case "{tool}":
						return "list_issues"
					}
					return "x"
				})
				m := strings.ToUpper(method)
				var bodyDoc any
				if m == "POST" || m == "PUT" || m == "PATCH" {
					bodyDoc = map[string]any{}
				}
				code, answer := e.do(m, concrete, tok, bodyDoc)
				ops = append(ops, op.OperationID)
				switch op.OperationID {
				case "checkToolCall", "callableTools":
					if code == 403 || code == 401 {
						t.Errorf("%s token: %s %s = %d %s, want it allowed", hostName(host), m, concrete, code, answer)
					}
				default:
					if code != 403 || !strings.Contains(string(answer), "may only ask for decisions") {
						t.Errorf("%s token: %s %s (%s) = %d %s, want 403", hostName(host), m, concrete, op.OperationID, code, answer)
					}
				}
			}
		}
		sort.Strings(ops)
		if len(ops) < 30 || !slices.Contains(ops, "checkToolCall") || !slices.Contains(ops, "callableTools") {
			t.Fatalf("the OpenAPI document lists %d operations, want the check routes among them: %v", len(ops), ops)
		}
	}
	// Nothing changed: the agent still holds medium, the human still exists.
	var a admin.Agent
	e.must(200, "GET", "/api/v1/hosts/acme/agents/"+agentID, e.acme, nil, &a)
	if a.Disabled || len(a.Servers) != 1 || a.Servers[0].Level != "medium" {
		t.Fatalf("agent after the check token's attempts = %+v", a)
	}
	// The token's scope is listed, and an unknown scope is refused.
	var toks admin.Page[admin.Token]
	e.must(200, "GET", "/api/v1/hosts/acme/tokens", e.acme, nil, &toks)
	scopes := map[string]int{}
	for _, tk := range toks.Items {
		scopes[tk.Scope]++
	}
	if scopes["admin"] != 1 || scopes["check"] != 1 {
		t.Fatalf("token scopes listed = %v", scopes)
	}
	e.problem(400, "POST", "/api/v1/hosts/acme/tokens", e.acme, admin.TokenCreate{Name: "x", Scope: "root"}, "scope")
}

func hostName(host string) string {
	if host == "" {
		return "global"
	}
	return "host " + host
}
