package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/internal/route"
)

// readinessTimeout bounds each dependency's answer to a readiness probe.
const readinessTimeout = 2 * time.Second

// routes is the gateway's route table: its own routes (health, the admin API), then every
// host's routes under each form of a host's URL (tenant.Mount), the host checked once
// (resolveHost).
func (g *Gateway) routes() http.Handler { return route.CleanPaths(g.routeTable()) }

func (g *Gateway) routeTable() *mux.Router {
	root := route.NewRouter()
	g.healthRoutes(root)
	api := root.MatcherFunc(route.Under("/api")).Subrouter()
	api.Use(func(next http.Handler) http.Handler { return g.telemetry.Handler("admin", next) }) // a span per request when tracing
	g.admin.Routes(api)
	// The dashboard: the origin's / and /dashboard/… (not a host's subdomain).
	g.dashboard.Routes(root.MatcherFunc(g.atDashboard).Subrouter())
	// Everything else of a host is its MCP endpoint and its OAuth server: discovery,
	// registration, sign-in, consent and tokens.
	g.urls.Mount(root, g.resolveHost, g.hostRoutes()...)
	return root
}

// atDashboard matches the dashboard's paths at the origin: / and /dashboard/…, on the public
// host or any other Host the table takes as the default host's (with subdomain routing, a
// host's subdomain keeps its own /).
func (g *Gateway) atDashboard(r *http.Request, _ *mux.RouteMatch) bool {
	p := r.URL.Path
	if p != "/" && p != dashboard.Prefix && !strings.HasPrefix(p, dashboard.Prefix+"/") {
		return false
	}
	if !g.urls.Subdomains {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return !strings.HasSuffix(strings.ToLower(host), "."+strings.ToLower(g.urls.Public.Hostname()))
}

// hostRoutes are the routes every host's URL serves.
func (g *Gateway) hostRoutes() []func(r *mux.Router) {
	return []func(r *mux.Router){g.proxy.Routes, g.oauth.Routes, g.approvals.Routes}
}

// healthRoutes registers the probes.
func (g *Gateway) healthRoutes(r *mux.Router) {
	r.Methods(route.Methods(http.MethodGet)...).Path("/healthz").HandlerFunc(g.healthz)
	r.Methods(route.Methods(http.MethodGet)...).Path("/readyz").HandlerFunc(g.readyz)
}

// metricsRoutes registers /metrics (on its own listener).
func (g *Gateway) metricsRoutes(r *mux.Router) {
	r.Methods(route.Methods(http.MethodGet)...).Path("/metrics").Handler(g.telemetry.MetricsHandler())
}

// healthz answers while the process is up.
func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz answers 200 when the store and the authorization backend (SpiceDB or Permit's PDP)
// both answer, else 503 naming the failing part.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]func(context.Context) error{
		"store":            g.store.Ping,
		g.cfg.AuthzBackend: g.backend.Ready,
	}
	resp := readiness{Status: "ready", Checks: map[string]string{}}
	code := http.StatusOK
	for name, check := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
		err := check(ctx)
		cancel()
		if err != nil {
			g.cfg.Logger.Warn("readiness check failed", "part", name, "err", err)
			resp.Checks[name] = "failing: " + err.Error()
			resp.Status = "unavailable"
			code = http.StatusServiceUnavailable
			continue
		}
		resp.Checks[name] = "ok"
	}
	writeJSON(w, code, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
