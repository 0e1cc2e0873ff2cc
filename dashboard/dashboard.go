package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
)

// Store is what the dashboard reads itself: its setup link and sessions, the humans who sign
// in and their passwords, and the audit log it verifies. Everything it changes beyond sign-in
// goes through the admin API.
type Store interface {
	store.Dashboard
	audit.Scanner
	GetUser(ctx context.Context, host, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, host, email string) (store.User, error)
	ListUsers(ctx context.Context, host string) ([]store.User, error)
	GetUserPasswordHash(ctx context.Context, host, id string) (string, error)
	SetUserPassword(ctx context.Context, host, id, phc string) error
	AuditHeads(ctx context.Context) ([]audit.Head, error)
	GetHost(ctx context.Context, key string) (store.Host, error)
	ListAuthMethods(ctx context.Context, host string) ([]store.AuthMethod, error)
}

// Config is what the dashboard needs.
type Config struct {
	Store Store
	// API is the admin API every change goes through.
	API *admin.API
	// URLs are the gateway's public URLs: the setup link's base, Secure cookies under https.
	URLs tenant.URLs
	// CookieSecret keys the CSRF tokens (at least 32 bytes, the same on every replica).
	CookieSecret []byte
	// SignIn runs sign-ins on the hosts' own sign-in pages (the OAuth server's), with their
	// methods and domain rules.
	SignIn SignInFlow
	// Upstream signs the admin in at an MCP server that requires its own sign-in, to discover
	// its tools in Create server (nil: the form offers the credentials alone).
	Upstream *upstreamauth.Client
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is read for client addresses.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// SignInFlow is the OAuth server's sign-in for another part of the gateway (see
// oauthserver.Server.BeginSignIn): the dashboard never checks a credential itself.
type SignInFlow interface {
	BeginSignIn(ctx context.Context, host, returnURL, clientAddr string) (signInURL, binder string, err error)
	FinishSignIn(ctx context.Context, ticket, binder string) (oauthserver.SignedIn, error)
}

// SessionTTL is how long a dashboard session lasts; signing out ends it sooner.
const SessionTTL = 12 * time.Hour

// Dashboard serves the web dashboard.
type Dashboard struct {
	cfg       Config
	log       *slog.Logger
	csrf      *consentui.CSRF
	secure    bool
	cookie    string
	api       *sdk.Client
	apiRoutes http.Handler
	now       func() time.Time
	// liveSlots holds a token per open live tail (at most MaxLiveStreams).
	liveSlots chan struct{}
}

// New makes the dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Store == nil || cfg.API == nil || cfg.URLs.Public == nil || cfg.SignIn == nil {
		return nil, errors.New("dashboard needs a store, the admin API, the sign-in flow and the public URL")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	secure := cfg.URLs.Public.Scheme == "https"
	csrfName := "tg_dash_csrf"
	cookie := "tg_dash"
	if secure {
		csrfName, cookie = "__Host-tg_dash_csrf", "__Host-tg_dash"
	}
	csrf, err := consentui.NewCSRF(cfg.CookieSecret, csrfName, secure)
	if err != nil {
		return nil, err
	}
	d := &Dashboard{
		cfg: cfg, log: cfg.Logger, csrf: csrf, secure: secure, cookie: cookie,
		apiRoutes: cfg.API.PrincipalHandler(),
		now:       time.Now,
		liveSlots: make(chan struct{}, MaxLiveStreams),
	}
	// The typed SDK client, talking to the admin API's routes in process (no network, no
	// token: the principal in each request's context is the caller).
	d.api, err = sdk.NewClient("http://dashboard.invalid", "", sdk.WithRetry(sdk.Retry{Attempts: 1}),
		sdk.WithHTTPClient(&http.Client{Transport: inProcess{d.apiRoutes}}))
	if err != nil {
		return nil, err
	}
	return d, nil
}

// access is who may use a route.
type access int

const (
	public    access = iota // anyone (sign-in, setup, the front page, assets)
	signedIn                // any signed-in human (sign-out)
	hostAdmin               // operators, and a host's admins on routes under their host
	operator                // operators only
)

// page is a route of the dashboard.
type page struct {
	method, path string
	access       access
	handle       func(d *Dashboard, w http.ResponseWriter, r *http.Request, v *viewer)
}

// Prefix is where the dashboard's pages live; the front page is the origin's /.
const Prefix = "/dashboard"

