package fositestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/store"
)

// The provider end to end: a real HTTP server with a test-only authorize endpoint that grants
// at once, and golang.org/x/oauth2 as the client.

const (
	redirectURI = "http://localhost:9999/callback"
	rsSecret    = "resource-server-secret-0123456789abcdef" // the introspecting client's secret
)

type env struct {
	t     *testing.T
	st    store.Store
	clock *clock
	srv   *httptest.Server
	conf  *oauth2.Config // the public client "cursor" of host acme
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	e := &env{t: t, st: st, clock: &clock{}}
	ctx := context.Background()
	for _, host := range []string{"acme", "other"} {
		setUpHost(t, st, host)
		if _, err := st.CreateOAuthClient(ctx, store.OAuthClient{
			Host: host, ID: "rs", Kind: store.OAuthClientDCR,
			SecretHash: fositestore.HashSecret(rsSecret), TokenEndpointAuthMethod: store.OAuthAuthClientSecretBasic,
		}); err != nil {
			t.Fatalf("create introspection client: %v", err)
		}
	}
	secret := []byte(strings.Repeat("k", 32))
	p, err := fositestore.NewProvider(st, fositestore.ProviderConfig{
		GlobalSecret: secret,
		Audience:     func(host string) []string { return []string{e.resource(host)} },
		Now:          e.clock.Now,
	})
	if err != nil {
		t.Fatalf("new provider: %v", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /h/{host}/authorize", func(w http.ResponseWriter, r *http.Request) {
		host := r.PathValue("host")
		ctx := fositestore.WithHost(r.Context(), host)
		ar, err := p.NewAuthorizeRequest(ctx, r)
		if err != nil {
			p.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		// Consent, granted at once: every requested scope, the host's MCP resource.
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		ar.GrantAudience(e.resource(host))
		resp, err := p.NewAuthorizeResponse(ctx, ar, fositestore.NewSession(host, "u_1", "a_1"))
		if err != nil {
			p.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		p.WriteAuthorizeResponse(ctx, w, ar, resp)
	})
	mux.HandleFunc("POST /h/{host}/token", func(w http.ResponseWriter, r *http.Request) {
		ctx := fositestore.WithHost(r.Context(), r.PathValue("host"))
		ar, err := p.NewAccessRequest(ctx, r, &fositestore.Session{})
		if err != nil {
			p.WriteAccessError(ctx, w, ar, err)
			return
		}
		resp, err := p.NewAccessResponse(ctx, ar)
		if err != nil {
			p.WriteAccessError(ctx, w, ar, err)
			return
		}
		p.WriteAccessResponse(ctx, w, ar, resp)
	})
	mux.HandleFunc("POST /h/{host}/introspect", func(w http.ResponseWriter, r *http.Request) {
		ctx := fositestore.WithHost(r.Context(), r.PathValue("host"))
		ir, err := p.NewIntrospectionRequest(ctx, r, &fositestore.Session{})
		if err != nil && !errors.Is(err, fosite.ErrInactiveToken) {
			p.WriteIntrospectionError(ctx, w, err)
			return
		}
		p.WriteIntrospectionResponse(ctx, w, ir)
	})
	mux.HandleFunc("POST /h/{host}/revoke", func(w http.ResponseWriter, r *http.Request) {
		ctx := fositestore.WithHost(r.Context(), r.PathValue("host"))
		p.WriteRevocationResponse(ctx, w, p.NewRevocationRequest(ctx, r))
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.conf = e.config("acme", "cursor", "")
	return e
}

func (e *env) resource(host string) string { return e.srv.URL + "/h/" + host + "/mcp" }

func (e *env) config(host, clientID, secret string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if secret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		RedirectURL:  redirectURI,
		Scopes:       []string{"mcp"},
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.srv.URL + "/h/" + host + "/authorize",
			TokenURL:  e.srv.URL + "/h/" + host + "/token",
			AuthStyle: style,
		},
	}
}

// authorize runs the authorization request and returns the code, or the error the redirect
// carries.
func (e *env) authorize(conf *oauth2.Config, opts ...oauth2.AuthCodeOption) (code, errCode string) {
	e.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(conf.AuthCodeURL("state-0123456789", opts...))
	if err != nil {
		e.t.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: status %d, want a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatalf("authorize: redirect %q: %v", resp.Header.Get("Location"), err)
	}
	if !strings.HasPrefix(loc.String(), redirectURI) {
		e.t.Fatalf("authorize: redirected to %s", loc)
	}
	q := loc.Query()
	if q.Get("state") != "state-0123456789" {
		e.t.Fatalf("authorize: state %q", q.Get("state"))
	}
	return q.Get("code"), q.Get("error")
}

// login runs the code flow with S256 PKCE and returns the tokens.
func (e *env) login() *oauth2.Token {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	code, errCode := e.authorize(e.conf, oauth2.S256ChallengeOption(verifier))
	if code == "" {
		e.t.Fatalf("authorize: no code (error %q)", errCode)
	}
	tok, err := e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		e.t.Fatalf("exchange: token %+v, want an access and a refresh token", tok)
	}
	return tok
}

// refresh uses a refresh token once.
func (e *env) refresh(refreshToken string) (*oauth2.Token, error) {
	return e.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

func (e *env) mustRefresh(refreshToken string) *oauth2.Token {
	e.t.Helper()
	tok, err := e.refresh(refreshToken)
	if err != nil {
		e.t.Fatalf("refresh: %v", err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == refreshToken {
		e.t.Fatalf("refresh: refresh token %q not rotated", tok.RefreshToken)
	}
	return tok
}

// introspect asks host's introspection endpoint about token, as the resource server "rs".
func (e *env) introspect(host, token string) map[string]any {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/h/"+host+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("rs", rsSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("introspect: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("introspect: status %d: %v", resp.StatusCode, err)
	}
	return out
}

func (e *env) wantActive(what, token string, active bool) map[string]any {
	e.t.Helper()
	got := e.introspect("acme", token)
	if got["active"] != active {
		e.t.Fatalf("%s: introspection says %v, want active %v", what, got, active)
	}
	return got
}

func (e *env) revoke(token, hint string) int {
	e.t.Helper()
	form := url.Values{"token": {token}, "client_id": {"cursor"}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, err := http.PostForm(e.srv.URL+"/h/acme/revoke", form)
	if err != nil {
		e.t.Fatalf("revoke: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// wantOAuthError checks that err is the token endpoint's error code.
func wantOAuthError(t *testing.T, what string, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("%s: got %v, want OAuth error %q", what, err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("%s: got OAuth error %q (%s), want %q", what, re.ErrorCode, re.ErrorDescription, code)
	}
}

func TestProviderCodeFlowWithPKCE(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		tok := e.login()
		if got := tok.Extra("scope"); got != "mcp" {
			t.Fatalf("granted scope %v, want mcp", got)
		}
		info := e.wantActive("access token", tok.AccessToken, true)
		if info["sub"] != "u_1" || info["client_id"] != "cursor" || info["scope"] != "mcp" {
			t.Fatalf("introspection of the access token: %v", info)
		}
		if aud, _ := info["aud"].([]any); len(aud) != 1 || aud[0] != e.resource("acme") {
			t.Fatalf("audience %v, want [%s]", info["aud"], e.resource("acme"))
		}
		e.wantActive("refresh token", tok.RefreshToken, true)

		// Another host knows nothing of acme's tokens.
		if got := e.introspect("other", tok.AccessToken); got["active"] != false {
			t.Fatalf("host other: introspection of acme's token says %v", got)
		}
	})
}

func TestProviderRefusesPlainAndMissingPKCE(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		verifier := oauth2.GenerateVerifier()
		for name, opts := range map[string][]oauth2.AuthCodeOption{
			"no challenge": nil,
			"plain": {
				oauth2.SetAuthURLParam("code_challenge", verifier),
				oauth2.SetAuthURLParam("code_challenge_method", "plain"),
			},
			"challenge without method (plain)": {oauth2.SetAuthURLParam("code_challenge", verifier)},
		} {
			code, errCode := e.authorize(e.conf, opts...)
			if code != "" || errCode != "invalid_request" {
				t.Fatalf("%s: code %q, error %q; want no code and invalid_request", name, code, errCode)
			}
		}
	})
}

func TestProviderWrongVerifier(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		verifier := oauth2.GenerateVerifier()
		code, _ := e.authorize(e.conf, oauth2.S256ChallengeOption(verifier))
		_, err := e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		wantOAuthError(t, "wrong verifier", err, "invalid_grant")
		// A failed verification spends the challenge (fosite deletes it before comparing): a
		// second try finds none, with or without the right verifier.
		_, err = e.conf.Exchange(context.Background(), code)
		wantOAuthError(t, "no verifier", err, "invalid_request")
		_, err = e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		wantOAuthError(t, "right verifier after a wrong one", err, "invalid_grant")
	})
}

func TestProviderCodeReuseRevokesTheGrant(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		verifier := oauth2.GenerateVerifier()
		code, _ := e.authorize(e.conf, oauth2.S256ChallengeOption(verifier))
		tok, err := e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		noErr(t, "first exchange", err)
		e.wantActive("access token", tok.AccessToken, true)

		_, err = e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		wantOAuthError(t, "second exchange", err, "invalid_grant")
		e.wantActive("access token of the first exchange", tok.AccessToken, false)
		e.wantActive("refresh token of the first exchange", tok.RefreshToken, false)
		_, err = e.refresh(tok.RefreshToken)
		wantOAuthError(t, "refresh after code reuse", err, "invalid_grant")
	})
}

