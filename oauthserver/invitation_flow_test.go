package oauthserver_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/testkit/webclient"
	"github.com/trustgate/trustgate/invitation"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// invite issues an invitation for u, as the admin API does, and returns its link.
func (e *env) invite(u store.User) string {
	e.t.Helper()
	tok := invitation.New()
	if _, err := e.st.PutInvitation(context.Background(), store.Invitation{Host: u.Host, UserID: u.ID,
		Selector: tok.Selector, VerifierHash: tok.VerifierHash, ExpiresAt: e.clock.Now().Add(invitation.TTL)}); err != nil {
		e.t.Fatal(err)
	}
	return invitation.URL(e.base(u.Host), tok.Value)
}

// claimInvitation opens link in a new browser and chooses pw; it returns the browser, signed
// in.
func (e *env) claimInvitation(link, pw string) *browser {
	e.t.Helper()
	b := e.browser()
	p := b.Get(link)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="password_confirm"`) {
		e.t.Fatalf("invitation page: %d %s", p.Status, p.Body)
	}
	p = b.Submit(p, map[string]string{"password": pw, "password_confirm": pw})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Your password is set") {
		e.t.Fatalf("accept invitation: %d %s", p.Status, p.Body)
	}
	return b
}

// addUnclaimed adds a human with a grant who has not accepted an invitation yet.
func (e *env) addUnclaimed(who string) store.User {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.st.CreateUser(ctx, store.User{Host: "acme", Email: who})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.SetGrant(ctx, store.Grant{Host: "acme", Server: "linear", UserID: u.ID, Ceiling: schema.High}); err != nil {
		e.t.Fatal(err)
	}
	return u
}

func wantInvitationGone(t *testing.T, p webclient.Page, what string) {
	t.Helper()
	if p.Status != http.StatusGone || !strings.Contains(p.Body, "This invitation link no longer works") || !strings.Contains(p.Body, oauthserver.MsgAskForInvitation) {
		t.Fatalf("%s: %d %s", what, p.Status, p.Body)
	}
}

// The attack: an admin added alice; whoever first typed her address at sign-in chose her
// password and inherited her ceilings. Now sign-in never claims an account.
func TestAttackerCannotClaimPreAuthorizedAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.addUnclaimed("alice@acme.com")
	conf := e.register("acme")
	b, p := e.signInPage(conf)
	p = b.Submit(p, map[string]string{"email": "alice@acme.com", "password": "attacker chose this"})
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, consentui.MsgBadCredentials) || strings.Contains(p.Body, "Choose a password") {
		t.Fatalf("attacker's sign-in: %d %s", p.Status, p.Body)
	}
	if h, _ := e.st.GetUserPasswordHash(ctx, "acme", alice.ID); h != "" {
		t.Fatal("sign-in set the password of an unclaimed account")
	}
	// Not signed in: the next authorization request asks for sign-in again.
	p = b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource())))
	if !strings.Contains(p.Body, `name="password"`) {
		t.Fatalf("attacker got a session: %d %s", p.Status, p.Body)
	}
	// Alice accepts her invitation and signs in with her password; the attacker's does not work.
	e.claimInvitation(e.invite(alice), "alice's own password")
	b, p = e.signInPage(conf)
	if p2 := b.Submit(p, map[string]string{"email": "alice@acme.com", "password": "attacker chose this"}); p2.Status != http.StatusUnauthorized {
		t.Fatalf("attacker's password after the claim: %d", p2.Status)
	}
	if p2 := b.Submit(p, map[string]string{"email": "alice@acme.com", "password": "alice's own password"}); !strings.Contains(p2.Body, `name="trust_level"`) {
		t.Fatalf("alice's sign-in: %d %s", p2.Status, p2.Body)
	}
	claimed := false
	for _, en := range e.identityEntries(0) {
		claimed = claimed || en.Action == "account.claim" && en.Method == "invitation" && en.UserEmail == "alice@acme.com"
	}
	if !claimed {
		t.Error("no audit entry of alice's claim by invitation")
	}
}

var csrfValueRE = regexp.MustCompile(`name="(csrf_token|state_ref)" value="[^"]*"`)

