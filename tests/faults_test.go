package tests

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
)

// faultSetup is a gateway serving host acme with the upstream "tracker" reached through a
// faultline, and an agent consented at medium with an open MCP session.
type faultSetup struct {
	p       *process
	admin   string
	up      *mcpserver.Upstream
	line    *faultline
	session *mcp.ClientSession
}

// setupFaults starts the gateway with serveArgs, an upstream behind a faultline, imports it,
// grants alice and connects an agent at medium.
func setupFaults(t *testing.T, serveArgs []string, storeArgs []string) faultSetup {
	t.Helper()
	p := start(t, append(append([]string{}, serveArgs...), storeArgs...)...)
	up := mcpserver.Start(t, "")
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	line := newFaultline(t, u.Host)
	admin := bootstrapToken(t, "e2e", storeArgs...)
	seedTracker(t, p, admin, "http://"+line.Addr()+u.Path)
	resource := p.url + "/h/acme/mcp/tracker"
	token := connectAgent(t, p.url, p.url+"/h/acme", resource, "alice@acme.test", "correct horse battery staple", "medium")
	// Calls only: the SDK ends a session whose standalone SSE stream cannot be re-opened (a
	// 5xx while the upstream is broken), as it would talking to the upstream directly; that
	// race is the SDK's, and these tests are about what each call gets.
	s := mcpSession(t, resource, token, func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true })
	if text, ok := callText(t, s, "create_issue", map[string]any{"title": "healthy"}); !ok || !strings.Contains(text, "create_issue called: healthy") {
		t.Fatalf("call with every dependency healthy: %q", text)
	}
	return faultSetup{p: p, admin: admin, up: up, line: line, session: s}
}

// auditCovers checks the audit log against what reached the upstream: every create_issue call
// the upstream received has an "allowed" entry (written before it was forwarded), and there
// are at least wantErrors "error" entries (calls refused because a dependency failed).
func auditCovers(t *testing.T, f faultSetup, wantErrors int) {
	t.Helper()
	var entries []struct {
		Decision string `json:"decision"`
		Tool     string `json:"tool"`
		Reason   string `json:"reason"`
	}
	cliJSON(t, f.p, f.admin, &entries, "audit", "list", "--host", "acme", "--all")
	allowed, errs := 0, 0
	for _, e := range entries {
		switch {
		case e.Decision == "allowed" && e.Tool == "create_issue":
			allowed++
		case e.Decision == "error":
			errs++
		}
	}
	reached := 0
	for _, c := range f.up.Calls() {
		if c == "create_issue" {
			reached++
		}
	}
	if allowed < reached {
		t.Errorf("the upstream received %d create_issue calls but the audit log allows only %d", reached, allowed)
	}
	if errs < wantErrors {
		t.Errorf("audit log has %d error entries, want at least %d: %+v", errs, wantErrors, entries)
	}
}

// expectCallError calls create_issue and wants a JSON-RPC error containing want.
func expectCallError(t *testing.T, s *mcp.ClientSession, what, want string) {
	t.Helper()
	text, ok := callText(t, s, "create_issue", map[string]any{"title": what})
	if ok || !strings.Contains(text, want) {
		t.Fatalf("%s: call answered ok=%v %q, want an error containing %q", what, ok, text, want)
	}
}

