package dashboard_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/approval"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/testkit/controlplane"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// env is the dashboard on a real control plane (SQLite, embedded SpiceDB, the admin API).
type env struct {
	t     *testing.T
	cp    *controlplane.ControlPlane
	store store.Store
	dash  *dashboard.Dashboard
	srv   *httptest.Server
	urls  tenant.URLs
}

const password = "correct horse battery staple"

func newEnv(t *testing.T) *env {
	t.Helper()
	cp := controlplane.New(t)
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(cp.Store, audit.Options{})
	t.Cleanup(func() { _ = log.Close(context.Background()) })
	srv := httptest.NewUnstartedServer(nil)
	urls, err := tenant.NewURLs("http://"+srv.Listener.Addr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	approvals, err := approval.New(approval.Config{Store: cp.Store, URLs: urls, LinkKey: keys.Derive("approval links"), Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(admin.Config{Store: cp.Store, Syncer: cp.Writer, Keys: keys, URLs: urls, Audit: log, Approvals: approvals})
	if err != nil {
		t.Fatal(err)
	}
	d := serveDashboard(t, cp, keys, log, api, srv, urls, nil)
	for _, h := range []string{tenant.DefaultHost, "acme", "beta"} {
		if _, err := cp.Store.EnsureHost(context.Background(), store.Host{Key: h}); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, cp: cp, store: cp.Store, dash: d, srv: srv, urls: urls}
}

// serveDashboard makes the dashboard, with the OAuth server whose sign-in pages it signs
// people in on, and serves both on srv as the gateway does; mailer, when set, sends the
// OAuth server's email codes.
func serveDashboard(t *testing.T, cp *controlplane.ControlPlane, keys *secrets.Keyring, log *audit.Log, api *admin.API, srv *httptest.Server, urls tenant.URLs, mailer oauthserver.Mailer) *dashboard.Dashboard {
	t.Helper()
	ks, err := accesstoken.Open(context.Background(), cp.Store, keys, accesstoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oauth, err := oauthserver.NewServer(oauthserver.ServerConfig{
		Store: cp.Store, URLs: urls, KeySet: ks, Syncer: cp.Writer, Keys: keys, Audit: log, Mail: mailer,
		CookieSecret: keys.Derive("oauth test cookie"), GlobalSecret: keys.Derive("oauth test global"),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Config{Store: cp.Store, API: api, URLs: urls, SignIn: oauth, CookieSecret: keys.Derive("dashboard test")})
	if err != nil {
		t.Fatal(err)
	}
	router := route.NewRouter()
	d.Routes(router)
	urls.Mount(router, nil, oauth.Routes)
	srv.Config.Handler = route.CleanPaths(router)
	srv.Start()
	t.Cleanup(srv.Close)
	return d
}

// human adds a human with a password.
func (e *env) human(host, email string, isAdmin bool) store.User {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.store.CreateUser(ctx, store.User{Host: host, Email: email, Admin: isAdmin})
	if err != nil {
		e.t.Fatal(err)
	}
	phc, err := consentui.HashPassword(password)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.SetUserPassword(ctx, host, u.ID, phc); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t *testing.T
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// csrf is a CSRF token of the browser's cookie, from the sign-in page's form.
func (b *browser) csrf() string {
	b.t.Helper()
	_, body, _ := b.get("/dashboard/sign-in")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF field in the sign-in page:\n%s", body)
	}
	return m[1]
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.e.srv.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// fetch sends a request to an absolute URL of the test server.
func (b *browser) fetch(method, u string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	if !strings.HasPrefix(u, b.e.srv.URL+"/") {
		b.t.Fatalf("%s is not on the test server %s", u, b.e.srv.URL)
	}
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = b.c.PostForm(u, form)
	} else {
		resp, err = b.c.Get(u)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var stateRefField = regexp.MustCompile(`name="state_ref" value="([^"]+)"`)

// hostSignInPage starts a dashboard sign-in on host (the form's field) and follows it to the
// host's sign-in page: its body, and its form's CSRF token and request.
func (b *browser) hostSignInPage(host string) (body, csrf, ref string) {
	b.t.Helper()
	status, body, h := b.post("/dashboard/sign-in", url.Values{"csrf_token": {b.csrf()}, "host": {host}})
	if status != http.StatusSeeOther {
		b.t.Fatalf("dashboard sign-in on host %q = %d:\n%s", host, status, body)
	}
	status, body, _ = b.fetch(http.MethodGet, h.Get("Location"), nil)
	c, r := csrfField.FindStringSubmatch(body), stateRefField.FindStringSubmatch(body)
	if status != http.StatusOK || c == nil || r == nil || !strings.Contains(body, "Sign in to the dashboard") {
		b.t.Fatalf("the host's sign-in page = %d:\n%s", status, body)
	}
	return body, html.UnescapeString(c[1]), html.UnescapeString(r[1])
}

// signInBack follows the host sign-in's redirect back to the dashboard; it returns where the
// dashboard sends the browser after that.
func (b *browser) signInBack(status int, body string, h http.Header) string {
	b.t.Helper()
	back := h.Get("Location")
	if status != http.StatusSeeOther || !strings.HasPrefix(back, b.e.srv.URL+"/dashboard/sign-in/done?") {
		b.t.Fatalf("the host's sign-in did not return to the dashboard: %d %s\n%s", status, back, body)
	}
	status, body, h = b.fetch(http.MethodGet, back, nil)
	if status != http.StatusSeeOther {
		b.t.Fatalf("the dashboard's end of the sign-in = %d:\n%s", status, body)
	}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "tg_dash" && (!c.HttpOnly || c.SameSite != http.SameSiteLaxMode) {
			b.t.Errorf("session cookie %+v: want HttpOnly and SameSite=Lax", c)
		}
	}
	return h.Get("Location")
}

// signIn signs in with email and password on host's sign-in page and returns the browser.
func (e *env) signIn(email, host string) *browser {
	e.t.Helper()
	b := e.browser()
	_, csrf, ref := b.hostSignInPage(host)
	b.signInBack(b.fetch(http.MethodPost, e.urls.Base(host)+"/login", url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "email": {email}, "password": {password}}))
	return b
}

// dashboardRoutes are the dashboard's routes, read from its router.
func dashboardRoutes(t *testing.T, d *dashboard.Dashboard) [][2]string {
	t.Helper()
	r := route.NewRouter()
	d.Routes(r)
	var out [][2]string
	err := r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := rt.GetPathTemplate()
		if err != nil || rt.GetHandler() == nil {
			return nil
		}
		methods, err := rt.GetMethods()
		if err != nil {
			return nil // the catch-all
		}
		for _, m := range methods {
			if m == http.MethodHead {
				continue
			}
			out = append(out, [2]string{m, path})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 25 {
		t.Fatalf("only %d routes: %v", len(out), out)
	}
	return out
}

// public are the routes anyone may use.
var public = map[string]bool{
	"GET /": true, "GET /dashboard/assets/dashboard.css": true, "GET /dashboard/assets/copy.js": true, "GET /dashboard/assets/live.js": true,
	"GET /dashboard/sign-in": true, "POST /dashboard/sign-in": true, "GET /dashboard/sign-in/done": true,
	"GET /dashboard/setup": true, "POST /dashboard/setup": true,
}

// humanRoutes are the routes any signed-in human may use (their own pages); the others need the
// admin role.
var humanRoutes = map[string]bool{
	"POST /dashboard/sign-out": true, "GET /dashboard/me": true,
	"POST /dashboard/me/agents/{agent}/servers/{server}/level": true, "POST /dashboard/me/agents/{agent}/servers/{server}/revoke": true,
	"POST /dashboard/me/agents/{agent}/disconnect": true,
}

// operatorOnly are the routes without a host in their path that host admins may not use.
var operatorOnly = map[string]bool{"POST /dashboard/hosts": true}

var vars = regexp.MustCompile(`\{([a-z]+)\}`)

// fill puts host in a route's {host} and "x" in its other variables.
func fill(path, host string) string {
	return vars.ReplaceAllStringFunc(path, func(v string) string {
		if v == "{host}" {
			return host
		}
		return "x"
	})
}

// TestAuthorization walks every route of the dashboard's router: each one that is not public
// refuses a signed-out visitor (GET: to sign in; POST: 401), a human without the admin role,
// and another host's admin; every form refuses a missing or a wrong CSRF token. A new route
// is in the walk, so one without a check fails here.
func TestAuthorization(t *testing.T) {
	e := newEnv(t)
	e.human(tenant.DefaultHost, "op@example.com", true)
	e.human("acme", "plain@acme.test", false)
	e.human("beta", "boss@beta.test", true)
	e.human("acme", "boss@acme.test", true)

	out := e.browser()
	outCSRF := out.csrf()
	plain := e.signIn("plain@acme.test", "acme")
	plainCSRF := plain.csrf()
	other := e.signIn("boss@beta.test", "beta")
	otherCSRF := other.csrf()
	op := e.signIn("op@example.com", "")
	opCSRF := op.csrf()

	do := func(b *browser, method, path, csrf string) (int, string, http.Header) {
		if method == http.MethodGet {
			return b.get(path)
		}
		form := url.Values{"confirm": {"acme"}, "email": {"x@acme.test"}, "key": {"zz"}, "url": {"http://127.0.0.1:1/mcp"}}
		if csrf != "" {
			form.Set("csrf_token", csrf)
		}
		return b.post(path, form)
	}
	for _, rt := range dashboardRoutes(t, e.dash) {
		method, tpl := rt[0], rt[1]
		name := method + " " + tpl
		path := fill(tpl, "acme")
		if !public[name] {
			status, body, h := do(out, method, path, outCSRF)
			switch {
			case method == http.MethodGet && (status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/dashboard/sign-in")):
				t.Errorf("%s signed out = %d (Location %q); want 303 to sign-in", name, status, h.Get("Location"))
			case method != http.MethodGet && status != http.StatusUnauthorized:
				t.Errorf("%s signed out = %d; want 401\n%s", name, status, body)
			}
			if name != "POST /dashboard/sign-out" { // the human's session serves the routes after it
				switch status, _, _ := do(plain, method, path, plainCSRF); {
				case !humanRoutes[name] && status != http.StatusForbidden:
					t.Errorf("%s as a human without the admin role = %d; want 403", name, status)
				case humanRoutes[name] && strings.Contains(tpl, "{agent}") && status != http.StatusNotFound:
					t.Errorf("%s on an agent that is not the human's = %d; want 404", name, status)
				case humanRoutes[name] && status == http.StatusForbidden:
					t.Errorf("%s as a human = 403; it is theirs", name)
				}
			}
			if strings.Contains(tpl, "{host}") || operatorOnly[name] {
				if status, _, _ := do(other, method, path, otherCSRF); status != http.StatusForbidden {
					t.Errorf("%s as another host's admin = %d; want 403", name, status)
				}
			}
		}
		if method == http.MethodPost && name != "POST /dashboard/sign-out" {
			for _, csrf := range []string{"", tamper(opCSRF), otherCSRF} {
				status, body, _ := do(op, method, path, csrf)
				if status != http.StatusForbidden || !strings.Contains(body, "form expired") && !strings.Contains(body, "again") {
					t.Errorf("%s with CSRF token %q = %d; want 403 with the CSRF message\n%s", name, csrf, status, body)
				}
			}
		}
	}
	// Sign-out refuses a wrong token too (it is not signed-out's business to end sessions).
	if status, _, _ := do(op, http.MethodPost, "/dashboard/sign-out", ""); status != http.StatusForbidden {
		t.Errorf("sign-out without CSRF = %d; want 403", status)
	}
	// The checks are not blanket refusals: the operator reaches every host, the host's own
	// admin their host.
	if status, body, _ := op.get("/dashboard/hosts/beta"); status != http.StatusOK {
		t.Errorf("operator on beta = %d\n%s", status, body)
	}
	own := e.signIn("boss@acme.test", "acme")
	if status, body, _ := own.get("/dashboard/hosts/acme/humans"); status != http.StatusOK || !strings.Contains(body, "plain@acme.test") {
		t.Errorf("acme's admin on acme's humans = %d\n%s", status, body)
	}
	if _, body, _ := own.get("/dashboard/hosts"); strings.Contains(body, "/dashboard/hosts/beta") || !strings.Contains(body, "/dashboard/hosts/acme") {
		t.Errorf("acme's admin sees other hosts in the list:\n%s", body)
	}
}

// tamper changes a token's last MAC character.
func tamper(tok string) string {
	last := tok[len(tok)-2]
	swap := byte('A')
	if last == 'A' {
		swap = 'B'
	}
	return tok[:len(tok)-2] + string(swap) + tok[len(tok)-1:]
}
