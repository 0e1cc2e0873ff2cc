package oauthserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// POST /login signs a human in; the sign-in page is also what /authorize and the later pages
// show to a browser without a session.

// renderSignIn shows the sign-in page for the pending request ref: the email box (with the
// password field when the host signs people in with passwords and the address does not decide
// otherwise), a passkey button when the host enables passkeys, and a button per enabled
// external method. A host whose only method is one
// external provider sends the browser straight there.
func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, h store.Host, ref, email, msg string, status int) {
	p, err := s.signInPolicy(r.Context(), h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	page := consentui.SignInPage{
		Frame: frame(h),
		Form:  consentui.Form{Action: s.issuer(h.Key) + loginPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		Email: email,
		Error: msg,
	}
	if pd, err := s.getPending(r.Context(), h.Key, ref); err == nil && pd.portal != nil {
		page.Dashboard, page.Account = !pd.portal.Account, pd.portal.Account
	}
	_, password := p.Method(store.AuthPassword)
	_, otpOn := p.Method(store.AuthEmailOTP)
	otp := otpOn && s.emailOn()
	if otpOn && !otp && page.Notice == "" {
		page.Notice = emailMethodNote(p)
	}
	forced := false
	for _, name := range p.Enabled() {
		m, _ := p.Method(name)
		if !store.IsSSOMethod(name) || !s.externalRegistered(name) {
			continue
		}
		forced = forced || len(m.ForceRedirectDomains) > 0
		page.OtherMethods = append(page.OtherMethods, consentui.SignInMethod{
			Label: "Sign in with " + signinpolicy.DisplayName(name), URL: s.externalStartURL(h.Key, name, ref, ""),
		})
	}
	page.Passkey = s.signInPasskeyForm(h, p)
	page.EmailOnly = !password || (forced && email == "")
	page.NoEmail = !password && !otp && !forced
	if password && otp && !page.EmailOnly {
		page.CodeAction = s.issuer(h.Key) + emailCodePath
	}
	if password && s.emailOn() {
		page.SetPasswordURL = s.emailCodeURL(h.Key, consentui.CodePurposePassword, ref)
	}
	if signUpOpen(h) && s.emailOn() && (password || otp) && !page.Dashboard && !page.Account {
		page.SignUpURL = s.flowURL(h.Key, signupPath, ref)
	}
	if page.NoEmail && len(page.OtherMethods) == 1 && page.Passkey == nil && msg == "" && r.Method == http.MethodGet {
		http.Redirect(w, r, page.OtherMethods[0].URL, http.StatusFound)
		return
	}
	if page.NoEmail && len(page.OtherMethods) == 0 && page.Passkey == nil {
		msg := "This gateway has no way to sign in turned on."
		if otpOn {
			msg = "Signing in here needs a code sent by email, and this gateway cannot send email."
		}
		s.errorPage(w, http.StatusServiceUnavailable, consentui.ErrorPage{
			Frame:    frame(h),
			Title:    "Sign-in is not available",
			Message:  msg,
			WhatToDo: "Tell your administrator: they choose the sign-in methods with trustgate admin host auth, and email needs --smtp-url and --smtp-from.",
		})
		return
	}
	s.render(w, status, page)
}

// signInRefused shows the sign-in page with the policy's refusal.
func (s *Server) signInRefused(w http.ResponseWriter, r *http.Request, h store.Host, ref, email string, err error) {
	var rf *signinpolicy.Refusal
	if !errors.As(err, &rf) {
		s.internalError(w, h, "check sign-in policy", err)
		return
	}
	s.renderSignIn(w, r, h, ref, email, rf.Message+" "+rf.WhatToDo, http.StatusForbidden)
}

// emailStep answers the sign-in form's first step (an email without a password): an address
// of a domain forced to a provider goes there; any other gets the password field, when the
// host signs people in with passwords and lets this address do so. It reports whether it
// answered (false: the form carries a password to check).
func (s *Server) emailStep(w http.ResponseWriter, r *http.Request, h store.Host, ref, email string) bool {
	p, err := s.signInPolicy(r.Context(), h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return true
	}
	if method, ok := p.ForceRedirect(email); ok && s.externalRegistered(method) {
		if err := p.Allow(method, email); err != nil {
			s.auditSignIn(r.Context(), h.Key, method, "", email, false, "refused before redirect: "+err.Error())
			s.signInRefused(w, r, h, ref, email, err)
			return true
		}
		// A page, not a redirect: the sign-in form's form-action would stop a redirect chain
		// that leaves for the provider's origin.
		s.render(w, http.StatusOK, consentui.ContinuePage{
			Frame:   frame(h),
			Title:   "Continue to " + signinpolicy.DisplayName(method),
			Message: "Addresses at " + domainOf(email) + " sign in with " + signinpolicy.DisplayName(method) + ".",
			URL:     s.externalStartURL(h.Key, method, ref, email),
			Label:   "Continue to " + signinpolicy.DisplayName(method),
		})
		return true
	}
	if _, withPassword := r.PostForm["password"]; withPassword {
		if err := p.Allow(store.AuthPassword, email); err != nil {
			s.auditSignIn(r.Context(), h.Key, store.AuthPassword, "", email, false, err.Error())
			s.signInRefused(w, r, h, ref, email, err)
			return true
		}
		return false
	}
	if err := p.Allow(store.AuthPassword, email); err != nil {
		// No password for this address: a code by email when the host offers one to it.
		if p.Allow(store.AuthEmailOTP, email) == nil {
			s.sendEmailCode(w, r, h, ref, email, consentui.CodePurposeSignIn)
			return true
		}
		s.signInRefused(w, r, h, ref, email, err)
		return true
	}
	s.renderSignIn(w, r, h, ref, email, "", http.StatusOK)
	return true
}

// login signs a human in with email and password. It never claims an account: a human an
// admin added chooses their password through an invitation link (invitations.go) or a code
// sent to their address (emailcode.go), and until then their account grants nothing. An unknown email, an account without a password and a
// wrong password get the same page after the same password-hash work, so the page does not
// tell which emails have an account or which accounts are unclaimed.
func (s *Server) login(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	if s.emailStep(w, r, h, ref, email) {
		return
	}
	password := r.PostFormValue("password")
	// Only failures count: both budgets are taken before the password is checked (so that
	// concurrent attempts cannot exceed them) and given back after a correct one.
	now := s.now()
	addrKey := s.addressKey(r)
	if ok, retry := s.addrLimiter.Allow(addrKey, now); !ok {
		s.renderSignIn(w, r, h, ref, email, consentui.TooManyAttemptsMessage(retry), http.StatusTooManyRequests)
		return
	}
	acctKey := "account:" + h.Key + "/" + strings.ToLower(email)
	if ok, retry := s.acctBackoff.Allow(acctKey, now); !ok {
		s.addrLimiter.Refund(addrKey, now) // no password was tried
		s.renderSignIn(w, r, h, ref, email, consentui.TooManyAttemptsMessage(retry), http.StatusTooManyRequests)
		return
	}
	u, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			s.internalError(w, h, "look up user", err)
			return
		}
		consentui.DummyVerify(password)
		s.auditSignIn(ctx, h.Key, store.AuthPassword, "", email, false, "bad credentials")
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, u.ID)
	if err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	}
	if phc == "" {
		// Not claimed yet (invitation pending): exactly the answer of a wrong password.
		consentui.DummyVerify(password)
		s.auditSignIn(ctx, h.Key, store.AuthPassword, "", email, false, "bad credentials")
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	match, rehash, err := consentui.VerifyPassword(phc, password)
	if err != nil {
		s.log.Error("oauthserver: stored password hash unusable", "host", h.Key, "user", u.ID, "err", err)
		consentui.DummyVerify(password) // a malformed hash is refused before any hashing
	}
	if !match {
		s.auditSignIn(ctx, h.Key, store.AuthPassword, "", email, false, "bad credentials")
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	if rehash {
		if err := s.storePassword(ctx, h.Key, u.ID, password); err != nil {
			s.log.Error("oauthserver: rehash password", "host", h.Key, "user", u.ID, "err", err)
		}
	}
	s.acctBackoff.Success(acctKey)
	s.addrLimiter.Refund(addrKey, now)
	if !s.auditSignIn(ctx, h.Key, store.AuthPassword, u.ID, u.Email, true, "") {
		s.internalError(w, h, "write the audit entry of a sign-in", errors.New("audit log unavailable"))
		return
	}
	s.signedIn(w, r, h, u.ID, store.AuthPassword, ref)
}

// addressKey is the rate-limit key of the request's client address.
func (s *Server) addressKey(r *http.Request) string {
	return consentui.AddressKey(forwarded.New(s.cfg.TrustedProxies).ClientAddr(r))
}

func (s *Server) storePassword(ctx context.Context, host, userID, password string) error {
	phc, err := consentui.HashPassword(password)
	if err != nil {
		return err
	}
	return s.cfg.Store.SetUserPassword(ctx, host, userID, phc)
}

// signedIn continues the pending request ref of a person who proved who they are by method,
// allowed by the host's rules: an authorization request goes on to the choice of server and
// the consent in a new browser session; a sign-in for the account page goes back to it in a
// new browser session (account.go); a sign-in of another part of the gateway ends here
// (portal.go).
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, h store.Host, userID, method, ref string) {
	if err := s.cfg.Store.TouchUser(r.Context(), h.Key, userID, s.now()); err != nil {
		s.log.Warn("oauthserver: touch user", "host", h.Key, "err", err)
	}
	if p, err := s.getPending(r.Context(), h.Key, ref); err == nil && p.portal != nil {
		if p.portal.Account {
			s.accountSignedIn(w, r, h, userID, method, ref)
			return
		}
		s.portalSignedIn(w, r, h, userID, method, ref, p.portal)
		return
	}
	if err := s.setSession(r.Context(), w, h.Key, userID, method); err != nil {
		s.internalError(w, h, "sign in", err)
		return
	}
	http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
}

// domainOf is the lower-cased domain of an address ("" when it has none).
func domainOf(email string) string {
	d, _ := signinpolicy.Domain(email)
	return d
}
