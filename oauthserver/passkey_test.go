package oauthserver_test

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webauthnkey"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/passkeys"
	"github.com/trustgate/trustgate/store"
)

var (
	csrfRE     = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	stateRefRE = regexp.MustCompile(`name="state_ref" value="([^"]*)"`)
)

func hiddenValue(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s on the page: %s", re, body)
	}
	return html.UnescapeString(m[1])
}

func postForm(b *browser, u string, form url.Values) webclient.Page {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

func newPasskeyEnv(t *testing.T) (*env, *oauth2.Config) {
	t.Helper()
	e := newEnvWith(t, envOptions{keys: true, localhost: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPasskey, Enabled: true})
	return e, e.register("acme")
}

// addPasskey registers key on the account of the human signed in to b, as the account page's
// script does.
func (e *env) addPasskey(b *browser, key *webauthnkey.Authenticator, name string) webclient.Page {
	e.t.Helper()
	account := b.Get(e.path("acme", "/account"))
	if account.Status != http.StatusOK || !strings.Contains(account.Body, "Add a passkey") || !strings.Contains(account.Body, consentui.PasskeyScriptURL) {
		e.t.Fatalf("account page without a way to add a passkey: %d %s", account.Status, account.Body)
	}
	csrf := hiddenValue(e.t, csrfRE, account.Body)
	opts := postForm(b, e.path("acme", "/account/passkeys/options"), url.Values{"csrf_token": {csrf}})
	if opts.Status != http.StatusOK {
		e.t.Fatalf("registration options: %d %s", opts.Status, opts.Body)
	}
	answer, err := key.Create([]byte(opts.Body))
	if err != nil {
		e.t.Fatal(err)
	}
	return postForm(b, e.path("acme", "/account/passkeys"), url.Values{"csrf_token": {csrf}, "credential": {string(answer)}, "name": {name}})
}

// passkeySignIn opens an authorization request in b and signs in with key alone.
func (e *env) passkeySignIn(b *browser, conf *oauth2.Config, key *webauthnkey.Authenticator) webclient.Page {
	e.t.Helper()
	page, _ := e.open(b, conf, e.resource())
	if !strings.Contains(page.Body, "Sign in with a passkey") || !strings.Contains(page.Body, "/auth/passkey/options") {
		e.t.Fatalf("sign-in page without a passkey button: %s", page.Body)
	}
	csrf, ref := hiddenValue(e.t, csrfRE, page.Body), hiddenValue(e.t, stateRefRE, page.Body)
	opts := postForm(b, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	if opts.Status != http.StatusOK {
		e.t.Fatalf("sign-in options: %d %s", opts.Status, opts.Body)
	}
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		e.t.Fatal(err)
	}
	return postForm(b, e.path("acme", "/auth/passkey"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}})
}

