package tests

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

// TestReplicasShareTheAuthorizationFlow runs two gateway processes over one PostgreSQL
// database behind a round-robin load balancer without sticky sessions: every request of the
// authorization flow reaches the other process than the one before, and the flow completes,
// because pending authorization requests are kept in the database.
// replicaPair is two gateway processes over one PostgreSQL database behind a round-robin load
// balancer without sticky sessions, with host acme, its server tracker (imported through p1)
// and alice@acme.test granted high on it (through p2).
type replicaPair struct {
	lb       *httptest.Server
	p1, p2   *process
	requests *atomic.Int64 // requests the balancer has seen
	admin    string        // a global admin token
}

// extra are more flags of both processes.
func startReplicaPair(t *testing.T, extra ...string) replicaPair {
	t.Helper()
	db := services.Postgres(t)
	var (
		targets []*url.URL
		next    atomic.Int64
	)
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := targets[int(next.Add(1))%len(targets)]
		(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		}}).ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	args := append([]string{"--database", db, "--master-key", strings.Repeat("5a", 32), "--public-url", lb.URL}, extra...)
	p1 := start(t, args...)
	p2 := start(t, args...)
	for _, p := range []*process{p1, p2} {
		u, _ := url.Parse(p.url)
		targets = append(targets, u)
	}

	up := mcpserver.Start(t, "")
	admin := bootstrapToken(t, "e2e", "--database", db)
	cli(t, p1, admin, "host", "create", "acme", "--exact")
	cli(t, p1, admin, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	addClaimed(t, p2, admin, "acme", "alice@acme.test", "correct horse battery staple")
	cli(t, p2, admin, "human", "grant", "alice@acme.test", "tracker", "--level", "high", "--host", "acme")
	return replicaPair{lb: lb, p1: p1, p2: p2, requests: &next, admin: admin}
}

func TestReplicasShareTheAuthorizationFlow(t *testing.T) {
	rp := startReplicaPair(t)
	lb, next := rp.lb, rp.requests

	issuer := lb.URL + "/h/acme"
	conf := registerClient(t, issuer, "replica agent")

	// The host's MCP URL, without a server: the flow has a page more (the choice of server),
	// whose answer changes the pending request.
	verifier := oauth2.GenerateVerifier()
	b := webclient.New(t, lb.URL)
	page := b.Get(conf.AuthCodeURL("replica-state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", issuer+"/mcp")))
	page = b.Submit(page, map[string]string{"email": "alice@acme.test", "password": "correct horse battery staple"})
	if !strings.Contains(page.Body, `value="tracker"`) {
		t.Fatalf("after sign-in: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"server": "tracker"})
	if !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("after choosing the server: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"trust_level": "medium", "decision": "allow"})
	if page.Loc == nil || page.Loc.Query().Get("code") == "" || page.Loc.Query().Get("state") != "replica-state-1" {
		t.Fatalf("consent redirect = %v (%d %s)", page.Loc, page.Status, page.Body)
	}
	ctx := context.Background()
	tok, err := conf.Exchange(ctx, page.Loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if n := next.Load(); n < 6 {
		t.Fatalf("the load balancer saw %d requests", n)
	}
}
