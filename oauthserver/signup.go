package oauthserver

import (
	"net/http"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// GET (and POST) /signup: self sign-up, proven by a code sent by email.

// signUpOpen reports whether host lists allowed email domains (HostSettings.AllowedEmailDomains):
// the setting that opens self sign-up. Sign-up must prove the mailbox first (anyone could
// otherwise become bob@acme.com, whom an admin later trusts by name): the account is created
// only once the person entered the code sent to the address (emailcode.go), or a single
// sign-on provider vouched for it (CompleteExternalSignIn). Without email, sign-up by code is
// refused with MsgSignUpNeedsEmail.
func signUpOpen(h store.Host) bool { return len(h.Settings.AllowedEmailDomains) > 0 }

// Messages of the sign-up page that tests and documentation refer to.
const (
	// MsgSignUpClosed: the host does not let humans sign up.
	MsgSignUpClosed = "This gateway does not let people create their own accounts."
	// MsgSignUpNeedsEmail: the host allows sign-up for some domains, but creating an account
	// needs a code sent by email, and the gateway cannot send email.
	MsgSignUpNeedsEmail = "Creating your own account needs a code sent by email, and this gateway cannot send email."
	// MsgSignUpNotHere: a sign-in to the dashboard or the account page, which never creates an
	// account.
	MsgSignUpNotHere = "Accounts are not created here: this sign-in is for people who already have one."
)

// signup answers the sign-up page: the page asking for the address to send the code to (the
// password purpose when the host signs people in with passwords, else a sign-in code), or a
// refusal saying why. It creates nothing itself.
func (s *Server) signup(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !signUpOpen(h) || !s.emailOn() {
		msg := MsgSignUpClosed
		if signUpOpen(h) {
			msg = MsgSignUpNeedsEmail
		}
		s.signUpRefused(w, h, msg, "Ask your admin for an invitation: it lets you choose your password, then connect again from your app.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	ref, pd, ok := s.pendingOf(w, r, h, r.FormValue("state_ref"))
	if !ok {
		return
	}
	if pd.portal != nil {
		s.signUpRefused(w, h, MsgSignUpNotHere, "Sign in with the account your administrator added, or ask them to add you.")
		return
	}
	p, err := s.signInPolicy(r.Context(), h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	purpose := consentui.CodePurposePassword
	if _, password := p.Method(store.AuthPassword); !password {
		purpose = consentui.CodePurposeSignIn
	}
	s.renderCodeRequest(w, r, h, ref, consentui.EmailCodeRequestPage{Purpose: purpose, SignUp: true}, http.StatusOK)
}

// signUpRefused answers the sign-up page with why it is not available and what to do instead.
func (s *Server) signUpRefused(w http.ResponseWriter, h store.Host, msg, whatToDo string) {
	s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{
		Frame: frame(h), Title: "Sign-up is not available", Message: msg, WhatToDo: whatToDo,
	})
}
