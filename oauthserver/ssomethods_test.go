package oauthserver_test

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/internal/testkit/oidcprovider"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// The OIDC method's routes against a real OpenID provider on loopback: the person signs in
// at the provider and comes back to consent; an unverified email, a replayed answer and an
// answer carried to another browser are refused with a page and an audit entry, and sign
// nobody in.
func TestOIDCMethodRoutes(t *testing.T) {
	e := newEnvWith(t, envOptions{keys: true, httpClient: ssrf.NewClient(ssrf.Options{AllowHTTP: true, AllowPrivate: true})})
	op := oidcprovider.Start(t, oidcprovider.Options{
		Users: []oidcprovider.User{
			{ID: "op-ada", Username: "ada", Password: "ada-at-op", Email: email, EmailVerified: true},
			{ID: "op-mallory", Username: "mallory", Password: "mallory-at-op", Email: email, EmailVerified: false},
		},
		Clients: []oidcprovider.Client{{ID: "trustgate", Secret: "op-secret", RedirectURIs: []string{e.base("acme") + "/auth/oidc/callback"}}},
	})
	ring, err := secrets.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.putMethod(store.AuthMethod{Method: store.AuthOIDC, Enabled: true,
		Config:       []byte(`{"issuer":"` + op.Issuer + `","client_id":"trustgate"}`),
		SealedSecret: signinpolicy.SealSecret(ring, "acme", store.AuthOIDC, []byte("op-secret"))})
	conf := e.register("acme")

	// toProvider opens the sign-in page in b and presses the OIDC button: the browser is sent
	// to the provider.
	toProvider := func(b *browser) (string, string) {
		t.Helper()
		page, verifier := e.open(b, conf, e.resource())
		page = b.Get(ssoButton(t, page.Body))
		if page.Loc == nil || !strings.HasPrefix(page.Loc.String(), op.URL+"/") {
			t.Fatalf("the OIDC button did not lead to the provider: %d %v %s", page.Status, page.Loc, page.Body)
		}
		return page.Loc.String(), verifier
	}
	atProvider := func() *http.Client { jar, _ := cookiejar.New(nil); return &http.Client{Jar: jar} }

	// An unverified address at the provider: refused, no session.
	b := e.browser()
	authURL, _ := toProvider(b)
	back := op.SignIn(t, atProvider(), authURL, "mallory", "mallory-at-op")
	page := b.Get(back.String())
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "did not confirm that this email address is yours") {
		t.Fatalf("unverified email: %d %s", page.Status, page.Body)
	}
	if page, _ := e.open(b, conf, e.resource()); !strings.Contains(page.Body, `auth/oidc/start`) {
		t.Errorf("after a refused sign-in the browser is signed in: %d %s", page.Status, page.Body)
	}

	// ada's answer carried to another browser (without the binding cookie): refused there;
	// then ada's own browser finishes it, and she consents.
	authURL, verifier := toProvider(b)
	back = op.SignIn(t, atProvider(), authURL, "ada", "ada-at-op")
	if page := e.browser().Get(back.String()); page.Status != http.StatusBadRequest || !strings.Contains(page.Body, "does not belong to a sign-in in progress") {
		t.Fatalf("answer in another browser: %d %s", page.Status, page.Body)
	}
	page = b.Get(back.String())
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `name="trust_level"`) {
		t.Fatalf("after signing in at the provider: %d %s", page.Status, page.Body)
	}
	page = b.Submit(page, map[string]string{"trust_level": "low", "decision": "allow"})
	if page.Loc == nil {
		t.Fatalf("consent: %d %s", page.Status, page.Body)
	}
	if tok := e.exchange(conf, page.Loc, verifier); tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	if page := b.Get(back.String()); page.Status != http.StatusBadRequest {
		t.Errorf("replayed answer: %d %s", page.Status, page.Body)
	}

	var got []string
	for _, en := range e.identityEntries(5) { // with the invitation's claim, which set up ada's account
		if en.Method != "oidc" {
			continue
		}
		got = append(got, en.Method+" "+en.Action+" "+en.Reason)
		if en.Action == "signin.success" && en.UserEmail != email {
			t.Errorf("success entry for %q", en.UserEmail)
		}
		for _, secret := range []string{"op-secret", "ada-at-op"} {
			if strings.Contains(en.Reason, secret) {
				t.Errorf("audit entry shows a secret: %+v", en)
			}
		}
	}
	want := []string{"signin.failure email not verified", "signin.failure no sign-in in progress", "signin.success", "signin.failure no sign-in in progress"}
	if len(got) != len(want) {
		t.Fatalf("identity audit entries:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], "oidc "+w) {
			t.Errorf("entry %d = %q, want oidc %s…", i, got[i], w)
		}
	}
}

func TestCheckAuthMethodConfig(t *testing.T) {
	for _, tc := range []struct {
		method, config string
		secret         bool
		want           string
	}{
		{"oidc", `{"issuer":"https://idp.example.com","client_id":"a"}`, true, ""},
		{"oidc", `{"issuer":"https://idp.example.com","client_id":"a"}`, false, "client secret is not set"},
		{"oidc", `{"issuer":"not a url","client_id":"a"}`, true, "not an absolute https URL"},
		{"google", `{}`, true, "client_id is required"},
		{"microsoft", `{"client_id":"a","tenant":"x"}`, true, "tenant"},
		{"github", `{"client_id":"a","api_url":"http://api.example.com"}`, true, "must be https"},
		{"password", `{}`, false, ""},
	} {
		err := oauthserver.CheckAuthMethodConfig(tc.method, []byte(tc.config), tc.secret)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %s secret=%v: %v, want %q", tc.method, tc.config, tc.secret, err, tc.want)
		}
	}
}
