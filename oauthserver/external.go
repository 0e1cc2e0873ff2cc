package oauthserver

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/fositestore"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// External sign-in methods (single sign-on providers: OIDC, Google, GitHub, Microsoft, SAML)
// live in packages of their own. Each registers its routes under every host's
// <issuer>/auth/<method>/ with HandleAuthMethod, proves who the person is in its own protocol,
// and hands the result to CompleteExternalSignIn, which applies the host's rules, signs the
// person in and continues the pending authorization request exactly as a password sign-in does.
//
// The pending request travels like this: the sign-in page's button for a method (and the page
// an address of a force-redirect domain is sent to) is <issuer>/auth/<method>/start?state_ref=…
// &login_hint=<email>. Before the method's handler runs, the server checks that the method is
// enabled on the host and, when the request carries the state_ref of a pending request, binds
// it to the browser in a short-lived signed cookie for that method. CompleteExternalSignIn
// reads it back (or the ref a provider carried itself, see WithPendingRef).

// AuthRoutePrefix is the path, relative to the issuer, under which a method's routes live:
// AuthRoutePrefix + method + "/…".
const AuthRoutePrefix = "/auth/"

// externalCookiePrefix + host is the name of the cookie that binds a pending request to an
// external sign-in in progress; externalTTL bounds it.
const (
	externalCookiePrefix = "tg_signin_"
	externalTTL          = 10 * time.Minute
)

// ExternalIdentity is what an SSO provider vouched for.
type ExternalIdentity struct {
	// Method is the sign-in method ("oidc", "google", "github", "microsoft", "saml", ...).
	Method string
	// Subject is the provider's stable id of the person (the ID token's sub, the SAML NameID).
	Subject string
	// Email is the address the provider vouched for; EmailVerified says that the provider
	// checked that it belongs to the person. An unverified email never signs anyone in.
	Email         string
	EmailVerified bool
}

// HandleAuthMethod registers the routes of an external sign-in method: routes is called with
// a router for every form of every host's base URL (tenant.Mount mounts the OAuth server's
// routes several times, so it may be called more than once) whose paths are relative to
// <issuer>/auth/<method>, e.g. r.Path("/start") and r.Path("/callback"). Call it after
// NewServer and before the route table is built (gateway.New does both).
//
// Every request under the prefix reaches the method's handlers only when the method is
// enabled on the request's host (anything else is answered 404 with a page saying the method
// is not available); the host key is in the request context (tenant.FromContext). A request
// whose query carries the state_ref of a pending authorization request binds it to the browser
// for CompleteExternalSignIn; PendingRef returns it to handlers that carry it themselves.
//
// The sign-in page shows a button for every enabled method that registered routes, linking to
// <issuer>/auth/<method>/start?state_ref=…; an address of one of the method's force-redirect
// domains is sent there with login_hint=<email>. The method's start handler therefore must
// exist at "/start".
func (s *Server) HandleAuthMethod(method string, routes func(r *mux.Router)) {
	s.extMu.Lock()
	defer s.extMu.Unlock()
	if s.external == nil {
		s.external = map[string]func(*mux.Router){}
	}
	s.external[method] = routes
}

// externalMethods returns the methods that registered routes, and whether method is one.
func (s *Server) externalRegistered(method string) bool {
	s.extMu.Lock()
	defer s.extMu.Unlock()
	_, ok := s.external[method]
	return ok
}

// mountExternal mounts the registered methods' routes on r.
func (s *Server) mountExternal(r *mux.Router) {
	s.extMu.Lock()
	methods := make([]string, 0, len(s.external))
	for m := range s.external {
		methods = append(methods, m)
	}
	s.extMu.Unlock()
	slices.Sort(methods)
	for _, method := range methods {
		s.extMu.Lock()
		routes := s.external[method]
		s.extMu.Unlock()
		sub := r.PathPrefix(AuthRoutePrefix + method).Subrouter()
		sub.Use(func(next http.Handler) http.Handler { return s.externalGate(method, next) })
		routes(sub)
	}
}

// externalGate admits a request to method's routes only when the method is enabled on the
// request's host, and binds the pending request of a start to the browser.
func (s *Server) externalGate(method string, next http.Handler) http.Handler {
	return s.withHost(func(w http.ResponseWriter, r *http.Request, h store.Host) {
		p, err := s.signInPolicy(r.Context(), h)
		if err != nil {
			s.internalError(w, h, "load sign-in methods", err)
			return
		}
		if _, ok := p.Method(method); !ok {
			s.errorPage(w, http.StatusNotFound, consentui.ErrorPage{
				Frame:    frame(h),
				Title:    "This sign-in method is not available",
				Message:  "Signing in with " + signinpolicy.DisplayName(method) + " is not turned on here.",
				WhatToDo: "Start again from your app and choose another way to sign in, or ask your administrator.",
			})
			return
		}
		if ref := r.URL.Query().Get("state_ref"); ref != "" {
			if _, err := s.getPending(r.Context(), h.Key, ref); err != nil {
				if !errors.Is(err, store.ErrNotFound) {
					s.internalError(w, h, "load the authorization request", err)
					return
				}
				s.expiredPage(w, h)
				return
			}
			s.setExternalCookie(w, h.Key, method, ref)
			r = r.WithContext(context.WithValue(r.Context(), pendingRefKey{}, ref))
		}
		next.ServeHTTP(w, r)
	})
}

