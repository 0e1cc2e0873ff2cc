package oauthserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// Codes sent by email prove that a person reads an address's mailbox. They serve two
// purposes, both inside a pending authorization request:
//
//   - sign-in (the email_otp method): email → code → signed in. An address without an account
//     gets one only when the host's sign-up switch admits its domain, and only once the code
//     is right.
//   - password (claim, sign-up and reset): email → code → choose a password → signed in. A
//     pre-authorized human without a password claims their account this way; an address the
//     sign-up switch admits creates its account; a human with a password replaces it, and
//     every browser signed in as them is signed out.
//
// A code is 6 digits from crypto/rand, works once, for EmailCodeTTL, for a limited number of
// wrong tries per code and per address (store.EmailCodeMaxFailures and the others), counted in
// the store so that every replica agrees. Only an HMAC of the code is stored, compared in
// constant time. The page after "Email me a code" is the same whether or not the address may
// sign in (a code is stored either way and only sent when it may), so the pages do not tell
// which addresses have accounts. Without a mailer (no --smtp-url) every page of this file says
// that email is off and sends nothing.

// Paths of the email code pages, relative to the issuer.
const (
	emailCodePath       = "/email-code"
	emailCodeVerifyPath = "/email-code/verify"
	emailPasswordPath   = "/email-code/password"
	emailCodeLinkPath   = "/email-code/link"
)

// codeLinkCookiePrefix + host is the cookie that lets the browser which asked for a code open
// the code's one-time link (the email's alternative to typing the code).
const codeLinkCookiePrefix = "tg_code_"

// MsgCodeLinkElsewhere: a code's link was opened in a browser that did not ask for the code.
const MsgCodeLinkElsewhere = "This link works only in the browser where you asked for the code. Open it there, or type the code from the email on that page."

// Lifetimes of email codes.
const (
	// EmailCodeTTL is how long a code works.
	EmailCodeTTL = 5 * time.Minute
	// emailPasswordTTL is how long a person who entered the right code has to choose a
	// password.
	emailPasswordTTL = 10 * time.Minute
	// EmailCodesPerClientAddress bounds the codes one client address (an IPv4 address or an
	// IPv6 /64) may ask for per 15 minutes, whatever the addresses they go to.
	EmailCodesPerClientAddress = 30
)

// Mailer sends one message (internal/mail's Sender).
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// Messages of the email code pages that tests and documentation refer to.
const (
	// MsgEmailOff: no SMTP server is configured.
	MsgEmailOff = "This gateway cannot send email, so codes sent by email are not available here."
	// MsgEmailOffWhatToDo is what to do about it.
	MsgEmailOffWhatToDo = "Sign in another way, or tell your administrator: email needs trustgate's --smtp-url and --smtp-from."
	// MsgCodeSent says where the code went, without telling whether the address has an account.
	MsgCodeSent = "If %s may sign in here, a 6-digit code is on its way to it. It works once, for 5 minutes."
	// MsgCodeIncorrect is the one answer for a wrong, used, replaced or expired code.
	MsgCodeIncorrect = "That code is not right, or it no longer works. Check the latest email, or ask for a new code."
	// MsgCodeTooManyTries: the code or the address had too many wrong tries.
	MsgCodeTooManyTries = "Too many wrong codes for this address. Wait an hour, then ask for a new code."
	// MsgCodeTooManySent: the address was sent too many codes.
	MsgCodeTooManySent = "Too many codes were sent to this address. Wait an hour, then ask again."
	// MsgSendFailed: the SMTP server refused or could not be reached.
	MsgSendFailed = "trustgate could not send the email with your code, so nothing was changed."
	// MsgPasswordLinkUsed: the password form of a code was already used or expired.
	MsgPasswordLinkUsed = "This password form was already used, or it expired (it lasts 10 minutes after the code)."
)

// emailOff answers a page of this file when no mailer is configured.
func (s *Server) emailOff(w http.ResponseWriter, h store.Host) {
	s.errorPage(w, http.StatusServiceUnavailable, consentui.ErrorPage{
		Frame: frame(h), Title: "Email is not available", Message: MsgEmailOff, WhatToDo: MsgEmailOffWhatToDo,
	})
}

// emailOn reports whether the server can send email.
func (s *Server) emailOn() bool { return s.cfg.Mail != nil }

// codeMethod is the sign-in method a purpose's code stands for.
func codeMethod(purpose string) string {
	if purpose == consentui.CodePurposeSignIn {
		return store.AuthEmailOTP
	}
	return store.AuthPassword
}

