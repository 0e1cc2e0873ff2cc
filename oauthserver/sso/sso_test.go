package sso_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/githubstandin"
	"github.com/trustgate/trustgate/internal/testkit/oidcprovider"
	"github.com/trustgate/trustgate/oauthserver/sso"
	"github.com/trustgate/trustgate/store"
)

const (
	host     = "acme"
	clientID = "trustgate-acme"
	secret   = "s3cret-of-the-client"
	redirect = "https://gw.example/h/acme/auth/oidc/callback"
	tenant   = "3f2a6b1c-1111-4222-8333-444455556666"
)

type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type env struct {
	t     *testing.T
	st    store.Store
	c     *sso.Client
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.CreateHost(ctx, store.Host{Key: host, Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, clock: &clock{}}
	// The providers are on loopback: the test allows it, as --upstream-allow-cidr would.
	fetch := ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: true})
	if e.c, err = sso.New(sso.Config{Store: st, Keys: keys, HTTPClient: fetch, Now: e.clock.now}); err != nil {
		t.Fatal(err)
	}
	return e
}

var people = []oidcprovider.User{
	{ID: "u-alice", Username: "alice", Password: "alice-pw", Email: "alice@example.com", EmailVerified: true},
	{ID: "u-mallory", Username: "mallory", Password: "mallory-pw", Email: "alice@example.com", EmailVerified: false},
}

func startOP(t *testing.T, tenant string) *oidcprovider.Provider {
	return oidcprovider.Start(t, oidcprovider.Options{
		Users:           people,
		Clients:         []oidcprovider.Client{{ID: clientID, Secret: secret, RedirectURIs: []string{redirect}}},
		MicrosoftTenant: tenant,
	})
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// signIn runs a whole sign-in: Begin, the person at the provider, Finish with the answer.
func (e *env) signIn(op *oidcprovider.Provider, m sso.Method, user, password string) (sso.Finished, error) {
	e.t.Helper()
	begun, err := e.c.Begin(context.Background(), sso.BeginRequest{Host: host, Method: m, PendingRef: "ref-1", RedirectURI: redirect})
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	back := op.SignIn(e.t, browser(), begun.URL, user, password)
	return e.finish(m, back, begun.Binding)
}

func (e *env) finish(m sso.Method, back *url.URL, binding string) (sso.Finished, error) {
	e.t.Helper()
	if !strings.HasPrefix(back.String(), redirect+"?") {
		e.t.Fatalf("the provider sent the browser to %s, not to the callback", back)
	}
	q := back.Query()
	return e.c.Finish(context.Background(), sso.FinishRequest{Host: host, Method: m, State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), Binding: binding})
}

func oidcMethod(op *oidcprovider.Provider) sso.Method {
	return sso.Method{Name: sso.MethodOIDC, Settings: sso.Settings{ClientID: clientID, Issuer: op.Issuer}, Secret: secret}
}

func TestOIDCSignIn(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, "")
	fin, err := e.signIn(op, oidcMethod(op), "alice", "alice-pw")
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if fin.Identity.Email != "alice@example.com" || fin.Identity.Subject != "u-alice" || fin.Identity.Method != "oidc" || fin.Identity.Issuer != op.Issuer || fin.PendingRef != "ref-1" {
		t.Errorf("finished = %+v", fin)
	}
}

