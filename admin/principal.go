package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// Principal is a person the web dashboard acts for, after it has checked their session and
// role: an operator (Host "": every host, as a global token) or an admin of one host (as a
// token of that host). The dashboard makes every change through the API's own routes as its
// principal (PrincipalHandler), so the same checks, rules and audit entries apply.
type Principal struct {
	// Host is the one host the person administers; "" for an operator.
	Host string
	// Actor names the person in audit entries, e.g. "dashboard:alice@example.com".
	Actor string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, for a request to PrincipalHandler.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalHandler serves the admin API's routes (the same table, handlers and audit entries as
// Handler) to callers in this process: the caller is the Principal in the request's context,
// never a bearer token. Without a principal every route answers 401. It is never mounted on a
// listener; the dashboard calls it in process.
func (a *API) PrincipalHandler() http.Handler {
	r := route.NewRouter()
	for _, rt := range a.routes() {
		r.Methods(route.Methods(rt.Method)...).Path(rt.Path).Handler(route.PathValues(a.wrapWith(rt, principalCaller)))
	}
	route.CatchAll(r)
	return r
}

// principalCaller is the caller of a request to PrincipalHandler: an administering token of the
// principal's host (or a global one), named after the person.
func principalCaller(r *http.Request) (*caller, error) {
	p, ok := r.Context().Value(principalKey{}).(Principal)
	if !ok || p.Actor == "" {
		return nil, problemf(http.StatusUnauthorized, "no signed-in person")
	}
	if p.Host != "" && !tenant.ValidKey(p.Host) {
		return nil, errors.New("admin: principal of an invalid host")
	}
	return &caller{token: store.APIToken{ID: "dashboard", Host: p.Host, Scope: store.TokenScopeAdmin}, person: p.Actor}, nil
}
