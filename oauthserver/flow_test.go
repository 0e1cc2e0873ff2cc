package oauthserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// The sign-up, server choice, CIMD, replica and session-limit behaviour of the flow, through
// real HTTP.

// open starts an authorization request for resource ("" sends none) with extra parameters.
func (e *env) open(b *browser, conf *oauth2.Config, resource string, extra ...oauth2.AuthCodeOption) (page testbrowserPage, verifier string) {
	e.t.Helper()
	verifier = oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)
	if resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", resource))
	}
	return b.Get(conf.AuthCodeURL("state-0123456789", opts...)), verifier
}

// signIn submits the sign-in page p when it is one.
func (e *env) signIn(b *browser, p testbrowserPage, who, pw string) testbrowserPage {
	e.t.Helper()
	if p.Status == http.StatusOK && strings.Contains(p.Body, `name="password"`) && !strings.Contains(p.Body, `name="password_confirm"`) {
		return b.Submit(p, map[string]string{"email": who, "password": pw})
	}
	return p
}

var signUpLinkRE = regexp.MustCompile(`href="([^"]*/signup\?state_ref=[^"]*)"`)

func setDomains(t *testing.T, st store.Store, host string, domains ...string) {
	t.Helper()
	h, err := st.GetHost(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	h.Settings.AllowedEmailDomains = domains
	if _, err := st.UpdateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

// Self sign-up would let anyone become bob@acme.com, whom an admin later trusts by name: until
// the mailbox can be verified it is refused, with a message saying so, for every host. The
// allowed-domains setting stays and only changes the message.
func TestSignUpRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conf := e.register("acme")
	for _, domains := range [][]string{{"example.org", "example.com"}, nil} {
		setDomains(t, e.st, "acme", domains...)
		want := oauthserver.MsgSignUpClosed
		if domains != nil {
			want = oauthserver.MsgSignUpNeedsEmail
		}
		b := e.browser()
		in, _ := e.open(b, conf, e.urls.MCP("acme"))
		if signUpLinkRE.MatchString(in.Body) {
			t.Fatalf("sign-up link shown (domains %v)", domains)
		}
		ref := regexp.MustCompile(`name="state_ref" value="([^"]*)"`).FindStringSubmatch(in.Body)[1]
		p := b.Get(e.path("acme", "/signup?state_ref="+url.QueryEscape(ref)))
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, want) || !strings.Contains(p.Body, "Ask your admin for an invitation") {
			t.Fatalf("sign-up page (domains %v): %d %s", domains, p.Status, p.Body)
		}
		for _, who := range []string{"bob@example.org", email} {
			resp, err := http.PostForm(e.path("acme", "/signup"), url.Values{"state_ref": {ref}, "email": {who}, "password": {"another password 456"}, "password_confirm": {"another password 456"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("sign-up form (domains %v): %d", domains, resp.StatusCode)
			}
		}
		if _, err := e.st.GetUserByEmail(ctx, "acme", "bob@example.org"); err == nil {
			t.Fatalf("human created by sign-up (domains %v)", domains)
		}
	}
	// The existing account kept its password.
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	if p = e.signIn(b, p, email, password); !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("owner's sign-in after sign-up attempts: %d", p.Status)
	}
}

func TestChooseServer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, sv := range []store.Server{
		{Host: "acme", Key: "notion", Name: "Notion", URL: "https://mcp.notion.com/mcp"},
		{Host: "acme", Key: "github", Name: "GitHub", URL: "https://api.githubcopilot.com/mcp"},
	} {
		if _, err := e.st.CreateServer(ctx, sv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: "acme", Server: "notion", UserID: e.user().ID, Ceiling: schema.Low}); err != nil {
		t.Fatal(err)
	}
	conf := e.register("acme")
	checked := regexp.MustCompile(`value="([a-z]+)"[^>]*checked`)

	// Only granted servers, none pre-selected.
	b := e.browser()
	p, _ := e.open(b, conf, "")
	p = e.signIn(b, p, email, password)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `value="linear"`) || !strings.Contains(p.Body, `value="notion"`) ||
		strings.Contains(p.Body, "GitHub") || checked.MatchString(p.Body) {
		t.Fatalf("choose server: %d %s", p.Status, p.Body)
	}
	// A server not granted cannot be chosen by editing the form.
	if p2 := b.Submit(p, map[string]string{"server": "github"}); p2.Status != http.StatusBadRequest || !strings.Contains(p2.Body, "Choose one of the servers listed.") {
		t.Fatalf("choosing an ungranted server: %d", p2.Status)
	}
	// The chosen server leads to its trust level page.
	p = b.Submit(p, map[string]string{"server": "notion"})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) || !strings.Contains(p.Body, "Notion") {
		t.Fatalf("after choosing: %d %s", p.Status, p.Body)
	}

	// upstream_mcp pre-selects a granted server with that URL...
	p, _ = e.open(b, conf, "", oauth2.SetAuthURLParam("upstream_mcp", "https://mcp.notion.com/mcp"))
	if m := checked.FindStringSubmatch(p.Body); m == nil || m[1] != "notion" {
		t.Fatalf("upstream_mcp of a granted server: %d %s", p.Status, p.Body)
	}
	// ...and is ignored, silently, for one not granted (or unknown).
	for _, up := range []string{"https://api.githubcopilot.com/mcp", "https://unknown.example/mcp"} {
		p, _ = e.open(b, conf, "", oauth2.SetAuthURLParam("upstream_mcp", up))
		if p.Status != http.StatusOK || checked.MatchString(p.Body) || strings.Contains(p.Body, "GitHub") || !strings.Contains(p.Body, `value="linear"`) {
			t.Fatalf("upstream_mcp %s: %d %s", up, p.Status, p.Body)
		}
	}

	// The path form /mcp/{server} skips the choice.
	p, _ = e.open(b, conf, e.resource())
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) || strings.Contains(p.Body, `type="radio" id="server-`) {
		t.Fatalf("resource of a server: %d %s", p.Status, p.Body)
	}

	// A human without any grant sees the empty state.
	ng, err := e.st.CreateUser(ctx, store.User{Host: "acme", Email: "nogrant@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.claimInvitation(e.invite(ng), password)
	b2 := e.browser()
	p, _ = e.open(b2, conf, "")
	p = e.signIn(b2, p, "nogrant@example.com", password)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, consentui.MsgNoServers) || strings.Contains(p.Body, `value="linear"`) {
		t.Fatalf("empty state: %d %s", p.Status, p.Body)
	}
}

