package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
)

// trackerSetup is what setupTracker leaves running: the gateway, a global admin token, and
// host acme serving the upstream as "tracker" to alice@acme.test, granted up to high.
type trackerSetup struct {
	p        *process
	admin    string
	up       *mcpserver.Upstream
	resource string // the MCP endpoint: <gateway>/h/acme/mcp/tracker
	email    string
	password string
	metrics  string // the Prometheus endpoint: http://<metrics-listen>/metrics
}

// setupTracker starts the binary and the upstream, bootstraps an admin token, creates host
// acme, imports the upstream as "tracker" and grants alice@acme.test up to high.
func setupTracker(t *testing.T) trackerSetup {
	t.Helper()
	return setupTrackerWith(t, nil)
}

// setupTrackerWith is setupTracker with a chance to change the upstream before its import.
func setupTrackerWith(t *testing.T, prepare func(*mcpserver.Upstream)) trackerSetup {
	t.Helper()
	dir := t.TempDir()
	metrics := freeAddr(t)
	p := start(t, "--data-dir", dir, "--metrics-listen", metrics)
	up := mcpserver.Start(t, "")
	if prepare != nil {
		prepare(up)
	}
	admin := bootstrapToken(t, "e2e", "--data-dir", dir)
	seedTracker(t, p, admin, up.URL)
	return trackerSetup{p: p, admin: admin, up: up, resource: p.url + "/h/acme/mcp/tracker", metrics: "http://" + metrics + "/metrics",
		email: "alice@acme.test", password: "correct horse battery staple"}
}

// seedTracker creates host acme, imports the MCP server at url as "tracker" and grants
// alice@acme.test up to high, through the admin CLI.
func seedTracker(t *testing.T, p *process, admin, url string) {
	t.Helper()
	cli(t, p, admin, "host", "create", "acme", "--exact")
	cli(t, p, admin, "server", "import", url, "--host", "acme", "--key", "tracker")
	addClaimed(t, p, admin, "acme", "alice@acme.test", "correct horse battery staple")
	cli(t, p, admin, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")
}

// TestTypeScriptSDKClient drives the official MCP TypeScript SDK client (tests/ts, pinned in
// its package-lock.json) through the whole flow against the real binary: discovery,
// registration, PKCE authorization with sign-in and consent, token, tools/list, a permitted
// call and a denied one. The SDK side lives in tests/ts/e2e.mjs.
func TestTypeScriptSDKClient(t *testing.T) {
	s := setupTracker(t)
	stdout := runNode(t, "e2e.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD="+s.password)

	var res struct {
		OK        bool     `json:"ok"`
		Issuer    string   `json:"issuer"`
		ClientID  string   `json:"client_id"`
		Discovery []string `json:"discovery"`
		SignedIn  bool     `json:"signed_in"`
		Consented bool     `json:"consented"`
		Tools     []string `json:"tools"`
		Allowed   string   `json:"allowed"`
		Denied    string   `json:"denied"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("e2e.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK || res.Issuer != s.p.url+"/h/acme" || res.ClientID == "" || !res.SignedIn || !res.Consented {
		t.Fatalf("e2e.mjs result: %+v", res)
	}
	// The discovery the SDK did itself: 401 from the MCP endpoint, RFC 9728, RFC 8414, RFC 7591, token.
	for _, want := range []string{
		"POST /h/acme/mcp/tracker 401",
		"/.well-known/oauth-protected-resource",
		"/.well-known/oauth-authorization-server",
		"POST /h/acme/register 201",
		"POST /h/acme/token 200",
	} {
		if !slices.ContainsFunc(res.Discovery, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("SDK requests %q lack %q", res.Discovery, want)
		}
	}
	if strings.Join(res.Tools, ",") != "create_issue,list_issues" {
		t.Errorf("tools/list = %v, want create_issue and list_issues only", res.Tools)
	}
	if !strings.Contains(res.Allowed, "create_issue called: ts") {
		t.Errorf("allowed call = %q", res.Allowed)
	}
	if !strings.Contains(res.Denied, "delete_issue") || !strings.Contains(res.Denied, "high") {
		t.Errorf("denied call = %q", res.Denied)
	}
}

// TestTypeScriptSDKDynamicMCPLink: the documented Dynamic MCP link,
// <gateway>/h/acme/mcp?upstream_mcp=<upstream URL>, works with the TypeScript SDK client as it
// is: the 401 points at the link's own metadata (query kept), the metadata announces the link
// as the resource, the SDK sends that as its RFC 8707 resource and the authorization server
// grants it (the link pre-selects the server), and the proxy accepts the token at the link.
func TestTypeScriptSDKDynamicMCPLink(t *testing.T) {
	s := setupTracker(t)
	cli(t, s.p, s.admin, "host", "update", "acme", "--dynamic-mcps")
	query := "upstream_mcp=" + url.QueryEscape(s.up.URL)
	link := s.p.url + "/h/acme/mcp?" + query
	stdout := runNode(t, "dynamic_link.mjs", "MCP_URL="+link, "EMAIL="+s.email, "PASSWORD="+s.password)

	var res struct {
		OK           bool     `json:"ok"`
		Metadata     string   `json:"metadata"`
		Resource     string   `json:"resource"`
		ChosenServer string   `json:"chosen_server"`
		MCPRequests  []string `json:"mcp_requests"`
		Tools        []string `json:"tools"`
		Allowed      string   `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("dynamic_link.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK {
		t.Fatalf("dynamic_link.mjs result: %+v", res)
	}
	if want := "/.well-known/oauth-protected-resource/h/acme/mcp?" + query; res.Metadata != want {
		t.Errorf("metadata fetched at %s, want %s", res.Metadata, want)
	}
	if res.Resource != link {
		t.Errorf("RFC 8707 resource %s, want the link %s", res.Resource, link)
	}
	if res.ChosenServer != "tracker" {
		t.Errorf("server pre-selected by the link: %q, want tracker", res.ChosenServer)
	}
	if len(res.MCPRequests) == 0 || slices.ContainsFunc(res.MCPRequests, func(q string) bool { return q != "?"+query }) {
		t.Errorf("authenticated MCP requests went to %q, want the link's query only", res.MCPRequests)
	}
	if strings.Join(res.Tools, ",") != "create_issue,list_issues" || !strings.Contains(res.Allowed, "create_issue called: link") {
		t.Errorf("through the link: tools %v, call %q", res.Tools, res.Allowed)
	}
}

// runNode runs one of the SDK scripts in tests/ts with env and returns the last line it printed
// (its JSON result). It skips (fails under CI=true) when node or the pinned SDK is missing.
func runNode(t *testing.T, script string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return startNode(ctx, t, script, env...).result(ctx, t)
}

// backgroundNode is one of the SDK scripts in tests/ts running while the test drives the
// gateway; its output may be read while it runs.
type backgroundNode struct {
	script         string
	stdout, stderr lockedBuffer
	exited         chan error // receives the script's end once
}

// startNode starts script with env until ctx ends. It skips (fails under CI=true) when node or
// the pinned SDK is missing.
func startNode(ctx context.Context, t *testing.T, script string, env ...string) *backgroundNode {
	t.Helper()
	n := &backgroundNode{script: script, exited: make(chan error, 1)}
	cmd := nodeCommand(ctx, t, script, env...)
	cmd.Stdout, cmd.Stderr = &n.stdout, &n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exited <- cmd.Wait() }()
	return n
}

// result waits for the script to end (at most until ctx ends) and returns the last line it
// printed (its JSON result); the test fails when it failed or printed nothing.
func (n *backgroundNode) result(ctx context.Context, t *testing.T) string {
	t.Helper()
	var err error
	select {
	case err = <-n.exited:
	case <-ctx.Done():
		err = <-n.exited // the context kills the process
	}
	if ctx.Err() != nil {
		t.Fatalf("node %s did not finish in time\nstdout:\n%s\nstderr:\n%s", n.script, n.stdout.String(), n.stderr.String())
	}
	if err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", n.script, err, n.stdout.String(), n.stderr.String())
	}
	t.Logf("%s: %s", n.script, strings.TrimSpace(n.stdout.String()))
	out := lines(n.stdout.String())
	if len(out) == 0 {
		t.Fatalf("%s printed nothing\nstderr:\n%s", n.script, n.stderr.String())
	}
	return out[len(out)-1]
}