// codeHash is the hex HMAC of a code and its id (the store keeps only that).
func (s *Server) codeHash(id, code string) string {
	return hex.EncodeToString(derive(s.codeKey, id+"|"+code))
}

// newCode is 6 decimal digits from crypto/rand.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("draw a code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// emailCodeURL is the page that asks for an address to send a purpose's code to.
func (s *Server) emailCodeURL(host, purpose, ref string) string {
	return s.issuer(host) + emailCodePath + "?" + url.Values{"state_ref": {ref}, "purpose": {purpose}}.Encode()
}

// emailCodeForm (GET /email-code) asks for the address to send a code to.
func (s *Server) emailCodeForm(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.pendingOf(w, r, h, r.URL.Query().Get("state_ref"))
	if !ok {
		return
	}
	if !s.emailOn() {
		s.emailOff(w, h)
		return
	}
	purpose := r.URL.Query().Get("purpose")
	if purpose != consentui.CodePurposeSignIn {
		purpose = consentui.CodePurposePassword
	}
	s.renderCodeRequest(w, r, h, ref, consentui.EmailCodeRequestPage{Purpose: purpose, Email: r.URL.Query().Get("login_hint")}, http.StatusOK)
}

func (s *Server) renderCodeRequest(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p consentui.EmailCodeRequestPage, status int) {
	p.Frame = frame(h)
	p.Form = consentui.Form{Action: s.issuer(h.Key) + emailCodePath, CSRFToken: s.csrf.Token(w, r), StateRef: ref}
	p.SignInURL = s.flowURL(h.Key, chooseServerPath, ref)
	s.render(w, status, p)
}

// emailCodeStart (POST /email-code) sends a code to the posted address.
func (s *Server) emailCodeStart(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	purpose := r.PostFormValue("purpose")
	if purpose != consentui.CodePurposeSignIn && purpose != consentui.CodePurposePassword {
		s.errorPage(w, http.StatusBadRequest, consentui.ErrorPage{Frame: frame(h), Title: "Invalid form", Message: "The form asks for a code for nothing trustgate knows."})
		return
	}
	s.sendEmailCode(w, r, h, ref, strings.TrimSpace(r.PostFormValue("email")), purpose)
}