func TestReconnectChangesTheLevel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conf := e.register("acme")
	b := e.browser()
	v := oauth2.GenerateVerifier()
	tok := e.exchange(conf, e.flow(b, conf, "state-0123456789", v, "high"), v)
	agents, _ := e.st.ListAgents(ctx, "acme", e.user().ID)
	if len(agents) != 1 || !e.check(agents[0].ID, "delete_issue") {
		t.Fatalf("after the first consent: agents %v", agents)
	}
	// The same client connects again: consent runs again and lowers the level.
	v2 := oauth2.GenerateVerifier()
	e.exchange(conf, e.flow(b, conf, "state-abcdefghij", v2, "low"), v2)
	agents2, _ := e.st.ListAgents(ctx, "acme", e.user().ID)
	if len(agents2) != 1 || agents2[0].ID != agents[0].ID {
		t.Fatalf("agents after reconnecting: %v", agents2)
	}
	c, err := e.st.GetConsent(ctx, "acme", agents[0].ID, "linear")
	if err != nil || c.Level != schema.Low {
		t.Fatalf("consent %+v, %v", c, err)
	}
	if e.check(agents[0].ID, "create_issue") || !e.check(agents[0].ID, "list_issues") {
		t.Fatal("the lowered level is not in force")
	}
	// The first grant's refresh token still works (a grant is not a consent).
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("refresh of the first grant: %v", err)
	}
}

