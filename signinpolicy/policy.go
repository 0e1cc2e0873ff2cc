// Package signinpolicy decides who may sign in to a host with which method: the host's
// allowed sign-in domains intersected with each method's, the domains forced to a single
// sign-on provider, and the words a person reads when they are refused. It is pure: the
// settings come from the store, the decisions go to the OAuth server's pages.
//
// It also seals and opens a method's provider secret with the master key, so that the admin
// API (which writes it) and the sign-in providers (which read it) agree on how.
package signinpolicy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/store"
)

// Policy is one host's sign-in settings, defaults applied.
type Policy struct {
	// Global are the host's allowed sign-in domains (empty: all).
	Global []string
	// Methods are the host's methods in store.AuthMethodNames order (enabled or not).
	Methods []store.AuthMethod
}

// New is the policy of host h with its stored methods. A method without stored settings is
// off, except email and password, which is on until its settings say otherwise: a host that
// stored nothing signs people in with email and password only (store.DefaultAuthMethods).
func New(h store.Host, methods []store.AuthMethod) Policy {
	hasPassword := slices.ContainsFunc(methods, func(m store.AuthMethod) bool { return m.Method == store.AuthPassword })
	if !hasPassword {
		methods = append(store.DefaultAuthMethods(h.Key), methods...)
	}
	return Policy{Global: h.Settings.SignInDomains, Methods: methods}
}

// Method returns the settings of method when it is enabled.
func (p Policy) Method(method string) (store.AuthMethod, bool) {
	for _, m := range p.Methods {
		if m.Method == method && m.Enabled {
			return m, true
		}
	}
	return store.AuthMethod{}, false
}

// Enabled lists the enabled methods, in store.AuthMethodNames order.
func (p Policy) Enabled() []string {
	var out []string
	for _, name := range store.AuthMethodNames {
		if _, ok := p.Method(name); ok {
			out = append(out, name)
		}
	}
	return out
}

// Domain returns the lower-cased domain of email: what follows its only '@'. An address
// without exactly one '@', or with an empty local part or domain, has none.
func Domain(email string) (string, bool) {
	email = strings.TrimSpace(email)
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.ContainsAny(email, " \t\r\n") {
		return "", false
	}
	return strings.ToLower(domain), true
}