// Every way an ID token can be not for us, or not true, is refused.
func TestOIDCRefusals(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, "")
	m := oidcMethod(op)
	for _, tc := range []struct {
		name    string
		rewrite func(map[string]any)
		badSig  bool
		user    string
		want    error
	}{
		{name: "wrong audience", rewrite: func(c map[string]any) { c["aud"] = []string{"another-app"}; c["azp"] = "another-app" }, want: sso.ErrToken},
		{name: "several audiences, another party", rewrite: func(c map[string]any) { c["aud"] = []string{clientID, "another-app"}; c["azp"] = "another-app" }, want: sso.ErrToken},
		{name: "expired", rewrite: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, want: sso.ErrToken},
		{name: "bad signature", badSig: true, want: sso.ErrToken},
		{name: "wrong nonce", rewrite: func(c map[string]any) { c["nonce"] = "the-nonce-of-another-sign-in" }, want: sso.ErrToken},
		{name: "no nonce", rewrite: func(c map[string]any) { delete(c, "nonce") }, want: sso.ErrToken},
		{name: "wrong issuer", rewrite: func(c map[string]any) { c["iss"] = "https://evil.example" }, want: sso.ErrToken},
		{name: "email not verified", user: "mallory", want: sso.ErrUnverifiedEmail},
		{name: "email_verified missing", rewrite: func(c map[string]any) { delete(c, "email_verified") }, want: sso.ErrUnverifiedEmail},
		{name: "email_verified false string", rewrite: func(c map[string]any) { c["email_verified"] = "false" }, want: sso.ErrUnverifiedEmail},
		{name: "no email", rewrite: func(c map[string]any) { delete(c, "email") }, want: sso.ErrUnverifiedEmail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op.Rewrite(tc.rewrite)
			op.BadSignature(tc.badSig)
			defer op.Rewrite(nil)
			defer op.BadSignature(false)
			user, pw := "alice", "alice-pw"
			if tc.user == "mallory" {
				user, pw = "mallory", "mallory-pw"
			}
			fin, err := e.signIn(op, m, user, pw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v (identity %+v)", err, tc.want, fin.Identity)
			}
			if fin.Identity.Email != "" {
				t.Errorf("an identity came out of a refused sign-in: %+v", fin.Identity)
			}
		})
	}
}

// The state is single use, bound to the browser that started the sign-in, to its host and
// method, and short-lived.
func TestStateRefusals(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, "")
	m := oidcMethod(op)
	begin := func() (sso.Begun, *url.URL) {
		begun, err := e.c.Begin(context.Background(), sso.BeginRequest{Host: host, Method: m, PendingRef: "ref-1", RedirectURI: redirect})
		if err != nil {
			t.Fatal(err)
		}
		return begun, op.SignIn(t, browser(), begun.URL, "alice", "alice-pw")
	}

	begun, back := begin()
	if _, err := e.finish(m, back, begun.Binding); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := e.finish(m, back, begun.Binding); !errors.Is(err, sso.ErrState) {
		t.Errorf("replayed state: %v, want ErrState", err)
	}

	begun, back = begin()
	if _, err := e.finish(m, back, "the-binding-of-another-browser"); !errors.Is(err, sso.ErrState) {
		t.Errorf("another browser: %v, want ErrState", err)
	}
	// ... and that attempt used the state up: the right browser cannot use it after.
	if _, err := e.finish(m, back, begun.Binding); !errors.Is(err, sso.ErrState) {
		t.Errorf("state after a refused attempt: %v, want ErrState", err)
	}

	_, back = begin()
	if _, err := e.finish(m, back, ""); !errors.Is(err, sso.ErrState) {
		t.Errorf("no binding cookie: %v, want ErrState", err)
	}

	begun, back = begin()
	q := back.Query()
	if _, err := e.c.Finish(context.Background(), sso.FinishRequest{Host: host, Method: m, Code: q.Get("code"), Binding: begun.Binding}); !errors.Is(err, sso.ErrState) {
		t.Errorf("missing state: %v, want ErrState", err)
	}
	other := m
	other.Name = sso.MethodGoogle
	if _, err := e.c.Finish(context.Background(), sso.FinishRequest{Host: host, Method: other, State: q.Get("state"), Code: q.Get("code"), Binding: begun.Binding}); !errors.Is(err, sso.ErrState) {
		t.Errorf("state of another method: %v, want ErrState", err)
	}

	begun, back = begin()
	e.clock.advance(sso.StateTTL + time.Second)
	_, err := e.finish(m, back, begun.Binding)
	e.clock.advance(-sso.StateTTL - time.Second)
	if !errors.Is(err, sso.ErrState) {
		t.Errorf("expired state: %v, want ErrState", err)
	}

	// The person cancelled at the provider.
	begun, err = e.c.Begin(context.Background(), sso.BeginRequest{Host: host, Method: m, PendingRef: "ref-9", RedirectURI: redirect})
	if err != nil {
		t.Fatal(err)
	}
	state := mustQuery(t, begun.URL).Get("state")
	fin, err := e.c.Finish(context.Background(), sso.FinishRequest{Host: host, Method: m, State: state, Error: "access_denied", Binding: begun.Binding})
	if !errors.Is(err, sso.ErrDenied) || fin.PendingRef != "ref-9" {
		t.Errorf("cancelled: %v %+v, want ErrDenied with the pending ref", err, fin)
	}
}