// A level above the human's ceiling (the form edited, or the ceiling lowered while the page
// was open) is refused on the trust level page, and the request stays usable: the human
// chooses again.
func TestLevelAboveCeiling(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conf := e.register("acme")
	b := e.browser()
	p, v := e.open(b, conf, e.resource())
	p = e.signIn(b, p, email, password)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("trust level page: %d %s", p.Status, p.Body)
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: e.user().ID, Ceiling: schema.Medium}); err != nil {
		t.Fatal(err)
	}
	refused := b.Submit(p, map[string]string{"trust_level": "high", "decision": "allow"})
	if refused.Status != http.StatusBadRequest || !strings.Contains(refused.Body, "Choose a trust level your administrator allows.") ||
		!strings.Contains(refused.Body, `name="trust_level"`) {
		t.Fatalf("level above the ceiling: %d %v %s", refused.Status, refused.Loc, refused.Body)
	}
	agents, err := e.st.ListAgents(ctx, "acme", e.user().ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		if _, err := e.st.GetConsent(ctx, "acme", a.ID, "linear"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a consent was stored above the ceiling: %v", err)
		}
	}
	done := b.Submit(refused, map[string]string{"trust_level": "medium", "decision": "allow"})
	if done.Loc == nil || done.Loc.Query().Get("code") == "" {
		t.Fatalf("choosing again within the ceiling: %d %v %s", done.Status, done.Loc, done.Body)
	}
	e.exchange(conf, done.Loc, v)
	if agents, _ = e.st.ListAgents(ctx, "acme", e.user().ID); len(agents) != 1 ||
		!e.check(agents[0].ID, "create_issue") || e.check(agents[0].ID, "delete_issue") {
		t.Fatalf("after choosing medium: agents %v", agents)
	}
}

func TestClientIDMetadataDocumentFlow(t *testing.T) {
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
	// The test's override of the SSRF-safe client: one that trusts the test server.
	client := tlsSrv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	e := newEnvWith(t, envOptions{httpClient: client})
	conf := &oauth2.Config{
		ClientID: docURL, RedirectURL: redirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: e.path("acme", "/authorize"), TokenURL: e.path("acme", "/token"), AuthStyle: oauth2.AuthStyleInParams},
	}
	v := oauth2.GenerateVerifier()
	loc := e.flow(e.browser(), conf, "state-0123456789", v, "low")
	tok := e.exchange(conf, loc, v)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	c, err := e.st.GetOAuthClient(context.Background(), "acme", docURL)
	if err != nil || c.Kind != store.OAuthClientCIMD || c.Name != "Doc Client" {
		t.Fatalf("stored client %+v, %v", c, err)
	}
	agents, _ := e.st.ListAgents(context.Background(), "acme", e.user().ID)
	if len(agents) != 1 || agents[0].ClientID != docURL || agents[0].Name != "Doc Client" {
		t.Fatalf("agents %v", agents)
	}
}

func TestOversizedRegistration(t *testing.T) {
	e := newEnv(t)
	body := `{"redirect_uris":["` + redirectURI + `"],"client_name":"` + strings.Repeat("a", 100<<10) + `"}`
	resp, err := http.Post(e.path("acme", "/register"), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Fatalf("oversized registration: %d", resp.StatusCode)
	}
}

func TestTokenRedirectURIMismatch(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme", redirectURI, "http://localhost:7777/other")
	v := oauth2.GenerateVerifier()
	loc := e.flow(e.browser(), conf, "state-0123456789", v, "low")
	c2 := *conf
	c2.RedirectURL = "http://localhost:7777/other"
	_, err := c2.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("exchange with another redirect URI: %v", err)
	}
}

// flowSteps runs a flow that chooses the server (so that the pending request changes between
// pages) and returns the tokens.
func (e *env) flowSteps(b *browser, conf *oauth2.Config) *oauth2.Token {
	e.t.Helper()
	p, v := e.open(b, conf, "")
	p = e.signIn(b, p, email, password)
	p = b.Submit(p, map[string]string{"server": "linear"})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		e.t.Fatalf("trust level page: %d %s", p.Status, p.Body)
	}
	consent := p
	p = b.Submit(p, map[string]string{"trust_level": "medium", "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("code") == "" {
		e.t.Fatalf("consent: %d %v %s", p.Status, p.Loc, p.Body)
	}
	// The pending request is used: the same decision again finds nothing.
	if again := b.Submit(consent, map[string]string{"trust_level": "medium", "decision": "allow"}); again.Status != http.StatusBadRequest || !strings.Contains(again.Body, "This sign-in has expired") {
		e.t.Fatalf("consent replayed: %d %v", again.Status, again.Loc)
	}
	return e.exchange(conf, p.Loc, v)
}

