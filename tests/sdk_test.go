package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/sdk"
)

// issueService is a small internal service of the kind the Go SDK is for: agents reach it
// directly with the access token trustgate issued them for the MCP server "tracker"; it accepts
// the token with the SDK's middleware and asks the gateway (sdk.Client.Check, with a token of
// scope check) whether the agent may create issues before it does.
func issueService(t *testing.T, rs *sdk.ResourceServer, checker *sdk.Client) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(rs.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := sdk.TokenFromContext(r.Context())
		if !ok {
			http.Error(w, "no token in the context", http.StatusInternalServerError)
			return
		}
		d, err := checker.Check(r.Context(), tok.Host, tok.Agent, "tracker", "create_issue")
		if err != nil {
			http.Error(w, "could not decide: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !d.Allowed {
			w.WriteHeader(http.StatusForbidden)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"human": tok.Human, "agent": tok.Agent, "allowed": d.Allowed, "reason": d.Reason, "message": d.Message})
	})))
	t.Cleanup(srv.Close)
	return srv
}

// serviceAnswer is what issueService answered.
type serviceAnswer struct {
	status               int
	challenge            string
	human, agent, reason string
	message              string
	allowed              bool
}

func askService(t *testing.T, url, token string) serviceAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/issues", strings.NewReader(`{"title":"from the service"}`))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := serviceAnswer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate")}
	var doc struct {
		Human, Agent, Reason, Message string
		Allowed                       bool
	}
	if resp.StatusCode == 200 || resp.StatusCode == 403 {
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("service answered %d %s", resp.StatusCode, body)
		}
	}
	a.human, a.agent, a.reason, a.message, a.allowed = doc.Human, doc.Agent, doc.Reason, doc.Message, doc.Allowed
	return a
}

