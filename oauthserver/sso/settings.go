package sso

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// The sign-in methods this package serves.
const (
	MethodOIDC      = "oidc"
	MethodGoogle    = "google"
	MethodMicrosoft = "microsoft"
	MethodGitHub    = "github"
)

// Methods are the methods this package serves, in the order the sign-in page shows them.
var Methods = []string{MethodOIDC, MethodGoogle, MethodMicrosoft, MethodGitHub}

// IsMethod reports whether method is one of Methods.
func IsMethod(method string) bool { return slices.Contains(Methods, method) }

// The presets' public endpoints; each is overridable in the method's settings (tests point
// them at local providers of the same protocol).
const (
	GoogleIssuer       = "https://accounts.google.com"
	MicrosoftAuthority = "https://login.microsoftonline.com"
	GitHubAuthURL      = "https://github.com/login/oauth/authorize"
	GitHubTokenURL     = "https://github.com/login/oauth/access_token"
	GitHubAPIURL       = "https://api.github.com"
)

// Microsoft's multi-tenant names, and the tenant of personal Microsoft accounts.
const (
	TenantCommon        = "common"
	TenantOrganizations = "organizations"
	TenantConsumers     = "consumers"
	consumersTenantID   = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// Settings are a method's non-secret settings: the JSON kept per host and method. The client
// secret is not among them (it is sealed apart).
type Settings struct {
	// ClientID is the client registered at the provider (every method).
	ClientID string `json:"client_id"`
	// Issuer is the OpenID provider's issuer URL: required for "oidc"; for "google" it
	// overrides https://accounts.google.com.
	Issuer string `json:"issuer,omitempty"`
	// Tenant is Microsoft's directory (tenant) ID, a GUID, or "common", "organizations" or
	// "consumers" (required for "microsoft").
	Tenant string `json:"tenant,omitempty"`
	// Authority overrides https://login.microsoftonline.com ("microsoft").
	Authority string `json:"authority,omitempty"`
	// AuthURL, TokenURL and APIURL override GitHub's endpoints ("github").
	AuthURL  string `json:"auth_url,omitempty"`
	TokenURL string `json:"token_url,omitempty"`
	APIURL   string `json:"api_url,omitempty"`
}

// settingKeys are the keys each method accepts.
var settingKeys = map[string][]string{
	MethodOIDC:      {"client_id", "issuer"},
	MethodGoogle:    {"client_id", "issuer"},
	MethodMicrosoft: {"client_id", "tenant", "authority"},
	MethodGitHub:    {"client_id", "auth_url", "token_url", "api_url"},
}

// Bounds of the settings.
const (
	maxSettingsBytes = 8 << 10
	maxURLLen        = 1024
	maxClientIDLen   = 256
)

var (
	guidRE     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	clientIDRE = regexp.MustCompile(`^[\x21-\x7e]+$`)
)

// ParseSettings reads and checks the settings of method: strict JSON with only the method's
// keys, and every value usable. Its errors are sentences an admin can act on.
func ParseSettings(method string, raw []byte) (Settings, error) {
	keys, ok := settingKeys[method]
	if !ok {
		return Settings{}, fmt.Errorf("unknown sign-in method %q: want one of %s", method, strings.Join(Methods, ", "))
	}
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if len(raw) > maxSettingsBytes {
		return Settings{}, fmt.Errorf("%s settings of %d bytes: want at most %d", method, len(raw), maxSettingsBytes)
	}
	obj, err := strictjson.ParseObject(raw, keys...)
	if err != nil {
		return Settings{}, fmt.Errorf("%s settings: %w", method, err)
	}
	for k, v := range obj {
		if !slices.Contains(keys, k) {
			return Settings{}, fmt.Errorf("%s settings: unknown setting %q (the %s method takes %s)", method, k, method, strings.Join(keys, ", "))
		}
		if len(v) == 0 || v[0] != '"' {
			return Settings{}, fmt.Errorf("%s settings: %s must be a string", method, k)
		}
	}
	var s Settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return Settings{}, fmt.Errorf("%s settings: %w", method, err)
	}
	return s, s.Check(method)
}

