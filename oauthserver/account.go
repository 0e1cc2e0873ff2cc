package oauthserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// GET /account shows the signed-in human's account: sign out (POST /logout), their passkeys
// (add and remove, passkey.go) and, for a human with a password, the password change (POST
// /account/password). Signing out ends the
// browser's session on the server (the cookie alone no longer signs in); the tokens the human's
// agents hold are untouched (they are revoked from the admin API or the dashboard). A password
// change needs the current password and ends the human's other browser sessions.
//
// A browser without a session of the host is sent to the host's sign-in page, with a pending
// request of the account kind (portalRequest.Account): every method the host enables, under
// its domain rules, and no sign-up. Once the person proved who they are, that request ends in
// a new browser session of the host and back on this page, whose address is fixed (nothing in
// the request names where to go). The dashboard's own sign-in does not start this session: a
// host session lets its holder consent to agents, so it starts only where the person signed
// in on the host's pages for it, and signing out of either ends only that one.

// Paths of the account pages, relative to the issuer.
const (
	accountPath  = "/account"
	passwordPath = "/account/password"
	logoutPath   = "/logout"
)

// Messages of the account pages that tests and documentation refer to.
const (
	MsgSignedOut       = "You are signed out."
	MsgPasswordChanged = "Your password is changed. Your other browsers are signed out."
	MsgWrongPassword   = "Your current password is incorrect."
)

// notSignedIn answers a change to the account from a browser without a session (signed out
// since the page was loaded, or never signed in): nothing is changed.
func (s *Server) notSignedIn(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusUnauthorized, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "You are not signed in",
		Message:  "This browser is not signed in to this gateway, so nothing was changed.",
		WhatToDo: "Open your account page again (" + s.issuer(h.Key) + accountPath + "): it asks you to sign in first.",
	})
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, h store.Host, page consentui.AccountPage, status int) {
	page.Frame = frame(h)
	page.Form = consentui.Form{Action: s.issuer(h.Key) + passwordPath, CSRFToken: s.csrf.Token(w, r)}
	page.SignOutAction = s.issuer(h.Key) + logoutPath
	s.render(w, status, page)
}

// account shows the account page, or the sign-in page that comes back to it.
func (s *Server) account(w http.ResponseWriter, r *http.Request, h store.Host) {
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		ref, err := s.putPending(r.Context(), s.addressKey(r), &pending{host: h.Key, portal: &portalRequest{Account: true}})
		if s.tooManySignIns(w, h, err) {
			return
		}
		if err != nil {
			s.internalError(w, h, "keep the sign-in request", err)
			return
		}
		http.Redirect(w, r, s.flowURL(h.Key, loginPath, ref), http.StatusSeeOther)
		return
	}
	page, err := s.accountOf(r.Context(), h, uid)
	if err != nil {
		s.internalError(w, h, "load account", err)
		return
	}
	s.accountPage(w, r, h, page, http.StatusOK)
}

func (s *Server) accountOf(ctx context.Context, h store.Host, uid string) (consentui.AccountPage, error) {
	u, err := s.cfg.Store.GetUser(ctx, h.Key, uid)
	if err != nil {
		return consentui.AccountPage{}, err
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, uid)
	if err != nil {
		return consentui.AccountPage{}, err
	}
	page := consentui.AccountPage{Email: u.Email, CanChangePassword: phc != ""}
	if err := s.accountPasskeys(ctx, h, uid, &page); err != nil {
		return consentui.AccountPage{}, err
	}
	return page, nil
}

// accountForm bounds and parses an account form and checks its CSRF token; it answers the
// request itself and returns false when that fails.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request, h store.Host) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form could not be read."})
		return false
	}
	if err := s.csrf.Verify(r); err != nil {
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "The form expired", Message: consentui.CSRFMessage})
		return false
	}
	return true
}

