package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// resolveHost checks the host the route table found for a request (tenant.Mount): an unknown
// host gets "host not found", a host that cannot be read 503 (but on MCP paths, see below). The
// host is read once, from the never-stale cache, and handed on in the request context
// (tenant.StoredHost). The default host at the bare URL or its subdomain is not read here.
func (g *Gateway) resolveHost(w http.ResponseWriter, r *http.Request, req tenant.Request) (context.Context, bool) {
	host, path := req.Key, req.Path
	ctx := r.Context()
	lookup := host != tenant.DefaultHost || req.Named
	if lookup || isMCPPath(path) {
		// One read of the control-plane generation for the whole request: the host lookup
		// and the proxy's reads are then answered from memory while nothing has changed.
		// (When the store is down this fails and so does the lookup below.)
		if snap, err := g.hot.Snapshot(ctx); err == nil {
			ctx = snap
		}
	}
	if !lookup {
		return tenant.WithHost(ctx, host), true
	}
	if !tenant.ValidKey(host) {
		hostNotFound(w, r, host, path)
		return nil, false
	}
	h, err := g.hot.GetHost(ctx, host)
	switch {
	case err == nil:
		return tenant.WithStoredHost(ctx, h), true
	case errors.Is(err, store.ErrNotFound):
		hostNotFound(w, r, host, path)
		return nil, false
	case isMCPPath(path):
		// The proxy reads the store again, fails closed and answers with a JSON-RPC error the
		// MCP client shows (it would take a bare 503 for a broken transport).
		return tenant.WithHost(ctx, host), true
	default:
		g.cfg.Logger.Error("host lookup failed", "host", host, "err", err)
		storeUnavailable(w)
		return nil, false
	}
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
