package tests

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestOriginOAuthFallbacksThroughTheBinary: the origin-level /token, /revoke and /authorize
// serve a client of any host as that host's own endpoints do. What is posted is what the
// Python MCP SDK 1.x sends when it refreshes stored tokens before discovery (python-sdk issues
// 3240 and 3250): grant_type, client_id, refresh_token and resource, at <origin>/token.
func TestOriginOAuthFallbacksThroughTheBinary(t *testing.T) {
	s := setupTracker(t)
	origin := s.p.url
	cli(t, s.p, s.admin, "host", "create", "beta", "--exact")
	cli(t, s.p, s.admin, "server", "import", s.up.URL, "--host", "beta", "--key", "tracker")
	addClaimed(t, s.p, s.admin, "beta", "bob@beta.test", s.password)
	cli(t, s.p, s.admin, "human", "grant", "bob@beta.test", "tracker", "--level", "high", "--host", "beta")

	type agent struct {
		issuer, resource string
		conf             *oauth2.Config
		tok              *oauth2.Token
	}
	agents := map[string]*agent{
		"acme": {issuer: origin + "/h/acme", resource: s.resource},
		"beta": {issuer: origin + "/h/beta", resource: origin + "/h/beta/mcp/tracker"},
	}
	agents["acme"].conf, agents["acme"].tok = connectAgentTokens(t, origin, agents["acme"].issuer, agents["acme"].resource, s.email, s.password, "low")
	agents["beta"].conf, agents["beta"].tok = connectAgentTokens(t, origin, agents["beta"].issuer, agents["beta"].resource, "bob@beta.test", s.password, "low")

	refresh := func(clientID, refreshToken, resource string) (int, map[string]any) {
		t.Helper()
		status, body := postToken(t, origin, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID},
			"refresh_token": {refreshToken}, "resource": {resource}})
		out := map[string]any{}
		_ = json.Unmarshal([]byte(body), &out)
		return status, out
	}

	for _, host := range []string{"acme", "beta"} {
		a := agents[host]
		status, body := refresh(a.conf.ClientID, a.tok.RefreshToken, a.resource)
		if status != http.StatusOK {
			t.Fatalf("%s: refresh at <origin>/token = %d %v, want 200", host, status, body)
		}
		access, _ := body["access_token"].(string)
		claims := jwtClaims(t, access)
		if claims["iss"] != a.issuer || !audienceIs(claims["aud"], a.resource) || claims["host"] != host {
			t.Fatalf("%s: the token from <origin>/token has iss %v, aud %v, host %v; want %s, %s, %s", host, claims["iss"], claims["aud"], claims["host"], a.issuer, a.resource, host)
		}
		wantAccepted(t, host+"'s token from the origin", a.resource, access)
		a.tok = &oauth2.Token{AccessToken: access, RefreshToken: body["refresh_token"].(string)}
	}

	// A client id no host has is refused as before.
	if status, body := refresh("tgc_aaaaaaaaaaaaaaaaaaaaaaaaaa", agents["acme"].tok.RefreshToken, agents["acme"].resource); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("an unknown client at <origin>/token = %d %v, want 401 invalid_client", status, body)
	}
	// A client of acme never gets a token of beta: not with beta's refresh token, not for
	// beta's resource.
	if status, body := refresh(agents["acme"].conf.ClientID, agents["beta"].tok.RefreshToken, agents["beta"].resource); status == http.StatusOK || status/100 != 4 {
		t.Fatalf("acme's client with beta's refresh token = %d %v", status, body)
	}
	if status, body := refresh(agents["acme"].conf.ClientID, agents["acme"].tok.RefreshToken, agents["beta"].resource); status != http.StatusBadRequest || body["error"] != "invalid_target" {
		t.Fatalf("acme's client for beta's resource = %d %v, want 400 invalid_target", status, body)
	}

	// /revoke at the origin, for beta's client: its access token is refused at the next call.
	wantAccepted(t, "beta's token before the revocation", agents["beta"].resource, agents["beta"].tok.AccessToken)
	revoke(t, origin, agents["beta"].conf.ClientID, agents["beta"].tok.AccessToken)
	wantRefused(t, "beta's token revoked at the origin", agents["beta"].resource, agents["beta"].tok.AccessToken)

	// /authorize at the origin, for beta's client: the browser goes to beta's own page.
	q := url.Values{"response_type": {"code"}, "client_id": {agents["beta"].conf.ClientID}, "redirect_uri": {agents["beta"].conf.RedirectURL},
		"state": {"state-123456"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}, "resource": {agents["beta"].resource}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(origin + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, agents["beta"].issuer+"/authorize?") {
		t.Fatalf("<origin>/authorize for beta's client = %d %s, want a redirect to beta's", resp.StatusCode, loc)
	}
	resp, err = http.Get(origin + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if page := readAll(resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) || !strings.Contains(page, "/h/beta/login") {
		t.Fatalf("<origin>/authorize for beta's client led to %d:\n%s", resp.StatusCode, page)
	}
}

// jwtClaims decodes the payload of a JWT (unverified: the MCP call checks it).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// audienceIs reports whether a JWT's aud claim is exactly want.
func audienceIs(aud any, want string) bool {
	switch v := aud.(type) {
	case string:
		return v == want
	case []any:
		return len(v) == 1 && v[0] == want
	}
	return false
}