// sendEmailCode checks that email may use purpose's method on the host, stores a new code and
// sends it when the address may sign in, and shows the page to enter it.
func (s *Server) sendEmailCode(w http.ResponseWriter, r *http.Request, h store.Host, ref, email, purpose string) {
	ctx := r.Context()
	if !s.emailOn() {
		s.emailOff(w, h)
		return
	}
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	method := codeMethod(purpose)
	if err := p.Allow(method, email); err != nil {
		s.auditSignIn(ctx, h.Key, method, "", email, false, "email code refused: "+err.Error())
		s.signInRefused(w, r, h, ref, email, err)
		return
	}
	if ok, retry := s.codeLimiter.Allow(s.addressKey(r), s.now()); !ok {
		s.renderCodeRequest(w, r, h, ref, consentui.EmailCodeRequestPage{Purpose: purpose, Email: email,
			Error: consentui.TooManyAttemptsMessage(retry)}, http.StatusTooManyRequests)
		return
	}
	deliver, err := s.mayReceiveCode(ctx, h, ref, email)
	if err != nil {
		s.internalError(w, h, "look up user", err)
		return
	}
	code, err := newCode()
	if err != nil {
		s.internalError(w, h, "make an email code", err)
		return
	}
	id := randomToken()
	now := s.now()
	c, err := s.cfg.Store.CreateEmailCode(ctx, store.EmailCode{ID: id, Host: h.Key, Email: email, Purpose: purpose,
		CodeHash: s.codeHash(id, code), PendingRef: ref, ExpiresAt: now.Add(EmailCodeTTL)}, now)
	switch {
	case errors.Is(err, store.ErrLimited):
		s.auditCode(ctx, h.Key, method, email, "email.code.refused", "too many codes or wrong tries for the address")
		s.renderCodeRequest(w, r, h, ref, consentui.EmailCodeRequestPage{Purpose: purpose, Email: email, Error: MsgCodeTooManySent}, http.StatusTooManyRequests)
		return
	case errors.Is(err, store.ErrInvalid):
		s.renderCodeRequest(w, r, h, ref, consentui.EmailCodeRequestPage{Purpose: purpose, Email: email,
			Error: "That is not an email address trustgate can use."}, http.StatusBadRequest)
		return
	case err != nil:
		s.internalError(w, h, "store an email code", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: codeLinkCookiePrefix + h.Key, Value: s.codeLinkBinding(id), Path: s.cookiePath(h.Key),
		MaxAge: int(EmailCodeTTL / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	// An address that may not sign in gets a notice without a code instead: one message is
	// sent either way, so the answer takes as long, fails alike and tells the asker nothing
	// about which addresses have accounts.
	msg, sent := noAccountMessage(h, c.Email, purpose), "email.code.no_account"
	if deliver {
		link := s.issuer(h.Key) + emailCodeLinkPath + "?" + url.Values{"state_ref": {ref}, "code_id": {id}, "code": {code}, "purpose": {purpose}}.Encode()
		msg, sent = codeMessage(h, c.Email, code, link, purpose), "email.code.sent"
	}
	if err := s.cfg.Mail.Send(ctx, msg); err != nil {
		s.log.Error("oauthserver: send an email code", "host", h.Key, "err", err)
		if derr := s.cfg.Store.DeleteEmailCode(context.WithoutCancel(ctx), h.Key, id); derr != nil {
			s.log.Error("oauthserver: forget an email code that was not sent", "host", h.Key, "err", derr)
		}
		s.auditCode(ctx, h.Key, method, c.Email, "email.code.failure", "sending failed")
		s.errorPage(w, http.StatusBadGateway, consentui.ErrorPage{Frame: frame(h), Title: "The email could not be sent",
			Message: MsgSendFailed, WhatToDo: "Try again in a few minutes. If it keeps happening, tell your administrator (the gateway's logs have the details)."})
		return
	}
	s.auditCode(ctx, h.Key, method, c.Email, sent, "")
	s.renderCodeEntry(w, r, h, ref, consentui.EmailCodeEntryPage{Email: c.Email, CodeID: id, Purpose: purpose,
		Notice: fmt.Sprintf(MsgCodeSent, c.Email)}, http.StatusOK)
}

// mayReceiveCode reports whether email has an account on the host or may sign up in the
// pending request ref.
func (s *Server) mayReceiveCode(ctx context.Context, h store.Host, ref, email string) (bool, error) {
	_, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return s.signUpAllows(ctx, h, ref, email), nil
	}
	return false, err
}

// codeLinkBinding is the value of the cookie that lets the browser which asked for code id
// open its link.
func (s *Server) codeLinkBinding(id string) string {
	return hex.EncodeToString(derive(s.codeKey, "link|"+id))
}

// emailCodeLink (GET /email-code/link) is the code's one-time link: in the browser that asked
// for the code, it shows the code entry page with the code filled in, to continue with one
// click (a GET uses nothing, so that mail scanners that open links spend no code); in any
// other browser it refuses, so that a link never continues a sign-in someone else began.
func (s *Server) emailCodeLink(w http.ResponseWriter, r *http.Request, h store.Host) {
	if !s.emailOn() {
		s.emailOff(w, h)
		return
	}
	q := r.URL.Query()
	ref, _, ok := s.pendingOf(w, r, h, q.Get("state_ref"))
	if !ok {
		return
	}
	id, code := q.Get("code_id"), q.Get("code")
	c, err := r.Cookie(codeLinkCookiePrefix + h.Key)
	if err != nil || id == "" || len(id) > maxRefLen || !hmac.Equal([]byte(c.Value), []byte(s.codeLinkBinding(id))) {
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "Open this link where you asked for the code",
			Message: MsgCodeLinkElsewhere})
		return
	}
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		code = ""
	}
	purpose := q.Get("purpose")
	if purpose != consentui.CodePurposePassword {
		purpose = consentui.CodePurposeSignIn
	}
	s.renderCodeEntry(w, r, h, ref, consentui.EmailCodeEntryPage{CodeID: id, Code: code, Purpose: purpose,
		Notice: "Your code is filled in. Continue to use it."}, http.StatusOK)
}

// codeMessage is the email that carries a code and its one-time link.
func codeMessage(h store.Host, to, code, link, purpose string) mail.Message {
	site := frame(h).Site()
	what := "sign in to " + site
	if purpose == consentui.CodePurposePassword {
		what = "set your password on " + site
	}
	return mail.Message{
		To:      to,
		Subject: "Your code for " + site,
		Body: "Your code to " + what + " is:\n\n    " + code + "\n\n" +
			"It works once, for 5 minutes. Nobody from " + site + " will ask you for it.\n\n" +
			"Or open this one-time link in the browser where you asked for the code:\n\n    " + link + "\n\n" +
			"If you did not ask for this code, ignore this email: without the code nobody can use your address.\n",
	}
}

