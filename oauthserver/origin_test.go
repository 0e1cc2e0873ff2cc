package oauthserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The origin-level fallbacks: /token, /revoke and /authorize at the bare public URL serve a
// client of any host as that host's own endpoints do, and never mix two hosts.

// addHuman adds the test's human to host too, granted its linear server up to high, with the
// same password.
func (e *env) addHuman(host string) {
	e.t.Helper()
	ctx := context.Background()
	for name, level := range map[string]schema.Level{"list_issues": schema.Low, "create_issue": schema.Medium} {
		if _, err := e.st.PutTool(ctx, store.Tool{Host: host, Server: "linear", Name: name, Level: level, Enabled: true}); err != nil {
			e.t.Fatal(err)
		}
	}
	u, err := e.st.CreateUser(ctx, store.User{Host: host, Email: email})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: host, Server: "linear", UserID: u.ID, Ceiling: schema.High}); err != nil {
		e.t.Fatal(err)
	}
	e.claimInvitation(e.invite(u), password)
}

// tokensOf connects a client of host through host's own endpoints for resource and returns it
// with its tokens.
func (e *env) tokensOf(host, resource string, conf *oauth2.Config) *oauth2.Token {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	b := e.browser()
	p := b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", resource)))
	p = b.Submit(p, map[string]string{"email": email, "password": password})
	if !strings.Contains(p.Body, `name="trust_level"`) {
		e.t.Fatalf("%s: after sign-in: %d %s", host, p.Status, p.Body)
	}
	p = b.Submit(p, map[string]string{"trust_level": "low", "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("iss") != e.base(host) {
		e.t.Fatalf("%s: consent redirect %v (%d)", host, p.Loc, p.Status)
	}
	return e.exchange(conf, p.Loc, v)
}

// postOrigin posts form to path at the bare public URL and returns the status and the JSON
// answer.
func (e *env) postOrigin(path string, form url.Values) (int, map[string]any) {
	e.t.Helper()
	resp, err := http.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// refreshForm is the refresh the Python SDK 1.x posts to <origin>/token.
func refreshForm(clientID, refresh, resource string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {refresh}, "resource": {resource}}
}

func TestOriginTokenServesEveryHostsClients(t *testing.T) {
	e := newEnv(t)
	e.addHuman("other")
	ctx := context.Background()
	if _, err := e.st.CreateHost(ctx, store.Host{Key: "default"}); err != nil { // as the gateway has
		t.Fatal(err)
	}
	// acme's access tokens live ten minutes, other's the default hour: the lifetime is the
	// client's host's, wherever the refresh is posted.
	acmeHost, _ := e.st.GetHost(ctx, "acme")
	acmeHost.Settings.AccessTokenTTLSeconds = 600
	if _, err := e.st.UpdateHost(ctx, acmeHost); err != nil {
		t.Fatal(err)
	}
	ttl := map[string]float64{"acme": 600, "other": 3600}
	resource := func(host string) string { return e.urls.MCP(host) + "/linear" }
	clients := map[string]*oauth2.Config{}
	tokens := map[string]*oauth2.Token{}
	for _, host := range []string{"acme", "other"} {
		clients[host] = e.register(host)
		tokens[host] = e.tokensOf(host, resource(host), clients[host])
	}

	for _, host := range []string{"acme", "other"} {
		status, body := e.postOrigin("/token", refreshForm(clients[host].ClientID, tokens[host].RefreshToken, resource(host)))
		if status != http.StatusOK {
			t.Fatalf("%s: refresh at the origin = %d %v", host, status, body)
		}
		access, _ := body["access_token"].(string)
		claims, err := e.ks.Verify(access, accesstoken.Expect{Issuer: e.base(host), Audience: resource(host)})
		if err != nil || claims.Host != host || claims.ClientID != clients[host].ClientID {
			t.Fatalf("%s: the access token from the origin: %+v, %v", host, claims, err)
		}
		if in, _ := body["expires_in"].(float64); in > ttl[host] || in < ttl[host]-5 || claims.Expiry.Sub(claims.IssuedAt) != time.Duration(ttl[host])*time.Second {
			t.Fatalf("%s: expires_in %v, token lifetime %v; want %v s", host, body["expires_in"], claims.Expiry.Sub(claims.IssuedAt), ttl[host])
		}
		// The refresh token rotated as at the host's own endpoint: the old one is used up,
		// the new one works there.
		tokens[host].RefreshToken, _ = body["refresh_token"].(string)
		next, err := clients[host].TokenSource(ctx, &oauth2.Token{RefreshToken: tokens[host].RefreshToken}).Token()
		if err != nil {
			t.Fatalf("%s: the rotated refresh token at the host's own endpoint: %v", host, err)
		}
		tokens[host] = next
	}

	t.Run("an unknown client is invalid_client", func(t *testing.T) {
		for _, id := range []string{"tgc_aaaaaaaaaaaaaaaaaaaaaaaaaa", "https://client.example/unknown.json", ""} {
			status, body := e.postOrigin("/token", refreshForm(id, tokens["acme"].RefreshToken, resource("acme")))
			if id != "" {
				// Without a resource the request names no host but by its refresh token.
				form := refreshForm(id, "", "")
				form.Del("resource")
				if status, body := e.postOrigin("/token", form); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
					t.Fatalf("client %q at the origin without resource = %d %v, want 401 invalid_client", id, status, body)
				}
			}
			if id == "" {
				if status == http.StatusOK {
					t.Fatalf("a refresh without client id = 200 %v", body)
				}
				continue
			}
			if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Fatalf("client %q at the origin = %d %v, want 401 invalid_client", id, status, body)
			}
		}
	})

	t.Run("a client of one host never gets a token of another", func(t *testing.T) {
		// A client of acme presenting other's refresh token, at the origin and with either
		// resource.
		for _, res := range []string{resource("acme"), resource("other"), ""} {
			status, body := e.postOrigin("/token", refreshForm(clients["acme"].ClientID, tokens["other"].RefreshToken, res))
			if status == http.StatusOK || status/100 != 4 {
				t.Fatalf("acme's client with other's refresh token (resource %q) = %d %v", res, status, body)
			}
		}
		// A client of acme with its own refresh token, for other's resource.
		status, body := e.postOrigin("/token", refreshForm(clients["acme"].ClientID, tokens["acme"].RefreshToken, resource("other")))
		if status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Fatalf("acme's refresh for other's resource = %d %v, want 400 invalid_target", status, body)
		}
		// Neither refresh token was spent by the refusals.
		for _, host := range []string{"acme", "other"} {
			next, err := clients[host].TokenSource(ctx, &oauth2.Token{RefreshToken: tokens[host].RefreshToken}).Token()
			if err != nil {
				t.Fatalf("%s's refresh token after the refused requests: %v", host, err)
			}
			tokens[host] = next
		}
	})

	t.Run("revocation at the origin", func(t *testing.T) {
		// Another client cannot revoke other's token at the origin.
		if status, body := e.postOrigin("/revoke", url.Values{"token": {tokens["other"].RefreshToken}, "client_id": {clients["acme"].ClientID}}); status != http.StatusOK {
			t.Fatalf("revocation by another host's client = %d %v", status, body)
		}
		if _, err := clients["other"].TokenSource(ctx, &oauth2.Token{RefreshToken: tokens["other"].RefreshToken}).Token(); err != nil {
			t.Fatalf("other's refresh token after another client's revocation: %v", err)
		}
		status, body := e.postOrigin("/revoke", url.Values{"token": {tokens["acme"].RefreshToken}, "client_id": {clients["acme"].ClientID}})
		if status != http.StatusOK {
			t.Fatalf("revocation at the origin = %d %v", status, body)
		}
		if _, err := clients["acme"].TokenSource(ctx, &oauth2.Token{RefreshToken: tokens["acme"].RefreshToken}).Token(); err == nil {
			t.Fatal("a refresh token revoked at the origin still works at its host")
		}
		if status, body := e.postOrigin("/revoke", url.Values{"token": {"x"}, "client_id": {"tgc_aaaaaaaaaaaaaaaaaaaaaaaaaa"}}); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Fatalf("revocation by an unknown client = %d %v, want 401 invalid_client", status, body)
		}
	})
}

