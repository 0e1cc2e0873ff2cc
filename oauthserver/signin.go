package oauthserver

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/store"
)

// POST /login signs a human in; the sign-in page is also what /authorize and the later pages
// show to a browser without a session.

// renderSignIn shows the sign-in page for the pending request ref.
func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, h store.Host, ref, email, msg string, status int) {
	page := consentui.SignInPage{
		Frame: frame(h),
		Form:  consentui.Form{Action: s.issuer(h.Key) + loginPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref},
		Email: email,
		Error: msg,
	}
	s.render(w, status, page)
}

// login signs a human in with email and password. It never claims an account: a human an
// admin added chooses their password through an invitation link (invitations.go), and until
// then their account grants nothing. An unknown email, an account without a password and a
// wrong password get the same page after the same password-hash work, so the page does not
// tell which emails have an account or which accounts are unclaimed.
func (s *Server) login(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
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
		s.renderSignIn(w, r, h, ref, email, consentui.MsgBadCredentials, http.StatusUnauthorized)
		return
	}
	match, rehash, err := consentui.VerifyPassword(phc, password)
	if err != nil {
		s.log.Error("oauthserver: stored password hash unusable", "host", h.Key, "user", u.ID, "err", err)
		consentui.DummyVerify(password) // a malformed hash is refused before any hashing
	}
	if !match {
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
	s.signedIn(w, r, h, u.ID, ref)
}

// addressKey is the rate-limit key of the request's client address.
func (s *Server) addressKey(r *http.Request) string {
	return consentui.AddressKey(consentui.ClientAddr(r, s.cfg.TrustedProxies))
}

func (s *Server) storePassword(ctx context.Context, host, userID, password string) error {
	phc, err := consentui.HashPassword(password)
	if err != nil {
		return err
	}
	return s.cfg.Store.SetUserPassword(ctx, host, userID, phc)
}

func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, h store.Host, userID, ref string) {
	if err := s.cfg.Store.TouchUser(r.Context(), h.Key, userID, s.now()); err != nil {
		s.log.Warn("oauthserver: touch user", "host", h.Key, "err", err)
	}
	s.setSession(w, h.Key, userID)
	http.Redirect(w, r, s.flowURL(h.Key, chooseServerPath, ref), http.StatusSeeOther)
}
