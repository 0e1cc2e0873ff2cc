package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/sso"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// Single sign-on with OpenID Connect providers (any, and the Google and Microsoft presets)
// and GitHub (package sso), under <issuer>/auth/<method>/start and …/callback:
//
//   - start (the sign-in page's button, or a force-redirect domain's address) begins the
//     sign-in of the pending request (state_ref), puts the browser binding in a short-lived
//     cookie and sends the person to the provider;
//   - callback takes the sign-in in progress (once), checks the browser's binding, exchanges
//     the code and checks what the provider vouches for, then hands the identity to
//     CompleteExternalSignIn. Every refusal is an audit entry and a page that says why.

// ssoCookiePrefix + host is the name of the cookie binding a sign-in at a provider to the
// browser that started it.
const ssoCookiePrefix = "tg_sso_"

// ssoFetchTimeout bounds one request to a provider.
const ssoFetchTimeout = 10 * time.Second

// registerSSO registers the SSO methods' routes when the server has the master keys.
func (s *Server) registerSSO() error {
	if s.cfg.Keys == nil {
		return nil
	}
	client := s.cfg.HTTPClient
	if client == nil {
		// Providers are public, or on the networks the operator allows (--upstream-allow-cidr);
		// settings admit http only to a loopback host.
		client = ssrf.NewClient(ssrf.Options{AllowHTTP: true, Policy: s.cfg.HostNetworks, Timeout: ssoFetchTimeout})
	}
	c, err := sso.New(sso.Config{Store: s.cfg.Store, Keys: s.cfg.Keys, HTTPClient: client, Now: s.now})
	if err != nil {
		return err
	}
	s.sso = c
	for _, method := range sso.Methods {
		s.HandleAuthMethod(method, s.ssoRoutes(method))
	}
	return nil
}

func (s *Server) ssoRoutes(method string) func(r *mux.Router) {
	return func(r *mux.Router) {
		r.Methods(route.Methods("GET")...).Path("/start").Handler(s.withHost(func(w http.ResponseWriter, r *http.Request, h store.Host) {
			s.ssoStart(w, r, h, method)
		}))
		r.Methods(route.Methods("GET")...).Path("/callback").Handler(s.withHost(func(w http.ResponseWriter, r *http.Request, h store.Host) {
			s.ssoCallback(w, r, h, method)
		}))
	}
}

// checkSSOMethodConfig checks the settings of an SSO method before the admin API stores them
// enabled (CheckAuthMethodConfig): the provider settings (a clear error for a bad issuer URL,
// a missing client ID, ...) and a client secret. Other methods pass.
func checkSSOMethodConfig(method string, config json.RawMessage, secretSet bool) error {
	if !sso.IsMethod(method) {
		return nil
	}
	if _, err := sso.ParseSettings(method, config); err != nil {
		return err
	}
	if !secretSet {
		return fmt.Errorf("%s: the client secret is not set (send it with the settings: it is kept sealed and never shown)", method)
	}
	return nil
}

// ssoMethod is host h's settings of method with its secret opened.
func (s *Server) ssoMethod(ctx context.Context, h store.Host, method string) (sso.Method, error) {
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		return sso.Method{}, err
	}
	m, ok := p.Method(method)
	if !ok {
		return sso.Method{}, fmt.Errorf("sign-in method %s is off", method)
	}
	settings, err := sso.ParseSettings(method, m.Config)
	if err != nil {
		return sso.Method{}, err
	}
	secret, err := signinpolicy.OpenSecret(s.cfg.Keys, m)
	if err != nil {
		return sso.Method{}, err
	}
	return sso.Method{Name: method, Settings: settings, Secret: string(secret)}, nil
}

func (s *Server) ssoRedirectURI(host, method string) string {
	return s.issuer(host) + AuthRoutePrefix + method + "/callback"
}