// A human adds a passkey after a password sign-in and signs in with it alone in another
// browser; a counter that goes backwards, a ceremony from another browser and a removed
// passkey are refused; each step is audited.
func TestPasskeyRegisterSignInRemove(t *testing.T) {
	e, conf := newPasskeyEnv(t)
	b := e.browser()
	e.flow(b, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	key := webauthnkey.New(e.origin)
	added := e.addPasskey(b, key, "Work laptop")
	if added.Status != http.StatusOK || !strings.Contains(added.Body, oauthserver.MsgPasskeyAdded) || !strings.Contains(added.Body, "<strong>Work laptop</strong>") {
		t.Fatalf("add passkey: %d %s", added.Status, added.Body)
	}
	list, err := e.st.ListPasskeys(t.Context(), "acme", e.user().ID)
	if err != nil || len(list) != 1 || list[0].Name != "Work laptop" {
		t.Fatalf("stored passkeys: %+v %v", list, err)
	}

	// Signed in with the passkey alone, the human goes on to the consent.
	fresh := e.browser()
	p := e.passkeySignIn(fresh, conf, key)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("passkey sign-in: %d %s", p.Status, p.Body)
	}
	p = fresh.Submit(p, map[string]string{"trust_level": "low", "decision": "allow"})
	if p.Loc == nil || p.Loc.Query().Get("code") == "" {
		t.Fatalf("consent after a passkey sign-in: %d %s", p.Status, p.Body)
	}

	// A clone answers with a counter that does not grow.
	key.Counter = 0
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "That passkey could not sign you in") {
		t.Fatalf("counter gone backwards: %d %s", p.Status, p.Body)
	}
	key.Counter = 100

	// A ceremony begun in one browser cannot be finished in another.
	one, other := e.browser(), e.browser()
	page, _ := e.open(one, conf, e.resource())
	csrf, ref := hiddenValue(t, csrfRE, page.Body), hiddenValue(t, stateRefRE, page.Body)
	opts := postForm(one, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		t.Fatal(err)
	}
	page2, _ := e.open(other, conf, e.resource())
	csrf2, ref2 := hiddenValue(t, csrfRE, page2.Body), hiddenValue(t, stateRefRE, page2.Body)
	if p := postForm(other, e.path("acme", "/auth/passkey"), url.Values{"csrf_token": {csrf2}, "state_ref": {ref2}, "credential": {string(answer)}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("answer finished in another browser: %d %s", p.Status, p.Body)
	}
	// The ceremony is used once: the browser that began it finishes it, then never again.
	form := url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}}
	if p := postForm(one, e.path("acme", "/auth/passkey"), form); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("answer in the browser that asked: %d %s", p.Status, p.Body)
	}
	if p := postForm(one, e.path("acme", "/auth/passkey"), form); p.Status != http.StatusUnauthorized {
		t.Fatalf("the same answer again: %d %s", p.Status, p.Body)
	}

	// Removed on the account page, the passkey no longer signs in.
	account := b.Get(e.path("acme", "/account"))
	removed := postForm(b, e.path("acme", "/account/passkeys/remove"), url.Values{
		"csrf_token": {hiddenValue(t, csrfRE, account.Body)}, "credential_id": {regexp.MustCompile(`name="credential_id" value="([^"]*)"`).FindStringSubmatch(account.Body)[1]},
	})
	if removed.Status != http.StatusOK || !strings.Contains(removed.Body, oauthserver.MsgPasskeyRemoved) || strings.Contains(removed.Body, "<strong>Work laptop</strong>") {
		t.Fatalf("remove passkey: %d %s", removed.Status, removed.Body)
	}
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "That passkey could not sign you in") {
		t.Fatalf("removed passkey: %d %s", p.Status, p.Body)
	}

	counts := map[string]int{}
	for _, en := range e.identityEntries(10) { // with the invitation's claim
		if en.Method == store.AuthPasskey || strings.HasPrefix(en.Action, "passkey.") {
			counts[en.Action]++
		}
	}
	if counts["passkey.register"] != 1 || counts["passkey.remove"] != 1 || counts["signin.success"] != 2 || counts["signin.failure"] < 4 {
		t.Fatalf("audit of passkeys: %v", counts)
	}
}

// The passkey endpoints follow the host's settings: off, nothing is offered and a sign-in is
// refused; a human's domain outside the method's allowed domains is refused after the
// passkey checked out.
func TestPasskeyFollowsTheHostsSettings(t *testing.T) {
	e, conf := newPasskeyEnv(t)
	b := e.browser()
	e.flow(b, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	key := webauthnkey.New(e.origin)
	e.addPasskey(b, key, "")

	e.putMethod(store.AuthMethod{Method: store.AuthPasskey, Enabled: true, AllowedDomains: []string{"elsewhere.example"}})
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "not available for addresses at") {
		t.Fatalf("domain not allowed for passkeys: %d %s", p.Status, p.Body)
	}

	e.putMethod(store.AuthMethod{Method: store.AuthPasskey, Enabled: false})
	page, _ := e.open(e.browser(), conf, e.resource())
	if strings.Contains(page.Body, "Sign in with a passkey") || strings.Contains(page.Body, consentui.PasskeyScriptURL) {
		t.Fatalf("passkeys off, yet offered: %s", page.Body)
	}
	fresh := e.browser()
	page, _ = e.open(fresh, conf, e.resource())
	opts := postForm(fresh, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {hiddenValue(t, csrfRE, page.Body)}, "state_ref": {hiddenValue(t, stateRefRE, page.Body)}})
	var msg struct{ Error string }
	if opts.Status != http.StatusNotFound || json.Unmarshal([]byte(opts.Body), &msg) != nil || msg.Error == "" {
		t.Fatalf("options with passkeys off: %d %s", opts.Status, opts.Body)
	}
	account := b.Get(e.path("acme", "/account"))
	if strings.Contains(account.Body, "Add a passkey") || !strings.Contains(account.Body, oauthserver.MsgPasskeysOff) {
		t.Fatalf("account page with passkeys off: %s", account.Body)
	}
}