// Check reports the first thing wrong with s as method's settings.
func (s Settings) Check(method string) error {
	if s.ClientID == "" {
		return fmt.Errorf("%s: client_id is required (the client ID the provider gave this gateway)", method)
	}
	if len(s.ClientID) > maxClientIDLen || !clientIDRE.MatchString(s.ClientID) {
		return fmt.Errorf("%s: client_id must be at most %d printable characters without spaces", method, maxClientIDLen)
	}
	switch method {
	case MethodOIDC:
		if s.Issuer == "" {
			return fmt.Errorf("oidc: issuer is required (the provider's issuer URL, e.g. https://idp.example.com)")
		}
		return checkURL("oidc: issuer", s.Issuer)
	case MethodGoogle:
		if s.Issuer != "" {
			return checkURL("google: issuer", s.Issuer)
		}
	case MethodMicrosoft:
		switch {
		case s.Tenant == "":
			return fmt.Errorf("microsoft: tenant is required: the directory (tenant) ID, a GUID, or common, organizations or consumers")
		case s.Tenant == TenantCommon, s.Tenant == TenantOrganizations, s.Tenant == TenantConsumers, guidRE.MatchString(s.Tenant):
		default:
			return fmt.Errorf("microsoft: tenant %q is neither a directory (tenant) ID (a GUID) nor common, organizations or consumers", s.Tenant)
		}
		if s.Authority != "" {
			return checkURL("microsoft: authority", s.Authority)
		}
	case MethodGitHub:
		for _, u := range []struct{ name, v string }{{"auth_url", s.AuthURL}, {"token_url", s.TokenURL}, {"api_url", s.APIURL}} {
			if u.v != "" {
				if err := checkURL("github: "+u.name, u.v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkURL requires an absolute https URL without query or fragment; http only to a loopback
// host (a provider on the same machine, for trying a method locally).
func checkURL(what, raw string) error {
	if len(raw) > maxURLLen {
		return fmt.Errorf("%s is longer than %d characters", what, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%s %q is not an absolute https URL", what, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.HasSuffix(raw, "#") {
		return fmt.Errorf("%s %q must have no user, query or fragment", what, raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%s %q must be https (http only for a provider on loopback)", what, raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// issuer is the OpenID issuer of an OIDC method ("" for GitHub). For Microsoft's multi-tenant
// names it is the template with "{tenantid}", which each token's tid fills in.
func (s Settings) issuer(method string) string {
	switch method {
	case MethodOIDC:
		return strings.TrimSuffix(s.Issuer, "/")
	case MethodGoogle:
		if s.Issuer != "" {
			return strings.TrimSuffix(s.Issuer, "/")
		}
		return GoogleIssuer
	case MethodMicrosoft:
		authority := MicrosoftAuthority
		if s.Authority != "" {
			authority = strings.TrimSuffix(s.Authority, "/")
		}
		if s.multiTenant(method) {
			return authority + "/{tenantid}/v2.0"
		}
		return authority + "/" + strings.ToLower(s.Tenant) + "/v2.0"
	}
	return ""
}

// discovery is where the OIDC method's discovery document is (its issuer, except for
// Microsoft's multi-tenant names).
func (s Settings) discovery(method string) string {
	if s.multiTenant(method) {
		authority := MicrosoftAuthority
		if s.Authority != "" {
			authority = strings.TrimSuffix(s.Authority, "/")
		}
		return authority + "/" + s.Tenant + "/v2.0"
	}
	return s.issuer(method)
}

func (s Settings) multiTenant(method string) bool {
	return method == MethodMicrosoft && (s.Tenant == TenantCommon || s.Tenant == TenantOrganizations || s.Tenant == TenantConsumers)
}

func (s Settings) github() (auth, token, api string) {
	auth, token, api = GitHubAuthURL, GitHubTokenURL, GitHubAPIURL
	if s.AuthURL != "" {
		auth = s.AuthURL
	}
	if s.TokenURL != "" {
		token = s.TokenURL
	}
	if s.APIURL != "" {
		api = strings.TrimSuffix(s.APIURL, "/")
	}
	return auth, token, api
}