func (s *Server) ssoStart(w http.ResponseWriter, r *http.Request, h store.Host, method string) {
	ctx := r.Context()
	ref := PendingRef(r)
	if ref == "" {
		s.expiredPage(w, h)
		return
	}
	name := signinpolicy.DisplayName(method)
	m, err := s.ssoMethod(ctx, h, method)
	if err != nil {
		s.log.Error("oauthserver: sign-in method not usable", "host", h.Key, "method", method, "err", err)
		s.auditSignIn(ctx, h.Key, method, "", "", false, "method not set up: "+err.Error())
		s.errorPage(w, http.StatusServiceUnavailable, consentui.ErrorPage{Frame: frame(h),
			Title:    "This sign-in method is not set up",
			Message:  "Signing in with " + name + " is turned on here but its settings are incomplete.",
			WhatToDo: "Sign in another way, or ask your administrator to finish setting it up."})
		return
	}
	hint := r.URL.Query().Get("login_hint")
	if _, ok := signinpolicy.Domain(hint); !ok {
		hint = ""
	}
	begun, err := s.sso.Begin(ctx, sso.BeginRequest{Host: h.Key, Method: m, PendingRef: ref, RedirectURI: s.ssoRedirectURI(h.Key, method), LoginHint: hint})
	if err != nil {
		s.log.Warn("oauthserver: begin sign-in at provider", "host", h.Key, "method", method, "err", err)
		s.auditSignIn(ctx, h.Key, method, "", "", false, "provider unavailable: "+err.Error())
		s.errorPage(w, http.StatusBadGateway, consentui.ErrorPage{Frame: frame(h),
			Title:    "We could not reach " + name,
			Message:  "The sign-in provider did not answer as expected, so you cannot sign in with it right now.",
			WhatToDo: "Try again in a moment, or sign in another way."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: ssoCookiePrefix + h.Key, Value: begun.Binding, Path: s.cookiePath(h.Key),
		MaxAge: int(sso.StateTTL / time.Second), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, begun.URL, http.StatusSeeOther)
}

func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request, h store.Host, method string) {
	ctx := r.Context()
	name := signinpolicy.DisplayName(method)
	binding := ""
	if c, err := r.Cookie(ssoCookiePrefix + h.Key); err == nil {
		binding = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookiePrefix + h.Key, Value: "", Path: s.cookiePath(h.Key), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	m, err := s.ssoMethod(ctx, h, method)
	if err != nil {
		s.log.Error("oauthserver: sign-in method not usable", "host", h.Key, "method", method, "err", err)
		s.auditSignIn(ctx, h.Key, method, "", "", false, "method not set up: "+err.Error())
		s.expiredPage(w, h)
		return
	}
	q := r.URL.Query()
	fin, err := s.sso.Finish(ctx, sso.FinishRequest{Host: h.Key, Method: m, State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), Binding: binding})
	refuse := func(status int, reason, title, msg, what string) {
		s.auditSignIn(ctx, h.Key, method, "", "", false, reason)
		s.errorPage(w, status, consentui.ErrorPage{Frame: frame(h), Title: title, Message: msg, WhatToDo: what})
	}
	switch {
	case err == nil:
		s.CompleteExternalSignIn(w, WithPendingRef(r, fin.PendingRef), h.Key, ExternalIdentity{
			Method: method, Subject: fin.Identity.Subject, Email: fin.Identity.Email, EmailVerified: true,
		})
	case errors.Is(err, sso.ErrState):
		refuse(http.StatusBadRequest, "no sign-in in progress matches the provider's answer (expired, used, or of another browser)",
			"This sign-in has expired", "This answer from "+name+" does not belong to a sign-in in progress in this browser, or it was already used.",
			"Start again from your app.")
	case errors.Is(err, sso.ErrDenied):
		refuse(http.StatusForbidden, "the provider did not sign the person in ("+describeProviderError(q.Get("error"))+")",
			"You did not sign in with "+name, name+" did not sign you in.", "Start again from your app, or sign in another way.")
	case errors.Is(err, sso.ErrUnverifiedEmail):
		refuse(http.StatusForbidden, "email not verified by the provider", "You cannot sign in this way", MsgEmailNotVerified,
			"Confirm your email address with your sign-in provider, or sign in another way.")
	case errors.Is(err, sso.ErrToken):
		refuse(http.StatusForbidden, err.Error(), "You cannot sign in this way",
			"The answer from "+name+" could not be verified, so trustgate cannot use it.", "Start again from your app, or ask your administrator.")
	case errors.Is(err, sso.ErrExchange), errors.Is(err, sso.ErrProvider):
		refuse(http.StatusBadGateway, err.Error(), "We could not complete the sign-in with "+name,
			"The sign-in provider did not answer as expected.", "Try again in a moment, or sign in another way.")
	default:
		s.internalError(w, h, "finish a sign-in at a provider", err)
	}
}

// describeProviderError is the provider's error code when it is a short token, else "error".
func describeProviderError(code string) string {
	if code == "" {
		return "no code"
	}
	if len(code) > 64 {
		return "error"
	}
	for _, c := range code {
		if !(c == '_' || c == '-' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return "error"
		}
	}
	return code
}
