package dashboard_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// decidingEnv is the dashboard whose admin API decides with a real MCP proxy and explains with
// the embedded SpiceDB, as in the gateway, and may import servers on loopback.
type decidingEnv struct {
	*env
	audit *audit.Log
}

func newDecidingEnv(t *testing.T) *decidingEnv {
	t.Helper()
	ctx := context.Background()
	cp := controlplane.New(t)
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(cp.Store, audit.Options{})
	t.Cleanup(func() { _ = log.Close(context.Background()) })
	srv := httptest.NewUnstartedServer(nil)
	urls, err := tenant.NewURLs("http://"+srv.Listener.Addr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := accesstoken.Open(ctx, cp.Store, keys, accesstoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Store: cp.Store, Backend: cp.Backend, KeySet: ks, URLs: urls, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(admin.Config{Store: cp.Store, Syncer: cp.Writer, Keys: keys, URLs: urls, Audit: log,
		Decider: p, Backend: cp.Backend,
		HostNetworks: ssrf.PublicAnd(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))})
	if err != nil {
		t.Fatal(err)
	}
	d := serveDashboard(t, cp, keys, log, api, srv, urls, nil)
	for _, h := range []string{tenant.DefaultHost, "acme", "beta"} {
		if _, err := cp.Store.EnsureHost(ctx, store.Host{Key: h}); err != nil {
			t.Fatal(err)
		}
	}
	return &decidingEnv{env: &env{t: t, store: cp.Store, dash: d, srv: srv, urls: urls}, audit: log}
}

// seed imports the test MCP server as "tracker" through the dashboard, grants alice a ceiling
// of high and gives her agent Cursor medium; it returns the admin's browser and the agent.
func (e *decidingEnv) seed() (*browser, store.Agent) {
	e.t.Helper()
	up := mcpserver.Start(e.t, "")
	e.human("acme", "boss@acme.test", true)
	alice := e.human("acme", "alice@acme.test", false)
	b := e.signIn("boss@acme.test", "acme")
	csrf := b.csrf()
	if status, body, _ := b.post("/dashboard/hosts/acme/servers", url.Values{"csrf_token": {csrf}, "url": {up.URL}, "key": {"tracker"},
		// The review table: each tool enabled at its proposed level.
		"tool-0": {"create_issue"}, "level-0": {"medium"}, "enabled-0": {"on"},
		"tool-1": {"delete_issue"}, "level-1": {"high"}, "enabled-1": {"on"},
		"tool-2": {"list_issues"}, "level-2": {"low"}, "enabled-2": {"on"},
	}); status >= 300 && status != http.StatusSeeOther {
		e.t.Fatalf("import = %d\n%s", status, body)
	}
	if status, body, _ := b.post("/dashboard/hosts/acme/humans/alice@acme.test/grants", url.Values{"csrf_token": {csrf}, "server": {"tracker"}, "ceiling": {"high"}}); status != http.StatusSeeOther {
		e.t.Fatalf("grant = %d\n%s", status, body)
	}
	ag, err := e.store.CreateAgent(context.Background(), store.Agent{Host: "acme", UserID: alice.ID, ClientID: "client-1", Name: "Cursor", RedirectURIs: []string{"http://127.0.0.1:1/cb"}})
	if err != nil {
		e.t.Fatal(err)
	}
	if status, body, _ := b.post("/dashboard/hosts/acme/agents/"+ag.ID+"/servers/tracker/level", url.Values{"csrf_token": {csrf}, "level": {"medium"}}); status != http.StatusSeeOther {
		e.t.Fatalf("set level = %d\n%s", status, body)
	}
	return b, ag
}

func TestWhyPageExplainsADenialFromActivity(t *testing.T) {
	e := newDecidingEnv(t)
	b, ag := e.seed()

	// A denied call in the audit log links to its explanation.
	if err := e.audit.Append(context.Background(), audit.Entry{Host: "acme", AgentID: ag.ID, ClientName: "Cursor", Server: "tracker", Tool: "delete_issue",
		Method: "tools/call", Decision: audit.Denied, Reason: "level_too_low", RequiredLevel: "high", AgentLevel: "medium"}); err != nil {
		t.Fatal(err)
	}
	_, activity, _ := b.get("/dashboard/hosts/acme/activity")
	prefix := "/dashboard/hosts/acme/why?agent=" + ag.ID + "&amp;server=tracker&amp;tool=delete_issue&amp;entry="
	i := strings.Index(activity, `href="`+prefix)
	if i < 0 {
		t.Fatalf("activity has no Why? link %s…:\n%s", prefix, activity)
	}
	link := activity[i+len(`href="`):]
	link = strings.ReplaceAll(link[:strings.IndexByte(link, '"')], "&amp;", "&")
	status, body, _ := b.get(link)
	if status != http.StatusOK {
		t.Fatalf("why = %d\n%s", status, body)
	}
	for _, want := range []string{
		`<span class="error">Denied</span>: Cursor → tracker/delete_issue`,
		"Decided here: </span>agent &#34;Cursor&#34; holds level medium on tracker, below the tool&#39;s level high.",
		"Holds: </span>Tool delete_issue is enabled and needs level high.",
		"<code>tool:acme/tracker/delete_issue#server_high@mcp_server:acme/tracker</code>",
		"<code>mcp_server:acme/tracker#granted_medium@agent:acme/" + ag.ID + "</code>",
		"SpiceDB's trace of the check",
		"<code>tool:acme/tracker/delete_issue#call</code>",
		// The entry it came from, and that its denial still holds.
		"The denied call: activity entry",
		"was denied (<code>level_too_low</code>).", "Then: the agent held medium; the tool needed high;",
		"The same denial holds now",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("why page lacks %q", want)
		}
	}
	// The same link once the agent holds high: the page says the entry's denial no longer holds.
	if status, body, _ := b.post("/dashboard/hosts/acme/agents/"+ag.ID+"/servers/tracker/level", url.Values{"csrf_token": {b.csrf()}, "level": {"high"}}); status != http.StatusSeeOther {
		t.Fatalf("set level = %d\n%s", status, body)
	}
	if _, body, _ := b.get(link); !strings.Contains(body, "would be allowed now") || !strings.Contains(body, `<span class="ok">Allowed</span>`) {
		t.Errorf("why page of an entry whose denial no longer holds:\n%s", body)
	}
	if status, _, _ := b.post("/dashboard/hosts/acme/agents/"+ag.ID+"/servers/tracker/level", url.Values{"csrf_token": {b.csrf()}, "level": {"medium"}}); status != http.StatusSeeOther {
		t.Fatalf("set level back = %d", status)
	}

	// An allowed call, asked from the agent's page form.
	_, agentPage, _ := b.get("/dashboard/hosts/acme/agents/" + ag.ID)
	if !strings.Contains(agentPage, `action="/dashboard/hosts/acme/why"`) || !strings.Contains(agentPage, `name="agent" value="`+ag.ID+`"`) {
		t.Errorf("agent page has no Why? form:\n%s", agentPage)
	}
	_, body, _ = b.get("/dashboard/hosts/acme/why?agent=" + ag.ID + "&server=tracker&tool=create_issue")
	if !strings.Contains(body, `<span class="ok">Allowed</span>`) || strings.Contains(body, "Decided here") {
		t.Errorf("allowed why page:\n%s", body)
	}
	// Without a question: the form alone.
	if status, body, _ := b.get("/dashboard/hosts/acme/why"); status != http.StatusOK || !strings.Contains(body, `<label for="why-tool">Tool</label>`) || strings.Contains(body, "The path") {
		t.Errorf("empty why page = %d\n%s", status, body)
	}
}