func TestProviderConcurrentCodeExchange(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		verifier := oauth2.GenerateVerifier()
		code, _ := e.authorize(e.conf, oauth2.S256ChallengeOption(verifier))
		const n = 4
		toks := make([]*oauth2.Token, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				toks[i], _ = e.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
			})
		}
		wg.Wait()
		// A loser that saw the code used revokes the grant as a code reuse, so at most one set
		// of tokens stays live.
		live := 0
		for _, tok := range toks {
			if tok != nil && e.introspect("acme", tok.AccessToken)["active"] == true {
				live++
			}
		}
		if live > 1 {
			t.Fatalf("%d concurrent exchanges of one code hold live tokens", live)
		}
		got := 0
		for _, tok := range toks {
			if tok != nil {
				got++
			}
		}
		// At most one exchange gets tokens. None is also right: a loser that finds the code
		// already used cannot tell the race from a replay and revokes the grant, as RFC 6749
		// section 4.1.2 asks, sometimes before the winner has stored its tokens.
		if got > 1 {
			t.Fatalf("%d of %d concurrent exchanges of one code got tokens, want at most 1", got, n)
		}
	})
}

func TestProviderRefreshRotates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		t1 := e.login()
		t2 := e.mustRefresh(t1.RefreshToken)
		e.wantActive("new access token", t2.AccessToken, true)
		e.wantActive("new refresh token", t2.RefreshToken, true)
		e.wantActive("the access token issued with the rotated refresh token", t1.AccessToken, false)
		// The rotated refresh token is inactive at once; the new one keeps working.
		e.wantActive("rotated refresh token", t1.RefreshToken, false)
		t3 := e.mustRefresh(t2.RefreshToken)
		e.wantActive("third access token", t3.AccessToken, true)
		info := e.wantActive("third refresh token", t3.RefreshToken, true)
		if info["sub"] != "u_1" || info["scope"] != "mcp" {
			t.Fatalf("the refreshed grant lost its session or scope: %v", info)
		}
	})
}

