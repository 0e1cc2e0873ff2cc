package tests

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

const notReachable = "the MCP server could not be reached"

// hostToken creates an API token of host through the API with the global token.
func hostToken(t *testing.T, p *process, global, host string) string {
	t.Helper()
	out := cli(t, p, global, "token", "create", "--host", host, "--name", host+"-admin")
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}

// closedPortURL is an MCP URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	return "http://" + freeAddr(t) + "/mcp"
}

// refusedImport runs `server import` with token, expects it to fail with the "not reachable"
// text, and returns that line of the output.
func refusedImport(t *testing.T, p *process, token string, args ...string) string {
	t.Helper()
	full := append([]string{"admin", "--url", p.url, "--token", token, "server", "import"}, args...)
	out, err := run(t, 60*time.Second, full...)
	if err == nil {
		t.Fatalf("server import %v by a host's token succeeded:\n%s", args, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, notReachable) {
			for _, leak := range []string{"refused", "timeout", "127.0.0.1", "169.254", "10.0.0.1", "dial", "not allowed"} {
				if strings.Contains(line, leak) {
					t.Errorf("server import %v: %q reveals %q", args, line, leak)
				}
			}
			return line
		}
	}
	t.Fatalf("server import %v: output lacks %q:\n%s", args, notReachable, out)
	return ""
}

