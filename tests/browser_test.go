package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/browser"
)

// callback is an MCP client's loopback redirect URI: it receives the authorization response.
type callback struct {
	url   string
	query chan url.Values
}

// listenCallback serves a loopback redirect URI until the test ends.
func listenCallback(t *testing.T) *callback {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cb := &callback{url: "http://" + l.Addr().String() + "/callback", query: make(chan url.Values, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case cb.query <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><html lang="en"><head><title>Connected</title></head><body><main><h1>You can close this window</h1></main></body></html>`)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return cb
}

// registerClientAt registers a public MCP client whose redirect URI is redirect.
func registerClientAt(t *testing.T, issuer, name, redirect string) *oauth2.Config {
	t.Helper()
	reg, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{redirect},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	resp, err := http.Post(issuer+"/register", "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	if body := readAll(resp); resp.StatusCode != 201 || json.Unmarshal([]byte(body), &client) != nil {
		t.Fatalf("register = %d %s", resp.StatusCode, body)
	}
	return &oauth2.Config{ClientID: client.ClientID, RedirectURL: redirect, Scopes: []string{"mcp"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// TestBrowserSignInAndConsent is the human's part of connecting an agent, in a real Chromium:
// the MCP client's authorization URL opens the sign-in page, the pre-authorized human signs in,
// picks medium on the consent page and allows; the browser lands on the client's loopback
// redirect URI with a code, which the client exchanges for a token that calls a tool through
// the proxy. axe-core finds no serious or critical violation on the sign-in page, the consent
// page (before and after a failed attempt) and an error page.
func TestBrowserSignInAndConsent(t *testing.T) {
	s := setupTracker(t)
	issuer := s.p.url + "/h/acme"
	b := browser.Start(t)

	cb := listenCallback(t)
	conf := registerClientAt(t, issuer, "Browser agent", cb.url)
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("browser-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", s.resource))

	// Sign-in page, then a wrong password: the page says so, and stays accessible.
	if status := b.Navigate(authURL); status != http.StatusOK {
		t.Fatalf("authorization URL = %d", status)
	}
	if h := b.Text("h1"); h != "Sign in" {
		t.Fatalf("authorization URL shows %q, want the sign-in page", h)
	}
	b.RequireAccessible("sign-in page")
	b.Fill(map[string]string{"email": s.email, "password": "not the password"})
	b.ClickAndWait(`button[type=submit]`)
	if msg := b.Text(".error-summary"); !strings.Contains(msg, "incorrect") {
		t.Fatalf("wrong password: the page says %q", msg)
	}
	b.RequireAccessible("sign-in page with an error")

	// The right password: the consent page.
	b.Fill(map[string]string{"email": s.email, "password": s.password})
	if status := b.ClickAndWait(`button[type=submit]`); status != http.StatusOK {
		t.Fatalf("sign-in = %d", status)
	}
	if h := b.Text("h1"); h != "Set a trust level" {
		t.Fatalf("after sign-in the page is %q, want the consent page", h)
	}
	if agent := b.Text("main strong"); agent != "Browser agent" {
		t.Fatalf("consent page names the agent %q", agent)
	}
	b.RequireAccessible("consent page")

	// Medium, allow: the browser follows the redirect to the client (the page's
	// Content-Security-Policy must let the form's redirect leave the origin).
	b.Click(`#trust_level-medium`)
	b.ClickAndWait(`button[name=decision][value=allow]`)
	var q url.Values
	select {
	case q = <-cb.query:
	default:
		t.Fatalf("the browser did not reach the redirect URI; it shows %s: %q", b.Location(), b.Text("body"))
	}
	if q.Get("state") != "browser-state" || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("authorization response = %v, want code, state and iss=%s", q, issuer)
	}
	if loc := b.Location(); !strings.HasPrefix(loc, cb.url+"?") {
		t.Fatalf("browser location after consent = %s, want the redirect URI", loc)
	}

	// The client's side: the code for a token, the token for calls at medium.
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	session := mcpSession(t, s.resource, tok.AccessToken)
	if text, ok := callText(t, session, "create_issue", map[string]any{"title": "from the browser"}); !ok || !strings.Contains(text, "create_issue called: from the browser") {
		t.Fatalf("medium call with the browser's token: ok=%v %q", ok, text)
	}
	if text, ok := callText(t, session, "delete_issue", map[string]any{"id": "1"}); ok {
		t.Fatalf("high call allowed at medium: %q", text)
	}

	// An error page: an authorization request without PKCE.
	status := b.Navigate(issuer + "/authorize?response_type=code&client_id=" + conf.ClientID + "&redirect_uri=" + url.QueryEscape(cb.url))
	if h := b.Text("h1"); status != http.StatusBadRequest || h != "The app's sign-in request is invalid" {
		t.Fatalf("request without PKCE = %d with heading %q, want 400 and the error page", status, h)
	}
	b.RequireAccessible("error page")
}