// An unknown address, an unclaimed account and a wrong password get the same page (but for
// the CSRF token and the request's reference) after the same password-hash work, so the page tells nothing of an
// account's existence or state.
func TestSignInAnswersAlikeForUnknownUnclaimedAndWrong(t *testing.T) {
	e := newEnv(t)
	e.addUnclaimed("alice@acme.com")
	conf := e.register("acme")
	answer := func(who string) (int, string, uint64) {
		b, p := e.signInPage(conf)
		// The same email in every case, as typed, so that the refilled field is the same.
		before := consentui.HashesComputed()
		p = b.Submit(p, map[string]string{"email": who, "password": "a wrong password 123"})
		body := csrfValueRE.ReplaceAllString(p.Body, `name="$1" value=""`)
		body = strings.ReplaceAll(body, who, "EMAIL")
		return p.Status, body, consentui.HashesComputed() - before
	}
	st1, unknown, h1 := answer("nobody@acme.com")
	st2, unclaimed, h2 := answer("alice@acme.com")
	st3, wrong, h3 := answer(email)
	if st1 != http.StatusUnauthorized || st2 != st1 || st3 != st1 {
		t.Fatalf("statuses %d %d %d", st1, st2, st3)
	}
	if unknown != unclaimed || unknown != wrong {
		t.Fatalf("answers differ:\nunknown:   %s\nunclaimed: %s\nwrong:     %s", unknown, unclaimed, wrong)
	}
	// Hash work, not wall time: each did exactly one argon2id computation (other tests may
	// hash concurrently only if run in parallel, which these are not).
	if h1 != 1 || h2 != 1 || h3 != 1 {
		t.Fatalf("password hashes computed: unknown %d, unclaimed %d, wrong %d; want 1 each", h1, h2, h3)
	}
}

func TestInvitationSingleUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.addUnclaimed("alice@acme.com")
	link := e.invite(alice)

	b := e.browser()
	p := b.Get(link)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "alice@acme.com") {
		t.Fatalf("invitation page does not say whom it is for: %d %s", p.Status, p.Body)
	}
	// The same password rules as everywhere.
	if p2 := b.Submit(p, map[string]string{"password": "short", "password_confirm": "short"}); p2.Status != http.StatusBadRequest || !strings.Contains(p2.Body, string(consentui.ErrPasswordTooShort)) {
		t.Fatalf("short password: %d", p2.Status)
	}
	if p2 := b.Submit(p, map[string]string{"password": "a long password 1", "password_confirm": "another one"}); p2.Status != http.StatusBadRequest || !strings.Contains(p2.Body, consentui.MsgPasswordsDiffer) {
		t.Fatalf("confirmation differs: %d", p2.Status)
	}
	if p2 := b.Submit(p, map[string]string{"password": "a long password 1", "password_confirm": "a long password 1", "csrf_token": ""}); p2.Status != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", p2.Status)
	}
	if h, _ := e.st.GetUserPasswordHash(ctx, "acme", alice.ID); h != "" {
		t.Fatal("password set by a refused form")
	}
	p2 := b.Submit(p, map[string]string{"password": "a long password 1", "password_confirm": "a long password 1"})
	if p2.Status != http.StatusOK || !strings.Contains(p2.Body, "Your password is set") {
		t.Fatalf("accept: %d %s", p2.Status, p2.Body)
	}
	// Signed in: an authorization request goes straight to consent.
	conf := e.register("acme")
	p3 := b.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", e.resource())))
	if !strings.Contains(p3.Body, `name="trust_level"`) {
		t.Fatalf("not signed in after accepting: %d %s", p3.Status, p3.Body)
	}
	// Used: the link never works again, to open or to post.
	wantInvitationGone(t, e.browser().Get(link), "used link")
	if p4 := b.Submit(p, map[string]string{"password": "the attacker's pw", "password_confirm": "the attacker's pw"}); p4.Status != http.StatusGone {
		t.Fatalf("used link posted again: %d", p4.Status)
	}
	// Only the hash of the link's secret is stored.
	var raw string
	if u, _ := url.Parse(link); u != nil {
		raw = u.Path[strings.LastIndex(u.Path, "/")+1:]
	}
	_, verifier, _ := invitation.Parse(raw)
	if verifier == "" || invitation.Hash(verifier) == verifier {
		t.Fatal("bad test token")
	}
}

func TestInvitationExpiresAndIsSuperseded(t *testing.T) {
	e := newEnv(t)
	alice := e.addUnclaimed("alice@acme.com")
	first := e.invite(alice)
	second := e.invite(alice)
	wantInvitationGone(t, e.browser().Get(first), "superseded link")
	// A forged verifier with the real selector does not work either.
	forged := second[:len(second)-5] + "AAAAA"
	if forged != second {
		wantInvitationGone(t, e.browser().Get(forged), "forged verifier")
	}
	wantInvitationGone(t, e.browser().Get(e.base("acme")+invitation.PathPrefix+"not-a-token"), "garbage token")
	// Seven days later the latest link is expired too.
	e.clock.advance(invitation.TTL + time.Second)
	wantInvitationGone(t, e.browser().Get(second), "expired link")
	// A new invitation works.
	e.claimInvitation(e.invite(alice), "alice's own password")
	// Another host's path does not find the invitation.
	third := e.invite(alice)
	wantInvitationGone(t, e.browser().Get(strings.Replace(third, "/h/acme/", "/h/other/", 1)), "link under another host")
}