// TestProviderConcurrentRefreshForksNoChain: of concurrent refreshes with one refresh token
// (a thief replaying it beside its owner), at most one gets tokens: there is no grace window in
// which a second, independent chain could start.
func TestProviderConcurrentRefreshForksNoChain(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		t1 := e.login()
		const n = 4
		toks := make([]*oauth2.Token, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { toks[i], errs[i] = e.refresh(t1.RefreshToken) })
		}
		wg.Wait()
		got := 0
		for i := range n {
			if errs[i] == nil {
				got++
			}
		}
		if got > 1 {
			t.Fatalf("%d of %d concurrent refreshes with one token got tokens, want at most 1", got, n)
		}
	})
}

// TestProviderRefreshReplayAtOnceIsReuse: a refresh token used again right after its rotation
// (within what was a 10-second grace window) is reuse: the whole grant is revoked.
func TestProviderRefreshReplayAtOnceIsReuse(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		t1 := e.login()
		t2 := e.mustRefresh(t1.RefreshToken)
		e.clock.advance(time.Second)
		_, err := e.refresh(t1.RefreshToken)
		wantOAuthError(t, "replay one second after the rotation", err, "invalid_grant")
		e.wantActive("the owner's new access token", t2.AccessToken, false)
		_, err = e.refresh(t2.RefreshToken)
		wantOAuthError(t, "the owner's new refresh token", err, "invalid_grant")
	})
}