// logout ends the browser's session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.accountForm(w, r, h) {
		return
	}
	uid, hash, ok := s.browserSession(r, h.Key)
	s.clearSession(w, h.Key)
	if ok {
		if err := s.cfg.Store.DeleteBrowserSession(r.Context(), h.Key, hash); err != nil {
			s.internalError(w, h, "sign out", err)
			return
		}
		s.auditAccountAction(r.Context(), h.Key, uid, "signout", "")
	}
	s.render(w, http.StatusOK, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Signed out",
		Message:  MsgSignedOut,
		WhatToDo: "Your apps keep the access you gave them; your administrator can revoke it.",
	})
}

// changePassword changes the signed-in human's password.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.accountForm(w, r, h) {
		return
	}
	ctx := r.Context()
	uid, hash, ok := s.browserSession(r, h.Key)
	if !ok {
		s.notSignedIn(w, h)
		return
	}
	page, err := s.accountOf(ctx, h, uid)
	if err != nil {
		s.internalError(w, h, "load account", err)
		return
	}
	if !page.CanChangePassword {
		s.accountPage(w, r, h, page, http.StatusConflict)
		return
	}
	current, password := r.PostFormValue("current_password"), r.PostFormValue("password")
	now := s.now()
	acctKey := "account:" + h.Key + "/" + strings.ToLower(page.Email)
	if ok, retry := s.acctBackoff.Allow(acctKey, now); !ok {
		page.CurrentError = consentui.TooManyAttemptsMessage(retry)
		s.accountPage(w, r, h, page, http.StatusTooManyRequests)
		return
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, uid)
	if err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	}
	match, _, err := consentui.VerifyPassword(phc, current)
	if err != nil || !match {
		s.auditAccountAction(ctx, h.Key, uid, "password.change.failure", "wrong current password")
		page.CurrentError = MsgWrongPassword
		s.accountPage(w, r, h, page, http.StatusUnauthorized)
		return
	}
	s.acctBackoff.Success(acctKey)
	if err := consentui.CheckPasswordPolicy(password); err != nil {
		page.PasswordError = err.Error()
	} else if r.PostFormValue("password_confirm") != password {
		page.ConfirmError = consentui.MsgPasswordsDiffer
	}
	if page.HasErrors() {
		s.accountPage(w, r, h, page, http.StatusBadRequest)
		return
	}
	if err := s.storePassword(ctx, h.Key, uid, password); err != nil {
		s.internalError(w, h, "change password", err)
		return
	}
	if _, err := s.cfg.Store.DeleteUserBrowserSessions(ctx, h.Key, uid, hash); err != nil {
		s.internalError(w, h, "end the other sessions", err)
		return
	}
	s.auditAccountAction(ctx, h.Key, uid, "password.change", "")
	page.Notice = MsgPasswordChanged
	s.accountPage(w, r, h, page, http.StatusOK)
}

// accountSignedIn ends a sign-in for the account page: the request is used, a browser
// session of the host starts, and the browser goes to the account page.
func (s *Server) accountSignedIn(w http.ResponseWriter, r *http.Request, h store.Host, userID, method, ref string) {
	if !s.usePending(w, r, h, ref) {
		return
	}
	if err := s.setSession(r.Context(), w, h.Key, userID, method); err != nil {
		s.internalError(w, h, "sign in", err)
		return
	}
	http.Redirect(w, r, s.issuer(h.Key)+accountPath, http.StatusSeeOther)
}

// auditAccountAction records what a signed-in human did to their account.
func (s *Server) auditAccountAction(ctx context.Context, host, uid, action, reason string) {
	if s.cfg.Audit == nil {
		return
	}
	u, err := s.cfg.Store.GetUser(ctx, host, uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("oauthserver: load user for audit", "host", host, "err", err)
	}
	if err := s.cfg.Audit.Append(ctx, audit.Entry{Host: host, Time: s.now(), Decision: audit.Identity, Action: action,
		UserID: uid, UserEmail: u.Email, Actor: "human", Reason: reason, Object: "human/" + uid}); err != nil {
		s.log.Error("oauthserver: audit entry of an account action", "host", host, "action", action, "err", err)
	}
}
