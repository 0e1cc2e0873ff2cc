package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
)

// The token lifecycle through the real binary: a revoked token, or one of a grant revoked by
// reuse detection, is refused by the very next MCP call, on every replica.

// authorizeCode registers a client, plays the human through sign-in and consent at medium on
// the gateway at browserURL, and returns the client, the code and its PKCE verifier.
func authorizeCode(t *testing.T, browserURL, issuer, resource, email, password string) (*oauth2.Config, string, string) {
	t.Helper()
	return authorizeCodeFor(t, registerClient(t, issuer, "lifecycle agent"), browserURL, resource, email, password)
}

// authorizeCodeFor is authorizeCode for a registered client.
func authorizeCodeFor(t *testing.T, conf *oauth2.Config, browserURL, resource, email, password string) (*oauth2.Config, string, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	b := webclient.New(t, browserURL)
	page := b.Get(conf.AuthCodeURL("lifecycle-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", resource)))
	page = b.Submit(page, map[string]string{"email": email, "password": password})
	if !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("after sign-in: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"trust_level": "medium", "decision": "allow"})
	if page.Loc == nil || page.Loc.Query().Get("code") == "" {
		t.Fatalf("consent redirect = %v (%d %s)", page.Loc, page.Status, page.Body)
	}
	return conf, page.Loc.Query().Get("code"), verifier
}

// mcpPing posts one ping to endpoint with token and returns the status and WWW-Authenticate.
func mcpPing(t *testing.T, endpoint, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// wantRefused: the token is answered 401 invalid_token, as an expired one is.
func wantRefused(t *testing.T, what, endpoint, token string) {
	t.Helper()
	status, challenge := mcpPing(t, endpoint, token)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "resource_metadata=") {
		t.Fatalf("%s: MCP call = %d %q, want 401 invalid_token", what, status, challenge)
	}
}

func wantAccepted(t *testing.T, what, endpoint, token string) {
	t.Helper()
	if status, challenge := mcpPing(t, endpoint, token); status != http.StatusOK {
		t.Fatalf("%s: MCP call = %d %q, want 200", what, status, challenge)
	}
}

// revoke posts an RFC 7009 revocation of token by the public client and wants 200.
func revoke(t *testing.T, issuer, clientID, token string) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/revoke", url.Values{"token": {token}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
}

// postToken posts a token request and returns the status and body.
func postToken(t *testing.T, issuer string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	return resp.StatusCode, body
}

func TestTokenLifecycleThroughTheBinary(t *testing.T) {
	s := setupTracker(t)
	issuer := s.p.url + "/h/acme"
	ctx := context.Background()
	exchange := func(t *testing.T) (*oauth2.Config, *oauth2.Token) {
		t.Helper()
		conf, code, verifier := authorizeCode(t, s.p.url, issuer, s.resource, s.email, s.password)
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("token exchange: %v", err)
		}
		return conf, tok
	}

	t.Run("revoking the access token refuses it at once", func(t *testing.T) {
		conf, tok := exchange(t)
		wantAccepted(t, "before revocation", s.resource, tok.AccessToken)
		revoke(t, issuer, conf.ClientID, tok.AccessToken)
		wantRefused(t, "after revocation", s.resource, tok.AccessToken)
	})

	t.Run("revoking an access token issued before a refresh refuses it at once", func(t *testing.T) {
		conf, t1 := exchange(t)
		t2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t1.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		wantAccepted(t, "the first access token after the refresh", s.resource, t1.AccessToken)
		revoke(t, issuer, conf.ClientID, t1.AccessToken)
		wantRefused(t, "the first access token after its revocation", s.resource, t1.AccessToken)
		wantRefused(t, "the grant's newer access token", s.resource, t2.AccessToken)
	})

	t.Run("another client cannot revoke a token", func(t *testing.T) {
		_, tok := exchange(t)
		other := registerClient(t, issuer, "other client")
		resp, err := http.PostForm(issuer+"/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {other.ClientID}})
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		wantAccepted(t, "after another client's revocation attempt", s.resource, tok.AccessToken)
	})

	t.Run("revoking the refresh token refuses its access token at once", func(t *testing.T) {
		conf, tok := exchange(t)
		wantAccepted(t, "before revocation", s.resource, tok.AccessToken)
		revoke(t, issuer, conf.ClientID, tok.RefreshToken)
		wantRefused(t, "after revocation", s.resource, tok.AccessToken)
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Fatal("a revoked refresh token was refreshed")
		}
	})

	t.Run("refresh reuse refuses the family's access tokens at once", func(t *testing.T) {
		conf, t1 := exchange(t)
		t2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t1.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		wantAccepted(t, "the refreshed access token", s.resource, t2.AccessToken)
		// A thief replays the first refresh token right away (within what was a 10-second
		// grace window): that is reuse, and the whole family ends.
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t1.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("replayed refresh token: %v, want invalid_grant", err)
		}
		wantRefused(t, "the family's newest access token", s.resource, t2.AccessToken)
		wantRefused(t, "the family's first access token", s.resource, t1.AccessToken)
		if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t2.RefreshToken}).Token(); err == nil {
			t.Fatal("the family's newest refresh token still works")
		}
	})

	t.Run("code reuse refuses the grant's access token at once", func(t *testing.T) {
		conf, code, verifier := authorizeCode(t, s.p.url, issuer, s.resource, s.email, s.password)
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("token exchange: %v", err)
		}
		wantAccepted(t, "before the replay", s.resource, tok.AccessToken)
		if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("a code was exchanged twice")
		}
		wantRefused(t, "after the code was replayed", s.resource, tok.AccessToken)
	})

	t.Run("a resource other than the grant's is invalid_target", func(t *testing.T) {
		conf, code, verifier := authorizeCode(t, s.p.url, issuer, s.resource, s.email, s.password)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {conf.RedirectURL}, "client_id": {conf.ClientID}, "resource": {issuer + "/mcp"}}
		if status, body := postToken(t, issuer, form); status != http.StatusBadRequest || !strings.Contains(body, `"invalid_target"`) {
			t.Fatalf("code exchange for another resource = %d %s, want 400 invalid_target", status, body)
		}
		// (The refused exchange used up the code's PKCE challenge: a new authorization.)
		_, code, verifier = authorizeCodeFor(t, conf, s.p.url, s.resource, s.email, s.password)
		form.Set("code", code)
		form.Set("code_verifier", verifier)
		form.Set("resource", s.resource)
		status, body := postToken(t, issuer, form)
		if status != http.StatusOK {
			t.Fatalf("code exchange for the granted resource = %d %s", status, body)
		}
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		mustUnmarshal(t, body, &tok)
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {conf.ClientID},
			"resource": {s.p.url + "/h/other/mcp"}}
		if status, body := postToken(t, issuer, refresh); status != http.StatusBadRequest || !strings.Contains(body, `"invalid_target"`) {
			t.Fatalf("refresh for another resource = %d %s, want 400 invalid_target", status, body)
		}
		refresh.Set("resource", s.resource)
		if status, body := postToken(t, issuer, refresh); status != http.StatusOK {
			t.Fatalf("refresh for the granted resource = %d %s", status, body)
		}
	})

	t.Run("a deleted human's token is 401", func(t *testing.T) {
		_, tok := exchange(t)
		wantAccepted(t, "before deletion", s.resource, tok.AccessToken)
		logged := len(s.p.output())
		cli(t, s.p, s.admin, "human", "delete", s.email, "--yes", "--host", "acme")
		wantRefused(t, "after the human was deleted", s.resource, tok.AccessToken)
		if out := s.p.output()[logged:]; strings.Contains(out, "store failed") || strings.Contains(out, "level=ERROR") || strings.Contains(out, `"level":"ERROR"`) {
			t.Fatalf("the refused token was logged as a failure:\n%s", out)
		}
	})
}

