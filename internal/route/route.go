// Package route holds what makes a gorilla/mux route table answer as net/http's ServeMux did
// for the gateway: GET routes also serve HEAD, route variables are the request's path values,
// an unmatched path gets 404 (or 405 with Allow when another method would match), and a path
// that is not clean is redirected to its clean form.
package route

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/gorilla/mux"
)

// Methods is methods plus HEAD when GET is one of them (a GET handler answers HEAD too).
func Methods(methods ...string) []string {
	if slices.Contains(methods, http.MethodGet) && !slices.Contains(methods, http.MethodHead) {
		return append(slices.Clone(methods), http.MethodHead)
	}
	return methods
}

// PathValues makes the matched route's variables the request's path values (what handlers read
// with r.PathValue), unescaped as net/http unescapes wildcards. Routers built with
// UseEncodedPath match the escaped path, so a variable may hold an escaped slash.
func PathValues(next http.Handler) http.Handler { return PathValuesExcept()(next) }

// PathValuesExcept is PathValues without the variables named: those a router's own middleware
// reads, which its routes' handlers do not.
func PathValuesExcept(names ...string) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for name, value := range mux.Vars(r) {
				if slices.Contains(names, name) {
					continue
				}
				if v, err := url.PathUnescape(value); err == nil {
					value = v
				}
				r.SetPathValue(name, value)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// NotFound answers a request no route of router took: 405 Method Not Allowed with the methods
// that would match in Allow, else 404, both as net/http's ServeMux answers them. self is the
// catch-all route it serves (left out when the methods are tried).
func NotFound(router *mux.Router, self *mux.Route) http.Handler {
	var once sync.Once
	var candidates []string
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { candidates = declaredMethods(router) })
		var allowed []string
		for _, m := range candidates {
			if m == r.Method {
				continue
			}
			other := *r
			other.Method = m
			var match mux.RouteMatch
			if router.Match(&other, &match) && match.MatchErr == nil && match.Route != self {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			http.NotFound(w, r)
			return
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	})
}

// declaredMethods is every method a route of router names.
func declaredMethods(router *mux.Router) []string {
	var methods []string
	_ = router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		ms, _ := rt.GetMethods()
		for _, m := range ms {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
		return nil
	})
	return methods
}

// CleanPaths redirects a request whose path is not clean (//, /./, /../) to the clean path, as
// net/http's ServeMux does: 307 Temporary Redirect, the query kept, CONNECT left alone. The
// escaped path is cleaned, so an escaped slash is never taken for a separator.
func CleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			escaped := r.URL.EscapedPath()
			if clean := cleanPath(escaped); clean != escaped {
				u := &url.URL{Path: clean, RawQuery: r.URL.RawQuery}
				http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// AddSlash redirects to the request's path with a slash appended, as net/http's ServeMux does
// for /tree when only /tree/ is routed.
func AddSlash() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &url.URL{Path: cleanPath(r.URL.Path) + "/", RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
	})
}

// cleanPath is the canonical path: rooted, without . and .. elements or repeated slashes,
// keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			return p
		}
		np += "/"
	}
	return np
}

// NewRouter is a router that matches the escaped path (an escaped slash is not a separator, as
// for net/http's patterns) and leaves cleaning to CleanPaths.
func NewRouter() *mux.Router {
	return mux.NewRouter().SkipClean(true).UseEncodedPath()
}

// CatchAll registers, as r's last route, one that takes every request no other route of r took
// and answers it with NotFound.
func CatchAll(r *mux.Router) *mux.Route {
	rt := r.NewRoute()
	return rt.Handler(NotFound(r, rt))
}

// Under matches requests whose path starts with prefix: a cheap gate before a router whose
// routes all start with it, so that other requests skip their patterns. (A prefix of the
// escaped path is one of the decoded path too, so the gate lets through all the router takes.)
func Under(prefix string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return strings.HasPrefix(r.URL.Path, prefix) }
}
