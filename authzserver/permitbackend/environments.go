package permitbackend

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/permitio/permit-golang/pkg/api"
	permitconfig "github.com/permitio/permit-golang/pkg/config"
	"github.com/permitio/permit-golang/pkg/enforcement"
	permiterrors "github.com/permitio/permit-golang/pkg/errors"
	"github.com/permitio/permit-golang/pkg/openapi"
	"go.uber.org/zap"
)

// HostEnvironment puts one trustgate host in a Permit project and environment, served by a
// PDP of that environment (a PDP answers for one environment only).
type HostEnvironment struct {
	Host string
	// Project and Environment are Permit ids or keys.
	Project, Environment string
	// PDPURL is the PDP of the environment (empty: Config.PDPURL).
	PDPURL string
}

func (h HostEnvironment) String() string {
	s := h.Host + "=" + h.Project + "/" + h.Environment
	if h.PDPURL != "" {
		s += "@" + h.PDPURL
	}
	return s
}

const maxMappingLen = 2048

// ParseHostEnvironment reads HOST=PROJECT/ENVIRONMENT[@PDP_URL], the form of
// --permit-host-environment.
func ParseHostEnvironment(s string) (HostEnvironment, error) {
	bad := func(why string) (HostEnvironment, error) {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return HostEnvironment{}, fmt.Errorf("--permit-host-environment %q: %s (want HOST=PROJECT/ENVIRONMENT[@PDP_URL])", s, why)
	}
	if len(s) > maxMappingLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxMappingLen))
	}
	host, rest, ok := strings.Cut(s, "=")
	if !ok {
		return bad("no '='")
	}
	if err := validHostKey(host); err != nil {
		return bad(err.Error())
	}
	path, pdp, hasPDP := strings.Cut(rest, "@")
	project, env, ok := strings.Cut(path, "/")
	if !ok {
		return bad("no '/' between project and environment")
	}
	for what, key := range map[string]string{"project": project, "environment": env} {
		if !validPermitKey(key) {
			return bad(fmt.Sprintf("the %s %q is not a Permit id or key (letters, digits, '-' and '_')", what, key))
		}
	}
	if hasPDP && !strings.HasPrefix(pdp, "http://") && !strings.HasPrefix(pdp, "https://") {
		return bad(fmt.Sprintf("the PDP %q is not an http(s) URL", pdp))
	}
	return HostEnvironment{Host: host, Project: project, Environment: env, PDPURL: strings.TrimSuffix(pdp, "/")}, nil
}

// validHostKey: a trustgate host key, a DNS label of [a-z0-9-].
func validHostKey(key string) error {
	if len(key) < 1 || len(key) > 63 {
		return errors.New("the host key must have 1-63 characters")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') || (c == '-' && (i == 0 || i == len(key)-1)) {
			return fmt.Errorf("the host key %q is not a DNS label of [a-z0-9-]", key)
		}
	}
	return nil
}

func validPermitKey(key string) bool {
	if key == "" || len(key) > 256 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// environment is one Permit environment in use: its ids and the clients of its PDP (which
// answers its checks and takes its facts).
type environment struct {
	project, env string // ids, as Permit answers them
	pdpURL       string
	facts        *openapi.APIClient
	pdp          *enforcement.PermitEnforcer
	http         *http.Client
	tenants      map[string]bool // tenants known to exist; guarded by Backend.mu
}

func (e *environment) String() string { return e.project + "/" + e.env }

// permitConfig is the SDK's configuration for one PDP.
func permitConfig(cfg Config, pdpURL string, httpClient *http.Client) permitconfig.PermitConfig {
	return permitconfig.NewConfigBuilder(cfg.APIKey).
		WithApiUrl(cfg.APIURL).
		WithPdpUrl(pdpURL).
		WithHTTPClient(httpClient).
		WithProxyFactsViaPDP(true).
		WithFactsSyncTimeout(cfg.FactsSyncTimeout).
		WithLogger(zap.NewNop()). // the SDK's own logging is off: errors are returned and logged here
		Build()
}

func newEnvironment(cfg Config, project, env, pdpURL string) *environment {
	pc := permitConfig(cfg, pdpURL, &http.Client{Timeout: cfg.Timeout + cfg.FactsSyncTimeout})
	factsConfig := api.NewFactsClientConfig(&pc)
	factsConfig.AddDefaultHeader("X-Timeout-Policy", "fail")
	checkConfig := pc
	checkConfig.WithHTTPClient(&http.Client{Timeout: cfg.Timeout})
	return &environment{
		project: project, env: env, pdpURL: pdpURL,
		facts:   openapi.NewAPIClient(factsConfig),
		pdp:     enforcement.NewPermitEnforcerClient(&checkConfig),
		http:    &http.Client{Timeout: cfg.Timeout},
		tenants: map[string]bool{},
	}
}

// isRefused reports an answer saying the key may not address what it asked for (or that it
// does not exist for the key).
func isRefused(err error) bool {
	var pe permiterrors.PermitError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return true
	}
	return false
}
