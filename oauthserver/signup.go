package oauthserver

import (
	"net/http"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// GET and POST /signup: self sign-up, refused for now.

// signUpOpen reports whether host lists allowed email domains (HostSettings.AllowedEmailDomains):
// the setting that opens self sign-up. Sign-up must prove the mailbox first (anyone could
// otherwise become bob@acme.com, whom an admin later trusts by name); until trustgate sends
// verification emails it is refused with MsgSignUpNeedsVerification, and the setting only
// changes which message the page shows.
func signUpOpen(h store.Host) bool { return len(h.Settings.AllowedEmailDomains) > 0 }

// Messages of the sign-up page that tests and documentation refer to.
const (
	// MsgSignUpClosed: the host does not let humans sign up.
	MsgSignUpClosed = "This gateway does not let people create their own accounts."
	// MsgSignUpNeedsVerification: the host allows sign-up for some domains, but sign-up needs
	// email verification, which is not available yet.
	MsgSignUpNeedsVerification = "Creating your own account needs email verification, which this gateway does not offer yet."
)

// signup answers the sign-up page and form: refused, whatever is posted (nothing is read or
// created), with what to do instead.
func (s *Server) signup(w http.ResponseWriter, _ *http.Request, h store.Host) {
	msg := MsgSignUpClosed
	if signUpOpen(h) {
		msg = MsgSignUpNeedsVerification
	}
	s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Sign-up is not available",
		Message:  msg,
		WhatToDo: "Ask your admin for an invitation: it lets you choose your password, then connect again from your app.",
	})
}