// lockedBuffer is a bytes.Buffer that a process writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nodeCommand is the command that runs one of the SDK scripts in tests/ts with env. It skips
// (fails under CI=true) when node or the pinned SDK is missing.
func nodeCommand(ctx context.Context, t *testing.T, script string, env ...string) *exec.Cmd {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("ts", "node_modules", "@modelcontextprotocol", "sdk", "package.json"))
	}
	if err != nil {
		msg := "TypeScript SDK test needs node and tests/ts/node_modules (" + err.Error() + "): run `make test` or `npm ci --prefix tests/ts`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = "ts"
	// localhost is 127.0.0.1 first, where the gateway listens (a public URL of
	// http://localhost:<port> is what passkey tests use).
	cmd.Env = append(append(cleanEnv(), "NODE_OPTIONS=--dns-result-order=ipv4first"), env...)
	return cmd
}

// TestTypeScriptSDKStreamingAndRevocation: through the gateway, with the TypeScript SDK client,
// permitted calls give exactly what direct calls give (a slow tool and a tool streaming
// progress among them), the progress events arrive while the call is still running, a denied
// call gets the gateway's error, and the kill switch pulled mid-session denies the next call.
func TestTypeScriptSDKStreamingAndRevocation(t *testing.T) {
	s := setupTrackerWith(t, (*mcpserver.Upstream).AddStreamingTools)
	stdout := runNode(t, "stream.mjs", "MCP_URL="+s.resource, "EMAIL="+s.email, "PASSWORD="+s.password,
		"UPSTREAM_URL="+s.up.URL, "API_URL="+s.p.url, "ADMIN_TOKEN="+s.admin, "HOST=acme")
	var res struct {
		OK        bool     `json:"ok"`
		Same      []string `json:"same"`
		Progress  []int    `json:"progress"`
		WatchMS   int      `json:"watch_ms"`
		SlowMS    int      `json:"slow_ms"`
		Denied    string   `json:"denied"`
		AfterKill string   `json:"after_kill"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stream.mjs output is not JSON: %v\n%s", err, stdout)
	}
	if !res.OK || len(res.Same) != 4 {
		t.Fatalf("stream.mjs result: %+v", res)
	}
	if len(res.Progress) != mcpserver.WatchSteps || res.Progress[0] >= res.WatchMS/2 {
		t.Errorf("progress events at %v ms of a %d ms call: want %d, the first early", res.Progress, res.WatchMS, mcpserver.WatchSteps)
	}
	if res.SlowMS < 1500 {
		t.Errorf("slow tool answered in %d ms through the gateway, want >= 1500", res.SlowMS)
	}
	if !strings.Contains(res.AfterKill, "denied") && !strings.Contains(res.AfterKill, "revoked") && !strings.HasPrefix(res.AfterKill, "refused: ") {
		t.Errorf("call after the kill switch: %q, want a denial or the revoked grant refused", res.AfterKill)
	}
}
