package oauthserver_test

import (
	"bytes"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
)

// signInPage opens the sign-in page of a new authorization request in a new browser.
func (e *env) signInPage(conf *oauth2.Config) (*browser, webclient.Page) {
	e.t.Helper()
	b := e.browser()
	p := b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource())))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
		e.t.Fatalf("sign-in page: %d %s", p.Status, p.Body)
	}
	return b, p
}

// An office behind one NAT address: successful sign-ins never use up the address's budget
// (20 failures per 15 minutes); only failures do.
func TestSignInSuccessesDoNotCountAgainstTheAddress(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	e.flow(e.browser(), conf, "state-0123456789", oauth2.GenerateVerifier(), "low") // claims the account
	for i := range 21 {
		b, p := e.signInPage(conf)
		p = b.Submit(p, map[string]string{"email": email, "password": password})
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
			t.Fatalf("sign-in %d from one address: %d %s", i+1, p.Status, p.Body)
		}
	}
	// Failures still count: 20 wrong passwords (for many accounts, so that no account's own
	// backoff applies) use up the address's budget.
	for i := range 20 {
		b, p := e.signInPage(conf)
		p = b.Submit(p, map[string]string{"email": "guess" + strconv.Itoa(i) + "@example.com", "password": "wrong password 123"})
		if p.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, p.Status)
		}
	}
	b, p := e.signInPage(conf)
	p = b.Submit(p, map[string]string{"email": email, "password": password})
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many sign-in attempts") {
		t.Fatalf("after 20 failures from the address: %d", p.Status)
	}
}

// registerFrom posts a client registration as if sent by client through the test's proxy.
func registerFrom(t *testing.T, e *env, forwardedFor string) *http.Response {
	t.Helper()
	body := `{"redirect_uris":["http://localhost:7777/callback"],"token_endpoint_auth_method":"none"}`
	req, _ := http.NewRequest("POST", e.path("acme", "/register"), bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Dynamic client registration is open but throttled per client address: the 61st within an
// hour is 429 with Retry-After. Behind a trusted proxy the address is X-Forwarded-For's.
func TestRegistrationThrottledPerAddress(t *testing.T) {
	e := newEnvWith(t, envOptions{trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	for i := range oauthserver.RegistrationsPerHour {
		if resp := registerFrom(t, e, "198.51.100.1"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("registration %d: %d", i+1, resp.StatusCode)
		}
	}
	resp := registerFrom(t, e, "198.51.100.1")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("registration %d: %d, want 429", oauthserver.RegistrationsPerHour+1, resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
	}
	// Another client behind the same proxy has its own budget; a client cannot pick one by
	// writing the header itself (the proxy appends the address it saw).
	if resp := registerFrom(t, e, "198.51.100.2"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another client: %d", resp.StatusCode)
	}
	if resp := registerFrom(t, e, "198.51.100.2, 198.51.100.1"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("spoofed left entry: %d", resp.StatusCode)
	}
	// An hour later the budget is back.
	e.clock.advance(61 * time.Minute)
	if resp := registerFrom(t, e, "198.51.100.1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("an hour later: %d", resp.StatusCode)
	}
}

// Without trusted proxies X-Forwarded-For is ignored: a client cannot escape the throttle by
// sending a new address with every request.
func TestRegistrationThrottleIgnoresForwardedForByDefault(t *testing.T) {
	e := newEnv(t)
	for i := range oauthserver.RegistrationsPerHour {
		if resp := registerFrom(t, e, "203.0.113."+strconv.Itoa(i)); resp.StatusCode != http.StatusCreated {
			t.Fatalf("registration %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp := registerFrom(t, e, "203.0.113.250"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("forged X-Forwarded-For escaped the throttle: %d", resp.StatusCode)
	}
}

// getFrom GETs path on host acme as a client behind the test's trusted proxy at forwardedFor,
// without following redirects.
func getFrom(t *testing.T, e *env, path, forwardedFor string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", e.path("acme", path), nil)
	req.Header.Set("X-Forwarded-For", forwardedFor)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Every sign-in a stranger begins is a row the store keeps until it expires, so one client
// address may begin SignInsBegunPerClientAddress per 15 minutes — an account page's sign-in
// and an agent's authorization request alike, from one budget; one more is 429 with
// Retry-After and writes nothing, other addresses are not affected, and the budget comes back.
func TestSignInsBegunAreBoundedPerAddress(t *testing.T) {
	e := newEnvWith(t, envOptions{trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	conf := e.register("acme")
	authorize := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource()))
	authorizePath := strings.TrimPrefix(authorize, e.base("acme"))
	for i := range oauthserver.SignInsBegunPerClientAddress {
		if resp := getFrom(t, e, "/account", "198.51.100.7"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("account sign-in %d: %d", i+1, resp.StatusCode)
		}
	}
	for _, path := range []string{"/account", authorizePath} {
		resp := getFrom(t, e, path, "198.51.100.7")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s after %d sign-ins: %d (%s), want 429", path, oauthserver.SignInsBegunPerClientAddress, resp.StatusCode, resp.Header.Get("Location"))
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
		}
	}
	if resp := getFrom(t, e, authorizePath, "198.51.100.8"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another address's authorization request: %d", resp.StatusCode)
	}
	e.clock.advance(16 * time.Minute)
	if resp := getFrom(t, e, "/account", "198.51.100.7"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("15 minutes later: %d", resp.StatusCode)
	}
}