func TestOriginAuthorizeSendsTheBrowserToTheClientsHost(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(base, clientID, resource string) *http.Response {
		t.Helper()
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
			"state": {"state-0123456789"}}
		if resource != "" {
			q.Set("resource", resource)
		}
		resp, err := noFollow.Get(base + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := authorize(e.srv.URL, conf.ClientID, e.resource())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Scheme+"://"+loc.Host+loc.Path != e.path("acme", "/authorize") || loc.Query().Get("client_id") != conf.ClientID {
		t.Fatalf("authorize at the origin = %d %s, want a redirect to acme's", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The browser follows it to acme's sign-in page.
	p := e.browser().Get(loc.String())
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("acme's authorization page: %d %s", p.Status, p.Body)
	}

	// An unknown client, and a client of the default host, are the default host's as before.
	if _, err := e.st.CreateHost(context.Background(), store.Host{Key: "default"}); err != nil {
		t.Fatal(err)
	}
	def := e.register("default")
	for _, id := range []string{"tgc_aaaaaaaaaaaaaaaaaaaaaaaaaa", def.ClientID} {
		got, want := authorize(e.srv.URL, id, ""), authorize(e.srv.URL+"/h/default", id, "")
		if got.StatusCode != want.StatusCode || strings.Contains(got.Header.Get("Location"), "/h/") {
			t.Fatalf("client %s at the origin = %d %s, at /h/default = %d", id, got.StatusCode, got.Header.Get("Location"), want.StatusCode)
		}
	}
	// The default host's client with acme's resource is refused by the default host, as it
	// would be at /h/default: the client, not the resource, names the host.
	got := authorize(e.srv.URL, def.ClientID, e.resource())
	if refusal, _ := url.Parse(got.Header.Get("Location")); got.StatusCode != http.StatusSeeOther && got.StatusCode != http.StatusFound ||
		refusal == nil || refusal.Query().Get("error") != "invalid_target" || refusal.Query().Get("iss") != e.base("default") {
		t.Fatalf("the default host's client with acme's resource = %d %s, want invalid_target from the default host", got.StatusCode, got.Header.Get("Location"))
	}
}

func TestOriginServesClientIDMetadataDocumentsByResource(t *testing.T) {
	var docURL string
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": docURL, "client_name": "Doc Client", "redirect_uris": []string{redirectURI},
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	}))
	t.Cleanup(tlsSrv.Close)
	docURL = tlsSrv.URL + "/oauth/client.json"
	client := tlsSrv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	e := newEnvWith(t, envOptions{httpClient: client})
	e.addHuman("other")
	resource := func(host string) string { return e.urls.MCP(host) + "/linear" }
	// One document, a client of both hosts.
	tokens := map[string]*oauth2.Token{}
	for _, host := range []string{"acme", "other"} {
		conf := &oauth2.Config{ClientID: docURL, RedirectURL: redirectURI, Endpoint: oauth2.Endpoint{
			AuthURL: e.path(host, "/authorize"), TokenURL: e.path(host, "/token"), AuthStyle: oauth2.AuthStyleInParams}}
		tokens[host] = e.tokensOf(host, resource(host), conf)
	}
	// With its resource, and without one (by its refresh token), each refresh is its host's.
	for _, host := range []string{"acme", "other"} {
		for _, res := range []string{resource(host), ""} {
			form := refreshForm(docURL, tokens[host].RefreshToken, res)
			if res == "" {
				form.Del("resource")
			}
			status, body := e.postOrigin("/token", form)
			if status != http.StatusOK {
				t.Fatalf("%s (resource %q): refresh at the origin = %d %v", host, res, status, body)
			}
			access, _ := body["access_token"].(string)
			if claims, err := e.ks.Verify(access, accesstoken.Expect{Issuer: e.base(host), Audience: resource(host)}); err != nil || claims.Host != host {
				t.Fatalf("%s: the access token: %+v, %v", host, claims, err)
			}
			tokens[host].RefreshToken, _ = body["refresh_token"].(string)
		}
	}
	// The resource names the host: acme's refresh token for other's resource is refused.
	status, body := e.postOrigin("/token", refreshForm(docURL, tokens["acme"].RefreshToken, resource("other")))
	if status == http.StatusOK || status/100 != 4 {
		t.Fatalf("acme's refresh token with other's resource = %d %v", status, body)
	}
}