// noAccountMessage tells an address that asked for a code on a host where it may not sign in
// that there is nothing to sign in to: no code, no link.
func noAccountMessage(h store.Host, to, purpose string) mail.Message {
	site := frame(h).Site()
	what := "sign in to " + site
	if purpose == consentui.CodePurposePassword {
		what = "set a password on " + site
	}
	return mail.Message{
		To:      to,
		Subject: "Your code for " + site,
		Body: "Someone asked for a code to " + what + " with this address, but it has no account there, so no code was made.\n\n" +
			"If it was you, ask the administrator of " + site + " to add you, or use the address they added.\n\n" +
			"If it was not you, ignore this email: nothing was changed.\n",
	}
}

func (s *Server) renderCodeEntry(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p consentui.EmailCodeEntryPage, status int) {
	p.Frame = frame(h)
	p.Form = consentui.Form{Action: s.issuer(h.Key) + emailCodeVerifyPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref}
	p.NewCodeURL = s.emailCodeURL(h.Key, p.Purpose, ref) + "&" + url.Values{"login_hint": {p.Email}}.Encode()
	s.render(w, status, p)
}

// emailCodeVerify (POST /email-code/verify) checks a code.
func (s *Server) emailCodeVerify(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	if !s.emailOn() {
		s.emailOff(w, h)
		return
	}
	ctx := r.Context()
	id := r.PostFormValue("code_id")
	code := strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("code")), " ", "")
	c, err := s.cfg.Store.UseEmailCode(ctx, h.Key, id, s.codeHash(id, code), s.now())
	if err == nil && c.PendingRef != ref {
		err = fmt.Errorf("code of another authorization request: %w", store.ErrNotFound)
	}
	if err != nil {
		msg, status, reason := MsgCodeIncorrect, http.StatusUnauthorized, "wrong or expired code"
		switch {
		case errors.Is(err, store.ErrLimited):
			msg, status, reason = MsgCodeTooManyTries, http.StatusTooManyRequests, "too many wrong codes"
		case errors.Is(err, store.ErrWrongCode), errors.Is(err, store.ErrNotFound):
		default:
			s.internalError(w, h, "check an email code", err)
			return
		}
		s.auditCode(ctx, h.Key, codeMethod(c.Purpose), c.Email, "email.verify.failure", reason)
		page := consentui.EmailCodeEntryPage{Email: c.Email, CodeID: id, Purpose: c.Purpose, Error: msg}
		if page.Purpose == "" {
			page.Purpose = r.PostFormValue("purpose")
		}
		s.renderCodeEntry(w, r, h, ref, page, status)
		return
	}
	method := codeMethod(c.Purpose)
	s.auditCode(ctx, h.Key, method, c.Email, "email.verify.success", "")
	if c.Purpose == consentui.CodePurposeSignIn {
		s.emailSignIn(w, r, h, ref, c.Email)
		return
	}
	reset, err := s.hasPassword(ctx, h, c.Email)
	if err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	}
	s.renderNewPassword(w, r, h, ref, consentui.NewPasswordPage{Email: c.Email, Reset: reset,
		Ticket: s.passwordTicket(h.Key, ref, c.ID, c.Email, s.now().Add(emailPasswordTTL))}, http.StatusOK)
}

// userForProvenEmail is the human of an address whose owner just proved it (a right code):
// the existing human, or a new one when the host's sign-up switch admits the address in the
// pending request ref. It answers the request itself and returns false when there is none or
// it failed.
func (s *Server) userForProvenEmail(w http.ResponseWriter, r *http.Request, h store.Host, ref, method, email string) (store.User, bool) {
	ctx := r.Context()
	u, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	switch {
	case err == nil:
		return u, true
	case errors.Is(err, store.ErrNotFound) && s.signUpAllows(ctx, h, ref, email):
		if u, err = s.cfg.Store.CreateUser(ctx, store.User{Host: h.Key, Email: email}); err != nil {
			s.internalError(w, h, "sign up", err)
			return store.User{}, false
		}
		if _, err := s.cfg.Syncer.Sync(ctx); err != nil {
			s.log.Warn("oauthserver: sync after sign-up", "host", h.Key, "err", err)
		}
		s.auditAccount(ctx, h.Key, method, u, "account.signup")
		return u, true
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		s.auditSignIn(ctx, h.Key, method, "", email, false, "no account")
		s.errorPage(w, http.StatusForbidden, consentui.ErrorPage{Frame: frame(h), Title: "You cannot sign in here", Message: MsgNoAccount,
			WhatToDo: "Ask your administrator to add you, then connect again from your app."})
		return store.User{}, false
	}
	s.internalError(w, h, "look up user", err)
	return store.User{}, false
}

