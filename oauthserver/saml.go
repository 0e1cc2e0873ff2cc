package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/oauthserver/samlsso"
	"github.com/trustgate/trustgate/store"
)

// SAML 2.0 single sign-on (package samlsso) is an external sign-in method: its routes live
// under <issuer>/auth/saml/ (HandleAuthMethod) and a verified assertion ends in
// CompleteExternalSignIn.
//
//	GET  …/auth/saml/metadata  the SP metadata (XML, downloadable) to give the IdP
//	GET  …/auth/saml/start     sends the browser to the IdP with a signed authentication request
//	POST …/auth/saml/acs       the IdP's response (HTTP-POST binding), checked
//	GET  …/auth/saml/acs       the browser that started the sign-in finishes it

func (s *Server) samlRoutes(r *mux.Router) {
	get := route.Methods("GET")
	r.Methods(get...).Path("/metadata").Handler(s.withHost(s.samlMetadata))
	r.Methods(get...).Path("/start").Handler(s.withHost(s.samlStart))
	r.Methods("POST").Path("/acs").Handler(s.withHost(s.samlResponse))
	r.Methods(get...).Path("/acs").Handler(s.withHost(s.samlFinish))
}

// SAMLEndpoints are the SP details of host an IdP administrator enters: the entity ID, the
// ACS URL and the metadata URL.
func (s *Server) SAMLEndpoints(host string) samlsso.Endpoints {
	return samlsso.EndpointsOf(s.issuer(host))
}

// samlConfig is host h's SAML settings (the method is enabled: HandleAuthMethod's gate).
func (s *Server) samlConfig(ctx context.Context, h store.Host) (samlsso.Config, error) {
	p, err := s.signInPolicy(ctx, h)
	if err != nil {
		return samlsso.Config{}, err
	}
	m, ok := p.Method(store.AuthSAML)
	if !ok {
		return samlsso.Config{}, errors.New("saml: the method is off")
	}
	return samlsso.ParseConfig(m.Config)
}

// CheckAuthMethodConfig checks the settings of a sign-in method before the admin API stores
// them enabled: for saml, the IdP (metadata URL or document, or entry point, entity ID and
// certificate) and the email attribute; for OIDC, Google, Microsoft and GitHub, see
// checkSSOMethodConfig. Other methods pass.
func CheckAuthMethodConfig(method string, config json.RawMessage, secretSet bool) error {
	if method == store.AuthSAML {
		_, err := samlsso.ParseConfig(config)
		return err
	}
	if method == store.AuthPasskey {
		return checkPasskeyConfig(config, secretSet)
	}
	return checkSSOMethodConfig(method, config, secretSet)
}

// registerSAML makes the SAML service provider and registers its routes.
func (s *Server) registerSAML() error {
	client := s.cfg.HTTPClient
	if client == nil {
		// IdP metadata URLs: https, public addresses or the networks the operator allows.
		client = ssrf.NewClient(ssrf.Options{Policy: s.cfg.HostNetworks, MaxBodyBytes: 1 << 20, Timeout: 10 * time.Second})
	}
	svc, err := samlsso.New(samlsso.Options{
		Store: s.cfg.Store, Secret: derive(s.cfg.CookieSecret, "trustgate/oauthserver/saml/v1"),
		HTTPClient: client, Secure: s.secure, Now: s.now,
	})
	if err != nil {
		return err
	}
	s.saml = svc
	s.HandleAuthMethod(store.AuthSAML, s.samlRoutes)
	return nil
}

func (s *Server) samlMetadata(w http.ResponseWriter, r *http.Request, h store.Host) {
	doc, err := s.saml.Metadata(r.Context(), h.Key, s.issuer(h.Key))
	if err != nil {
		s.internalError(w, h, "SAML metadata", err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/samlmetadata+xml")
	hd.Set("Content-Disposition", `attachment; filename="trustgate-`+h.Key+`-saml-metadata.xml"`)
	_, _ = w.Write(doc)
}

func (s *Server) samlStart(w http.ResponseWriter, r *http.Request, h store.Host) {
	ref := PendingRef(r)
	if ref == "" {
		s.expiredPage(w, h)
		return
	}
	cfg, err := s.samlConfig(r.Context(), h)
	if err != nil {
		s.samlUnavailable(w, r, h, err)
		return
	}
	u, err := s.saml.Start(r.Context(), w, h.Key, s.issuer(h.Key), cfg, ref)
	if err != nil {
		s.samlUnavailable(w, r, h, err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (s *Server) samlResponse(w http.ResponseWriter, r *http.Request, h store.Host) {
	r.Body = http.MaxBytesReader(w, r.Body, samlsso.MaxResponseBytes)
	cfg, err := s.samlConfig(r.Context(), h)
	if err != nil {
		s.samlUnavailable(w, r, h, err)
		return
	}
	next, err := s.saml.Response(r.Context(), r, h.Key, s.issuer(h.Key), cfg)
	if err != nil {
		s.samlRefused(w, r, h, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) samlFinish(w http.ResponseWriter, r *http.Request, h store.Host) {
	id, ref, err := s.saml.Finish(r.Context(), w, r, h.Key, s.issuer(h.Key))
	if err != nil {
		s.samlRefused(w, r, h, err)
		return
	}
	s.CompleteExternalSignIn(w, WithPendingRef(r, ref), h.Key, ExternalIdentity{
		Method: store.AuthSAML, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified,
	})
}

// samlUnavailable: the host's SAML settings or its IdP's metadata cannot be used.
func (s *Server) samlUnavailable(w http.ResponseWriter, r *http.Request, h store.Host, err error) {
	s.log.Warn("oauthserver: SAML sign-in unavailable", "host", h.Key, "err", err)
	s.auditSignIn(r.Context(), h.Key, store.AuthSAML, "", "", false, "SAML unavailable: "+clip(err.Error()))
	s.errorPage(w, http.StatusBadGateway, consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Single sign-on is not available right now",
		Message:  "trustgate could not reach your organization's sign-in service, or its settings are incomplete.",
		WhatToDo: "Try again in a moment, or sign in another way. If it keeps happening, tell your administrator (the gateway's logs have the details).",
	})
}

// samlRefused: the IdP's response, or the browser finishing it, was not accepted.
func (s *Server) samlRefused(w http.ResponseWriter, r *http.Request, h store.Host, err error) {
	s.log.Info("oauthserver: SAML response refused", "host", h.Key, "err", err)
	s.auditSignIn(r.Context(), h.Key, store.AuthSAML, "", "", false, clip(err.Error()))
	page := consentui.ErrorPage{
		Frame:    frame(h),
		Title:    "Your sign-in could not be verified",
		Message:  "The answer from your organization's sign-in service was not accepted.",
		WhatToDo: "Start again from your app. If it keeps happening, tell your administrator (the gateway's audit log has the reason).",
	}
	switch {
	case errors.Is(err, samlsso.ErrOtherBrowser):
		page.Message = "This sign-in was not started in this browser, or it took too long."
	case errors.Is(err, samlsso.ErrReplayed):
		page.Message = "This sign-in was already used."
	case errors.Is(err, samlsso.ErrUnsolicited):
		page.Message = "Sign-ins started at your organization's portal are not accepted: start from your app."
	case errors.Is(err, samlsso.ErrNoEmail):
		page.Message = "Your organization's sign-in service did not say what your email address is."
	}
	s.errorPage(w, http.StatusForbidden, page)
}

// clip bounds a reason written to the audit log.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return strings.TrimSpace(s)
}