func (d *Dashboard) pages() []page {
	const h = Prefix + "/hosts/{host}"
	return []page{
		{"GET", "/", public, (*Dashboard).front},
		{"GET", Prefix + "/assets/dashboard.css", public, asset("dashboard.css", "text/css; charset=utf-8")},
		{"GET", Prefix + "/assets/copy.js", public, asset("copy.js", "text/javascript; charset=utf-8")},
		{"GET", Prefix + "/assets/live.js", public, asset("live.js", "text/javascript; charset=utf-8")},
		{"GET", Prefix + "/sign-in", public, (*Dashboard).signInPage},
		{"POST", Prefix + "/sign-in", public, (*Dashboard).signIn},
		{"GET", Prefix + "/sign-in/done", public, (*Dashboard).signInDone},
		{"GET", Prefix + "/setup", public, (*Dashboard).setupPage},
		{"POST", Prefix + "/setup", public, (*Dashboard).setup},
		{"POST", Prefix + "/sign-out", signedIn, (*Dashboard).signOut},
		{"GET", Prefix + "/me", signedIn, (*Dashboard).mePage},
		{"POST", Prefix + "/me/agents/{agent}/servers/{server}/level", signedIn, (*Dashboard).lowerLevel},
		{"POST", Prefix + "/me/agents/{agent}/servers/{server}/revoke", signedIn, (*Dashboard).disconnectServer},
		{"POST", Prefix + "/me/agents/{agent}/disconnect", signedIn, (*Dashboard).disconnect},

		{"GET", Prefix + "/hosts", hostAdmin, (*Dashboard).hostsPage},
		{"POST", Prefix + "/hosts", operator, (*Dashboard).createHost},
		{"GET", h, hostAdmin, (*Dashboard).hostPage},
		{"POST", h + "/settings", hostAdmin, (*Dashboard).updateHost},
		{"GET", h + "/emergency-stop", hostAdmin, (*Dashboard).stopPage},
		{"POST", h + "/emergency-stop", hostAdmin, (*Dashboard).stopHost},
		{"POST", h + "/emergency-stop/lift", hostAdmin, (*Dashboard).liftStop},
		{"GET", h + "/auth", hostAdmin, (*Dashboard).authPage},
		{"POST", h + "/auth/{method}", hostAdmin, (*Dashboard).setAuthMethod},
		{"POST", h + "/auth/{method}/reset", hostAdmin, (*Dashboard).resetAuthMethod},
		{"POST", h + "/tokens", hostAdmin, (*Dashboard).createToken},
		{"POST", h + "/tokens/{token}/revoke", hostAdmin, (*Dashboard).revokeToken},
		{"POST", h + "/set-aside-changes/{id}/retry", hostAdmin, (*Dashboard).retrySetAside},
		{"POST", h + "/set-aside-changes/{id}/discard", hostAdmin, (*Dashboard).discardSetAside},
		{"GET", h + "/delete", operator, (*Dashboard).deleteHostPage},
		{"POST", h + "/delete", operator, (*Dashboard).deleteHost},

		{"GET", h + "/servers", hostAdmin, (*Dashboard).serversPage},
		{"POST", h + "/servers", hostAdmin, (*Dashboard).importServer},
		{"POST", h + "/servers/review", hostAdmin, (*Dashboard).reviewServer},
		{"POST", h + "/servers/upstream-sign-in", hostAdmin, (*Dashboard).upstreamSignIn},
		{"GET", h + "/upstream-callback", hostAdmin, (*Dashboard).upstreamCallback},
		{"GET", h + "/servers/{server}", hostAdmin, (*Dashboard).serverPage},
		{"POST", h + "/servers/{server}/settings", hostAdmin, (*Dashboard).updateServer},
		{"POST", h + "/servers/{server}/credentials", hostAdmin, (*Dashboard).setCredentials},
		{"POST", h + "/servers/{server}/tools", hostAdmin, (*Dashboard).updateTools},
		{"POST", h + "/servers/{server}/tools/new", hostAdmin, (*Dashboard).addTool},
		{"POST", h + "/servers/{server}/tools/{tool}/approve", hostAdmin, (*Dashboard).approveTool},
		{"POST", h + "/servers/{server}/tools/{tool}/delete", hostAdmin, (*Dashboard).deleteTool},
		{"POST", h + "/servers/{server}/sync", hostAdmin, (*Dashboard).syncServer},
		{"GET", h + "/servers/{server}/delete", hostAdmin, (*Dashboard).deleteServerPage},
		{"POST", h + "/servers/{server}/delete", hostAdmin, (*Dashboard).deleteServer},

		{"GET", h + "/humans", hostAdmin, (*Dashboard).humansPage},
		{"POST", h + "/humans", hostAdmin, (*Dashboard).addHuman},
		{"GET", h + "/humans/{human}", hostAdmin, (*Dashboard).humanPage},
		{"POST", h + "/humans/{human}/grants", hostAdmin, (*Dashboard).grant},
		{"POST", h + "/humans/{human}/grants/{server}/revoke", hostAdmin, (*Dashboard).revokeGrant},

		{"GET", h + "/agents", hostAdmin, (*Dashboard).agentsPage},
		{"GET", h + "/agents/{agent}", hostAdmin, (*Dashboard).agentPage},
		{"POST", h + "/agents/{agent}/servers/{server}/level", hostAdmin, (*Dashboard).setLevel},
		{"POST", h + "/agents/{agent}/servers/{server}/revoke", hostAdmin, (*Dashboard).revokeLevel},
		{"GET", h + "/agents/{agent}/kill", hostAdmin, (*Dashboard).killPage},
		{"POST", h + "/agents/{agent}/kill", hostAdmin, (*Dashboard).kill},

		{"GET", h + "/approvals", hostAdmin, (*Dashboard).approvalsPage},
		{"GET", h + "/approval-rules", hostAdmin, (*Dashboard).approvalRulesPage},
		{"POST", h + "/approval-rules", hostAdmin, (*Dashboard).addApprovalRule},
		{"POST", h + "/approval-rules/{n}/remove", hostAdmin, (*Dashboard).removeApprovalRule},
		{"POST", h + "/approvals/{id}/approve", hostAdmin, (*Dashboard).approveHeldCall},
		{"POST", h + "/approvals/{id}/deny", hostAdmin, (*Dashboard).denyHeldCall},
		{"POST", h + "/standing-approvals/{agent}/{server}/{tool}/revoke", hostAdmin, (*Dashboard).revokeStandingApproval},

		{"GET", h + "/activity", hostAdmin, (*Dashboard).activityPage},
		{"GET", h + "/activity/export", hostAdmin, (*Dashboard).exportActivity},
		{"GET", h + "/activity/live", hostAdmin, (*Dashboard).liveActivity},
		{"GET", h + "/activity/verify", hostAdmin, (*Dashboard).verifyPage},

		{"GET", h + "/why", hostAdmin, (*Dashboard).whyPage},
		{"GET", h + "/trust-map", hostAdmin, (*Dashboard).trustMapPage},
	}
}

