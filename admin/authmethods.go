package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/signinpolicy"
	"github.com/trustgate/trustgate/store"
)

// A host's sign-in methods (GET /hosts/{host}/auth, PUT and DELETE …/auth/methods/{method}).
// Provider secrets are write-only: sealed with the master key on the way in, shown only as
// "set" or "not set".

// maxAuthSecret bounds a provider secret as sent (a client secret or a private key).
const maxAuthSecret = 8 << 10

func (a *API) authMethodDoc(m store.AuthMethod, configured bool) AuthMethod {
	secret := "not set"
	if len(m.SealedSecret) > 0 {
		secret = "set"
	}
	config := bytes.TrimSpace(m.Config)
	if len(config) == 0 {
		config = []byte("{}")
	}
	doc := AuthMethod{
		Method: m.Method, Enabled: m.Enabled, Configured: configured,
		AllowedDomains: orEmpty(m.AllowedDomains), ForceRedirectDomains: orEmpty(m.ForceRedirectDomains),
		Config: config, Secret: secret, UpdatedAt: m.UpdatedAt,
	}
	if m.Method == store.AuthSAML && a.cfg.URLs.Public != nil {
		doc.ServiceProvider = samlServiceProvider(a.cfg.URLs.Base(m.Host))
	}
	return doc
}

// samlServiceProvider are the SP details of the host whose issuer is issuer; the OAuth
// server serves them there (its SAML routes, oauthserver/samlsso.EndpointsOf).
func samlServiceProvider(issuer string) *sdk.SAMLServiceProvider {
	issuer = strings.TrimSuffix(issuer, "/")
	return &sdk.SAMLServiceProvider{
		EntityID:    issuer + "/auth/saml/metadata",
		ACSURL:      issuer + "/auth/saml/acs",
		MetadataURL: issuer + "/auth/saml/metadata",
	}
}

func (a *API) getAuthSettings(r *http.Request, _ *caller) (int, any, error) {
	host := r.PathValue("host")
	h, err := a.cfg.Store.GetHost(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	stored, err := a.cfg.Store.ListAuthMethods(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	p := signinpolicy.New(h, stored)
	doc := AuthSettings{SignInDomains: orEmpty(h.Settings.SignInDomains), Methods: []AuthMethod{}}
	for _, name := range store.AuthMethodNames {
		i := slices.IndexFunc(p.Methods, func(m store.AuthMethod) bool { return m.Method == name })
		if i < 0 {
			doc.Methods = append(doc.Methods, a.authMethodDoc(store.AuthMethod{Host: host, Method: name}, false))
			continue
		}
		configured := slices.ContainsFunc(stored, func(m store.AuthMethod) bool { return m.Method == name })
		doc.Methods = append(doc.Methods, a.authMethodDoc(p.Methods[i], configured))
	}
	return http.StatusOK, doc, nil
}

func (a *API) setAuthMethod(r *http.Request, c *caller) (int, any, error) {
	var req AuthMethodSet
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	host, method := r.PathValue("host"), r.PathValue("method")
	if !slices.Contains(store.AuthMethodNames, method) {
		return 0, nil, problemf(http.StatusNotFound, "sign-in method %q does not exist: use one of %s", method, strings.Join(store.AuthMethodNames, ", "))
	}
	if _, err := a.cfg.Store.GetHost(r.Context(), host); err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	stored, err := a.cfg.Store.ListAuthMethods(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	m := store.AuthMethod{Host: host, Method: method, Enabled: req.Enabled,
		AllowedDomains: req.AllowedDomains, ForceRedirectDomains: req.ForceRedirectDomains, Config: req.Config}
	var old store.AuthMethod
	if i := slices.IndexFunc(stored, func(s store.AuthMethod) bool { return s.Method == method }); i >= 0 {
		old = stored[i]
		m.SealedSecret = old.SealedSecret
	}
	if req.Secret != nil {
		switch {
		case *req.Secret == "":
			m.SealedSecret = nil
		case len(*req.Secret) > maxAuthSecret:
			return 0, nil, problemf(http.StatusBadRequest, "secret: at most %d bytes", maxAuthSecret)
		default:
			m.SealedSecret = signinpolicy.SealSecret(a.cfg.Keys, host, method, []byte(*req.Secret))
		}
	}
	if len(bytes.TrimSpace(m.Config)) == 0 {
		m.Config = []byte("{}")
	}
	if a.cfg.CheckAuthConfig != nil && m.Enabled {
		if err := a.cfg.CheckAuthConfig(method, m.Config, len(m.SealedSecret) > 0); err != nil {
			return 0, nil, problemf(http.StatusBadRequest, "sign-in method %s: %v", method, err)
		}
	}
	if err := a.cfg.Store.PutAuthMethod(r.Context(), m); err != nil {
		return 0, nil, err
	}
	c.change = change{old: authSummary(old), new: authSummary(m), object: "host/" + host + "/auth/" + method}
	got, err := a.cfg.Store.ListAuthMethods(r.Context(), host)
	if err != nil {
		return 0, nil, err
	}
	for _, s := range got {
		if s.Method == method {
			return http.StatusOK, a.authMethodDoc(s, true), nil
		}
	}
	return 0, nil, fmt.Errorf("sign-in method %s/%s vanished after it was stored", host, method)
}

func (a *API) deleteAuthMethod(r *http.Request, c *caller) (int, any, error) {
	host, method := r.PathValue("host"), r.PathValue("method")
	if !slices.Contains(store.AuthMethodNames, method) {
		return 0, nil, problemf(http.StatusNotFound, "sign-in method %q does not exist: use one of %s", method, strings.Join(store.AuthMethodNames, ", "))
	}
	stored, err := a.cfg.Store.ListAuthMethods(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	var old store.AuthMethod
	if i := slices.IndexFunc(stored, func(s store.AuthMethod) bool { return s.Method == method }); i >= 0 {
		old = stored[i]
	}
	if err := a.cfg.Store.DeleteAuthMethod(r.Context(), host, method); err != nil {
		return 0, nil, err
	}
	c.change = change{old: authSummary(old), new: "default", object: "host/" + host + "/auth/" + method}
	return http.StatusNoContent, nil, nil
}

// authSummary is a method's settings for the audit log, without the secret.
func authSummary(m store.AuthMethod) string {
	if m.Method == "" {
		return "default"
	}
	secret := "secret not set"
	if len(m.SealedSecret) > 0 {
		secret = "secret set"
	}
	return fmt.Sprintf("enabled=%t allowed=%s force=%s config=%dB %s", m.Enabled,
		strings.Join(m.AllowedDomains, ","), strings.Join(m.ForceRedirectDomains, ","), len(m.Config), secret)
}