type pendingRefKey struct{}

// WithPendingRef returns r carrying ref, the pending authorization request a provider
// carried through its own protocol (e.g. SAML's RelayState, for a callback that arrives as a
// cross-site POST without the browser's cookies). CompleteExternalSignIn prefers it to the
// cookie; it still checks that the request is pending on the host.
func WithPendingRef(r *http.Request, ref string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), pendingRefKey{}, ref))
}

// PendingRef is the pending authorization request of a request under a method's routes: the
// state_ref its query carried (checked), or the one WithPendingRef put there; "" when none.
func PendingRef(r *http.Request) string {
	ref, _ := r.Context().Value(pendingRefKey{}).(string)
	return ref
}

func (s *Server) externalMAC(payload string) []byte {
	return s.mac(macExternalSignIn, payload)
}

func (s *Server) setExternalCookie(w http.ResponseWriter, host, method, ref string) {
	exp := s.now().Add(externalTTL)
	payload := method + "|" + ref + "|" + strconv.FormatInt(exp.Unix(), 10)
	http.SetCookie(w, &http.Cookie{
		Name:  externalCookiePrefix + host,
		Value: base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.externalMAC(payload)),
		Path:  s.cookiePath(host), MaxAge: int(externalTTL / time.Second),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearExternalCookie(w http.ResponseWriter, host string) {
	http.SetCookie(w, &http.Cookie{Name: externalCookiePrefix + host, Value: "", Path: s.cookiePath(host), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// externalRef is the pending request bound to the browser for method.
func (s *Server) externalRef(r *http.Request, host, method string) string {
	for _, c := range r.CookiesNamed(externalCookiePrefix + host) {
		p64, m64, ok := strings.Cut(c.Value, ".")
		if !ok {
			continue
		}
		payload, err1 := base64.RawURLEncoding.DecodeString(p64)
		mac, err2 := base64.RawURLEncoding.DecodeString(m64)
		if err1 != nil || err2 != nil || !hmac.Equal(mac, s.externalMAC(string(payload))) {
			continue
		}
		parts := strings.Split(string(payload), "|")
		if len(parts) != 3 || parts[0] != method {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || !s.now().Before(time.Unix(exp, 0)) {
			continue
		}
		return parts[1]
	}
	return ""
}

// signInPolicy is host h's sign-in policy.
func (s *Server) signInPolicy(ctx context.Context, h store.Host) (signinpolicy.Policy, error) {
	methods, err := s.cfg.Store.ListAuthMethods(ctx, h.Key)
	if err != nil {
		return signinpolicy.Policy{}, err
	}
	return signinpolicy.New(h, methods), nil
}

// externalStartURL is where the sign-in page sends a person to sign in with method.
func (s *Server) externalStartURL(host, method, ref, email string) string {
	q := url.Values{"state_ref": {ref}}
	if email != "" {
		q.Set("login_hint", email)
	}
	return s.issuer(host) + AuthRoutePrefix + method + "/start?" + q.Encode()
}

// Messages of external sign-in refusals that tests and documentation refer to.
const (
	// MsgEmailNotVerified: the provider did not confirm the address.
	MsgEmailNotVerified = "Your sign-in provider did not confirm that this email address is yours, so trustgate cannot use it."
	// MsgNoAccount: the address has no account on the host, and sign-up is closed to it.
	MsgNoAccount = "There is no account for this email address here."
)

// CompleteExternalSignIn finishes a sign-in that an external provider vouched for, as the
// provider's callback handler (under HandleAuthMethod's routes): it applies the host's rules,
// records the audit entry, starts the browser session and continues the pending authorization
// request (the server choice, then consent), exactly as a password sign-in does. It answers
// the request itself: with a page saying why when it refuses.
//
// The rules: the method must be enabled on the host and the address's domain allowed by the
// host's and the method's lists (and not forced to another provider); an unverified email
// never signs anyone in, never links to an account and never creates one. A verified email
// of a human of the host (pre-authorized by an admin or not) signs that human in: the same
// person whatever method vouched for the address. An address without an account creates one
// only when the host's sign-up switch (HostSettings.AllowedEmailDomains) admits its domain.
func (s *Server) CompleteExternalSignIn(w http.ResponseWriter, r *http.Request, host string, id ExternalIdentity) {
	ctx := r.Context()
	h, err := s.cfg.Store.GetHost(ctx, host)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("oauthserver: load host", "host", host, "err", err)
		}
		s.errorPage(w, http.StatusNotFound, consentui.HostNotFoundPage(host))
		return
	}
	r = r.WithContext(fositestore.WithHost(ctx, h.Key))
	ctx = r.Context()
	email := strings.TrimSpace(id.Email)
	ref := PendingRef(r)
	if ref == "" {
		ref = s.externalRef(r, h.Key, id.Method)
	}
	s.clearExternalCookie(w, h.Key)
	refuse := func(status int, reason, title, msg, what string) {
		s.auditSignIn(ctx, h.Key, id.Method, "", email, false, reason+subjectNote(id.Subject))
		s.errorPage(w, status, consentui.ErrorPage{Frame: frame(h), Title: title, Message: msg, WhatToDo: what})
	}
	if ref == "" {
		refuse(http.StatusBadRequest, "no pending request", "This sign-in has expired",
			"The request to connect your app is no longer valid.", "Start again from your app.")
		return
	}
	if _, err := s.getPending(ctx, h.Key, ref); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, h, "load the authorization request", err)
			return
		}
		refuse(http.StatusBadRequest, "pending request expired", "This sign-in has expired",
			"The request to connect your app is no longer valid.", "Start again from your app.")
		return
	}
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		s.internalError(w, h, "load sign-in methods", err)
		return
	}
	if err := p.Allow(id.Method, email); err != nil {
		var rf *signinpolicy.Refusal
		if !errors.As(err, &rf) {
			s.internalError(w, h, "check sign-in policy", err)
			return
		}
		refuse(http.StatusForbidden, string(rf.Reason), "You cannot sign in this way", rf.Message, rf.WhatToDo)
		return
	}
	if !id.EmailVerified || id.Subject == "" {
		refuse(http.StatusForbidden, "email not verified", "You cannot sign in this way", MsgEmailNotVerified,
			"Confirm your email address with your sign-in provider, or sign in another way.")
		return
	}
	u, err := s.cfg.Store.GetUserByEmail(ctx, h.Key, email)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound) && s.signUpAllows(ctx, h, ref, email):
		if u, err = s.cfg.Store.CreateUser(ctx, store.User{Host: h.Key, Email: email}); err != nil {
			s.internalError(w, h, "sign up", err)
			return
		}
		if _, err := s.cfg.Syncer.Sync(ctx); err != nil {
			s.log.Warn("oauthserver: sync after sign-up", "host", h.Key, "err", err)
		}
		s.auditAccount(ctx, h.Key, id.Method, u, "account.signup")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		refuse(http.StatusForbidden, "no account", "You cannot sign in here", MsgNoAccount,
			"Ask your administrator to add you, then connect again from your app.")
		return
	default:
		s.internalError(w, h, "look up user", err)
		return
	}
	if !s.auditSignIn(ctx, h.Key, id.Method, u.ID, u.Email, true, subjectNote(id.Subject)) {
		s.internalError(w, h, "write the audit entry of a sign-in", errors.New("audit log unavailable"))
		return
	}
	s.signedIn(w, r, h, u.ID, id.Method, ref)
}

