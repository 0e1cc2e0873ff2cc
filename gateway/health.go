package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// readinessTimeout bounds each dependency's answer to a readiness probe.
const readinessTimeout = 2 * time.Second

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("/api/", g.telemetry.Handler("admin", g.admin.Handler())) // a span per request when tracing
	mux.Handle("/mcp", g.proxy.Handler())
	mux.Handle("/mcp/", g.proxy.Handler())
	// Everything else of a host is its OAuth server: discovery, registration, sign-in,
	// consent and tokens.
	mux.Handle("/", g.oauth.Handler())
	return g.hostRouting(mux)
}

// healthz answers while the process is up.
func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// readyz answers 200 when the store and SpiceDB both answer, else 503 naming the failing part.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]func(context.Context) error{
		"store":   g.store.Ping,
		"spicedb": g.backend.Ready,
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