// TestGoSDKServiceAgreesWithTheProxy runs the real binary, connects an agent through the real
// OAuth flow (sign-in and consent at medium), and has a service built on the Go SDK accept the
// agent's token and decide with sdk.Client.Check; after each change of the agent's level the
// service and the proxy give the same answer to the same question (may it call create_issue?).
func TestGoSDKServiceAgreesWithTheProxy(t *testing.T) {
	s := setupTracker(t)
	// The proxy's denials as -31001 errors, whose message is the one the check API answers
	// with (a denied call's tool result speaks to the agent instead).
	cli(t, s.p, s.admin, "host", "update", "acme", "--denial-format", "jsonrpc_error")
	ctx := context.Background()
	issuer := s.p.url + "/h/acme"
	token := connectAgent(t, s.p.url, issuer, s.resource, s.email, s.password, "medium")

	admin, err := sdk.NewClient(s.p.url, s.admin)
	if err != nil {
		t.Fatal(err)
	}
	agents, err := sdk.Collect(admin.Agents(ctx, "acme", s.email))
	if err != nil || len(agents) != 1 {
		t.Fatalf("agents of %s = %+v, %v", s.email, agents, err)
	}
	agent := agents[0]
	// The operator gives the service a token that may only ask for decisions.
	out := cli(t, s.p, s.admin, "token", "create", "--host", "acme", "--scope", "check", "--name", "issue service")
	secret := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	tokens, err := sdk.Collect(admin.HostTokens(ctx, "acme"))
	if err != nil || len(tokens) != 1 || tokens[0].Scope != sdk.ScopeCheck || !strings.HasPrefix(secret, tokens[0].Prefix) {
		t.Fatalf("after token create --scope check: %+v, %v (printed %q)", tokens, err, out)
	}
	checker, err := sdk.NewClient(s.p.url, secret)
	if err != nil {
		t.Fatal(err)
	}
	// The service's token decides and administers nothing.
	if _, err := checker.SetAgentLevel(ctx, "acme", agent.ID, "tracker", "high"); !sdk.IsForbidden(err) {
		t.Fatalf("a check-scoped token set a level: %v", err)
	}

	rs, err := sdk.NewResourceServer(sdk.ResourceServerConfig{Issuer: issuer, Audience: s.resource, Host: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	svc := issueService(t, rs, checker)
	session := mcpSession(t, s.resource, token)

	// agree asks the proxy (a tools/call of create_issue) and the service the same question.
	agree := func(step string, wantAllowed bool, wantReason string) {
		t.Helper()
		text, proxyAllowed := callText(t, session, "create_issue", map[string]any{"title": step})
		a := askService(t, svc.URL, token)
		if a.status != 200 && a.status != 403 {
			t.Fatalf("%s: the service refused the agent's token: %d %s", step, a.status, a.challenge)
		}
		if a.human != agent.HumanID || a.agent != agent.ID {
			t.Fatalf("%s: the service saw human %q and agent %q, want %q and %q", step, a.human, a.agent, agent.HumanID, agent.ID)
		}
		if proxyAllowed != wantAllowed || a.allowed != wantAllowed || (a.status == 200) != wantAllowed {
			t.Fatalf("%s: proxy allowed=%v (%s), service allowed=%v (%d %s); want %v", step, proxyAllowed, text, a.allowed, a.status, a.reason, wantAllowed)
		}
		// The same denial: the reason the proxy puts in its error's data, and its very message.
		if !wantAllowed && (a.reason != wantReason || a.message == "" || !strings.Contains(text, a.message)) {
			t.Fatalf("%s: service reason %q and message %q, proxy %q; want %s with the proxy's message", step, a.reason, a.message, text, wantReason)
		}
	}
	agree("consented at medium", true, "")
	if _, err := admin.SetAgentLevel(ctx, "acme", agent.ID, "tracker", "low"); err != nil {
		t.Fatal(err)
	}
	agree("lowered to low", false, "level_too_low")
	if _, err := admin.SetAgentLevel(ctx, "acme", agent.ID, "tracker", "high"); err != nil {
		t.Fatal(err)
	}
	agree("raised to high", true, "")
	if _, err := admin.SetGrant(ctx, "acme", s.email, "tracker", "low"); err != nil {
		t.Fatal(err)
	}
	agree("ceiling lowered to low", false, "ceiling_too_low")

	tools, err := checker.CallableTools(ctx, "acme", agent.ID, "tracker")
	if err != nil || strings.Join(tools, ",") != "list_issues" {
		t.Fatalf("callable tools under ceiling low = %v, %v", tools, err)
	}

	// Requests without a valid token get the challenge that starts the OAuth flow.
	metadata := s.p.url + "/.well-known/oauth-protected-resource/h/acme/mcp/tracker"
	for name, bad := range map[string]string{
		"no token":       "",
		"not a JWT":      "tgat_abc",
		"bad signature":  token[:len(token)-4] + "AAAA",
		"another issuer": forgedFor(t, token),
	} {
		a := askService(t, svc.URL, bad)
		if a.status != http.StatusUnauthorized || !strings.Contains(a.challenge, `resource_metadata="`+metadata+`"`) {
			t.Errorf("%s: %d %q, want 401 with the resource metadata", name, a.status, a.challenge)
		}
		if (bad == "") == strings.Contains(a.challenge, "invalid_token") {
			t.Errorf("%s: challenge %q", name, a.challenge)
		}
	}
	resp, err := http.Get(metadata)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the challenge's metadata URL: %v %v", resp, err)
	}
	resp.Body.Close()
	// A service that expects another resource refuses the token.
	other, _ := sdk.NewResourceServer(sdk.ResourceServerConfig{Issuer: issuer, Audience: s.p.url + "/h/acme/mcp/other", Host: "acme"})
	if _, err := other.Verify(ctx, token); err == nil {
		t.Error("a token for tracker was accepted for another resource")
	}

	// The kill switch: the proxy refuses the revoked token at once; the middleware cannot see
	// revocations (the token verifies until it expires), which is why the service asks Check,
	// and Check says the agent was disabled.
	if _, err := admin.KillAgent(ctx, "acme", agent.ID); err != nil {
		t.Fatal(err)
	}
	a := askService(t, svc.URL, token)
	if a.status != 403 || a.reason != "agent_disabled" {
		t.Fatalf("after the kill switch the service answered %d %q, want 403 agent_disabled", a.status, a.reason)
	}
	req, _ := http.NewRequest(http.MethodPost, s.resource, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("proxy after the kill switch: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
}

// forgedFor is token with its payload's issuer changed (the signature no longer matches, as
// for any forgery).
func forgedFor(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a compact JWS")
	}
	payload := fmt.Sprintf(`{"iss":"https://evil.example","exp":%d}`, time.Now().Add(time.Hour).Unix())
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + parts[2]
}
