package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Per-host sign-in methods. A host without rows signs people in with email and password only
// (DefaultAuthMethods); an admin enables others, each with its own allowed email domains and,
// for single sign-on methods, the domains whose people go straight to that provider. The
// host-wide list of allowed sign-in domains is HostSettings.SignInDomains.

// The sign-in methods.
const (
	AuthPassword  = "password"
	AuthEmailOTP  = "email_otp"
	AuthPasskey   = "passkey"
	AuthOIDC      = "oidc"
	AuthGoogle    = "google"
	AuthGitHub    = "github"
	AuthMicrosoft = "microsoft"
	AuthSAML      = "saml"
)

// AuthMethodNames are every sign-in method, in the order the sign-in page shows them.
var AuthMethodNames = []string{AuthPassword, AuthEmailOTP, AuthPasskey, AuthOIDC, AuthGoogle, AuthGitHub, AuthMicrosoft, AuthSAML}

// IsSSOMethod reports whether method signs people in at an external provider (the methods
// that may have force-redirect domains).
func IsSSOMethod(method string) bool {
	switch method {
	case AuthOIDC, AuthGoogle, AuthGitHub, AuthMicrosoft, AuthSAML:
		return true
	}
	return false
}

// AuthMethod is one sign-in method's settings on one host.
type AuthMethod struct {
	Host    string // host key
	Method  string // one of AuthMethodNames
	Enabled bool
	// AllowedDomains are the email domains that may sign in with the method (empty: all),
	// lower-case; the host's SignInDomains apply too.
	AllowedDomains []string
	// ForceRedirectDomains (SSO methods only): an email of these domains goes straight to
	// this method's provider. A domain is force-redirected by at most one method of a host.
	ForceRedirectDomains []string
	// Config is the method's non-secret settings (issuer, client id, endpoint overrides, SAML
	// metadata...) as a JSON object; the method's package reads and checks it.
	Config json.RawMessage
	// SealedSecret is the provider's secret sealed with the master key by the caller; the
	// store keeps it opaque, and the admin API never returns it.
	SealedSecret []byte
	UpdatedAt    time.Time
}

// DefaultAuthMethods are the methods of a host that configured none: email and password.
func DefaultAuthMethods(host string) []AuthMethod {
	return []AuthMethod{{Host: host, Method: AuthPassword, Enabled: true, Config: json.RawMessage("{}")}}
}

// Bounds of a method's settings.
const (
	maxAuthDomains      = 100
	maxAuthConfigBytes  = 256 << 10 // SAML metadata documents can be large
	maxAuthSecretBytes  = 16 << 10
	authMethodColumns   = "host_key, method, enabled, allowed_domains, force_redirect_domains, config, sealed_secret, updated_at"
	authMethodsDefaults = "{}"
)

// AuthMethods are the store's per-host sign-in settings.
type AuthMethods interface {
	// ListAuthMethods returns the host's stored methods in AuthMethodNames order; none when
	// the host configured none (see DefaultAuthMethods). ErrNotFound when the host does not exist.
	ListAuthMethods(ctx context.Context, host string) ([]AuthMethod, error)
	// PutAuthMethod creates or replaces the host's settings of m.Method. ErrInvalid for an
	// unknown method, a malformed domain or config, force-redirect domains on a method that
	// is not SSO; ErrConflict when another method of the host already force-redirects one of
	// its domains; ErrNotFound when the host does not exist.
	PutAuthMethod(ctx context.Context, m AuthMethod) error
	// DeleteAuthMethod removes the host's settings of method (nothing when there are none).
	DeleteAuthMethod(ctx context.Context, host, method string) error
}

