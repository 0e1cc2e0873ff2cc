package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/store"
)

// newRoutingGateway is a gateway with subdomain routing, metrics, and a host acme with a
// server linear.
func newRoutingGateway(t *testing.T) *Gateway {
	t.Helper()
	ctx := context.Background()
	g, err := New(ctx, Config{
		Listen:           "127.0.0.1:0",
		PublicURL:        "http://gw.example.test",
		SubdomainRouting: true,
		MetricsListen:    "127.0.0.1:0",
		DataDir:          t.TempDir(),
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	if _, err := g.store.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.store.CreateServer(ctx, store.Server{Host: "acme", Key: "linear", Name: "Linear", URL: "https://mcp.linear.app/mcp"}); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRoutingAnswers pins how the route table answers what no handler decides: path
// cleaning, trailing slashes, HEAD, methods a path does not take, escaped slashes, unknown
// hosts, and the forms a host is reached by.
func TestRoutingAnswers(t *testing.T) {
	g := newRoutingGateway(t)
	routes := g.routes()
	const page = "text/html"
	for _, c := range []struct {
		method, host, target, accept string
		status                       int
		location, allow, body        string
	}{
		// Gateway-level routes.
		{"GET", "gw.example.test", "/healthz", "", 200, "", "", `"ok"`},
		{"HEAD", "gw.example.test", "/healthz", "", 200, "", "", ""},
		{"POST", "gw.example.test", "/healthz", "", 404, "", "", "404 page not found"},
		{"GET", "acme.gw.example.test", "/healthz", "", 200, "", "", `"ok"`},
		{"GET", "gw.example.test", "/api", "", 307, "/api/", "", ""},
		{"GET", "gw.example.test", "/api/", "", 404, "", "", "no API route GET /api/"},
		{"PUT", "gw.example.test", "/api/v1/hosts", "", 404, "", "", "no API route PUT /api/v1/hosts"},
		{"GET", "gw.example.test", "/api/v1/hosts", "", 401, "", "", ""},
		{"HEAD", "gw.example.test", "/api/v1/hosts", "", 401, "", "", ""},
		{"GET", "gw.example.test", "/api/v1/openapi.json", "", 200, "", "", `"openapi"`},

		// The gateway's own routes are the gateway's, not a host's (before one route table,
		// /h/acme/healthz and /h/acme/api/… were served too, and an unknown subdomain's
		// /healthz was "host not found").
		{"GET", "gw.example.test", "/h/acme/healthz", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/h/acme/api/v1/hosts", "", 404, "", "", "404 page not found"},
		{"GET", "nope.gw.example.test", "/healthz", "", 200, "", "", `"ok"`},

		// Clean paths: a redirect keeps the query and the host's prefix (before one route
		// table, /h/acme//mcp was sent to /mcp, the default host's); an escaped slash is not a
		// separator.
		{"GET", "gw.example.test", "/h/acme//mcp", "", 307, "/h/acme/mcp", "", ""},
		{"GET", "gw.example.test", "//healthz?x=1", "", 307, "/healthz?x=1", "", ""},
		{"GET", "gw.example.test", "/a/../healthz", "", 307, "/healthz", "", ""},
		{"GET", "gw.example.test", "/mcp/a%2F..%2Fb", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/h/acme/mcp/a%2Fb", "", 404, "", "", "404 page not found"},

		// The OAuth server: HEAD with GET, 405 with Allow, trailing slashes.
		{"HEAD", "gw.example.test", "/.well-known/jwks.json", "", 200, "", "", ""},
		{"PUT", "gw.example.test", "/authorize", "", 405, "", "GET, HEAD", "Method Not Allowed"},
		{"PUT", "gw.example.test", "/h/acme/token", "", 405, "", "OPTIONS, POST", "Method Not Allowed"},
		{"PUT", "acme.gw.example.test", "/signup", "", 405, "", "GET, HEAD, POST", "Method Not Allowed"},
		{"OPTIONS", "gw.example.test", "/h/acme/register", "", 204, "", "", ""},
		{"GET", "gw.example.test", "/authorize/", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/nowhere", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/h/acme", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/h/acme/", "", 404, "", "", "404 page not found"},
		{"GET", "gw.example.test", "/h", "", 404, "", "", "404 page not found"},

		// The metadata of a host reached by path, in both places.
		{"GET", "gw.example.test", "/.well-known/oauth-authorization-server/h/acme", "", 200, "", "", `"issuer":"http://acme.gw.example.test"`},
		{"GET", "gw.example.test", "/.well-known/oauth-authorization-server/h/acme/", "", 200, "", "", `"issuer":"http://acme.gw.example.test"`},
		{"GET", "gw.example.test", "/h/acme/.well-known/oauth-authorization-server", "", 200, "", "", `"issuer":"http://acme.gw.example.test"`},
		{"GET", "gw.example.test", "/.well-known/openid-configuration/h/acme", "", 200, "", "", `"issuer":"http://acme.gw.example.test"`},
		{"GET", "gw.example.test", "/.well-known/oauth-protected-resource/h/acme/mcp/linear", "", 200, "", "", `"resource":"http://acme.gw.example.test/mcp/linear"`},
		{"GET", "gw.example.test", "/.well-known/oauth-protected-resource/h/acme/mcp", "", 200, "", "", `"resource":"http://acme.gw.example.test/mcp"`},
		{"GET", "gw.example.test", "/.well-known/jwks.json/h/acme", "", 200, "", "", `"keys"`},
		{"GET", "gw.example.test", "/.well-known/oauth-protected-resource/mcp", "", 200, "", "", `"resource":"http://gw.example.test/mcp"`},
		{"GET", "acme.gw.example.test", "/.well-known/oauth-protected-resource/mcp", "", 200, "", "", `"resource":"http://acme.gw.example.test/mcp"`},
		{"GET", "ACME.gw.example.test:8080", "/.well-known/oauth-authorization-server", "", 200, "", "", `"issuer":"http://acme.gw.example.test"`},
		{"GET", "a.b.gw.example.test", "/.well-known/oauth-authorization-server", "", 200, "", "", `"issuer":"http://gw.example.test"`},
		{"GET", "evil.example", "/.well-known/oauth-authorization-server", "", 200, "", "", `"issuer":"http://gw.example.test"`},
		{"GET", "acme.gw.example.test", "/h/default/.well-known/oauth-authorization-server", "", 200, "", "", `"issuer":"http://gw.example.test"`},

		// Unknown hosts: JSON for machines, a page for browsers.
		{"POST", "gw.example.test", "/h/nope/mcp", "", 404, "", "", "host not found: nope"},
		{"GET", "gw.example.test", "/h/nope/authorize", page, 404, "", "", "<h1>Host not found</h1>"},
		{"GET", "gw.example.test", "/h/nope/.well-known/oauth-authorization-server", page, 404, "", "", `"detail":"host not found: nope"`},
		{"GET", "gw.example.test", "/.well-known/oauth-authorization-server/h/nope", page, 404, "", "", `"detail":"host not found: nope"`},
		{"GET", "gw.example.test", "/.well-known/unknown/h/nope", "", 404, "", "", "host not found: nope"},
		{"GET", "gw.example.test", "/h/nope/nowhere", page, 404, "", "", "<h1>Host not found</h1>"},
		{"GET", "gw.example.test", "/h/Acme/authorize", "", 404, "", "", "host not found: Acme"},
		{"GET", "gw.example.test", "/h/", "", 404, "", "", "host not found: "},
		{"GET", "nope.gw.example.test", "/authorize", page, 404, "", "", "<h1>Host not found</h1>"},
		{"GET", "a_b.gw.example.test", "/mcp", "", 404, "", "", "host not found: a_b"},
	} {
		r := httptest.NewRequest(c.method, "http://"+c.host+c.target, nil)
		if c.accept != "" {
			r.Header.Set("Accept", c.accept)
		}
		w := httptest.NewRecorder()
		routes.ServeHTTP(w, r)
		name := c.method + " " + c.host + c.target
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", name, w.Code, c.status, w.Body)
			continue
		}
		if got := w.Header().Get("Location"); got != c.location {
			t.Errorf("%s: Location %q, want %q", name, got, c.location)
		}
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s: Allow %q, want %q", name, got, c.allow)
		}
		if !strings.Contains(w.Body.String(), c.body) {
			t.Errorf("%s: body lacks %q: %s", name, c.body, w.Body)
		}
	}
}

// TestMetricsRoute: /metrics answers GET and HEAD; other methods get 405, other paths 404.
func TestMetricsRoute(t *testing.T) {
	g := newRoutingGateway(t)
	h := g.metricsServer.Handler
	for _, c := range []struct {
		method, target string
		status         int
		allow          string
	}{
		{"GET", "/metrics", 200, ""},
		{"HEAD", "/metrics", 200, ""},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"GET", "/metrics/", 404, ""},
		{"GET", "/", 404, ""},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.target, nil))
		if w.Code != c.status || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.target, w.Code, w.Header().Get("Allow"), c.status, c.allow)
		}
	}
}
