package gateway

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// tableRoute is one route of the table: where it is and what it takes.
type tableRoute struct {
	host, path string
	methods    string // comma-separated, "" for any
}

func walkRoutes(t *testing.T, r *mux.Router) []tableRoute {
	t.Helper()
	var routes []tableRoute
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if rt.GetHandler() == nil {
			return nil // a form's router, not a route
		}
		path, _ := rt.GetPathTemplate()
		host, _ := rt.GetHostTemplate()
		methods, _ := rt.GetMethods()
		routes = append(routes, tableRoute{host, path, strings.Join(methods, ",")})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// TestRouteTable walks the gateway's route table: every route a host serves is there under
// the bare URL (default host), /h/{host} and the host's subdomain, and a well-known one also at
// /.well-known/{name}/h/{host}; each is taken there with the host and variables the path
// names. The gateway's own routes (probes, the admin API) are at the bare paths of any host,
// and the admin API's routes are the ones its OpenAPI document lists.
func TestRouteTable(t *testing.T) {
	g := newRoutingGateway(t)
	table := g.routeTable()
	routes := walkRoutes(t, table)
	has := func(want tableRoute) bool { return slices.Contains(routes, want) }
	const subdomain = `{host:[^.]*}.{public:(?i)gw\.example\.test}`

	declared := mux.NewRouter()
	for _, add := range g.hostRoutes() {
		add(declared)
	}
	hostRoutes := walkRoutes(t, declared)
	if len(hostRoutes) < 20 {
		t.Fatalf("only %d host routes declared: %v", len(hostRoutes), hostRoutes)
	}
	for _, hr := range hostRoutes {
		forms := []tableRoute{
			{"", hr.path, hr.methods},
			{"", "/h/{host:[^/]*}" + hr.path, hr.methods},
			{subdomain, hr.path, hr.methods},
		}
		if rest, ok := strings.CutPrefix(hr.path, "/.well-known/"); ok {
			name, sub, _ := strings.Cut(rest, "/")
			if sub != "" {
				sub = "/" + sub
			}
			forms = append(forms, tableRoute{"", "/.well-known/" + name + "/h/{host}" + sub + "{trailing:/?}", hr.methods})
		}
		for _, f := range forms {
			if !has(f) {
				t.Errorf("host route %s %s is not in the table as %+v", hr.methods, hr.path, f)
				continue
			}
			// The table takes a request of that form with that route, with the host it names.
			method, _, _ := strings.Cut(f.methods, ",")
			if method == "" {
				method = http.MethodPost
			}
			reqHost, wantHost := "gw.example.test", "acme"
			if f.host != "" {
				reqHost = "acme.gw.example.test"
			}
			target := strings.NewReplacer("{host:[^/]*}", "acme", "{host}", "acme", "{server}", "linear", "{token}", "tok", "{trailing:/?}", "").Replace(f.path)
			if !strings.Contains(f.path, "{host") && f.host == "" {
				wantHost = ""
			}
			var m mux.RouteMatch
			if !table.Match(httptest.NewRequest(method, "http://"+reqHost+target, nil), &m) || m.MatchErr != nil {
				t.Errorf("%s %s%s is not taken: %v", method, reqHost, target, m.MatchErr)
				continue
			}
			path, _ := m.Route.GetPathTemplate()
			host, _ := m.Route.GetHostTemplate()
			if path != f.path || host != f.host || m.Vars["host"] != wantHost {
				t.Errorf("%s %s%s is taken by %s%s with host %q, want %s%s with host %q", method, reqHost, target, host, path, m.Vars["host"], f.host, f.path, wantHost)
			}
		}
	}

	// The gateway's own routes.
	for _, want := range []tableRoute{
		{"", "/healthz", "GET,HEAD"},
		{"", "/readyz", "GET,HEAD"},
		{"", "/api", ""},
		{"", "/api/", ""},
		{"", "/api/v1/openapi.json", "GET,HEAD"},
	} {
		if !has(want) {
			t.Errorf("gateway route %+v is not in the table", want)
		}
	}
	for _, rt := range routes {
		if strings.Contains(rt.path, "healthz") || strings.Contains(rt.path, "readyz") || strings.Contains(rt.path, "/api") {
			if rt.host != "" || strings.HasPrefix(rt.path, "/h/") {
				t.Errorf("gateway route %+v is served under a host", rt)
			}
		}
	}

	// The admin API's routes are the operations of its OpenAPI document.
	documented := map[string]bool{}
	for path, item := range g.admin.OpenAPI()["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range routes {
		if !strings.HasPrefix(rt.path, "/api/v1/") {
			continue
		}
		for m := range strings.SplitSeq(rt.methods, ",") {
			if m != http.MethodHead {
				routed[m+" "+rt.path] = true
			}
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("the OpenAPI document lists %s, which is not routed", op)
		}
	}
	for op := range routed {
		if !documented[op] {
			t.Errorf("%s is routed but not in the OpenAPI document", op)
		}
	}
	if len(routed) < 30 {
		t.Errorf("only %d admin operations routed", len(routed))
	}
}