// hasPassword reports whether email is a human of the host with a password.
func (s *Server) hasPassword(ctx context.Context, h store.Host, email string) (bool, error) {
	u, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, u.ID)
	return phc != "", err
}

// emailSignIn signs in the owner of email, who entered the right sign-in code.
func (s *Server) emailSignIn(w http.ResponseWriter, r *http.Request, h store.Host, ref, email string) {
	ctx := r.Context()
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	if err := p.Allow(store.AuthEmailOTP, email); err != nil {
		s.auditSignIn(ctx, h.Key, store.AuthEmailOTP, "", email, false, err.Error())
		s.signInRefused(w, r, h, ref, email, err)
		return
	}
	u, ok := s.userForProvenEmail(w, r, h, ref, store.AuthEmailOTP, email)
	if !ok {
		return
	}
	if claimed, err := s.firstProof(ctx, h, u); err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	} else if claimed {
		s.auditAccount(ctx, h.Key, store.AuthEmailOTP, u, "account.claim")
	}
	if !s.auditSignIn(ctx, h.Key, store.AuthEmailOTP, u.ID, u.Email, true, "") {
		s.internalError(w, h, "write the audit entry of a sign-in", errors.New("audit log unavailable"))
		return
	}
	s.signedIn(w, r, h, u.ID, store.AuthEmailOTP, ref)
}

// firstProof reports whether u is a pre-authorized human who never signed in and has no
// password: the first proof of their address claims the account.
func (s *Server) firstProof(ctx context.Context, h store.Host, u store.User) (bool, error) {
	if !u.LastActiveAt.IsZero() {
		return false, nil
	}
	phc, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, u.ID)
	return phc == "", err
}

func (s *Server) renderNewPassword(w http.ResponseWriter, r *http.Request, h store.Host, ref string, p consentui.NewPasswordPage, status int) {
	p.Frame = frame(h)
	p.Form = consentui.Form{Action: s.issuer(h.Key) + emailPasswordPath, CSRFToken: s.csrf.Token(w, r), StateRef: ref}
	s.render(w, status, p)
}

// passwordTicket is the signed proof, carried by the password form, that the browser entered
// the right code id for email on host, for the pending request ref, until exp.
func (s *Server) passwordTicket(host, ref, id, email string, exp time.Time) string {
	payload := host + "|" + ref + "|" + id + "|" + strconv.FormatInt(exp.Unix(), 10) + "|" + email
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.mac(macEmailPassword, payload))
}

// openPasswordTicket checks a passwordTicket for host and ref and returns its code id, email
// and expiry.
func (s *Server) openPasswordTicket(ticket, host, ref string) (id, email string, exp time.Time, ok bool) {
	p64, m64, found := strings.Cut(ticket, ".")
	if !found || len(ticket) > 2048 {
		return "", "", time.Time{}, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(macEmailPassword, string(payload))) {
		return "", "", time.Time{}, false
	}
	parts := strings.SplitN(string(payload), "|", 5)
	if len(parts) != 5 || parts[0] != host || parts[1] != ref {
		return "", "", time.Time{}, false
	}
	unix, err := strconv.ParseInt(parts[3], 10, 64)
	exp = time.Unix(unix, 0)
	if err != nil || !s.now().Before(exp) {
		return "", "", time.Time{}, false
	}
	return parts[2], parts[4], exp, true
}

