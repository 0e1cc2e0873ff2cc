package tests

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/browser"
	"github.com/trustgate/trustgate/internal/testkit/mcpserver"
	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
)

// TestBrowserEmailCodePages: the email code pages in real headless Chromium, each checked
// with axe-core. Alice (pre-authorized) presses "Email me a sign-in code" next to the password
// (a formaction button that skips the password field's validation), enters the code from the
// real message and reaches the consent page. Bob (pre-authorized too) follows "First time
// here?", asks for a code, enters a wrong one then the right one, chooses a password (a weak
// one first) and reaches the consent page.
func TestBrowserEmailCodePages(t *testing.T) {
	smtp := smtpserver.Start(t, smtpserver.Options{})
	dir := t.TempDir()
	p := start(t, "--data-dir", dir, "--smtp-url", smtp.URL(), "--smtp-from", "trustgate <gateway@example.com>")
	up := mcpserver.Start(t, "")
	token := bootstrapToken(t, "e2e", "--data-dir", dir)
	cli(t, p, token, "host", "create", "acme", "--exact")
	cli(t, p, token, "server", "import", up.URL, "--host", "acme", "--key", "tracker")
	for _, who := range []string{"alice@acme.test", "bob@acme.test"} {
		cli(t, p, token, "human", "add", who, "--host", "acme")
		cli(t, p, token, "human", "grant", who, "tracker", "--level", "high", "--host", "acme")
	}
	cli(t, p, token, "host", "auth", "set", "acme", "email_otp", "--enable")
	mb := startMailbox(t, smtp)
	issuer, resource := p.url+"/h/acme", p.url+"/h/acme/mcp/tracker"
	cb := listenCallback(t)
	authURL := func() string {
		conf := registerClientAt(t, issuer, "Browser agent", cb.url)
		return conf.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", resource))
	}
	wantH1 := func(b *browser.Browser, want string) {
		t.Helper()
		if h := b.Text("h1"); h != want {
			t.Fatalf("the page is %q, want %q", h, want)
		}
	}
	code := func(who string) string {
		t.Helper()
		c, err := mb.next(who)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	a := browser.Start(t)
	if status := a.Navigate(authURL()); status != http.StatusOK {
		t.Fatalf("authorization URL = %d", status)
	}
	a.RequireAccessible("sign-in page with the code button")
	a.Fill(map[string]string{"email": "alice@acme.test"})
	if status := a.ClickAndWait(`button[formaction]`); status != http.StatusOK {
		t.Fatalf("Email me a sign-in code = %d", status)
	}
	wantH1(a, "Enter your code")
	a.RequireAccessible("code entry page")
	a.Fill(map[string]string{"code": code("alice@acme.test")})
	a.ClickAndWait(`button[type=submit]`)
	wantH1(a, "Set a trust level")

	b := browser.Start(t)
	b.Navigate(authURL())
	b.ClickAndWait(`a[href*="/email-code?"]`)
	wantH1(b, "Set or reset your password")
	b.RequireAccessible("code request page")
	b.Fill(map[string]string{"email": "bob@acme.test"})
	b.ClickAndWait(`button[type=submit]`)
	wantH1(b, "Enter your code")
	right := code("bob@acme.test")
	b.Fill(map[string]string{"code": wrongCode(right, 0)})
	if status := b.ClickAndWait(`button[type=submit]`); status != http.StatusUnauthorized {
		t.Fatalf("wrong code = %d", status)
	}
	if msg := b.Text(".error-summary"); !strings.Contains(msg, "not right") {
		t.Fatalf("wrong code: the page says %q", msg)
	}
	b.RequireAccessible("code entry page with an error")
	b.Fill(map[string]string{"code": right})
	b.ClickAndWait(`button[type=submit]`)
	wantH1(b, "Choose your password")
	b.RequireAccessible("new password page")
	b.Fill(map[string]string{"password": "short", "password_confirm": "short"})
	b.ClickAndWait(`button[type=submit]`)
	b.RequireAccessible("new password page with errors")
	b.Fill(map[string]string{"password": "bob chose a long one", "password_confirm": "bob chose a long one"})
	b.ClickAndWait(`button[type=submit]`)
	wantH1(b, "Set a trust level")
}
