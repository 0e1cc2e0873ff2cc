package tests

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

// TestAccountPageFromTheDashboard is the account page reached from the dashboard, in real
// Chromium with the DevTools virtual authenticator, through the binary: alice signs in to the
// dashboard, follows "Your account" from My connections to the host's account page, which
// asks her to sign in on the host's sign-in page and comes back to the account page; there she
// adds a passkey and changes her password. Signed out of the host's pages, the same link signs
// her in with the passkey alone and shows it. A browser without a session gets the sign-in
// page, never an account, and cannot change a password.
func TestAccountPageFromTheDashboard(t *testing.T) {
	s, issuer := passkeySetup(t)
	b := browser.Start(t)
	key := b.AddVirtualAuthenticator()
	public := strings.TrimSuffix(issuer, "/h/acme")

	// The dashboard's sign-in, on the host's sign-in page.
	if status := b.Navigate(public + "/dashboard/sign-in"); status != http.StatusOK {
		t.Fatalf("dashboard sign-in = %d", status)
	}
	b.Fill(map[string]string{"host": "acme"})
	b.ClickAndWait(`form[action="/dashboard/sign-in"] button[type=submit]`)
	if text := b.Text("main"); !strings.Contains(text, "Sign in to the dashboard") {
		t.Fatalf("the dashboard's sign-in shows %q", text)
	}
	b.Fill(map[string]string{"email": s.email, "password": s.password})
	b.ClickAndWait(`main > form button[type=submit]`)

	// My connections → Your account: the host's sign-in, for the account.
	if status := b.Navigate(public + "/dashboard/me"); status != http.StatusOK || !strings.Contains(b.Text("main"), "Your account") {
		t.Fatalf("My connections = %d: %q", status, b.Text("main"))
	}
	b.ClickAndWait(`main a[href$="/h/acme/account"]`)
	if h, text := b.Text("h1"), b.Text("main"); h != "Sign in" || !strings.Contains(text, "Sign in to your account") || !strings.Contains(text, "Sign in with a passkey") {
		t.Fatalf("the account link shows %q: %q", h, text)
	}
	b.RequireAccessible("sign-in page for the account")
	b.Fill(map[string]string{"email": s.email, "password": s.password})
	if status := b.ClickAndWait(`main > form button[type=submit]`); status != http.StatusOK || b.Text("h1") != "Your account" || b.Location() != issuer+"/account" {
		t.Fatalf("after the password: %d at %s, %q", status, b.Location(), b.Text("main"))
	}
	if !strings.Contains(b.Text("main"), s.email) || !strings.Contains(b.Text("main"), "You have no passkeys") {
		t.Fatalf("the account page says %q", b.Text("main"))
	}

	// A passkey, then a new password.
	b.Fill(map[string]string{"name": "Chromium"})
	if status := b.ClickAndWait(`[data-passkey="register"] [data-passkey-start]`); status != http.StatusOK {
		t.Fatalf("adding a passkey = %d: %q", status, b.Text("main"))
	}
	if text := b.Text("main"); !strings.Contains(text, "Your passkey is added") || !strings.Contains(text, "Chromium") {
		t.Fatalf("after adding a passkey the page says %q", text)
	}
	if creds := key.Credentials(); len(creds) != 1 {
		t.Fatalf("the authenticator holds %d credentials, want 1", len(creds))
	}
	const newPassword = "a brand new passphrase for alice"
	b.Fill(map[string]string{"current_password": s.password, "password": newPassword, "password_confirm": newPassword})
	if status := b.ClickAndWait(`form[action$="/account/password"] button[type=submit]`); status != http.StatusOK ||
		!strings.Contains(b.Text("main"), "Your password is changed") {
		t.Fatalf("changing the password = %d: %q", status, b.Text("main"))
	}
	b.ClickAndWait(`form[action$="/logout"] button`)
	if h := b.Text("h1"); h != "Signed out" {
		t.Fatalf("sign-out shows %q", h)
	}

	// Signed out of the host's pages, still in the dashboard: the link signs in with the
	// passkey alone.
	b.Navigate(public + "/dashboard/me")
	b.ClickAndWait(`main a[href$="/h/acme/account"]`)
	if status := b.ClickAndWait(`[data-passkey="signin"] [data-passkey-start]`); status != http.StatusOK || b.Text("h1") != "Your account" {
		t.Fatalf("passkey sign-in for the account = %d, the page is %q: %q", status, b.Text("h1"), b.Text("main"))
	}
	if text := b.Text(".passkey-list"); !strings.Contains(text, "Chromium") {
		t.Fatalf("the account's passkeys after the passkey sign-in: %q", text)
	}

	// A stranger's browser: the sign-in page, no account; no password change without a session;
	// the old password no longer signs in, the new one does.
	stranger := webclient.New(t, public)
	p := stranger.Get(issuer + "/account")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Sign in to your account") || strings.Contains(p.Body, s.email) ||
		strings.Contains(p.Body, "current_password") || strings.Contains(p.Body, "Chromium") {
		t.Fatalf("a stranger's account page: %d %s", p.Status, p.Body)
	}
	csrf := hiddenField(t, csrfTokenRE, p.Body)
	change := postFields(stranger, issuer+"/account/password", url.Values{"csrf_token": {csrf},
		"current_password": {newPassword}, "password": {"the stranger's own password"}, "password_confirm": {"the stranger's own password"}})
	if change.Status != http.StatusUnauthorized || !strings.Contains(change.Body, "nothing was changed") || !strings.Contains(change.Body, issuer+"/account") {
		t.Fatalf("a password change without a session: %d %s", change.Status, change.Body)
	}
	if in := stranger.Submit(p, map[string]string{"email": s.email, "password": s.password}); in.Status != http.StatusUnauthorized {
		t.Fatalf("the old password: %d %s", in.Status, in.Body)
	}
	p = stranger.Get(issuer + "/account")
	if in := stranger.Submit(p, map[string]string{"email": s.email, "password": newPassword}); in.Status != http.StatusOK || !strings.Contains(in.Body, s.email) || !strings.Contains(in.Body, "Chromium") {
		t.Fatalf("the new password on the account's sign-in: %d %s", in.Status, in.Body)
	}
}