// At an IP address (no WebAuthn relying party possible) the pages say so instead of offering
// a button that cannot work.
func TestPasskeysUnavailableAtAnIPAddress(t *testing.T) {
	e := newEnvWith(t, envOptions{keys: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPasskey, Enabled: true})
	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: true})
	conf := e.register("acme")
	b := e.browser()
	e.flow(b, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	account := b.Get(e.path("acme", "/account"))
	if strings.Contains(account.Body, "Add a passkey") || !strings.Contains(account.Body, "is an IP address") {
		t.Fatalf("account page at an IP address: %s", account.Body)
	}
}

// A ceremony's options are good for passkeys.CeremonyTTL: an answer after that is refused,
// and a new ceremony works.
func TestPasskeyCeremonyExpires(t *testing.T) {
	e, conf := newPasskeyEnv(t)
	b := e.browser()
	e.flow(b, conf, "state-0123456789", oauth2.GenerateVerifier(), "low")
	key := webauthnkey.New(e.origin)
	e.addPasskey(b, key, "")

	late := e.browser()
	page, _ := e.open(late, conf, e.resource())
	csrf, ref := hiddenValue(t, csrfRE, page.Body), hiddenValue(t, stateRefRE, page.Body)
	opts := postForm(late, e.path("acme", "/auth/passkey/options"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}})
	answer, err := key.Get([]byte(opts.Body))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(passkeys.CeremonyTTL + time.Second)
	if p := postForm(late, e.path("acme", "/auth/passkey"), url.Values{"csrf_token": {csrf}, "state_ref": {ref}, "credential": {string(answer)}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("answer after the ceremony expired: %d %s", p.Status, p.Body)
	}
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("a new ceremony: %d %s", p.Status, p.Body)
	}
}

// The passkey method has no settings of its own: a config or a secret is refused when stored.
func TestPasskeyMethodConfig(t *testing.T) {
	for _, ok := range []string{"", "{}", " { } ", "null"} {
		if err := oauthserver.CheckAuthMethodConfig(store.AuthPasskey, json.RawMessage(ok), false); err != nil {
			t.Errorf("config %q: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"rp_id":"example.com"}`, "[]", "not json"} {
		if err := oauthserver.CheckAuthMethodConfig(store.AuthPasskey, json.RawMessage(bad), false); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
	if err := oauthserver.CheckAuthMethodConfig(store.AuthPasskey, json.RawMessage("{}"), true); err == nil {
		t.Error("a secret accepted")
	}
}

// Another human's passkey never signs in as ada: not with her user handle in its answer, not
// as a credential the gateway does not know, and it cannot be added to her account from his
// session.
func TestPasskeyOfAnotherHumanNeverSignsInAsHer(t *testing.T) {
	e, conf := newPasskeyEnv(t)
	bob := e.addUnclaimed("bob@example.com")
	bobBrowser := e.claimInvitation(e.invite(bob), "bob's own long password")
	page, _ := e.open(bobBrowser, conf, e.resource())
	e.signIn(bobBrowser, page, "bob@example.com", "bob's own long password")
	key := webauthnkey.New(e.origin)
	if p := e.addPasskey(bobBrowser, key, "bob's"); p.Status != http.StatusOK {
		t.Fatalf("bob adds a passkey: %d %s", p.Status, p.Body)
	}

	key.UserHandle = []byte(e.user().ID) // ada's
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusUnauthorized {
		t.Fatalf("bob's passkey with ada's user handle: %d %s", p.Status, p.Body)
	}
	stranger := webauthnkey.New(e.origin)
	if _, err := stranger.Create([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"` +
		base64.RawURLEncoding.EncodeToString([]byte(e.user().ID)) + `"}}}`)); err != nil {
		t.Fatal(err)
	}
	if p := e.passkeySignIn(e.browser(), conf, stranger); p.Status != http.StatusUnauthorized {
		t.Fatalf("a passkey the gateway never registered: %d %s", p.Status, p.Body)
	}
	key.UserHandle = nil
	if p := e.passkeySignIn(e.browser(), conf, key); p.Status != http.StatusOK || !strings.Contains(p.Body, `name="trust_level"`) {
		t.Fatalf("bob with his own passkey: %d %s", p.Status, p.Body)
	}
	if list, err := e.st.ListPasskeys(t.Context(), "acme", e.user().ID); err != nil || len(list) != 0 {
		t.Fatalf("ada's passkeys: %+v %v", list, err)
	}
	for _, en := range e.identityEntries(5) {
		if en.UserID == e.user().ID && en.Action == "signin.success" && en.Method == store.AuthPasskey {
			t.Fatalf("a passkey signed ada in: %+v", en)
		}
	}
}
