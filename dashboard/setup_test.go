package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// TestFirstRunAndSessions: the setup link makes the first operator once (logged once by
// FirstRunSetupLink, never again once used); the session it starts is server-side and ends at
// sign-out; taking away the admin flag takes the pages away at the next request.
func TestFirstRunAndSessions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	b := e.browser()
	status, body, h := b.get("/")
	if status != http.StatusOK || !strings.Contains(body, "permissions gateway") || !strings.Contains(body, `href="/dashboard/sign-in"`) {
		t.Fatalf("front page signed out = %d\n%s", status, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}

	link, err := dashboard.FirstRunSetupLink(ctx, e.store, e.urls)
	if err != nil || !strings.HasPrefix(link, e.srv.URL+"/dashboard/setup?token=") {
		t.Fatalf("setup link = %q, %v", link, err)
	}
	if again, err := dashboard.FirstRunSetupLink(ctx, e.store, e.urls); err != nil || again != "" {
		t.Fatalf("second start logs the link again: %q, %v", again, err)
	}
	u, _ := url.Parse(link)
	token := u.Query().Get("token")
	if status, _, _ := b.get("/dashboard/setup?token=wrong"); status != http.StatusOK {
		t.Fatalf("setup page = %d", status) // the token is checked when it is used
	}
	form := url.Values{"email": {"op@example.com"}, "password": {password}, "confirm": {password}}
	form.Set("csrf_token", b.csrf())
	form.Set("token", "wrong-token")
	if status, _, _ := b.post("/dashboard/setup", form); status != http.StatusNotFound {
		t.Fatalf("setup with a wrong token = %d; want 404", status)
	}
	form.Set("token", token)
	form.Set("confirm", "something else entirely")
	if status, body, _ := b.post("/dashboard/setup", form); status != http.StatusBadRequest || !strings.Contains(body, "differ") {
		t.Fatalf("setup with different passwords = %d", status)
	}
	form.Set("confirm", password)
	status, body, h = b.post("/dashboard/setup", form)
	if status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/dashboard/hosts") {
		t.Fatalf("setup = %d %q\n%s", status, h.Get("Location"), body)
	}
	if status, body, _ := b.get("/dashboard/hosts?done=setup"); status != http.StatusOK || !strings.Contains(body, "first operator") || !strings.Contains(body, "Create a host") {
		t.Fatalf("hosts after setup = %d\n%s", status, body)
	}
	op, err := e.store.GetUserByEmail(ctx, tenant.DefaultHost, "op@example.com")
	if err != nil || !op.Admin {
		t.Fatalf("operator = %+v, %v", op, err)
	}
	// Used: the link is refused, no new link is logged, and none can be issued.
	form.Set("email", "intruder@example.com")
	second := e.browser()
	form.Set("csrf_token", second.csrf())
	if status, _, _ := second.post("/dashboard/setup", form); status != http.StatusNotFound {
		t.Fatalf("second use of the link = %d; want 404", status)
	}
	if again, err := dashboard.FirstRunSetupLink(ctx, e.store, e.urls); err != nil || again != "" {
		t.Fatalf("link logged with an operator: %q, %v", again, err)
	}
	if _, err := dashboard.IssueSetupLink(ctx, e.store, e.urls); err == nil {
		t.Fatal("a setup link was issued although an operator exists")
	}
	// The audit log names the person: the human was created through the admin API.
	entries, err := e.store.ListAudit(ctx, auditFilter(tenant.DefaultHost), 0, 10)
	if err != nil || len(entries) == 0 || !strings.Contains(entries[0].Actor, "op@example.com") || entries[0].Action != "human.create" {
		t.Fatalf("audit entries = %+v, %v", entries, err)
	}

	// Sign out ends the session on the server: the old cookie no longer works.
	saved := b.c.Jar.Cookies(mustURL(e.srv.URL))
	if status, _, _ := b.post("/dashboard/sign-out", url.Values{"csrf_token": {b.csrf()}}); status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", status)
	}
	replay := e.browser()
	replay.c.Jar.SetCookies(mustURL(e.srv.URL), saved)
	if status, _, _ := replay.get("/dashboard/hosts"); status != http.StatusSeeOther {
		t.Fatalf("a signed-out session's cookie = %d; want 303 to sign in", status)
	}

	// A host admin loses the pages as soon as the admin flag goes.
	boss := e.human("acme", "boss@acme.test", true)
	bb := e.signIn("boss@acme.test", "acme")
	if status, _, _ := bb.get("/dashboard/hosts/acme/humans"); status != http.StatusOK {
		t.Fatalf("host admin = %d", status)
	}
	boss.Admin = false
	if _, err := e.store.UpdateUser(ctx, boss); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := bb.get("/dashboard/hosts/acme/humans"); status != http.StatusForbidden {
		t.Fatalf("former host admin = %d; want 403", status)
	}
	// The host's sign-in rules apply: with email and password turned off for acme, its
	// admins cannot sign in to the dashboard with a password.
	boss.Admin = true
	if _, err := e.store.UpdateUser(ctx, boss); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutAuthMethod(ctx, store.AuthMethod{Host: "acme", Method: store.AuthPassword, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	y := e.browser()
	st, page, h := y.post("/dashboard/sign-in", url.Values{"host": {"acme"}, "csrf_token": {y.csrf()}})
	if st != http.StatusSeeOther {
		t.Fatalf("dashboard sign-in on acme = %d\n%s", st, page)
	}
	if status, body, _ := y.fetch(http.MethodGet, h.Get("Location"), nil); status != http.StatusServiceUnavailable || !strings.Contains(body, "no way to sign in") || strings.Contains(body, `name="password"`) {
		t.Errorf("the host's sign-in page with passwords off = %d\n%s", status, body)
	}
	if err := e.store.DeleteAuthMethod(ctx, "acme", store.AuthPassword); err != nil {
		t.Fatal(err)
	}
	e.signIn("boss@acme.test", "acme") // passwords on again

	// Wrong passwords and unknown accounts get the same answer, on the host's page, and no
	// way back to the dashboard.
	for _, c := range []struct{ email, password, host string }{
		{"boss@acme.test", "wrong password!!", "acme"},
		{"nobody@acme.test", password, "acme"},
		{"boss@acme.test", password, ""},
	} {
		x := e.browser()
		_, csrf, ref := x.hostSignInPage(c.host)
		status, body, h := x.fetch(http.MethodPost, e.urls.Base(c.host)+"/login", url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "email": {c.email}, "password": {c.password}})
		if status != http.StatusUnauthorized || !strings.Contains(body, "incorrect") || h.Get("Location") != "" {
			t.Errorf("sign-in %+v = %d", c, status)
		}
		if status, _, _ := x.get("/dashboard/me"); status != http.StatusSeeOther {
			t.Errorf("after a failed sign-in %+v /dashboard/me = %d", c, status)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func auditFilter(host string) audit.Filter { return audit.Filter{Host: host} }