// The request to the provider carries PKCE S256, a nonce and the state.
func TestAuthorizationRequest(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, "")
	begun, err := e.c.Begin(context.Background(), sso.BeginRequest{Host: host, Method: oidcMethod(op), PendingRef: "r", RedirectURI: redirect, LoginHint: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	q := mustQuery(t, begun.URL)
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("%s = %q, want 32 random bytes or more", k, q.Get(k))
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("client_id") != clientID || q.Get("redirect_uri") != redirect ||
		q.Get("login_hint") != "alice@example.com" || !strings.Contains(q.Get("scope"), "openid") || strings.Contains(begun.URL, secret) {
		t.Errorf("authorization URL %s", begun.URL)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestGooglePresetOverridesIssuer(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, "")
	m := sso.Method{Name: sso.MethodGoogle, Settings: sso.Settings{ClientID: clientID, Issuer: op.Issuer}, Secret: secret}
	fin, err := e.signIn(op, m, "alice", "alice-pw")
	if err != nil || fin.Identity.Method != "google" || fin.Identity.Email != "alice@example.com" {
		t.Fatalf("google sign-in: %v %+v", err, fin)
	}
}

// Microsoft: a single tenant, and the multi-tenant names whose issuer carries the token's tid.
func TestMicrosoftTenants(t *testing.T) {
	e := newEnv(t)
	op := startOP(t, tenant)
	ms := func(tn string) sso.Method {
		return sso.Method{Name: sso.MethodMicrosoft, Settings: sso.Settings{ClientID: clientID, Tenant: tn, Authority: op.URL}, Secret: secret}
	}
	for _, tn := range []string{tenant, sso.TenantCommon, sso.TenantOrganizations} {
		fin, err := e.signIn(op, ms(tn), "alice", "alice-pw")
		if err != nil {
			t.Fatalf("tenant %s: %v", tn, err)
		}
		if fin.Identity.Issuer != op.URL+"/"+tenant+"/v2.0" || fin.Identity.Email != "alice@example.com" {
			t.Errorf("tenant %s: %+v", tn, fin.Identity)
		}
	}
	other := "0c0c0c0c-aaaa-4bbb-8ccc-dddddddddddd"
	for _, tc := range []struct {
		name, tenant string
		rewrite      func(map[string]any)
	}{
		// A token of another tenant with its own issuer: fine for common, not for ours.
		{"other tenant for a single tenant", tenant, func(c map[string]any) { c["tid"] = other; c["iss"] = op.URL + "/" + other + "/v2.0" }},
		// The issuer of one tenant with the tid of another: the multi-tenant hole.
		{"issuer of another tenant than tid (common)", sso.TenantCommon, func(c map[string]any) { c["tid"] = other }},
		{"issuer of another tenant than tid (organizations)", sso.TenantOrganizations, func(c map[string]any) { c["iss"] = op.URL + "/" + other + "/v2.0" }},
		{"the template itself as issuer", sso.TenantCommon, func(c map[string]any) { c["iss"] = op.URL + "/{tenantid}/v2.0" }},
		{"no tid", sso.TenantCommon, func(c map[string]any) { delete(c, "tid") }},
		{"a personal account for organizations", sso.TenantOrganizations, func(c map[string]any) {
			c["tid"] = "9188040d-6c67-4c5b-b112-36a304b66dad"
			c["iss"] = op.URL + "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op.Rewrite(tc.rewrite)
			defer op.Rewrite(nil)
			if fin, err := e.signIn(op, ms(tc.tenant), "alice", "alice-pw"); !errors.Is(err, sso.ErrToken) {
				t.Fatalf("err = %v, want ErrToken (%+v)", err, fin.Identity)
			}
		})
	}
	// Microsoft's tokens often lack email_verified: xms_edov (the tenant verified the email's
	// domain) vouches instead; neither is a refusal.
	op.Rewrite(func(c map[string]any) { delete(c, "email_verified"); c["xms_edov"] = true })
	if _, err := e.signIn(op, ms(sso.TenantCommon), "alice", "alice-pw"); err != nil {
		t.Errorf("xms_edov: %v", err)
	}
	op.Rewrite(func(c map[string]any) { delete(c, "email_verified") })
	if _, err := e.signIn(op, ms(sso.TenantCommon), "alice", "alice-pw"); !errors.Is(err, sso.ErrUnverifiedEmail) {
		t.Errorf("neither email_verified nor xms_edov: %v", err)
	}
	op.Rewrite(nil)
}

func TestGitHub(t *testing.T) {
	e := newEnv(t)
	ghRedirect := "https://gw.example/h/acme/auth/github/callback"
	gh := githubstandin.Start(t, clientID, secret, githubstandin.Account{ID: 4242, Login: "alice", Emails: []githubstandin.Email{
		{Email: "alice@old.example", Primary: false, Verified: true},
		{Email: "alice@example.com", Primary: true, Verified: true},
	}})
	m := sso.Method{Name: sso.MethodGitHub, Settings: sso.Settings{ClientID: clientID, AuthURL: gh.URL + "/login/oauth/authorize", TokenURL: gh.URL + "/login/oauth/access_token", APIURL: gh.URL}, Secret: secret}
	run := func() (sso.Finished, error) {
		begun, err := e.c.Begin(context.Background(), sso.BeginRequest{Host: host, Method: m, PendingRef: "ref-gh", RedirectURI: ghRedirect})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(begun.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		back, err := resp.Location()
		if err != nil {
			t.Fatalf("the stand-in did not send the browser back: %d", resp.StatusCode)
		}
		q := back.Query()
		return e.c.Finish(context.Background(), sso.FinishRequest{Host: host, Method: m, State: q.Get("state"), Code: q.Get("code"), Binding: begun.Binding})
	}
	fin, err := run()
	if err != nil {
		t.Fatal(err)
	}
	if fin.Identity.Email != "alice@example.com" || fin.Identity.Subject != "4242" || fin.Identity.Method != "github" {
		t.Errorf("identity = %+v", fin.Identity)
	}
	// Only the primary AND verified address counts.
	for name, emails := range map[string][]githubstandin.Email{
		"primary unverified":   {{Email: "alice@example.com", Primary: true, Verified: false}, {Email: "other@example.com", Verified: true}},
		"verified not primary": {{Email: "alice@example.com", Primary: false, Verified: true}},
		"none":                 nil,
	} {
		gh.SetAccount(githubstandin.Account{ID: 4242, Login: "alice", Emails: emails})
		if fin, err := run(); !errors.Is(err, sso.ErrUnverifiedEmail) {
			t.Errorf("%s: %v %+v, want ErrUnverifiedEmail", name, err, fin.Identity)
		}
	}
	// A wrong client secret is the provider refusing the code.
	m.Secret = "wrong"
	if _, err := run(); !errors.Is(err, sso.ErrExchange) {
		t.Errorf("wrong secret: %v, want ErrExchange", err)
	}
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		method, json, wantErr string
	}{
		{"oidc", `{"client_id":"a","issuer":"https://idp.example.com"}`, ""},
		{"oidc", `{"client_id":"a","issuer":"http://127.0.0.1:9000"}`, ""},
		{"oidc", `{"client_id":"a"}`, "issuer is required"},
		{"oidc", `{"issuer":"https://idp.example.com"}`, "client_id is required"},
		{"oidc", `{"client_id":"a","issuer":"idp.example.com"}`, "not an absolute https URL"},
		{"oidc", `{"client_id":"a","issuer":"http://idp.example.com"}`, "must be https"},
		{"oidc", `{"client_id":"a","issuer":"https://idp.example.com?x=1"}`, "no user, query or fragment"},
		{"oidc", `{"client_id":"a","issuer":"https://idp.example.com","tenant":"x"}`, `unknown setting "tenant"`},
		{"oidc", `{"client_id":"a","Client_id":"b","issuer":"https://idp.example.com"}`, "client_id"},
		{"oidc", `{"client_id":1,"issuer":"https://idp.example.com"}`, "must be a string"},
		{"google", `{"client_id":"a.apps.googleusercontent.com"}`, ""},
		{"microsoft", `{"client_id":"a","tenant":"common"}`, ""},
		{"microsoft", `{"client_id":"a","tenant":"3f2a6b1c-1111-4222-8333-444455556666"}`, ""},
		{"microsoft", `{"client_id":"a"}`, "tenant is required"},
		{"microsoft", `{"client_id":"a","tenant":"contoso"}`, "neither a directory (tenant) ID"},
		{"github", `{"client_id":"Iv1.abc"}`, ""},
		{"github", `{"client_id":"Iv1.abc","api_url":"ftp://x"}`, "github: api_url"},
		{"saml", `{}`, "unknown sign-in method"},
	} {
		_, err := sso.ParseSettings(tc.method, []byte(tc.json))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s %s: %v", tc.method, tc.json, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s %s: %v, want an error containing %q", tc.method, tc.json, err, tc.wantErr)
		}
	}
}