// Routes registers the dashboard's routes on r (the gateway's origin).
func (d *Dashboard) Routes(r *mux.Router) {
	for _, p := range d.pages() {
		r.Methods(route.Methods(p.method)...).Path(p.path).Handler(route.PathValues(d.guard(p)))
	}
	r.PathPrefix(Prefix + "/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.errorPage(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
}

// Handler serves the dashboard alone (its Routes).
func (d *Dashboard) Handler() http.Handler {
	r := route.NewRouter()
	d.Routes(r)
	route.CatchAll(r)
	return route.CleanPaths(r)
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// guard checks, before a route's handler runs, that the viewer may use it: a session for every
// route that is not public (a GET without one is sent to sign in), the role the route needs,
// the host the path names (a host admin reaches only their own), and the CSRF token of every
// form.
func (d *Dashboard) guard(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		v, err := d.viewer(r)
		if err != nil {
			d.log.Error("dashboard: read session", "err", err)
			d.errorPage(w, r, nil, http.StatusServiceUnavailable, "The dashboard cannot read its sessions right now. Try again shortly.")
			return
		}
		if p.access != public {
			if v == nil {
				if r.Method == http.MethodGet || r.Method == http.MethodHead {
					http.Redirect(w, r, Prefix+"/sign-in?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
					return
				}
				d.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
				return
			}
			if msg := v.refuse(p.access, r.PathValue("host")); msg != "" {
				d.errorPage(w, r, v, http.StatusForbidden, msg)
				return
			}
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := d.csrf.Verify(r); err != nil {
				d.errorPage(w, r, v, http.StatusForbidden, consentui.CSRFMessage)
				return
			}
		}
		p.handle(d, w, r, v)
	})
}

// contentSecurityPolicy: the dashboard's own stylesheet and scripts, nothing inline, no framing;
// the live tail's stream from the same origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// principal is the admin API's caller for v.
func (v *viewer) principal() admin.Principal {
	p := admin.Principal{Actor: "dashboard:" + v.Email}
	if v.Role != roleOperator {
		p.Host = v.Host
	}
	return p
}

// as is the context of an admin API call made for v.
func as(r *http.Request, v *viewer) context.Context {
	return admin.WithPrincipal(r.Context(), v.principal())
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// apiMessage is the sentence of an admin API error for the page.
func apiMessage(err error) (int, string) {
	var e *sdk.Error
	if errors.As(err, &e) {
		status := e.Status
		detail := e.Detail
		if detail == "" {
			detail = e.Problem.Title
		}
		return status, detail
	}
	return http.StatusInternalServerError, "Something went wrong; the gateway's log has the details."
}
