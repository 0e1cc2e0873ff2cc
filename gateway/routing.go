package gateway

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// hostRouting resolves the host (tenant) of every request from its subdomain or /h/{host}
// prefix, answers "host not found" for unknown hosts, and hands the request on with the host in
// its context and the prefix removed from its path.
func (g *Gateway) hostRouting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, path := g.urls.Resolve(r)
		ctx := r.Context()
		lookup := host != tenant.DefaultHost || path != r.URL.Path
		if lookup || isMCPPath(path) {
			// One read of the control-plane generation for the whole request: the host lookup
			// and the proxy's reads are then answered from memory while nothing has changed.
			// (When the store is down this fails and so does the lookup below.)
			if snap, err := g.hot.Snapshot(ctx); err == nil {
				ctx = snap
			}
		}
		if lookup {
			if !tenant.ValidKey(host) {
				hostNotFound(w, r, host, path)
				return
			}
			if _, err := g.hot.GetHost(ctx, host); err != nil {
				switch {
				case errors.Is(err, store.ErrNotFound):
					hostNotFound(w, r, host, path)
					return
				case isMCPPath(path):
					// The proxy reads the store again, fails closed and answers with a JSON-RPC
					// error the MCP client shows (it would take a bare 503 for a broken transport).
				default:
					g.cfg.Logger.Error("host lookup failed", "host", host, "err", err)
					storeUnavailable(w)
					return
				}
			}
		}
		r2 := r.WithContext(tenant.WithHost(ctx, host))
		if path != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = path, ""
			r2.URL = &u
		}
		next.ServeHTTP(w, r2)
	})
}

var notFoundPage = template.Must(template.New("host-not-found").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Host not found</title></head>
<body><main><h1>Host not found</h1><p>host not found: {{.}}</p>
<p>Check the address, or ask your administrator for your organisation's trustgate URL.</p></main></body></html>
`))

// hostNotFound answers 404 "host not found: X": JSON for API and MCP paths and for clients
// that ask for JSON, a page for browsers.
func hostNotFound(w http.ResponseWriter, r *http.Request, host, path string) {
	msg := "host not found: " + host
	machine := strings.HasPrefix(path, "/api/") || isMCPPath(path) ||
		strings.HasPrefix(path, "/.well-known/") || !strings.Contains(r.Header.Get("Accept"), "text/html")
	if machine {
		writeProblem(w, http.StatusNotFound, msg)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	_ = notFoundPage.Execute(w, host)
}

func isMCPPath(path string) bool { return path == "/mcp" || strings.HasPrefix(path, "/mcp/") }

// storeUnavailable answers 503 when the host cannot be looked up because the store fails.
func storeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeProblem(w, http.StatusServiceUnavailable, "trustgate could not read its configuration; try again shortly")
}

// writeProblem answers an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}