// expectRecovery waits until calls succeed again.
func expectRecovery(t *testing.T, s *mcp.ClientSession, what string) {
	t.Helper()
	var text string
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		var ok bool
		if text, ok = callText(t, s, "create_issue", map[string]any{"title": what}); ok {
			if !strings.Contains(text, "create_issue called: "+what) {
				t.Fatalf("%s: %q", what, text)
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: calls did not succeed again within 45s; last answer %q", what, text)
}

func TestUpstreamDownHangingOrTalkingGarbage(t *testing.T) {
	dir := t.TempDir()
	f := setupFaults(t, nil, []string{"--data-dir", dir})

	f.line.set(faultDown)
	expectCallError(t, f.session, "upstream down", "could not be reached")
	f.line.set(faultPass)
	expectRecovery(t, f.session, "upstream back")

	// A hanging upstream: the server's first-byte timeout ends the wait with an error.
	cli(t, f.p, f.admin, "server", "update", "tracker", "--host", "acme", "--first-byte-timeout", "1s")
	f.line.set(faultHang)
	expectCallError(t, f.session, "upstream hangs", "did not answer in time")
	f.line.set(faultPass)
	expectRecovery(t, f.session, "upstream answers again")

	f.line.set(faultGarbage)
	expectCallError(t, f.session, "upstream garbage", "invalid response")
	f.line.set(faultPass)
	expectRecovery(t, f.session, "upstream sane again")
	auditCovers(t, f, 0)
}

// TestAuthorizationBackendDown: the gateway uses a remote SpiceDB (another trustgate's exposed
// embedded SpiceDB) reached through a faultline. While it is unreachable every call is refused
// with an error that says so and readiness fails; when it is back, calls succeed again.
func TestAuthorizationBackendDown(t *testing.T) {
	key := "e2e-fault-key"
	grpcAddr := freeAddr(t)
	start(t, "--data-dir", t.TempDir(), "--spicedb-grpc-listen", grpcAddr, "--spicedb-preshared-key", key, "--spicedb-grpc-allow-writes")
	spicedb := newFaultline(t, grpcAddr)
	dir := t.TempDir()
	f := setupFaults(t, []string{"--spicedb-endpoint", spicedb.Addr(), "--spicedb-insecure", "--spicedb-token", key},
		[]string{"--data-dir", dir})

	spicedb.set(faultDown)
	expectCallError(t, f.session, "spicedb down", "authorization backend")
	if code, body := getJSON(t, f.p.url+"/readyz"); code != 503 || !strings.Contains(body, "spicedb") {
		t.Errorf("readyz with SpiceDB down = %d %s", code, body)
	}
	spicedb.set(faultPass)
	expectRecovery(t, f.session, "spicedb back")
	auditCovers(t, f, 1)
}

// TestAuthorizationBackendStopped: the SpiceDB the gateway uses is another trustgate's embedded
// SpiceDB (on the same PostgreSQL database, so its data outlives the process), exposed over
// gRPC. That process is stopped: every call is refused with an error that says so; it is started
// again: calls succeed again without touching the gateway.
func TestAuthorizationBackendStopped(t *testing.T) {
	db := services.Postgres(t)
	key, master := "e2e-fault-key", strings.Repeat("6b", 32)
	grpcAddr, spiceListen := freeAddr(t), freeAddr(t)
	spiceArgs := []string{"serve", "--listen", spiceListen, "--database", db, "--data-dir", t.TempDir(), "--master-key", master,
		"--spicedb-grpc-listen", grpcAddr, "--spicedb-preshared-key", key, "--spicedb-grpc-allow-writes", "--metrics-listen", ""}
	spicedb := waitReady(t, launchEnv(t, spiceListen, nil, spiceArgs...))
	f := setupFaults(t, []string{"--spicedb-endpoint", grpcAddr, "--spicedb-insecure", "--spicedb-token", key, "--master-key", master},
		[]string{"--database", db, "--data-dir", t.TempDir()})

	spicedb.stopCleanly(t)
	expectCallError(t, f.session, "spicedb stopped", "authorization backend")
	waitReady(t, launchEnv(t, spiceListen, nil, spiceArgs...))
	expectRecovery(t, f.session, "spicedb started again")
	auditCovers(t, f, 1)
}

// TestStoreDown: the gateway's PostgreSQL (its store and its embedded SpiceDB's datastore) is
// reached through a faultline. While it is unreachable calls are refused, nothing forwarded;
// when it is back, calls succeed again.
func TestStoreDown(t *testing.T) {
	db := services.Postgres(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	pg := newFaultline(t, u.Host)
	u.Host = pg.Addr()
	f := setupFaults(t, nil, []string{"--database", u.String(), "--data-dir", t.TempDir()})

	pg.set(faultDown)
	before := len(f.up.Calls())
	// The token check reads the revocations through the store: with the store down the request
	// is refused with 503 before the JSON-RPC layer (fail closed), where it was -31002 before.
	expectCallError(t, f.session, "store down", "Service Unavailable")
	if got := len(f.up.Calls()); got != before {
		t.Errorf("with the store down the upstream still received %d calls", got-before)
	}
	pg.set(faultPass)
	expectRecovery(t, f.session, "store back")
	// With the store down no entry could be written, so nothing was forwarded (checked above).
	auditCovers(t, f, 0)
}
