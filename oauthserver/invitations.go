package oauthserver

import (
	"errors"
	"net/http"

	"github.com/trustgate/trustgate/invitation"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// Invitations: a human an admin added has no password and can sign in nowhere until they open
// the one-time link the admin gave them (`trustgate admin human add --invite`, or `human
// invite`) and choose one there. The link works once, for invitation.TTL, and only while it is
// the human's latest. Sign-in never claims an account.

// invitePath is the route of the invitation page.
const invitePath = invitation.PathPrefix + "{token}"

// Messages of the invitation pages that tests and documentation refer to.
const (
	// MsgInvitationInvalid is the one answer for a link that was used, expired, replaced by a
	// newer one, or never existed.
	MsgInvitationInvalid = "This invitation link no longer works: it was already used, it expired (links last 7 days), or a newer invitation replaced it."
	// MsgAskForInvitation is what to do about it.
	MsgAskForInvitation = "Ask your admin for a new invitation."
)

// invitationOf finds the invitation of the request's token and its human; it shows the
// "no longer works" page and returns false when there is none.
func (s *Server) invitationOf(w http.ResponseWriter, r *http.Request, h store.Host) (store.Invitation, store.User, bool) {
	ctx := r.Context()
	selector, verifier, ok := invitation.Parse(r.PathValue("token"))
	var inv store.Invitation
	var err error
	if ok {
		inv, err = s.cfg.Store.GetInvitation(ctx, h.Key, selector, s.now())
		ok = err == nil && invitation.Verify(verifier, inv.VerifierHash)
	}
	var u store.User
	if ok {
		u, err = s.cfg.Store.GetUser(ctx, h.Key, inv.UserID)
		ok = err == nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.internalError(w, h, "load invitation", err)
		return inv, u, false
	}
	if !ok {
		s.invitationInvalid(w, h)
	}
	return inv, u, ok
}

func (s *Server) invitationInvalid(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusGone, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "This invitation link no longer works",
		Message:  MsgInvitationInvalid,
		WhatToDo: MsgAskForInvitation,
	})
}

func (s *Server) invitationPage(w http.ResponseWriter, r *http.Request, h store.Host) {
	if _, u, ok := s.invitationOf(w, r, h); ok {
		s.renderInvitation(w, r, h, consentui.InvitationPage{Email: u.Email}, http.StatusOK)
	}
}

func (s *Server) renderInvitation(w http.ResponseWriter, r *http.Request, h store.Host, p consentui.InvitationPage, status int) {
	p.Frame = frame(h)
	p.Form = consentui.Form{Action: invitation.URL(s.issuer(h.Key), r.PathValue("token")), CSRFToken: s.csrf.Token(w, r)}
	s.render(w, status, p)
}

// acceptInvitation sets the password of the invitation's human, uses the invitation up and
// signs the human in.
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request, h store.Host) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form could not be read."})
		return
	}
	if err := s.csrf.Verify(r); err != nil {
		s.log.Info("oauthserver: CSRF check failed", "host", h.Key, "err", err)
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "The form expired", Message: consentui.CSRFMessage})
		return
	}
	inv, u, ok := s.invitationOf(w, r, h)
	if !ok {
		return
	}
	password := r.PostFormValue("password")
	page := consentui.InvitationPage{Email: u.Email}
	if err := consentui.CheckPasswordPolicy(password); err != nil {
		page.PasswordError = err.Error()
	} else if r.PostFormValue("password_confirm") != password {
		page.ConfirmError = consentui.MsgPasswordsDiffer
	}
	if page.HasErrors() {
		s.renderInvitation(w, r, h, page, http.StatusBadRequest)
		return
	}
	phc, err := consentui.HashPassword(password)
	if err != nil {
		s.internalError(w, h, "hash password", err)
		return
	}
	if _, err := s.cfg.Store.AcceptInvitation(r.Context(), h.Key, inv.Selector, phc, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.invitationInvalid(w, h) // used by a concurrent request
			return
		}
		s.internalError(w, h, "accept invitation", err)
		return
	}
	s.log.Info("oauthserver: invitation accepted", "host", h.Key, "user", u.ID)
	s.auditAccount(r.Context(), h.Key, "invitation", u, "account.claim")
	if err := s.cfg.Store.TouchUser(r.Context(), h.Key, u.ID, s.now()); err != nil {
		s.log.Warn("oauthserver: touch user", "host", h.Key, "err", err)
	}
	if err := s.setSession(r.Context(), w, h.Key, u.ID, "invitation"); err != nil {
		s.internalError(w, h, "sign in", err)
		return
	}
	s.render(w, http.StatusOK, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Your password is set",
		Message:  "You are signed in as " + u.Email + ". Sign in with this email and password whenever an app connects to this gateway.",
		WhatToDo: "Connect your MCP client (Cursor, Claude, VS Code…) to this gateway; it opens the sign-in page when it needs you.",
	})
}
