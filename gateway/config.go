// Package gateway assembles one trustgate process: the store, the authorization backend, the
// relationship writer and the HTTP server, started in order, checked for readiness, and stopped
// gracefully.
package gateway

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/authzserver/permitbackend"
	"github.com/trustgate/trustgate/internal/httplimit"
	"github.com/trustgate/trustgate/internal/mail"
	"github.com/trustgate/trustgate/internal/netprefix"
	"github.com/trustgate/trustgate/internal/ssrf"
	"github.com/trustgate/trustgate/proxy/ratelimit"
)

// Config is everything `trustgate serve` is configured with. The zero value of each field means
// its default (see Defaults).
type Config struct {
	// Listen is the HTTP address (default 127.0.0.1:8080).
	Listen string
	// PublicURL is the URL clients reach the gateway at (default http://<Listen>).
	PublicURL string
	// DataDir holds the SQLite database of the embedded default (default ./data).
	DataDir string
	// DatabaseURL selects the store: empty for SQLite in DataDir, postgres://…, cockroachdb://….
	DatabaseURL string
	// DatabaseConnectTimeout bounds how long start-up retries an unreachable database.
	DatabaseConnectTimeout time.Duration

	// AuthzBackend is the authorization engine: AuthzSpiceDB (default) or AuthzPermit.
	AuthzBackend string
	// PermitAPIKey, PermitAPIURL and PermitPDPURL configure the Permit backend: an
	// environment-level API key, the Permit API (default Permit's cloud) and the PDP the team
	// runs, which answers checks and takes the facts trustgate writes.
	PermitAPIKey string
	PermitAPIURL string
	PermitPDPURL string
	// PermitHostEnvironments puts hosts in Permit environments of their own
	// (--permit-host-environment); the API key must be able to address them.
	PermitHostEnvironments []permitbackend.HostEnvironment
	// SpiceDBEndpoint, when set, uses a remote SpiceDB instead of the embedded one.
	SpiceDBEndpoint string
	SpiceDBToken    string
	SpiceDBInsecure bool
	// SpiceDBCAFile is a PEM file of the CA certificates the remote SpiceDB's TLS certificate is
	// verified against (default: the system's).
	SpiceDBCAFile string
	// SpiceDBDatastoreURI overrides where the embedded SpiceDB keeps its tables when the store
	// is a database (default: the store's database, schema trustgate_spicedb).
	SpiceDBDatastoreURI string
	// SpiceDBGRPCListen exposes the embedded SpiceDB's gRPC API (for zed) on this address.
	SpiceDBGRPCListen string
	// SpiceDBPresharedKey protects the exposed gRPC API.
	SpiceDBPresharedKey string
	// SpiceDBGRPCAllowWrites lets clients of the exposed gRPC API write; off, it is read-only
	// (writes there bypass the store and are undone by reconciliation at the next start).
	SpiceDBGRPCAllowWrites bool
	// SchemaFile replaces the embedded schema.zed (it must keep what trustgate writes).
	SchemaFile string

	// MasterKey encrypts upstream credentials at rest (base64 or hex, 32 bytes; further
	// comma-separated keys only decrypt, for rotation). Empty: a key file in DataDir, created
	// on first start.
	MasterKey string
	// SubdomainRouting serves hosts at <host>.<public host> (needs wildcard DNS) instead of
	// <public URL>/h/<host>. Both forms are always accepted.
	SubdomainRouting bool

	// TrustedProxies are the CIDR prefixes (or addresses) of reverse proxies in front of the
	// gateway. Only a request from one of them has its X-Forwarded-For (the client address of
	// rate limits and audit entries), X-Forwarded-Proto and X-Forwarded-Host believed (see
	// internal/forwarded); empty (the default) ignores the headers.
	TrustedProxies []string
	trustedProxies []netip.Prefix

	// TLSCert and TLSKey are PEM files of the certificate (with its chain) and key the
	// gateway serves HTTPS with; a renewed pair written over them is picked up without a
	// restart. Both or neither.
	TLSCert string
	TLSKey  string
	// ACMEDomains serve HTTPS with certificates obtained and renewed from an ACME CA (Let's
	// Encrypt by default) for these names, by the TLS-ALPN-01 challenge on the listen address
	// (which must be reachable on port 443 under those names). Certificates and the account key
	// are kept in DataDir/acme. Not with TLSCert.
	ACMEDomains []string
	// ACMEEmail is the contact address given to the ACME CA (optional).
	ACMEEmail string
	// ACMEDirectoryURL is the ACME CA's directory (default Let's Encrypt's production).
	ACMEDirectoryURL string

	// UpstreamAllowCIDR are the networks (CIDR prefixes or addresses, entries may be
	// comma-separated) that hosts' upstream MCP servers may be on besides public addresses:
	// servers imported with a host's API token and Dynamic MCPs humans add are on network
	// "host" and reach only public addresses and these. Servers the operator imports (global
	// token) are on "any" and reach every address. Empty: public addresses only.
	UpstreamAllowCIDR []string
	hostNetworks      ssrf.Policy

	// SMTPURL is the SMTP server the gateway's email goes through:
	// smtp://user:pass@host:port (STARTTLS when offered) or smtps://… (TLS). Empty: email is
	// off, and what needs it says so. SMTPFrom is the RFC 5322 address it is sent from.
	SMTPURL  string
	SMTPFrom string
	// SMTPRootCAs verify the SMTP server's certificate (default: the system's roots).
	SMTPRootCAs *x509.CertPool
	mailer      *mail.Sender // nil: email is off

	// RedisURL is the Redis server the replicas share the hosts' rate-limit buckets in
	// (redis://[user:password@]host:port[/db] or rediss://…). Empty: each process keeps its
	// own. RateLimitRedisDown is what a tools/call under a rate limit gets while Redis cannot be
	// reached: "deny" (the default: refused, fail closed) or "local" (this process's own
	// buckets decide).
	RedisURL           string
	RateLimitRedisDown string
	redisOptions       *redis.Options

	// SyncInterval is how often pending relationship changes are retried and changes made by
	// other processes are picked up (default 1s).
	SyncInterval time.Duration
	// BehindAfter is how long a relationship change may wait in the outbox before its host's
	// calls are refused (fail closed) until it is applied; a change a drain failed to apply
	// counts at once (default authzserver.DefaultBehindAfter, and never less than twice
	// SyncInterval, so that a change another process made is drained first).
	BehindAfter time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish (default 30s).
	ShutdownTimeout time.Duration

	// RequestBodyTimeout bounds the time a request body may take to arrive (default 10s).
	RequestBodyTimeout time.Duration
	// ApprovalKeepAlive is how often a request held for approval gets a progress notification
	// or SSE comment (0: proxy.DefaultApprovalKeepAlive).
	ApprovalKeepAlive time.Duration
	// MaxConnections caps the open client connections (0: automatic, from the open-file limit;
	// see defaultMaxConnections). At the cap, unauthenticated connections are closed first.
	MaxConnections int

	// MetricsListen serves Prometheus /metrics on this address, never on Listen (empty: not
	// served). The command line's default is DefaultMetricsListen.
	MetricsListen string
	// MetricsListenOptional: when MetricsListen is taken, warn and serve without /metrics
	// rather than fail (the command line sets it when the address is its default, so that a
	// second process on one machine still starts).
	MetricsListenOptional bool
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector for traces (default: the
	// standard OTEL_EXPORTER_OTLP_* environment variables; none: no trace export).
	OTLPEndpoint string
	// Version is reported as the service.version of traces and metrics.
	Version string

	Logger *slog.Logger
}

// Defaults of Config, shared with the command line's help text.
const (
	DefaultListen                 = "127.0.0.1:8080"
	DefaultDataDir                = "./data"
	DefaultDatabaseConnectTimeout = 30 * time.Second
	DefaultSyncInterval           = time.Second
	DefaultShutdownTimeout        = 30 * time.Second
	// DefaultMetricsListen is the command line's default --metrics-listen: loopback only.
	DefaultMetricsListen = "127.0.0.1:9464"
	// SpiceDBSchemaName is the PostgreSQL schema the embedded SpiceDB's tables live in when it
	// shares the store's database.
	SpiceDBSchemaName = "trustgate_spicedb"
)

func (c *Config) complete() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.DatabaseConnectTimeout <= 0 {
		c.DatabaseConnectTimeout = DefaultDatabaseConnectTimeout
	}
	if c.SyncInterval <= 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.BehindAfter <= 0 {
		c.BehindAfter = authzserver.DefaultBehindAfter
	}
	c.BehindAfter = max(c.BehindAfter, 2*c.SyncInterval)
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.RequestBodyTimeout <= 0 {
		c.RequestBodyTimeout = httplimit.DefaultBodyTimeout
	}
	switch {
	case c.MaxConnections == 0:
		c.MaxConnections = defaultMaxConnections(openFileLimit())
	case c.MaxConnections < minConnections:
		return fmt.Errorf("--max-connections must be at least %d (or 0 for the automatic limit), not %d", minConnections, c.MaxConnections)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := c.completeTLS(); err != nil {
		return err
	}
	if c.PublicURL == "" {
		switch {
		case len(c.ACMEDomains) > 0:
			c.PublicURL = "https://" + c.ACMEDomains[0]
		case c.servesTLS():
			c.PublicURL = "https://" + c.Listen
		default:
			c.PublicURL = "http://" + c.Listen
		}
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("public URL %q must be an absolute http(s) URL such as https://gateway.example.com", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.servesTLS() && u.Scheme != "https" {
		return fmt.Errorf("--public-url %q is http but the gateway serves HTTPS (--tls-cert or --acme-domain): give the https URL clients reach it at", c.PublicURL)
	}
	if err := c.completeAuthzBackend(); err != nil {
		return err
	}
	if c.SpiceDBCAFile != "" && (c.SpiceDBEndpoint == "" || c.SpiceDBInsecure) {
		return errors.New("--spicedb-ca-file verifies a remote SpiceDB's TLS certificate: it needs --spicedb-endpoint and no --spicedb-insecure")
	}
	if c.SpiceDBEndpoint != "" && c.SpiceDBGRPCListen != "" {
		return errors.New("--spicedb-grpc-listen exposes the embedded SpiceDB; it cannot be combined with a remote --spicedb-endpoint")
	}
	if c.MetricsListen != "" && c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		return errors.New("--metrics-listen must differ from --listen: /metrics is served only on an address of its own")
	}
	if c.SpiceDBGRPCAllowWrites && c.SpiceDBGRPCListen == "" {
		return errors.New("--spicedb-grpc-allow-writes applies to the API --spicedb-grpc-listen exposes; set that too or drop it")
	}
	if c.trustedProxies, err = netprefix.Parse(c.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	allowed, err := netprefix.Parse(c.UpstreamAllowCIDR)
	if err != nil {
		return fmt.Errorf("--upstream-allow-cidr: %w", err)
	}
	c.hostNetworks = ssrf.PublicAnd(allowed...)
	if err := c.completeMail(); err != nil {
		return err
	}
	if err := c.completeRedis(); err != nil {
		return err
	}
	if c.SpiceDBGRPCListen != "" && c.SpiceDBPresharedKey == "" {
		return errors.New("--spicedb-grpc-listen needs --spicedb-preshared-key (or TRUSTGATE_SPICEDB_KEY): the API must not be open without a key")
	}
	return nil
}

// servesTLS reports whether the gateway terminates TLS itself.
func (c *Config) servesTLS() bool { return c.TLSCert != "" || len(c.ACMEDomains) > 0 }

// completeTLS checks the TLS options against each other.
func (c *Config) completeTLS() error {
	var domains []string
	for _, d := range c.ACMEDomains {
		for _, name := range strings.Split(d, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				if strings.ContainsAny(name, "*/: ") {
					return fmt.Errorf("--acme-domain %q: want a plain host name (ACME's TLS-ALPN-01 challenge cannot obtain wildcard certificates; see the README on subdomain routing)", name)
				}
				domains = append(domains, name)
			}
		}
	}
	c.ACMEDomains = domains
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("--tls-cert and --tls-key go together: give both, or neither")
	case c.TLSCert != "" && len(c.ACMEDomains) > 0:
		return errors.New("--acme-domain obtains the certificate itself: drop --tls-cert/--tls-key, or --acme-domain")
	case len(c.ACMEDomains) == 0 && (c.ACMEEmail != "" || c.ACMEDirectoryURL != ""):
		return errors.New("--acme-email and --acme-directory apply to --acme-domain: set that too, or drop them")
	}
	return nil
}

// completeRedis checks --redis-url and --rate-limit-redis-down (the URL is never echoed: it
// may hold a password).
func (c *Config) completeRedis() error {
	switch c.RateLimitRedisDown {
	case "":
		c.RateLimitRedisDown = ratelimit.DownDeny
	case ratelimit.DownDeny, ratelimit.DownLocal:
	default:
		return fmt.Errorf("--rate-limit-redis-down %q: want %s or %s", c.RateLimitRedisDown, ratelimit.DownDeny, ratelimit.DownLocal)
	}
	if c.RedisURL == "" {
		return nil
	}
	opts, err := ratelimit.ParseRedisURL(c.RedisURL)
	if err != nil {
		return fmt.Errorf("--redis-url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	c.redisOptions = opts
	return nil
}

// completeMail reads --smtp-url and --smtp-from into the mailer; neither set leaves email off.
func (c *Config) completeMail() error {
	if c.SMTPURL == "" {
		if c.SMTPFrom != "" {
			return errors.New("--smtp-from applies to the email --smtp-url sends; set that too or drop it")
		}
		return nil
	}
	m, err := mail.New(mail.Settings{URL: c.SMTPURL, From: c.SMTPFrom, RootCAs: c.SMTPRootCAs})
	if err != nil {
		return err
	}
	c.mailer = m
	return nil
}

// Authorization backends (--authz-backend).
const (
	AuthzSpiceDB = "spicedb"
	AuthzPermit  = "permit"
)

// completeAuthzBackend checks the backend's name and that the flags given belong to it.
func (c *Config) completeAuthzBackend() error {
	switch c.AuthzBackend {
	case "", AuthzSpiceDB:
		c.AuthzBackend = AuthzSpiceDB
		if c.PermitAPIKey != "" || c.PermitAPIURL != "" || c.PermitPDPURL != "" || len(c.PermitHostEnvironments) > 0 {
			return errors.New("--permit-api-key, --permit-api-url, --permit-pdp-url and --permit-host-environment apply to --authz-backend permit")
		}
		return nil
	case AuthzPermit:
	default:
		return fmt.Errorf("--authz-backend %q: want spicedb or permit", c.AuthzBackend)
	}
	if c.PermitAPIKey == "" {
		return errors.New("--authz-backend permit needs --permit-api-key (or TRUSTGATE_PERMIT_API_KEY): an environment-level Permit API key, or a project- or organization-level one with --permit-host-environment")
	}
	if c.PermitPDPURL == "" {
		if len(c.PermitHostEnvironments) == 0 {
			return errors.New("--authz-backend permit needs --permit-pdp-url (or TRUSTGATE_PERMIT_PDP_URL): the PDP that answers checks, e.g. http://127.0.0.1:7766")
		}
		for _, m := range c.PermitHostEnvironments {
			if m.PDPURL == "" {
				return fmt.Errorf("--permit-host-environment %s names no PDP: add @PDP_URL or give --permit-pdp-url", m)
			}
		}
	}
	for flag, set := range map[string]bool{
		"--spicedb-endpoint":          c.SpiceDBEndpoint != "",
		"--spicedb-ca-file":           c.SpiceDBCAFile != "",
		"--spicedb-grpc-listen":       c.SpiceDBGRPCListen != "",
		"--spicedb-datastore-uri":     c.SpiceDBDatastoreURI != "",
		"--schema-file":               c.SchemaFile != "",
		"--spicedb-grpc-allow-writes": c.SpiceDBGRPCAllowWrites,
	} {
		if set {
			return fmt.Errorf("%s applies to the SpiceDB backend, not to --authz-backend permit", flag)
		}
	}
	return nil
}