func TestProviderRefreshReuseRevokesTheGrant(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		t1 := e.login()
		t2 := e.mustRefresh(t1.RefreshToken)
		e.clock.advance(time.Minute)

		_, err := e.refresh(t1.RefreshToken)
		wantOAuthError(t, "reuse", err, "invalid_grant")
		e.wantActive("newest access token", t2.AccessToken, false)
		e.wantActive("newest refresh token", t2.RefreshToken, false)
		_, err = e.refresh(t2.RefreshToken)
		wantOAuthError(t, "refresh with the revoked newest token", err, "invalid_grant")

		// Another login (another grant) is unaffected.
		t3 := e.login()
		e.wantActive("another grant", t3.AccessToken, true)
	})
}

func TestProviderRevocationEndpoint(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		a := e.login()
		if code := e.revoke(a.RefreshToken, "refresh_token"); code != http.StatusOK {
			t.Fatalf("revoke refresh token: status %d", code)
		}
		e.wantActive("access token of a revoked refresh token", a.AccessToken, false)
		e.wantActive("revoked refresh token", a.RefreshToken, false)
		_, err := e.refresh(a.RefreshToken)
		wantOAuthError(t, "refresh with a revoked token", err, "invalid_grant")

		b := e.login()
		if code := e.revoke(b.AccessToken, ""); code != http.StatusOK {
			t.Fatalf("revoke access token: status %d", code)
		}
		e.wantActive("revoked access token", b.AccessToken, false)
		e.wantActive("refresh token of a revoked access token", b.RefreshToken, false)

		// Revoking an unknown token is not an error (RFC 7009).
		if code := e.revoke("ory_rt_unknown.unknown", ""); code != http.StatusOK {
			t.Fatalf("revoke unknown token: status %d", code)
		}
	})
}

func TestProviderKillSwitch(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		a := e.login()
		b := e.mustRefresh(e.login().RefreshToken)
		n, err := st.RevokeOAuthByAgent(context.Background(), "acme", "a_1")
		noErr(t, "revoke agent", err)
		if n == 0 {
			t.Fatal("RevokeOAuthByAgent revoked nothing")
		}
		for _, tok := range []*oauth2.Token{a, b} {
			e.wantActive("access token of a killed agent", tok.AccessToken, false)
			e.wantActive("refresh token of a killed agent", tok.RefreshToken, false)
			_, err := e.refresh(tok.RefreshToken)
			wantOAuthError(t, "refresh by a killed agent", err, "invalid_grant")
		}
	})
}