// emailPassword (POST /email-code/password) sets the password of the address the code proved:
// a claim (a pre-authorized human without one), a sign-up (a new human, when the host's
// sign-up switch admits the address) or a reset (every browser of the human is signed out);
// then it signs the person in. The form works once.
func (s *Server) emailPassword(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref, _, ok := s.postForm(w, r, h)
	if !ok {
		return
	}
	ctx := r.Context()
	var err error
	ticket := r.PostFormValue("ticket")
	id, email, exp, ok := s.openPasswordTicket(ticket, h.Key, ref)
	if !ok {
		s.errorPage(w, http.StatusGone, consentui.ErrorPage{Frame: frame(h), Title: "This form no longer works",
			Message: MsgPasswordLinkUsed, WhatToDo: "Ask for a new code from the sign-in page."})
		return
	}
	password := r.PostFormValue("password")
	page := consentui.NewPasswordPage{Email: email, Ticket: ticket}
	if err := consentui.CheckPasswordPolicy(password); err != nil {
		page.PasswordError = err.Error()
	} else if r.PostFormValue("password_confirm") != password {
		page.ConfirmError = consentui.MsgPasswordsDiffer
	}
	if page.HasErrors() {
		if page.Reset, err = s.hasPassword(ctx, h, email); err != nil {
			s.internalError(w, h, "read password hash", err)
			return
		}
		s.renderNewPassword(w, r, h, ref, page, http.StatusBadRequest)
		return
	}
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	if err := p.Allow(store.AuthPassword, email); err != nil {
		s.auditSignIn(ctx, h.Key, store.AuthPassword, "", email, false, err.Error())
		s.signInRefused(w, r, h, ref, email, err)
		return
	}
	phc, err := consentui.HashPassword(password)
	if err != nil {
		s.internalError(w, h, "hash password", err)
		return
	}
	// The form is used up before anything changes: of two concurrent posts one goes on.
	if err := s.cfg.Store.UseOnce(ctx, h.Key, "email-password", id, exp, s.now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.errorPage(w, http.StatusGone, consentui.ErrorPage{Frame: frame(h), Title: "This form no longer works",
				Message: MsgPasswordLinkUsed, WhatToDo: "Ask for a new code from the sign-in page."})
			return
		}
		s.internalError(w, h, "use the password form", err)
		return
	}
	u, ok := s.userForProvenEmail(w, r, h, ref, store.AuthPassword, email)
	if !ok {
		return
	}
	old, err := s.cfg.Store.GetUserPasswordHash(ctx, h.Key, u.ID)
	if err != nil {
		s.internalError(w, h, "read password hash", err)
		return
	}
	if err := s.cfg.Store.SetUserPassword(ctx, h.Key, u.ID, phc); err != nil {
		s.internalError(w, h, "set password", err)
		return
	}
	if old != "" {
		if _, err := s.cfg.Store.DeleteUserBrowserSessions(ctx, h.Key, u.ID, ""); err != nil {
			s.internalError(w, h, "end the human's sessions", err)
			return
		}
		s.auditAccount(ctx, h.Key, store.AuthPassword, u, "password.reset")
	} else if u.LastActiveAt.IsZero() {
		s.auditAccount(ctx, h.Key, store.AuthPassword, u, "account.claim")
	} else {
		s.auditAccount(ctx, h.Key, store.AuthPassword, u, "password.set")
	}
	if !s.auditSignIn(ctx, h.Key, store.AuthPassword, u.ID, u.Email, true, "password set with an email code") {
		s.internalError(w, h, "write the audit entry of a sign-in", errors.New("audit log unavailable"))
		return
	}
	s.signedIn(w, r, h, u.ID, store.AuthPassword, ref)
}

// auditCode records what happened to a code: sent, refused, verified or not (never the code).
func (s *Server) auditCode(ctx context.Context, host, method, email, action, reason string) {
	if s.cfg.Audit == nil {
		return
	}
	e := audit.Entry{Host: host, Time: s.now(), Decision: audit.Identity, Method: method, Action: action,
		UserEmail: email, Reason: reason, Actor: "human"}
	if action == "email.verify.success" {
		if err := s.cfg.Audit.Append(ctx, e); err != nil {
			s.log.Error("oauthserver: audit entry of an email code", "host", host, "err", err)
		}
		return
	}
	s.cfg.Audit.Record(e)
}

// CheckAuthMethod checks a sign-in method's settings before the admin API stores them enabled
// (see CheckAuthMethodConfig); email_otp needs the server to send email.
func (s *Server) CheckAuthMethod(method string, config json.RawMessage, secretSet bool) error {
	if method == store.AuthEmailOTP && !s.emailOn() {
		return errors.New("codes by email need the gateway to send email: start trustgate with --smtp-url and --smtp-from")
	}
	return CheckAuthMethodConfig(method, config, secretSet)
}

// emailMethodNote is the sign-in page's notice when a method that needs email is on but the
// server cannot send email.
func emailMethodNote(p signinpolicy.Policy) string {
	if _, ok := p.Method(store.AuthEmailOTP); ok {
		return "Signing in with a code sent by email is not available: this gateway cannot send email. Sign in another way, or tell your administrator."
	}
	return ""
}
