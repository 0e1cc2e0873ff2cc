package oauthserver_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/smtpserver"
	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/store"
)

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// mailEnv is an environment whose servers send email through a real SMTP server on loopback.
func mailEnv(t *testing.T, o envOptions) (*env, *smtpserver.Server) {
	t.Helper()
	o.mail = smtpserver.Start(t, smtpserver.Options{})
	return newEnvWith(t, o), o.mail
}

// codeOf reads the code of the n-th message sent to addr.
func codeOf(t *testing.T, m *smtpserver.Server, addr string, n int) string {
	t.Helper()
	msg := m.WaitFor(t, addr, n)
	c := codeRE.FindStringSubmatch(msg.Body)
	if c == nil {
		t.Fatalf("no code in the message to %s: %s", addr, msg.Body)
	}
	return c[1]
}

// messagesTo counts the messages sent to addr.
func messagesTo(m *smtpserver.Server, addr string) int {
	n := 0
	for _, msg := range m.Messages() {
		for _, to := range msg.To {
			if strings.EqualFold(to, addr) {
				n++
			}
		}
	}
	return n
}

// askCode opens the page that asks for an address (purpose "signin" or "password") of a new
// authorization request and submits who; it returns the browser and the code entry page.
func (e *env) askCode(conf *oauth2.Config, purpose, who string) (*browser, webclient.Page) {
	e.t.Helper()
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	ref := regexp.MustCompile(`name="state_ref" value="([^"]*)"`).FindStringSubmatch(p.Body)
	if ref == nil {
		e.t.Fatalf("no pending request on the sign-in page: %d %s", p.Status, p.Body)
	}
	p = b.Get(e.path("acme", "/email-code?purpose="+purpose+"&state_ref="+ref[1]))
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Email me a code") {
		e.t.Fatalf("code request page: %d %s", p.Status, p.Body)
	}
	p = b.Submit(p, map[string]string{"email": who})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="code"`) {
		e.t.Fatalf("code entry page for %s: %d %s", who, p.Status, p.Body)
	}
	return b, p
}

func wantPage(t *testing.T, what string, p webclient.Page, status int, text string) {
	t.Helper()
	if p.Status != status || !strings.Contains(p.Body, text) {
		t.Fatalf("%s: %d, want %d with %q:\n%s", what, p.Status, status, text, p.Body)
	}
}

func (e *env) auditActions() map[string]int {
	out := map[string]int{}
	for _, en := range e.identityEntries(0) {
		out[en.Action+"/"+en.Method]++
	}
	return out
}

// Email OTP: email → code → signed in. A wrong code, a replayed one and one for another
// pending request are refused; the audit log has each step, never the code.
func TestEmailOTPSignIn(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")

	in, _ := e.signInPage(conf)
	_ = in
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	wantPage(t, "sign-in page", p, http.StatusOK, "Email me a sign-in code")

	b, p = e.askCode(conf, "signin", email)
	code := codeOf(t, m, email, 1)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
	entry := p
	p = b.Submit(entry, map[string]string{"code": wrong})
	wantPage(t, "wrong code", p, http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	p = b.Submit(entry, map[string]string{"code": code})
	wantPage(t, "right code", p, http.StatusOK, `name="trust_level"`)
	p = b.Submit(entry, map[string]string{"code": code})
	wantPage(t, "replayed code", p, http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)

	// A code is bound to the pending request it was asked for.
	b1, p1 := e.askCode(conf, "signin", email)
	b2, p2 := e.askCode(conf, "signin", email)
	_ = b1
	code3 := codeOf(t, m, email, 3)
	p1 = b2.Submit(p2, map[string]string{"code": code3, "code_id": regexp.MustCompile(`name="code_id" value="([^"]*)"`).FindStringSubmatch(p1.Body)[1]})
	wantPage(t, "code of another request", p1, http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)

	acts := e.auditActions()
	for _, want := range []string{"email.code.sent/email_otp", "email.verify.failure/email_otp", "email.verify.success/email_otp", "signin.success/email_otp"} {
		if acts[want] == 0 {
			t.Errorf("no audit entry %s: %v", want, acts)
		}
	}
	for _, en := range e.identityEntries(0) {
		if strings.Contains(fmt.Sprintf("%+v", en), code) {
			t.Errorf("audit entry carries the code: %+v", en)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// A host that signs people in only with codes: the sign-in page's email box sends one.
func TestEmailOTPOnlyHost(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	e.putMethod(store.AuthMethod{Method: store.AuthPassword, Enabled: false})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	if strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("password field on a host without passwords: %s", p.Body)
	}
	p = b.Submit(p, map[string]string{"email": email})
	wantPage(t, "email step", p, http.StatusOK, `name="code"`)
	p = b.Submit(p, map[string]string{"code": codeOf(t, m, email, 1)})
	wantPage(t, "right code", p, http.StatusOK, `name="trust_level"`)
}

// A pre-authorized human without a password claims the account by a code, then chooses a
// password; an attacker who only types the address gets nothing.
func TestEmailCodeClaimsPreAuthorizedAccount(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	ctx := context.Background()
	alice := e.addUnclaimed("alice@acme.com")
	conf := e.register("acme")

	b, p := e.askCode(conf, "password", "alice@acme.com")
	// The attacker guesses: every wrong code is refused, and the account stays unclaimed.
	for i := 0; i < 3; i++ {
		q := b.Submit(p, map[string]string{"code": fmt.Sprintf("%06d", i)})
		if q.Status == http.StatusOK {
			if code := codeOf(t, m, "alice@acme.com", 1); code == fmt.Sprintf("%06d", i) {
				continue // the one-in-a-million draw
			}
			t.Fatalf("a guessed code was accepted: %s", q.Body)
		}
	}
	if phc, _ := e.st.GetUserPasswordHash(ctx, "acme", alice.ID); phc != "" {
		t.Fatal("the account has a password before its owner entered the code")
	}
	p = b.Submit(p, map[string]string{"code": codeOf(t, m, "alice@acme.com", 1)})
	wantPage(t, "right code", p, http.StatusOK, `name="password_confirm"`)
	form := p
	p = b.Submit(form, map[string]string{"password": "short", "password_confirm": "short"})
	wantPage(t, "weak password", p, http.StatusBadRequest, "There is a problem")
	p = b.Submit(form, map[string]string{"password": "alice's new password 1", "password_confirm": "alice's new password 1"})
	wantPage(t, "password set", p, http.StatusOK, `name="trust_level"`)
	p = b.Submit(form, map[string]string{"password": "attacker's password 123", "password_confirm": "attacker's password 123"})
	wantPage(t, "password form replayed", p, http.StatusGone, oauthserver.MsgPasswordLinkUsed)

	// Alice signs in with her password from now on.
	b2 := e.browser()
	p, _ = e.open(b2, conf, e.resource())
	p = e.signIn(b2, p, "alice@acme.com", "alice's new password 1")
	wantPage(t, "password sign-in", p, http.StatusOK, `name="trust_level"`)
	if acts := e.auditActions(); acts["account.claim/password"] != 1 {
		t.Errorf("audit: %v, want one account.claim", acts)
	}
}

// A password reset by code replaces the password and signs out every other browser.
func TestEmailCodePasswordReset(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	conf := e.register("acme")
	old := e.browser()
	p, _ := e.open(old, conf, e.resource())
	p = e.signIn(old, p, email, password)
	wantPage(t, "old browser's sign-in", p, http.StatusOK, `name="trust_level"`)
	wantPage(t, "old browser's account", old.Get(e.path("acme", "/account")), http.StatusOK, email)

	b, p := e.askCode(conf, "password", email)
	p = b.Submit(p, map[string]string{"code": codeOf(t, m, email, 1)})
	wantPage(t, "right code", p, http.StatusOK, "your other browsers are signed out")
	p = b.Submit(p, map[string]string{"password": "a brand new password", "password_confirm": "a brand new password"})
	wantPage(t, "reset", p, http.StatusOK, `name="trust_level"`)
	wantAccountSignIn(t, "old browser after the reset", old.Get(e.path("acme", "/account")))

	b3 := e.browser()
	p, _ = e.open(b3, conf, e.resource())
	p = e.signIn(b3, p, email, password)
	wantPage(t, "old password", p, http.StatusUnauthorized, "incorrect")
	p, _ = e.open(b3, conf, e.resource())
	p = e.signIn(b3, p, email, "a brand new password")
	wantPage(t, "new password", p, http.StatusOK, `name="trust_level"`)
	if acts := e.auditActions(); acts["password.reset/password"] != 1 {
		t.Errorf("audit: %v, want one password.reset", acts)
	}
}

// Wrong codes are limited per code: after store.EmailCodeMaxFailures the right one is refused.
func TestEmailCodeAttemptsLimited(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")
	b, entry := e.askCode(conf, "signin", email)
	code := codeOf(t, m, email, 1)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1_000_000)
	for i := 0; i < store.EmailCodeMaxFailures; i++ {
		wantPage(t, "wrong code", b.Submit(entry, map[string]string{"code": wrong}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	}
	wantPage(t, "right code after too many wrong ones", b.Submit(entry, map[string]string{"code": code}), http.StatusTooManyRequests, oauthserver.MsgCodeTooManyTries)
}

// Sign-up by code: the account exists only once the code was entered; an address the
// sign-up switch does not admit, or without an account, sees the same page and gets a notice
// without a code.
func TestEmailCodeSignUp(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	ctx := context.Background()
	setDomains(t, e.st, "acme", "example.org")
	conf := e.register("acme")
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	link := signUpLinkRE.FindStringSubmatch(p.Body)
	if link == nil {
		t.Fatalf("no sign-up link: %s", p.Body)
	}
	p = b.Get(strings.ReplaceAll(link[1], "&amp;", "&"))
	wantPage(t, "sign-up page", p, http.StatusOK, "Create an account")
	p = b.Submit(p, map[string]string{"email": "bob@example.org"})
	wantPage(t, "code page", p, http.StatusOK, `name="code"`)
	if _, err := e.st.GetUserByEmail(ctx, "acme", "bob@example.org"); err == nil {
		t.Fatal("the account exists before the code was entered")
	}
	p = b.Submit(p, map[string]string{"code": codeOf(t, m, "bob@example.org", 1)})
	p = b.Submit(p, map[string]string{"password": "bob's own password 1", "password_confirm": "bob's own password 1"})
	// Signed in: the next page is the server's, which bob (granted nothing yet) may not use.
	wantPage(t, "signed up", p, http.StatusForbidden, "has not given you access to Linear")
	if _, err := e.st.GetUserByEmail(ctx, "acme", "bob@example.org"); err != nil {
		t.Fatalf("bob after sign-up: %v", err)
	}

	for _, who := range []string{"eve@elsewhere.com", "nobody@example.com"} {
		_, p := e.askCode(conf, "password", who)
		wantPage(t, "code page of "+who, p, http.StatusOK, fmt.Sprintf(oauthserver.MsgCodeSent, who))
	}
	// Each gets one message, as an account's address would (so that the answer takes as long),
	// which carries no code and no link.
	for _, who := range []string{"eve@elsewhere.com", "nobody@example.com"} {
		msg := m.WaitFor(t, who, 1)
		if n := messagesTo(m, who); n != 1 {
			t.Errorf("%d messages to %s, want the one notice", n, who)
		}
		if codeRE.MatchString(msg.Body) || strings.Contains(msg.Body, "/email-code/link") || !strings.Contains(msg.Body, "no account") {
			t.Errorf("the notice to %s, an address that may not sign in: %s", who, msg.Body)
		}
	}
}

// Without email every email method says so in words, and enabling email_otp is refused.
func TestEmailOff(t *testing.T) {
	e := newEnv(t)
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	wantPage(t, "sign-in page", p, http.StatusOK, "this gateway cannot send email")
	if strings.Contains(p.Body, "Email me a sign-in code") || strings.Contains(p.Body, "/email-code") {
		t.Fatalf("email methods offered without email: %s", p.Body)
	}
	ref := regexp.MustCompile(`name="state_ref" value="([^"]*)"`).FindStringSubmatch(p.Body)[1]
	wantPage(t, "code page", b.Get(e.path("acme", "/email-code?purpose=password&state_ref="+ref)), http.StatusServiceUnavailable, oauthserver.MsgEmailOff)
	setDomains(t, e.st, "acme", "example.org")
	wantPage(t, "sign-up", b.Get(e.path("acme", "/signup?state_ref="+ref)), http.StatusForbidden, oauthserver.MsgSignUpNeedsEmail)
	if err := e.server.CheckAuthMethod(store.AuthEmailOTP, []byte("{}"), false); err == nil || !strings.Contains(err.Error(), "--smtp-url") {
		t.Errorf("enabling email_otp without email: %v", err)
	}
}

// A message the SMTP server refuses: a page says so, and nothing counts or changes.
func TestEmailCodeSendFailure(t *testing.T) {
	m := smtpserver.Start(t, smtpserver.Options{RejectData: true})
	e := newEnvWith(t, envOptions{mail: m})
	conf := e.register("acme")
	b := e.browser()
	p, _ := e.open(b, conf, e.resource())
	ref := regexp.MustCompile(`name="state_ref" value="([^"]*)"`).FindStringSubmatch(p.Body)[1]
	for i := 0; i < store.EmailCodeMaxSends+1; i++ {
		p = b.Get(e.path("acme", "/email-code?purpose=password&state_ref="+ref))
		wantPage(t, "send failure", b.Submit(p, map[string]string{"email": email}), http.StatusBadGateway, oauthserver.MsgSendFailed)
	}
	wantPage(t, "password unchanged", e.signIn(b, func() webclient.Page { p, _ := e.open(b, conf, e.resource()); return p }(), email, password), http.StatusOK, `name="trust_level"`)
	// An address without an account fails the same way: whether the address has an account
	// does not show in the answer.
	p, _ = e.open(b, conf, e.resource())
	p = b.Get(e.path("acme", "/email-code?purpose=password&state_ref="+regexp.MustCompile(`name="state_ref" value="([^"]*)"`).FindStringSubmatch(p.Body)[1]))
	wantPage(t, "send failure without an account", b.Submit(p, map[string]string{"email": "nobody@example.com"}), http.StatusBadGateway, oauthserver.MsgSendFailed)
}

// Codes work across replicas over one PostgreSQL: a code asked for at one replica is
// checked at another, and wrong tries at every replica add up to one limit.
func TestEmailCodesAcrossReplicas(t *testing.T) {
	e, m := mailEnv(t, envOptions{postgres: true, replicas: 2})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")

	b, entry := e.askCode(conf, "signin", email)
	code := codeOf(t, m, email, 1)
	for i := 0; i < store.EmailCodeMaxFailures; i++ {
		wantPage(t, "wrong code", b.Submit(entry, map[string]string{"code": fmt.Sprintf("%06d", (atoi(code)+1+i)%1_000_000)}), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	}
	wantPage(t, "right code after wrong ones at both replicas", b.Submit(entry, map[string]string{"code": code}), http.StatusTooManyRequests, oauthserver.MsgCodeTooManyTries)

	b, entry = e.askCode(conf, "password", email)
	wantPage(t, "right code", b.Submit(entry, map[string]string{"code": codeOf(t, m, email, 2)}), http.StatusOK, `name="password_confirm"`)
	for i := range e.served {
		if e.served[i].Load() < 4 {
			t.Fatalf("replica %d served %d requests: the codes did not move between replicas", i, e.served[i].Load())
		}
	}
}

var codeLinkRE = regexp.MustCompile(`(http://\S+/email-code/link\?\S+)`)

// The email's one-time link: in the browser that asked for the code it fills the code in and
// one click signs in (opening it spends nothing, so a mail scanner's visit is harmless); in
// another browser it refuses and shows no form, so a link never continues a sign-in someone
// else began; used, it is spent like the code.
func TestEmailCodeLink(t *testing.T) {
	e, m := mailEnv(t, envOptions{})
	e.putMethod(store.AuthMethod{Method: store.AuthEmailOTP, Enabled: true})
	conf := e.register("acme")
	b, _ := e.askCode(conf, "signin", email)
	msg := m.WaitFor(t, email, 1)
	l := codeLinkRE.FindStringSubmatch(msg.Body)
	if l == nil || !strings.Contains(msg.Body, codeOf(t, m, email, 1)) {
		t.Fatalf("no link in the message: %s", msg.Body)
	}
	link := l[1]
	wantPage(t, "the link in another browser", e.browser().Get(link), http.StatusForbidden, oauthserver.MsgCodeLinkElsewhere)
	if p := e.browser().Get(link); strings.Contains(p.Body, `name="code"`) {
		t.Fatalf("the link in another browser shows a form: %s", p.Body)
	}
	code := codeOf(t, m, email, 1)
	page := b.Get(link)
	wantPage(t, "the link", page, http.StatusOK, `value="`+code+`"`)
	page = b.Get(link) // opening it twice spends nothing
	// The browser posts the filled-in field (webclient sends only hidden ones by itself).
	filled := map[string]string{"code": regexp.MustCompile(`name="code"[^>]*value="(\d{6})"`).FindStringSubmatch(page.Body)[1]}
	wantPage(t, "the link again", b.Submit(page, filled), http.StatusOK, `name="trust_level"`)
	wantPage(t, "the used link", b.Submit(b.Get(link), filled), http.StatusUnauthorized, oauthserver.MsgCodeIncorrect)
	if acts := e.auditActions(); acts["signin.success/email_otp"] != 1 {
		t.Fatalf("audit: %v", acts)
	}
}