func TestProviderConfidentialClient(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		const secret = "client-secret-0123456789abcdef0123456789"
		if _, err := st.CreateOAuthClient(context.Background(), store.OAuthClient{
			Host: "acme", ID: "vscode", Kind: store.OAuthClientDCR,
			SecretHash: fositestore.HashSecret(secret), TokenEndpointAuthMethod: store.OAuthAuthClientSecretBasic,
			RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"},
			Metadata: `{"scope":"mcp"}`,
		}); err != nil {
			t.Fatalf("create client: %v", err)
		}
		for _, c := range []struct {
			name, secret, wantErr string
		}{
			{"wrong secret", "wrong", "invalid_client"},
			{"right secret", secret, ""},
		} {
			conf := e.config("acme", "vscode", c.secret)
			verifier := oauth2.GenerateVerifier()
			code, errCode := e.authorize(conf, oauth2.S256ChallengeOption(verifier))
			if code == "" {
				t.Fatalf("%s: authorize: %s", c.name, errCode)
			}
			tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
			if c.wantErr != "" {
				wantOAuthError(t, c.name, err, c.wantErr)
				continue
			}
			noErr(t, c.name, err)
			if got := e.wantActive(c.name, tok.AccessToken, true); got["client_id"] != "vscode" {
				t.Fatalf("%s: introspection %v", c.name, got)
			}
		}
	})
}

func TestProviderDeletedClient(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		a := e.login()
		noErr(t, "delete client", st.DeleteOAuthClient(context.Background(), "acme", "cursor"))
		e.wantActive("access token of a deleted client", a.AccessToken, false)
		e.wantActive("refresh token of a deleted client", a.RefreshToken, false)
	})
}

func TestNewProviderRefusesAShortSecret(t *testing.T) {
	if _, err := fositestore.NewProvider(nil, fositestore.ProviderConfig{GlobalSecret: make([]byte, 31)}); err == nil {
		t.Fatal("a 31-byte global secret was accepted")
	}
}

func TestProviderSessionLimits(t *testing.T) {
	forEachEngine(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)

		// Idle: refreshed within 30 days the session goes on; unused for 30 days it ends,
		// and its tokens are revoked.
		t1 := e.login()
		e.clock.advance(fositestore.DefaultSessionIdleTTL - time.Hour)
		t2 := e.mustRefresh(t1.RefreshToken)
		e.clock.advance(fositestore.DefaultSessionIdleTTL - time.Hour)
		t3 := e.mustRefresh(t2.RefreshToken)
		e.clock.advance(fositestore.DefaultSessionIdleTTL)
		_, err := e.refresh(t3.RefreshToken)
		wantOAuthError(t, "refresh after 30 idle days", err, "invalid_grant")
		e.wantActive("access token of the ended session", t3.AccessToken, false)
		_, err = e.refresh(t3.RefreshToken)
		wantOAuthError(t, "refresh again", err, "invalid_grant")

		// Absolute: refreshing every day still ends 90 days after consent.
		tok := e.login()
		other := e.login() // another grant, left alone
		for day := 1; ; day++ {
			e.clock.advance(24 * time.Hour)
			next, err := e.refresh(tok.RefreshToken)
			if err != nil {
				if day != 90 {
					t.Fatalf("refresh on day %d: %v", day, err)
				}
				wantOAuthError(t, "refresh on day 90", err, "invalid_grant")
				break
			}
			if day >= 90 {
				t.Fatalf("refresh on day %d succeeded", day)
			}
			tok = next
			if day == 29 {
				other = e.mustRefresh(other.RefreshToken)
			}
		}
		e.wantActive("access token of the ended session", tok.AccessToken, false)
		// The other grant was last used on day 29: it ended on day 59, idle.
		_, err = e.refresh(other.RefreshToken)
		wantOAuthError(t, "the idle grant", err, "invalid_grant")
		// A new login starts a new session.
		e.mustRefresh(e.login().RefreshToken)
	})
}
