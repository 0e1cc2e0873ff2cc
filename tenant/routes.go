package tenant

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/internal/route"
)

// Request is the host a request was routed to, as the route table found it.
type Request struct {
	// Key is the host key as the request names it, not yet checked (see ValidKey).
	Key string
	// Path is the path within the host's URL (/mcp/linear for /h/acme/mcp/linear), for choosing
	// how to answer when the host cannot be served; handlers see the request's own path.
	Path string
	// Named reports whether the path names the host (/h/{host}…, or the well-known form
	// /.well-known/{name}/h/{host}…); the bare public URL and subdomains do not.
	Named bool
	// Origin reports whether the request was addressed to the bare public URL (or to a Host
	// the table does not know): the default host's URL, and the origin of every host's URL
	// under path routing (see AtOrigin).
	Origin bool
}

// Resolver checks the host of a request before its route's handler runs (it exists, it can be
// read). It returns the context to serve the request with, r's with the host in it (WithHost,
// or WithStoredHost when it read the host), or false when it has answered the request itself.
type Resolver func(w http.ResponseWriter, r *http.Request, req Request) (context.Context, bool)

// Mount registers routes, relative to a host's base URL, under every form of a host's URL, in
// the order the forms are tried:
//
//  1. /.well-known/{name}/h/{host}…: the well-known routes (those under /.well-known/) where
//     RFC 8414 and RFC 9728 put them for an issuer or resource with a path;
//  2. /h/{host}…;
//  3. {host}.<public host> when subdomain routing is on (case-insensitive, any port);
//  4. the bare public URL, any other Host: the default host.
//
// Each form runs resolve (nil: the host is put in the request context unchecked), then the
// route's handler with the route's variables as path values. What no route takes gets 404,
// or 405 with Allow when another method would be taken. Register the gateway's own routes on
// root before calling Mount: the last form takes every request.
func (u URLs) Mount(root *mux.Router, resolve Resolver, routes ...func(r *mux.Router)) {
	wellKnown := root.MatcherFunc(route.Under("/.well-known/")).Subrouter()
	wellKnown.Use(enter(resolve, wellKnownRequest), mountValues)
	mountWellKnown(wellKnown, routes)
	unknown := wellKnown.PathPrefix("/.well-known/{name}" + pathPrefix + "{host}")
	unknown.Handler(route.NotFound(wellKnown, unknown))

	named := root.PathPrefix(pathPrefix + "{host:[^/]*}").Subrouter()
	named.Use(enter(resolve, namedRequest), mountValues)
	register(named, routes)

	if u.Subdomains {
		// The host's name is matched case-insensitively (a variable is the only place a
		// pattern of one's own goes); the port is ignored.
		sub := root.Host("{host:[^.]*}.{public:(?i)" + regexp.QuoteMeta(u.Public.Hostname()) + "}").Subrouter()
		sub.Use(enter(resolve, subdomainRequest), mountValues)
		register(sub, routes)
	}

	bare := root.NewRoute().Subrouter()
	bare.Use(enter(resolve, bareRequest), mountValues)
	register(bare, routes)
}

// mountValues makes the variables of a route, not those of the form (which enter reads), the
// request's path values.
var mountValues = route.PathValuesExcept("host", "public", "trailing")

// register adds routes to a form's router and, last, its catch-all.
func register(r *mux.Router, routes []func(r *mux.Router)) {
	for _, add := range routes {
		add(r)
	}
	route.CatchAll(r)
}

// mountWellKnown registers, for every well-known route (/.well-known/{name}…), the same handler
// at /.well-known/{name}/h/{host}…, with one optional trailing slash.
func mountWellKnown(r *mux.Router, routes []func(r *mux.Router)) {
	declared := mux.NewRouter()
	for _, add := range routes {
		add(declared)
	}
	_ = declared.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := rt.GetPathTemplate()
		if err != nil || rt.GetHandler() == nil {
			return nil
		}
		rest, ok := strings.CutPrefix(tpl, "/.well-known/")
		if !ok {
			return nil
		}
		name, sub, _ := strings.Cut(rest, "/")
		if sub != "" {
			sub = "/" + sub
		}
		inserted := r.Path("/.well-known/" + name + pathPrefix + "{host}" + sub + "{trailing:/?}").Handler(rt.GetHandler())
		if methods, err := rt.GetMethods(); err == nil {
			inserted.Methods(methods...)
		}
		return nil
	})
}

// enter puts the host of the request in its context, runs resolve, and marks a request to the
// origin (AtOrigin).
func enter(resolve Resolver, request func(r *http.Request) Request) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req := request(r)
			ctx, ok := WithHost(r.Context(), req.Key), true
			if resolve != nil {
				ctx, ok = resolve(w, r, req)
			}
			if !ok {
				return
			}
			if req.Origin {
				ctx = context.WithValue(ctx, originKey{}, true)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

func bareRequest(r *http.Request) Request {
	return Request{Key: DefaultHost, Path: r.URL.Path, Origin: true}
}

func subdomainRequest(r *http.Request) Request {
	return Request{Key: strings.ToLower(mux.Vars(r)["host"]), Path: r.URL.Path}
}

func namedRequest(r *http.Request) Request {
	path := "/"
	if rest := strings.TrimPrefix(r.URL.Path, pathPrefix); strings.Contains(rest, "/") {
		path = rest[strings.IndexByte(rest, '/'):]
	}
	return Request{Key: unescape(mux.Vars(r)["host"]), Path: path, Named: true}
}

func wellKnownRequest(r *http.Request) Request {
	vars := mux.Vars(r)
	p := r.URL.Path
	if name, after, ok := strings.Cut(strings.TrimPrefix(p, "/.well-known/"), pathPrefix); ok {
		_, sub, _ := strings.Cut(after, "/")
		p = strings.TrimSuffix("/.well-known/"+name+"/"+sub, "/")
	}
	return Request{Key: unescape(vars["host"]), Path: p, Named: true}
}

// unescape is a host key from the escaped path the routes match.
func unescape(s string) string {
	if v, err := url.PathUnescape(s); err == nil {
		return v
	}
	return s
}
