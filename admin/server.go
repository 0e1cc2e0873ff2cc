package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/catalog/discovery"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/tenant"
)

// Syncer applies the store's pending relationship changes to the authorization backend.
type Syncer interface {
	Sync(ctx context.Context) (authzserver.Revision, error)
}

// Config is what the admin API needs.
type Config struct {
	Store  Store
	Syncer Syncer
	Keys   *secrets.Keyring
	// URLs builds the public URLs of hosts (MCP URL, client configuration).
	URLs tenant.URLs
	// Discovery and HostNetworks configure the catalog made when Catalog is nil (see
	// catalog.Config): discovery's timeouts, and what servers on network "host" may reach.
	Discovery    discovery.Options
	HostNetworks ssrf.Policy
	Logger       *slog.Logger
	// Audit receives one entry per change to who may do what (see audit.go). Nil disables
	// those entries; only tests that build an API directly leave it nil.
	Audit audit.Appender
	// Decider answers the check routes (check.go): the MCP proxy. Nil: they answer 501.
	Decider Decider
	// Backend is the authorization backend, uncached: the explain route (explain.go) asks it
	// for the engine's trace of a check when it implements authzserver.Explainer. Nil, or a
	// backend that cannot trace: explanations come from the store alone and say so.
	Backend authzserver.Backend
	// Behind says whether a host's calls are refused because the authorization backend has
	// not applied its relationship changes (authzserver.Lag.Behind): a Host's
	// relationships_behind. Nil: never.
	Behind func(host string) bool
	// Approvals decides held calls (approvals.go). Nil: deciding answers 501.
	Approvals Approvals
	// Catalog discovers, imports and syncs servers and changes tools (flagging changed tools
	// and recording new ones on sync, as the proxy does when a tools/list answer shows them).
	// Nil: one on Store, Audit, Keys, Discovery and HostNetworks, without metrics.
	Catalog *catalog.Catalog
	// CheckAuthConfig, when set, checks a sign-in method's settings before they are stored
	// (the single sign-on packages know their configs: an issuer URL, a client id...); an
	// error is answered 400 with its text. secretSet says whether a secret will be stored.
	CheckAuthConfig func(method string, config json.RawMessage, secretSet bool) error
	// ConditionsUnsupported, when set, says why tools' argument conditions cannot be set
	// (the Permit backend has no caveats); setting them is refused with it.
	ConditionsUnsupported string
}

// API serves /api/v1.
type API struct {
	cfg Config
	log *slog.Logger
}

// New makes the admin API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Syncer == nil || cfg.Keys == nil {
		return nil, errors.New("admin API needs a store, a relationship syncer and a keyring")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Catalog == nil {
		cfg.Catalog = catalog.New(catalog.Config{Store: cfg.Store, Audit: cfg.Audit, Log: cfg.Logger,
			Discovery: cfg.Discovery, HostNetworks: cfg.HostNetworks, Keys: cfg.Keys})
	}
	return &API{cfg: cfg, log: cfg.Logger}, nil
}

// Routes registers the admin API on r: every route of the table (the OpenAPI document lists the
// same), the OpenAPI document, and a 404 problem for any other path under /api/. Every route
// but the OpenAPI document needs a bearer token.
func (a *API) Routes(r *mux.Router) {
	r.Path("/api").Handler(route.AddSlash())
	for _, rt := range a.routes() {
		r.Methods(route.Methods(rt.Method)...).Path(rt.Path).Handler(route.PathValues(a.wrap(rt)))
	}
	r.Methods(route.Methods(http.MethodGet)...).Path(openAPIPath).HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.OpenAPI())
	})
	r.PathPrefix("/api/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, toProblem(problemf(http.StatusNotFound, "no API route %s %s; see %s", r.Method, r.URL.Path, openAPIPath), requestID(r), a.log))
	})
}

// openAPIPath serves the OpenAPI document.
const openAPIPath = "/api/v1/openapi.json"

// Handler serves the admin API alone (its Routes), as the gateway serves it.
func (a *API) Handler() http.Handler {
	r := route.NewRouter()
	a.Routes(r)
	route.CatchAll(r)
	return route.CleanPaths(r)
}

func (a *API) wrap(rt Route) http.Handler { return a.wrapWith(rt, a.authenticate) }

// wrapWith serves rt for the caller authenticate finds: an API token's holder, or the person
// the dashboard acts for (principal.go).
func (a *API) wrapWith(rt Route, authenticate func(*http.Request) (*caller, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		c, err := authenticate(r)
		if err == nil {
			err = c.authorize(r, rt)
		}
		if err == nil {
			err = checkQuery(r, rt)
		}
		if err != nil {
			if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="trustgate admin API"`)
			}
			writeProblem(w, toProblem(err, id, a.log))
			return
		}
		status, body, err := rt.handle(a, r, c)
		if err == nil || errors.As(err, new(notEnforced)) {
			a.auditChange(r, rt, c, id) // saved, even when not enforced yet
		}
		if err != nil {
			writeProblem(w, toProblem(err, id, a.log))
			return
		}
		if stream, ok := body.(jsonlStream); ok {
			if err := stream(w); err != nil {
				a.log.Warn("admin API stream ended early", "request_id", id, "err", err)
			}
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

// sync makes a change the store just committed enforced before the API answers, so that the
// next check sees it. When SpiceDB cannot be reached the change stays in the store's outbox
// and is applied automatically; the caller is told it is not enforced yet.
func (a *API) sync(ctx context.Context) error {
	if _, err := a.cfg.Syncer.Sync(ctx); err != nil {
		a.log.Error("change saved but not yet applied to SpiceDB", "err", err)
		return notEnforced{problemf(http.StatusServiceUnavailable, "the change was saved but is not enforced yet: %v; it will be applied automatically when the authorization backend answers", err)}
	}
	return nil
}

// notEnforced is the error of a change that was saved but not yet applied to SpiceDB.
type notEnforced struct{ error }

func (e notEnforced) Unwrap() error { return e.error }

// requestID is the caller's X-Request-Id when it is reasonable, else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 {
		return id
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timePtr is nil for the zero time, so "never" shows as an absent field.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
