package oauthserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// The browser side of the authorization code flow, one file per endpoint: /authorize keeps
// the validated request server-side under a random state_ref (authorize.go, pending.go), then
// sign-in (signin.go, with the session cookie in session.go; sign-up in signup.go), the choice
// of the MCP server (choose_server.go), the upstream server's own authorization when it
// demands one (upstream.go, which also connects Dynamic MCPs: servers connected by URL), and
// the trust level (consent.go). This file has what the pages share.

// Paths of the flow's pages, relative to the issuer.
const (
	loginPath        = "/login"
	signupPath       = "/signup"
	chooseServerPath = "/consent/server"
	consentPath      = "/consent"
)

// flowURL is the absolute URL of a flow page with its state_ref.
func (s *Server) flowURL(host, path, ref string) string {
	return s.issuer(host) + path + "?" + url.Values{"state_ref": {ref}}.Encode()
}

// randomToken is 32 random bytes, base64url: a state_ref, or a placeholder state.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// postForm bounds and parses a flow form, checks its CSRF token and finds its pending request.
// It answers the request itself and returns false when any of that fails.
func (s *Server) postForm(w http.ResponseWriter, r *http.Request, h store.Host) (string, *pending, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form could not be read."})
		return "", nil, false
	}
	if err := s.csrf.Verify(r); err != nil {
		s.log.Info("oauthserver: CSRF check failed", "host", h.Key, "err", err)
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "The form expired", Message: consentui.CSRFMessage})
		return "", nil, false
	}
	return s.pendingOf(w, r, h, r.PostFormValue("state_ref"))
}

// pendingOf finds the pending request ref, or shows the "expired" page.
func (s *Server) pendingOf(w http.ResponseWriter, r *http.Request, h store.Host, ref string) (string, *pending, bool) {
	p, err := s.getPending(r.Context(), h.Key, ref)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, h, "load the authorization request", err)
			return "", nil, false
		}
		s.expiredPage(w, h)
		return "", nil, false
	}
	return ref, p, true
}

// expiredPage tells the human that the flow's request is gone (expired, used, or unknown).
func (s *Server) expiredPage(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "This sign-in has expired",
		Message:  "The request to connect your app is no longer valid.",
		WhatToDo: "Start again from your app.",
	})
}

// signedInOr returns the signed-in human, or shows the sign-in page for ref.
func (s *Server) signedInOr(w http.ResponseWriter, r *http.Request, h store.Host, ref string) (string, bool) {
	uid, ok := s.sessionUser(r, h.Key)
	if !ok {
		s.renderSignIn(w, r, h, ref, "", "", http.StatusOK)
	}
	return uid, ok
}