// allows reports whether list admits domain: an empty list admits every domain; otherwise the
// domain must equal one of the list's, ignoring case (a subdomain is not its parent).
func allows(list []string, domain string) bool {
	if len(list) == 0 {
		return true
	}
	for _, d := range list {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// Refusal is why a person may not sign in: a message and what to do, in words a person
// understands. It is an error.
type Refusal struct {
	Reason   Reason
	Message  string
	WhatToDo string
}

func (r *Refusal) Error() string { return r.Message }

// Reason says which rule refused.
type Reason string

// The reasons of a Refusal.
const (
	// NotEnabled: the host does not offer the method.
	NotEnabled Reason = "method_not_enabled"
	// BadEmail: the address has no usable domain.
	BadEmail Reason = "bad_email"
	// DomainNotAllowed: the host's allowed sign-in domains do not include the address's.
	DomainNotAllowed Reason = "domain_not_allowed"
	// MethodDomainNotAllowed: the method's allowed domains do not include the address's.
	MethodDomainNotAllowed Reason = "method_domain_not_allowed"
	// ForcedElsewhere: the address's domain signs in with another (single sign-on) method.
	ForcedElsewhere Reason = "forced_to_other_method"
)

// Allow checks that email may sign in with method: the method is enabled, and the email's
// domain is allowed by both the host's list and the method's (an empty list allows all). A
// domain force-redirected to a single sign-on method may sign in only with that method.
func (p Policy) Allow(method, email string) error {
	m, ok := p.Method(method)
	if !ok {
		return &Refusal{Reason: NotEnabled,
			Message:  fmt.Sprintf("Signing in with %s is not available here.", DisplayName(method)),
			WhatToDo: p.otherMethods(method)}
	}
	domain, ok := Domain(email)
	if !ok {
		return &Refusal{Reason: BadEmail,
			Message:  "That is not an email address trustgate can use.",
			WhatToDo: "Enter your full email address, such as ada@example.com."}
	}
	if !allows(p.Global, domain) {
		return &Refusal{Reason: DomainNotAllowed,
			Message:  fmt.Sprintf("People with an address at %s cannot sign in here.", domain),
			WhatToDo: "Sign in with your work email address, or ask your administrator which addresses are allowed."}
	}
	if !allows(m.AllowedDomains, domain) {
		return &Refusal{Reason: MethodDomainNotAllowed,
			Message:  fmt.Sprintf("Signing in with %s is not available for addresses at %s.", DisplayName(method), domain),
			WhatToDo: p.methodsForDomain(domain, method)}
	}
	if forced, ok := p.ForceRedirect(email); ok && forced != method {
		return &Refusal{Reason: ForcedElsewhere,
			Message:  fmt.Sprintf("Addresses at %s sign in with %s.", domain, DisplayName(forced)),
			WhatToDo: fmt.Sprintf("Use the %s button.", DisplayName(forced))}
	}
	return nil
}

// ForceRedirect returns the enabled single sign-on method that email's domain is forced to,
// if any. The caller still checks Allow for it (the host's list may refuse the domain).
func (p Policy) ForceRedirect(email string) (string, bool) {
	domain, ok := Domain(email)
	if !ok {
		return "", false
	}
	for _, m := range p.Methods {
		if m.Enabled && store.IsSSOMethod(m.Method) && slices.Contains(m.ForceRedirectDomains, domain) {
			return m.Method, true
		}
	}
	return "", false
}

// otherMethods says what else a person may use than method.
func (p Policy) otherMethods(method string) string {
	var names []string
	for _, m := range p.Enabled() {
		if m != method {
			names = append(names, DisplayName(m))
		}
	}
	if len(names) == 0 {
		return "Ask your administrator how to sign in to this gateway."
	}
	return "Sign in with " + joinOr(names) + " instead."
}

// methodsForDomain says which methods addresses at domain may use, other than method.
func (p Policy) methodsForDomain(domain, method string) string {
	var names []string
	for _, name := range p.Enabled() {
		m, _ := p.Method(name)
		if name != method && allows(m.AllowedDomains, domain) {
			names = append(names, DisplayName(name))
		}
	}
	if len(names) == 0 {
		return "Ask your administrator how people with your address sign in."
	}
	return "Sign in with " + joinOr(names) + " instead."
}

func joinOr(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// DisplayName is how pages name a method.
func DisplayName(method string) string {
	switch method {
	case store.AuthPassword:
		return "email and password"
	case store.AuthEmailOTP:
		return "a code sent by email"
	case store.AuthPasskey:
		return "a passkey"
	case store.AuthOIDC:
		return "single sign-on"
	case store.AuthGoogle:
		return "Google"
	case store.AuthGitHub:
		return "GitHub"
	case store.AuthMicrosoft:
		return "Microsoft"
	case store.AuthSAML:
		return "SAML single sign-on"
	}
	return method
}

// secretAAD binds a sealed secret to its host and method: a secret copied to another row
// does not open.
func secretAAD(host, method string) string {
	return "trustgate/auth-method-secret/v1|" + host + "|" + method
}

// SealSecret seals a method's provider secret with the master key.
func SealSecret(keys *secrets.Keyring, host, method string, secret []byte) []byte {
	return keys.Seal(secret, secretAAD(host, method))
}

// OpenSecret opens what SealSecret sealed; nil for nothing sealed.
func OpenSecret(keys *secrets.Keyring, m store.AuthMethod) ([]byte, error) {
	if len(m.SealedSecret) == 0 {
		return nil, nil
	}
	b, err := keys.Open(m.SealedSecret, secretAAD(m.Host, m.Method))
	if err != nil {
		return nil, fmt.Errorf("open the secret of sign-in method %s/%s: %w", m.Host, m.Method, err)
	}
	return b, nil
}