// TestUpstreamNetworkPolicy: by default a host's API token can neither import nor dry-run a
// server on loopback, a private or a link-local address, and the answer is the same for an
// open port, a closed port and the cloud metadata address (no port scanner). The operator's
// global token imports the loopback server; an agent calls it; once the operator restricts the
// server to the hosts' networks, the next call is refused at dial time with "not reachable",
// and audited.
func TestUpstreamNetworkPolicy(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "--data-dir", dir)
	global := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, global, "host", "create", "acme", "--exact")
	acme := hostToken(t, p, global, "acme")
	up := mcpserver.Start(t, "")

	var answers []string
	byName := strings.Replace(up.URL, "127.0.0.1", "localhost", 1) // a name: checked once resolved, at dial time
	for _, u := range []string{up.URL, byName, closedPortURL(t), "http://169.254.169.254/", "http://10.0.0.1:8080/mcp"} {
		answers = append(answers,
			refusedImport(t, p, acme, u, "--host", "acme", "--key", "internal", "--dry-run"),
			refusedImport(t, p, acme, u, "--host", "acme", "--key", "internal"))
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Fatalf("a host's token gets different answers for different addresses:\n%q\n%q", answers[0], a)
		}
	}
	if out, err := run(t, 60*time.Second, "admin", "--url", p.url, "--token", acme, "server", "import", up.URL, "--host", "acme", "--network", "any"); err == nil ||
		!strings.Contains(out, "global API token") {
		t.Fatalf("a host's token chose network any: %v\n%s", err, out)
	}

	// The operator imports it (network any by default), and an agent calls it.
	var res admin.ImportResult
	cliJSON(t, p, global, &res, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	if res.Server.Network != "any" || res.Server.Tools != 3 {
		t.Fatalf("the operator's import: %+v", res.Server)
	}
	if list := cli(t, p, global, "server", "list", "--host", "acme"); !strings.Contains(list, "NETWORK") || !strings.Contains(list, " any ") {
		t.Errorf("server list does not show the network:\n%s", list)
	}
	addClaimed(t, p, global, "acme", "alice@acme.test", "correct horse battery staple")
	cli(t, p, global, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	s := mcpSession(t, resource, token, func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true })
	if text, ok := callText(t, s, "create_issue", map[string]any{"title": "internal"}); !ok || !strings.Contains(text, "create_issue called: internal") {
		t.Fatalf("call to the operator's loopback server: %q", text)
	}

	// Restricted to the hosts' networks (public only here), the next call is refused.
	show := cli(t, p, global, "server", "update", "tracker", "--host", "acme", "--network", "host")
	if !strings.Contains(show, "host") {
		t.Fatalf("server update --network host:\n%s", show)
	}
	reached := len(up.Calls())
	text, ok := callText(t, s, "create_issue", map[string]any{"title": "restricted"})
	if ok || !strings.Contains(text, "the MCP server Issue Tracker could not be reached") {
		t.Fatalf("call after the restriction: ok=%v %q", ok, text)
	}
	for _, leak := range []string{"127.0.0.1", "refused", "dial", "not allowed"} {
		if strings.Contains(text, leak) {
			t.Errorf("the agent's error %q reveals %q", text, leak)
		}
	}
	if len(up.Calls()) != reached {
		t.Error("the call reached the upstream off its network")
	}
	var entries []struct {
		Decision string `json:"decision"`
		Tool     string `json:"tool"`
		Reason   string `json:"reason"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cliJSON(t, p, global, &entries, "audit", "list", "--host", "acme", "--all")
		found := false
		for _, e := range entries {
			if e.Decision == "result" && e.Tool == "create_issue" && strings.Contains(e.Reason, "could not be reached") {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry for the refused call: %+v", entries)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The host's admin cannot widen it again; the operator can.
	if out, err := run(t, 60*time.Second, "admin", "--url", p.url, "--token", acme, "server", "update", "tracker", "--host", "acme", "--network", "any"); err == nil ||
		!strings.Contains(out, "global API token") {
		t.Fatalf("a host's token set network any: %v\n%s", err, out)
	}
	cli(t, p, global, "server", "update", "tracker", "--host", "acme", "--network", "any")
	if text, ok := callText(t, s, "create_issue", map[string]any{"title": "again"}); !ok || !strings.Contains(text, "create_issue called: again") {
		t.Fatalf("call after the operator allowed any network again: %q", text)
	}
}

// TestUpstreamAllowCIDR: with --upstream-allow-cidr 127.0.0.0/8 (here through its environment
// variable) a host's token imports the loopback server, on network host; the metadata address
// stays out of reach.
func TestUpstreamAllowCIDR(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	p := waitReady(t, launchEnv(t, addr, []string{"TRUSTGATE_UPSTREAM_ALLOW_CIDR=127.0.0.0/8"}, "serve", "--listen", addr, "--data-dir", dir))
	global := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, global, "host", "create", "acme", "--exact")
	acme := hostToken(t, p, global, "acme")
	up := mcpserver.Start(t, "")
	var res admin.ImportResult
	cliJSON(t, p, acme, &res, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	if res.Server.Network != "host" || res.Server.Tools != 3 {
		t.Fatalf("the host's import of an allowed network: %+v", res.Server)
	}
	refusedImport(t, p, acme, "http://169.254.169.254/", "--host", "acme", "--dry-run")
	cli(t, p, acme, "server", "sync", "tracker", "--host", "acme")
}

// TestRestrictedServersIgnoreEnvironmentProxies: with HTTP_PROXY set, a server on network any
// is reached through that proxy (here a proxy that is the only way to the server), but one on
// network host never is — the proxy would connect to the server itself, past the address
// check — even when both the server and the proxy are on networks the operator allows.
func TestRestrictedServersIgnoreEnvironmentProxies(t *testing.T) {
	up := mcpserver.Start(t, "")
	target, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	var proxied atomic.Int64
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		proxied.Add(1)
		pr.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
		pr.Out.URL.Path = target.Path
	}}
	envProxy := httptest.NewServer(rp)
	t.Cleanup(envProxy.Close)

	dir := t.TempDir()
	addr := freeAddr(t)
	p := waitReady(t, launchEnv(t, addr, []string{"HTTP_PROXY=" + envProxy.URL, "http_proxy=" + envProxy.URL, "NO_PROXY=", "no_proxy="},
		"serve", "--listen", addr, "--data-dir", dir, "--upstream-allow-cidr", "192.0.2.0/24,127.0.0.0/8"))
	global := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, global, "host", "create", "acme", "--exact")
	acme := hostToken(t, p, global, "acme")
	// A documentation address nothing answers at: only the proxy leads to the server.
	unroutable := "http://192.0.2.1/mcp"

	var res admin.ImportResult
	cliJSON(t, p, global, &res, "server", "import", unroutable, "--host", "acme", "--key", "viaproxy", "--dry-run")
	if res.Server.Tools != 3 || proxied.Load() == 0 {
		t.Fatalf("the operator's server on any network was not reached through the proxy: %+v, %d proxied", res.Server, proxied.Load())
	}
	before := proxied.Load()
	refusedImport(t, p, acme, unroutable, "--host", "acme", "--key", "viaproxy", "--dry-run")
	if proxied.Load() != before {
		t.Fatalf("a server on network host went through the environment's proxy (%d requests)", proxied.Load()-before)
	}
}