func TestReplicasShareFlows(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			e := newEnvWith(t, envOptions{postgres: engine == "postgres", replicas: 2})
			conf := e.register("acme")
			tok := e.flowSteps(e.browser(), conf)
			if _, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			for i := range e.served {
				if e.served[i].Load() < 3 {
					t.Fatalf("replica %d served %d requests: the flow did not move between replicas", i, e.served[i].Load())
				}
			}
			// A pending request expires after PendingAuthorizeTTL, on every replica.
			b := e.browser()
			p, _ := e.open(b, conf, e.resource())
			e.clock.advance(oauthserver.PendingAuthorizeTTL + time.Second)
			p = b.Submit(p, map[string]string{"email": email, "password": password})
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "This sign-in has expired") {
				t.Fatalf("expired request: %d %s", p.Status, p.Body)
			}
		})
	}
}

func setSessionLimits(t *testing.T, st store.Store, host string, idle, max time.Duration) {
	t.Helper()
	h, err := st.GetHost(context.Background(), host)
	if err != nil {
		t.Fatal(err)
	}
	h.Settings.SessionIdleTTLSeconds = int(idle / time.Second)
	h.Settings.SessionMaxTTLSeconds = int(max / time.Second)
	if _, err := st.UpdateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}
}

// adminState is what an admin set up for the human: it must survive a session's end.
type adminState struct {
	User   store.User
	Grants []store.Grant
	Tools  []store.Tool
}

func (e *env) adminState() adminState {
	e.t.Helper()
	ctx := context.Background()
	u := e.user()
	grants, err := e.st.ListGrants(ctx, "acme", u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	tools, err := e.st.ListTools(ctx, "acme", "linear")
	if err != nil {
		e.t.Fatal(err)
	}
	u.LastActiveAt = time.Time{} // sign-in touches it
	return adminState{User: u, Grants: grants, Tools: tools}
}

func TestSessionLimits(t *testing.T) {
	const day = 24 * time.Hour
	t.Run("defaults", func(t *testing.T) {
		e := newEnv(t)
		conf := e.register("acme")
		v := oauth2.GenerateVerifier()
		tok := e.exchange(conf, e.flow(e.browser(), conf, "state-0123456789", v, "low"), v)
		e.clock.advance(fositestore.DefaultSessionIdleTTL + time.Minute)
		_, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("refresh after the default idle limit: %v", err)
		}
	})

	t.Run("per host", func(t *testing.T) {
		e := newEnv(t)
		ctx := context.Background()
		setSessionLimits(t, e.st, "acme", 2*day, 5*day)
		conf := e.register("acme")
		b := e.browser()
		refresh := func(rt string) (*oauth2.Token, error) {
			return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		}
		wantEnded := func(what string, err error) {
			t.Helper()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("%s: %v, want invalid_grant", what, err)
			}
		}
		v := oauth2.GenerateVerifier()
		tok := e.exchange(conf, e.flow(b, conf, "state-0123456789", v, "medium"), v)
		before := e.adminState()
		agents, _ := e.st.ListAgents(ctx, "acme", e.user().ID)

		// Idle: used the next day it goes on; then unused for two days it ends.
		e.clock.advance(day)
		tok, err := refresh(tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh after a day: %v", err)
		}
		e.clock.advance(2*day + time.Minute)
		_, err = refresh(tok.RefreshToken)
		wantEnded("refresh after two idle days", err)

		// The consent flow runs again (signing in again: the browser session is long over)
		// and finds everything the admin set up.
		v = oauth2.GenerateVerifier()
		tok = e.exchange(conf, e.flow(b, conf, "state-0123456789", v, "medium"), v)
		if after := e.adminState(); !reflect.DeepEqual(before, after) {
			t.Fatalf("admin state changed:\nbefore %+v\nafter  %+v", before, after)
		}
		agents2, _ := e.st.ListAgents(ctx, "acme", e.user().ID)
		if len(agents2) != 1 || agents2[0].ID != agents[0].ID {
			t.Fatalf("agents %v, want the agent %s reused", agents2, agents[0].ID)
		}

		// Absolute: refreshed every day, the session still ends five days after consent.
		for d := 1; ; d++ {
			e.clock.advance(day)
			next, err := refresh(tok.RefreshToken)
			if d == 5 {
				wantEnded("refresh on day 5", err)
				break
			}
			if err != nil {
				t.Fatalf("refresh on day %d: %v", d, err)
			}
			tok = next
		}
	})
}

type testbrowserPage = webclient.Page

func TestWrongVerifier(t *testing.T) {
	e := newEnv(t)
	conf := e.register("acme")
	loc := e.flow(e.browser(), conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	_, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("exchange with another verifier: %v", err)
	}
}