func subjectNote(subject string) string {
	if subject == "" {
		return ""
	}
	return " (subject " + subject + ")"
}

// signUpAllows reports whether the host's sign-up switch admits email (its domain is one of
// HostSettings.AllowedEmailDomains).
//
// Only an app's authorization request signs people up: a sign-in to the dashboard or the account
// page (a portal request) signs in people who have an account and never makes one, so that
// "no sign-up" there is a rule, not a hidden link. A request that cannot be read signs nobody up.
func (s *Server) signUpAllows(ctx context.Context, h store.Host, ref, email string) bool {
	domain, ok := signinpolicy.Domain(email)
	if !ok || !signUpOpen(h) || !slices.Contains(h.Settings.AllowedEmailDomains, domain) {
		return false
	}
	pd, err := s.getPending(ctx, h.Key, ref)
	return err == nil && pd.portal == nil
}

// auditSignIn records a sign-in attempt in the host's audit log: the method, the address, the
// outcome and why (never the secret). A success waits for its entry (and reports whether it
// was written: no audit, no session); a failure is queued.
func (s *Server) auditSignIn(ctx context.Context, host, method, userID, email string, ok bool, reason string) bool {
	if s.cfg.Audit == nil {
		return true
	}
	action := "signin.failure"
	if ok {
		action = "signin.success"
	}
	e := audit.Entry{Host: host, Time: s.now(), Decision: audit.Identity, Method: method, Action: action,
		UserID: userID, UserEmail: email, Reason: strings.TrimSpace(reason), Actor: "human",
		ClientAddr: forwarded.ClientAddrFrom(ctx)}
	if !ok {
		s.cfg.Audit.Record(e)
		return true
	}
	if err := s.cfg.Audit.Append(ctx, e); err != nil {
		s.log.Error("oauthserver: audit entry of a sign-in", "host", host, "err", err)
		return false
	}
	return true
}

// auditAccount records a change to an account a person made by proving who they are
// (action: "account.signup", "account.claim", ...).
func (s *Server) auditAccount(ctx context.Context, host, method string, u store.User, action string) {
	if s.cfg.Audit == nil {
		return
	}
	if err := s.cfg.Audit.Append(ctx, audit.Entry{Host: host, Time: s.now(), Decision: audit.Identity, Method: method,
		Action: action, UserID: u.ID, UserEmail: u.Email, Actor: "human", Object: "human/" + u.ID}); err != nil {
		s.log.Error("oauthserver: audit entry of an account change", "host", host, "action", action, "err", err)
	}
}