func normalizeDomains(what string, in []string) ([]string, error) {
	if len(in) > maxAuthDomains {
		return nil, invalid("%d %s: want at most %d", len(in), what, maxAuthDomains)
	}
	out := []string{}
	for _, d := range in {
		d = strings.ToLower(strings.TrimSpace(d))
		if err := validDomain(d); err != nil {
			return nil, err
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// normalizeAuthMethod checks m and returns it normalized.
func normalizeAuthMethod(m AuthMethod) (AuthMethod, error) {
	if !slices.Contains(AuthMethodNames, m.Method) {
		return AuthMethod{}, invalid("sign-in method %q: want one of %s", m.Method, strings.Join(AuthMethodNames, ", "))
	}
	var err error
	if m.AllowedDomains, err = normalizeDomains("allowed domains", m.AllowedDomains); err != nil {
		return AuthMethod{}, err
	}
	if m.ForceRedirectDomains, err = normalizeDomains("force-redirect domains", m.ForceRedirectDomains); err != nil {
		return AuthMethod{}, err
	}
	if len(m.ForceRedirectDomains) > 0 && !IsSSOMethod(m.Method) {
		return AuthMethod{}, invalid("sign-in method %q: only single sign-on methods have force-redirect domains", m.Method)
	}
	config := bytes.TrimSpace(m.Config)
	if len(config) == 0 {
		config = []byte(authMethodsDefaults)
	}
	if len(config) > maxAuthConfigBytes {
		return AuthMethod{}, invalid("config of %q: %d bytes, want at most %d", m.Method, len(config), maxAuthConfigBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(config, &obj); err != nil || obj == nil {
		return AuthMethod{}, invalid("config of %q: want a JSON object", m.Method)
	}
	m.Config = json.RawMessage(slices.Clone(config))
	if len(m.SealedSecret) > maxAuthSecretBytes {
		return AuthMethod{}, invalid("secret of %q: want at most %d bytes", m.Method, maxAuthSecretBytes)
	}
	return m, nil
}

func encodeDomains(d []string) string {
	b, _ := json.Marshal(d) // a []string always encodes
	return string(b)
}

func decodeDomains(s string) ([]string, error) {
	var d []string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("stored domains: %w", err)
	}
	if d == nil {
		d = []string{}
	}
	return d, nil
}

func scanAuthMethod(r row) (AuthMethod, error) {
	var m AuthMethod
	var allowed, force, config, secret string
	var updated int64
	if err := r.Scan(&m.Host, &m.Method, &m.Enabled, &allowed, &force, &config, &secret, &updated); err != nil {
		return AuthMethod{}, err
	}
	var err error
	if m.AllowedDomains, err = decodeDomains(allowed); err != nil {
		return AuthMethod{}, err
	}
	if m.ForceRedirectDomains, err = decodeDomains(force); err != nil {
		return AuthMethod{}, err
	}
	m.Config = json.RawMessage(config)
	if m.SealedSecret, err = decodeCredentials(secret); err != nil {
		return AuthMethod{}, err
	}
	m.UpdatedAt = fromMillis(updated)
	return m, nil
}

func selectAuthMethods(ctx context.Context, q querier, host string) ([]AuthMethod, error) {
	rs, err := q.query(ctx, "SELECT "+authMethodColumns+" FROM auth_methods WHERE host_key = ?", host)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	out := []AuthMethod{}
	for rs.Next() {
		m, err := scanAuthMethod(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b AuthMethod) int {
		return slices.Index(AuthMethodNames, a.Method) - slices.Index(AuthMethodNames, b.Method)
	})
	return out, nil
}

func (s *sqlStore) ListAuthMethods(ctx context.Context, host string) ([]AuthMethod, error) {
	var out []AuthMethod
	err := s.db.readTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, host); err != nil {
			return err
		}
		var err error
		out, err = selectAuthMethods(ctx, q, host)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list sign-in methods of %s: %w", host, err)
	}
	return out, nil
}

func (s *sqlStore) PutAuthMethod(ctx context.Context, in AuthMethod) error {
	m, err := normalizeAuthMethod(in)
	if err != nil {
		return fmt.Errorf("put sign-in method %s/%s: %w", in.Host, in.Method, err)
	}
	m.UpdatedAt = now()
	err = s.db.writeTx(ctx, func(q querier) error {
		if err := requireHost(ctx, q, m.Host); err != nil {
			return err
		}
		others, err := selectAuthMethods(ctx, q, m.Host)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.Method == m.Method {
				continue
			}
			for _, d := range m.ForceRedirectDomains {
				if slices.Contains(o.ForceRedirectDomains, d) {
					return fmt.Errorf("domain %s is already force-redirected to %s: %w", d, o.Method, ErrConflict)
				}
			}
		}
		_, err = q.exec(ctx, "INSERT INTO auth_methods ("+authMethodColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"+
			" ON CONFLICT (host_key, method) DO UPDATE SET enabled = excluded.enabled, allowed_domains = excluded.allowed_domains,"+
			" force_redirect_domains = excluded.force_redirect_domains, config = excluded.config, sealed_secret = excluded.sealed_secret,"+
			" updated_at = excluded.updated_at",
			m.Host, m.Method, m.Enabled, encodeDomains(m.AllowedDomains), encodeDomains(m.ForceRedirectDomains),
			string(m.Config), encodeCredentials(m.SealedSecret), toMillis(m.UpdatedAt))
		return writeErr(err)
	})
	if err != nil {
		return fmt.Errorf("put sign-in method %s/%s: %w", m.Host, m.Method, err)
	}
	return nil
}

func (s *sqlStore) DeleteAuthMethod(ctx context.Context, host, method string) error {
	if _, err := s.db.q().exec(ctx, "DELETE FROM auth_methods WHERE host_key = ? AND method = ?", host, method); err != nil {
		return fmt.Errorf("delete sign-in method %s/%s: %w", host, method, err)
	}
	return nil
}