// TestBrowserClientsGetCORS: a browser-based MCP client on another origin can preflight and
// read the metadata, registration, token and revocation endpoints (any origin, no
// credentials); the authorization page is not opened to other origins.
func TestBrowserClientsGetCORS(t *testing.T) {
	s := setupTracker(t)
	issuer := s.p.url + "/h/acme"
	origin := "https://app.example"
	for _, u := range []string{
		s.p.url + "/.well-known/oauth-authorization-server/h/acme",
		s.p.url + "/.well-known/oauth-protected-resource/h/acme/mcp/tracker",
		issuer + "/register", issuer + "/token", issuer + "/revoke",
	} {
		req, _ := http.NewRequest(http.MethodOptions, u, nil)
		req.Header.Set("Origin", origin)
		method := "POST"
		if strings.Contains(u, "/.well-known/") {
			method = "GET"
		}
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		h := resp.Header
		if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), method) || !allowsHeader(h.Get("Access-Control-Allow-Headers"), "content-type") {
			t.Errorf("preflight of %s = %d %v", u, resp.StatusCode, h)
		}
	}
	// The actual requests carry Access-Control-Allow-Origin, errors included.
	for _, u := range []string{issuer + "/token", issuer + "/revoke", issuer + "/register"} {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("grant_type=nothing"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(resp)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("POST %s = %d without Access-Control-Allow-Origin", u, resp.StatusCode)
		}
	}
	// Pages stay closed to other origins.
	req, _ := http.NewRequest(http.MethodOptions, issuer+"/authorize", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of /authorize allowed an origin: %v", resp.Header)
	}
}

func allowsHeader(list, name string) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for _, h := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return true
		}
	}
	return false
}

// TestRevocationReachesEveryReplica: two processes share one PostgreSQL database; a token
// revoked through one is refused by the other at its very next call, although that replica
// had just accepted (and cached) it.
func TestRevocationReachesEveryReplica(t *testing.T) {
	rp := startReplicaPair(t)
	lb, p1, p2 := rp.lb, rp.p1, rp.p2

	issuer := lb.URL + "/h/acme"
	resource := issuer + "/mcp/tracker"
	conf, code, verifier := authorizeCode(t, lb.URL, issuer, resource, "alice@acme.test", "correct horse battery staple")
	ctx := context.Background()
	revokeOn := func(p *process, token string) {
		t.Helper()
		revoke(t, p.url+"/h/acme", conf.ClientID, token)
	}

	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	// Each replica verifies (and caches) the token; then it is revoked through p1.
	wantAccepted(t, "p1 before revocation", p1.url+"/h/acme/mcp/tracker", tok.AccessToken)
	wantAccepted(t, "p2 before revocation", p2.url+"/h/acme/mcp/tracker", tok.AccessToken)
	revokeOn(p1, tok.AccessToken)
	wantRefused(t, "p2 after revocation on p1", p2.url+"/h/acme/mcp/tracker", tok.AccessToken)
	wantRefused(t, "p1 after revocation on p1", p1.url+"/h/acme/mcp/tracker", tok.AccessToken)
}

func mustUnmarshal(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}
