package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// importTracker imports the test MCP server into acme as "tracker" through the dashboard's
// forms, with the proposed levels.
func (e *env) importTracker(op *browser, up *mcpserver.Upstream) {
	e.t.Helper()
	const servers = "/dashboard/hosts/acme/servers"
	_, page, _ := op.get(servers)
	form := formValues(e.t, page, servers+"/review")
	form.Set("url", up.URL)
	form.Set("key", "tracker")
	status, page, _ := op.post(servers+"/review", form)
	if status != http.StatusOK {
		e.t.Fatalf("connect = %d\n%s", status, page)
	}
	if status, page, _ := op.post(servers, formValues(e.t, page, servers)); status != http.StatusSeeOther {
		e.t.Fatalf("import = %d\n%s", status, page)
	}
}

// connectedAgent makes an agent of human u consented on tracker at level (the admin's form).
func (e *env) connectedAgent(op *browser, u store.User, name, level string) store.Agent {
	e.t.Helper()
	ag, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "acme", UserID: u.ID, ClientID: "client-" + name, Name: name, RedirectURIs: []string{"http://127.0.0.1:33418/callback"}, Type: "chat"})
	if err != nil {
		e.t.Fatal(err)
	}
	if status, body, _ := op.post("/dashboard/hosts/acme/agents/"+ag.ID+"/servers/tracker/level", url.Values{"csrf_token": {op.csrf()}, "level": {level}}); status != http.StatusSeeOther {
		e.t.Fatalf("consent %s at %s = %d\n%s", name, level, status, body)
	}
	return ag
}

// TestMyConnections: a human without the admin role signs in to "My connections": their own
// agents with server, level and ceiling (never another human's); they lower a level (raising
// is refused), disconnect an agent from a server or altogether; another human's agent is
// out of reach.
func TestMyConnections(t *testing.T) {
	e := newEnv(t)
	e.human(tenant.DefaultHost, "op@example.com", true)
	op := e.signIn("op@example.com", "")
	e.importTracker(op, mcpserver.Start(t, ""))
	alice := e.human("acme", "alice@acme.test", false)
	bob := e.human("acme", "bob@acme.test", false)
	for _, u := range []store.User{alice, bob} {
		if status, body, _ := op.post("/dashboard/hosts/acme/humans/"+u.ID+"/grants", url.Values{"csrf_token": {op.csrf()}, "server": {"tracker"}, "ceiling": {"high"}}); status >= 400 {
			t.Fatalf("grant = %d\n%s", status, body)
		}
	}
	cursor := e.connectedAgent(op, alice, "Cursor", "high")
	claude := e.connectedAgent(op, alice, "Claude", "medium")
	bobs := e.connectedAgent(op, bob, "BobsAgent", "high")

	b := e.signIn("alice@acme.test", "acme")
	if _, _, h := b.get("/"); h.Get("Location") != "/dashboard/me" {
		t.Fatalf("front page for a human sends to %q", h.Get("Location"))
	}
	status, page, _ := b.get("/dashboard/me")
	if status != http.StatusOK || !strings.Contains(page, "Cursor") || !strings.Contains(page, "Claude") || strings.Contains(page, "BobsAgent") {
		t.Fatalf("my connections = %d\n%s", status, page)
	}
	if !strings.Contains(page, e.urls.Base("acme")+"/account") {
		t.Error("no link to the account page")
	}
	level := "/dashboard/me/agents/" + cursor.ID + "/servers/tracker/level"
	form := formValues(t, page, level)
	form.Set("level", "medium")
	if status, body, _ := b.post(level, form); status != http.StatusSeeOther {
		t.Fatalf("lower = %d\n%s", status, body)
	}
	if got := e.level(cursor.ID); got != "medium" {
		t.Fatalf("level after lowering = %s", got)
	}
	form.Set("level", "high")
	if status, body, _ := b.post(level, form); status != http.StatusBadRequest || !strings.Contains(body, "only lower") {
		t.Fatalf("raise = %d\n%s", status, body)
	}
	if got := e.level(cursor.ID); got != "medium" {
		t.Fatalf("level after a refused raise = %s", got)
	}
	// Bob's agent: not hers, whatever she posts.
	for _, path := range []string{"/dashboard/me/agents/" + bobs.ID + "/servers/tracker/level", "/dashboard/me/agents/" + bobs.ID + "/servers/tracker/revoke", "/dashboard/me/agents/" + bobs.ID + "/disconnect"} {
		if status, _, _ := b.post(path, url.Values{"csrf_token": {b.csrf()}, "level": {"low"}}); status != http.StatusNotFound {
			t.Errorf("%s on another human's agent = %d; want 404", path, status)
		}
	}
	if got := e.level(bobs.ID); got != "high" {
		t.Fatalf("bob's agent changed: %s", got)
	}
	// Disconnect Claude from the server, then Cursor altogether.
	if status, body, _ := b.post("/dashboard/me/agents/"+claude.ID+"/servers/tracker/revoke", url.Values{"csrf_token": {b.csrf()}}); status != http.StatusSeeOther {
		t.Fatalf("disconnect from server = %d\n%s", status, body)
	}
	if got := e.level(claude.ID); got != "" {
		t.Fatalf("claude after disconnecting from tracker: %q", got)
	}
	if status, body, _ := b.post("/dashboard/me/agents/"+cursor.ID+"/disconnect", url.Values{"csrf_token": {b.csrf()}}); status != http.StatusSeeOther {
		t.Fatalf("disconnect = %d\n%s", status, body)
	}
	if a, err := e.store.GetAgent(context.Background(), "acme", cursor.ID); err != nil || !a.Disabled || e.level(cursor.ID) != "" {
		t.Fatalf("cursor after disconnecting: %+v %v", a, err)
	}
	if _, page, _ = b.get("/dashboard/me?done=disconnected"); strings.Contains(page, "client-Cursor") || !strings.Contains(page, "Disconnected") {
		t.Fatalf("my connections after disconnecting:\n%s", page)
	}
}

// level is the agent's level on tracker ("" for none).
func (e *env) level(agentID string) string {
	e.t.Helper()
	cs, err := e.store.ListConsents(context.Background(), "acme", agentID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cs {
		if c.Server == "tracker" {
			return c.Level.String()
		}
	}
	return ""
}
