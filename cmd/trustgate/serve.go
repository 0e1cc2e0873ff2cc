package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/authzserver/permitbackend"
	"github.com/trustgate/trustgate/gateway"
	"github.com/trustgate/trustgate/internal/httplimit"
	"github.com/trustgate/trustgate/proxy"
)

// storeFlags select the store; serve, migrate and the admin bootstrap share them.
type storeFlags struct {
	dataDir        string
	database       string
	connectTimeout string
}

func (s *storeFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&s.dataDir, "data-dir", gateway.DefaultDataDir, "directory of the embedded SQLite database (used when --database is empty)")
	flags.StringVar(&s.database, "database", "", "database URL: empty for SQLite in --data-dir, postgres://user:pass@host:5432/db, or cockroachdb://user@host:26257/db")
	flags.StringVar(&s.connectTimeout, "database-connect-timeout", gateway.DefaultDatabaseConnectTimeout.String(), "how long start-up retries an unreachable database before giving up")
	bindEnv(flags, "data-dir", "TRUSTGATE_DATA_DIR")
	bindEnv(flags, "database", "TRUSTGATE_DATABASE")
	bindEnv(flags, "database-connect-timeout", "TRUSTGATE_DATABASE_CONNECT_TIMEOUT")
}

func newServeCommand() *cobra.Command {
	var (
		cfg      gateway.Config
		stores   storeFlags
		logs     logFlags
		shutdown string
		bodyTime string
		behind   string
		hostEnvs []string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway: OAuth server, MCP proxy, admin API and authorization core",
		Long: `serve runs the whole gateway in one process.

With no --database it uses the embedded default: SQLite in --data-dir and an
in-process SpiceDB whose relationships are rebuilt from the store at every start.
With a PostgreSQL or CockroachDB --database, the embedded SpiceDB keeps its tables
in the same database (schema trustgate_spicedb) unless --spicedb-datastore-uri says
otherwise; --spicedb-endpoint uses a remote SpiceDB instead. --authz-backend permit
decides with a Permit.io environment and its PDP instead of SpiceDB.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.Logger = logger
			for _, m := range hostEnvs {
				he, err := permitbackend.ParseHostEnvironment(m)
				if err != nil {
					return err
				}
				cfg.PermitHostEnvironments = append(cfg.PermitHostEnvironments, he)
			}
			cfg.DataDir = stores.dataDir
			cfg.DatabaseURL = stores.database
			if cfg.DatabaseConnectTimeout, err = parseDuration("database-connect-timeout", stores.connectTimeout); err != nil {
				return err
			}
			if cfg.ShutdownTimeout, err = parseDuration("shutdown-timeout", shutdown); err != nil {
				return err
			}
			if cfg.RequestBodyTimeout, err = parseDuration("request-body-timeout", bodyTime); err != nil {
				return err
			}
			if cfg.BehindAfter, err = parseDuration("relationships-behind-after", behind); err != nil {
				return err
			}
			// The default metrics address may be taken by another process on this machine:
			// then serve without /metrics. An address the operator chose must be free.
			cfg.MetricsListenOptional = !cmd.Flags().Changed("metrics-listen")
			cfg.Version = version
			g, err := gateway.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return g.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", gateway.DefaultListen, "HTTP listen address")
	f.StringVar(&cfg.PublicURL, "public-url", "", "URL clients reach the gateway at (default http://<listen>)")
	stores.register(f)
	f.StringVar(&cfg.AuthzBackend, "authz-backend", gateway.AuthzSpiceDB, "authorization engine: spicedb (embedded or remote) or permit (a Permit.io environment and its PDP)")
	f.StringVar(&cfg.PermitAPIKey, "permit-api-key", "", "Permit API key (--authz-backend permit): environment-level, or project- or organization-level to address the environments of --permit-host-environment; never logged")
	f.StringVar(&cfg.PermitAPIURL, "permit-api-url", "", "Permit API URL (--authz-backend permit; default "+permitbackend.DefaultAPIURL+")")
	f.StringVar(&cfg.PermitPDPURL, "permit-pdp-url", "", "URL of the Permit PDP that answers checks and takes trustgate's facts (--authz-backend permit), e.g. http://127.0.0.1:7766")
	f.StringSliceVar(&hostEnvs, "permit-host-environment", nil, "put a host in its own Permit project and environment, served by that environment's PDP: HOST=PROJECT/ENVIRONMENT[@PDP_URL] (ids or keys; PDP default --permit-pdp-url), repeatable or comma-separated; hosts not named use the API key's environment")
	f.StringVar(&cfg.SpiceDBEndpoint, "spicedb-endpoint", "", "host:port of a remote SpiceDB to use instead of the embedded one")
	f.StringVar(&cfg.SpiceDBToken, "spicedb-token", "", "preshared key (bearer token) of the remote SpiceDB")
	f.BoolVar(&cfg.SpiceDBInsecure, "spicedb-insecure", false, "talk to the remote SpiceDB without TLS")
	f.StringVar(&cfg.SpiceDBCAFile, "spicedb-ca-file", "", "PEM file of the CA certificates the remote SpiceDB's TLS certificate is verified against (default: the system's)")
	f.StringVar(&cfg.SpiceDBDatastoreURI, "spicedb-datastore-uri", "", "database URL for the embedded SpiceDB's own tables (default: the store's database, schema trustgate_spicedb)")
	f.StringVar(&cfg.SpiceDBGRPCListen, "spicedb-grpc-listen", "", "expose the embedded SpiceDB's gRPC API on this address (for zed and authzed-go), e.g. 127.0.0.1:50051")
	f.StringVar(&cfg.SpiceDBPresharedKey, "spicedb-preshared-key", "", "key clients of the exposed SpiceDB gRPC API must present")
	f.BoolVar(&cfg.SpiceDBGRPCAllowWrites, "spicedb-grpc-allow-writes", false, "let clients of the exposed SpiceDB gRPC API write (default: read-only); writes there bypass the store and the audit log, and are removed by reconciliation from the store at the next start")
	f.StringVar(&cfg.SchemaFile, "schema-file", "", "SpiceDB schema to use instead of the embedded one (it must keep every definition trustgate writes)")
	f.StringVar(&cfg.MasterKey, "master-key", "", "key that encrypts upstream credentials at rest: 32 bytes in base64 or hex (default: a key file created in --data-dir); give every replica the same key; extra comma-separated keys only decrypt (rotation)")
	f.BoolVar(&cfg.SubdomainRouting, "subdomain-routing", false, "serve hosts at <host>.<public host> (needs wildcard DNS) rather than <public URL>/h/<host>; both forms are always accepted")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", gateway.DefaultMetricsListen, "serve Prometheus /metrics on this address only (never on --listen); empty turns it off; a taken default address is skipped with a warning")
	f.StringVar(&cfg.OTLPEndpoint, "otlp-endpoint", "", "base URL of an OTLP/HTTP collector to send traces to, e.g. http://127.0.0.1:4318 (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; none: no traces)")
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", nil, "CIDR prefixes of reverse proxies whose X-Forwarded-For (client address of rate limits and the audit log), X-Forwarded-Proto (HSTS) and X-Forwarded-Host (subdomain routing) are believed, comma-separated (default: none, the headers are ignored)")
	f.StringSliceVar(&cfg.UpstreamAllowCIDR, "upstream-allow-cidr", nil, "networks (CIDR prefixes, repeatable or comma-separated) that MCP servers imported with a host's API token or added by humans (Dynamic MCPs) may be on besides public addresses, e.g. 10.20.0.0/16 (default: none, public addresses only); servers the operator imports with a global token reach any address")
	f.StringVar(&shutdown, "shutdown-timeout", gateway.DefaultShutdownTimeout.String(), "how long in-flight requests may take to finish on SIGINT/SIGTERM")
	f.StringVar(&behind, "relationships-behind-after", authzserver.DefaultBehindAfter.String(), "how long a change to who may do what may wait for the authorization backend before the calls of its host are refused until it is applied (a change the backend refused is refused at once); at least 2s")
	f.StringVar(&bodyTime, "request-body-timeout", httplimit.DefaultBodyTimeout.String(), "how long a request body may take to arrive; a slower client is disconnected")
	f.IntVar(&cfg.MaxConnections, "max-connections", 0, "most client connections open at once (0: half the open-file limit, at most 16384); at the limit, unauthenticated connections are closed first")
	f.StringVar(&cfg.SMTPURL, "smtp-url", "", "SMTP server for the gateway's email: smtp://user:pass@host:port (STARTTLS when offered; the password only over TLS or to loopback) or smtps://user:pass@host:port (TLS); empty: email is off")
	f.StringVar(&cfg.RedisURL, "redis-url", "", "Redis server the replicas share the hosts' rate limits in: redis://[user:password@]host:port[/db] or rediss://… (empty: each process keeps its own)")
	f.DurationVar(&cfg.ApprovalKeepAlive, "approval-keepalive", proxy.DefaultApprovalKeepAlive, "how often a tools/call held for a person's approval gets a progress notification (or an SSE comment) while it waits, so that clients do not time out")
	f.StringVar(&cfg.RateLimitRedisDown, "rate-limit-redis-down", "deny", "while Redis cannot be reached, a tools/call under a rate limit is refused (deny) or counted in this process only (local)")
	f.StringVar(&cfg.SMTPFrom, "smtp-from", "", "RFC 5322 address the gateway's email is sent from, e.g. \"trustgate <gateway@example.com>\"")
	logs.register(f)
	bindEnv(f, "request-body-timeout", "TRUSTGATE_REQUEST_BODY_TIMEOUT")
	bindEnv(f, "relationships-behind-after", "TRUSTGATE_RELATIONSHIPS_BEHIND_AFTER")
	bindEnv(f, "max-connections", "TRUSTGATE_MAX_CONNECTIONS")
	bindEnv(f, "listen", "TRUSTGATE_LISTEN")
	bindEnv(f, "public-url", "TRUSTGATE_PUBLIC_URL")
	bindEnv(f, "authz-backend", "TRUSTGATE_AUTHZ_BACKEND")
	bindEnv(f, "permit-api-key", "TRUSTGATE_PERMIT_API_KEY")
	bindEnv(f, "permit-api-url", "TRUSTGATE_PERMIT_API_URL")
	bindEnv(f, "permit-pdp-url", "TRUSTGATE_PERMIT_PDP_URL")
	bindEnv(f, "permit-host-environment", "TRUSTGATE_PERMIT_HOST_ENVIRONMENTS")
	bindEnv(f, "spicedb-endpoint", "TRUSTGATE_SPICEDB_ENDPOINT")
	bindEnv(f, "spicedb-token", "TRUSTGATE_SPICEDB_TOKEN")
	bindEnv(f, "spicedb-insecure", "TRUSTGATE_SPICEDB_INSECURE")
	bindEnv(f, "spicedb-ca-file", "TRUSTGATE_SPICEDB_CA_FILE")
	bindEnv(f, "spicedb-datastore-uri", "TRUSTGATE_SPICEDB_DATASTORE_URI")
	bindEnv(f, "spicedb-grpc-listen", "TRUSTGATE_SPICEDB_GRPC_LISTEN")
	bindEnv(f, "spicedb-preshared-key", "TRUSTGATE_SPICEDB_KEY")
	bindEnv(f, "spicedb-grpc-allow-writes", "TRUSTGATE_SPICEDB_GRPC_ALLOW_WRITES")
	bindEnv(f, "schema-file", "TRUSTGATE_SCHEMA_FILE")
	bindEnv(f, "shutdown-timeout", "TRUSTGATE_SHUTDOWN_TIMEOUT")
	bindEnv(f, "trusted-proxies", "TRUSTGATE_TRUSTED_PROXIES")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate (with chain) to serve HTTPS with; a renewed file is picked up without a restart")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringSliceVar(&cfg.ACMEDomains, "acme-domain", nil, "serve HTTPS with certificates obtained and renewed from an ACME CA (Let's Encrypt) for these host names, comma-separated (TLS-ALPN-01 on the listen address, reachable on port 443; cache in --data-dir/acme)")
	f.StringVar(&cfg.ACMEEmail, "acme-email", "", "contact address for the ACME CA (optional)")
	f.StringVar(&cfg.ACMEDirectoryURL, "acme-directory", "", "ACME directory URL (default: Let's Encrypt's production CA)")
	bindEnv(f, "tls-cert", "TRUSTGATE_TLS_CERT")
	bindEnv(f, "tls-key", "TRUSTGATE_TLS_KEY")
	bindEnv(f, "acme-domain", "TRUSTGATE_ACME_DOMAINS")
	bindEnv(f, "acme-email", "TRUSTGATE_ACME_EMAIL")
	bindEnv(f, "acme-directory", "TRUSTGATE_ACME_DIRECTORY")
	bindEnv(f, "upstream-allow-cidr", "TRUSTGATE_UPSTREAM_ALLOW_CIDR")
	bindEnv(f, "master-key", "TRUSTGATE_MASTER_KEY")
	bindEnv(f, "subdomain-routing", "TRUSTGATE_SUBDOMAIN_ROUTING")
	bindEnv(f, "metrics-listen", "TRUSTGATE_METRICS_LISTEN")
	bindEnv(f, "otlp-endpoint", "TRUSTGATE_OTLP_ENDPOINT")
	bindEnv(f, "smtp-url", "TRUSTGATE_SMTP_URL")
	bindEnv(f, "smtp-from", "TRUSTGATE_SMTP_FROM")
	bindEnv(f, "redis-url", "TRUSTGATE_REDIS_URL")
	bindEnv(f, "rate-limit-redis-down", "TRUSTGATE_RATE_LIMIT_REDIS_DOWN")
	bindEnv(f, "approval-keepalive", "TRUSTGATE_APPROVAL_KEEPALIVE")
	return cmd
}
