package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/accesstoken"
	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/anomaly"
	"github.com/trustgate/trustgate/approval"
	"github.com/trustgate/trustgate/audit"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/authzserver/permitbackend"
	"github.com/trustgate/trustgate/catalog"
	"github.com/trustgate/trustgate/dashboard"
	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/internal/httplimit"
	"github.com/trustgate/trustgate/internal/route"
	"github.com/trustgate/trustgate/internal/secrets"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/proxy/ratelimit"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/store/cache"
	"github.com/trustgate/trustgate/telemetry"
	"github.com/trustgate/trustgate/tenant"
	"github.com/trustgate/trustgate/upstreamauth"
	"github.com/trustgate/trustgate/webhook"
)

// Gateway is one running trustgate process.
type Gateway struct {
	cfg      Config
	urls     tenant.URLs
	listener net.Listener
	limited  *httplimit.Listener // listener, at most cfg.MaxConnections open connections
	store    store.Store
	hot      *cache.Store // the hot path's never-stale view of the store
	audit    *audit.Log
	backend  authzserver.Backend
	spicedb  *authzserver.SpiceDB // nil with the Permit backend
	writer   *authzserver.Writer
	admin    *admin.API
	// dashboard is the web dashboard at the origin.
	dashboard *dashboard.Dashboard
	keys      *accesstoken.KeySet
	oauth     *oauthserver.Server
	proxy     *proxy.Proxy
	server    *http.Server
	redis     *redis.Client // nil: rate limits in this process
	// webhooks posts to hosts' incoming webhooks in the background.
	webhooks *webhook.Sender
	// approvals tells approvers of held calls and decides them (email links, API).
	approvals *approval.Service

	telemetry       *telemetry.Telemetry
	metricsListener net.Listener // nil: /metrics not served
	metricsServer   *http.Server
}

// New starts everything but the HTTP server: it takes the listen address (so a port in use is
// reported before anything else starts), opens and migrates the store, starts or connects to
// SpiceDB, writes the schema and reconciles the relationships. Whatever was started is released
// again when a later step fails.
func New(ctx context.Context, cfg Config) (_ *Gateway, err error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg}
	if g.urls, err = tenant.NewURLs(cfg.PublicURL, cfg.SubdomainRouting); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	log := cfg.Logger

	schemaText := schema.Text
	if cfg.SchemaFile != "" {
		b, err := os.ReadFile(cfg.SchemaFile)
		if err != nil {
			return nil, fmt.Errorf("read schema file: %w", err)
		}
		schemaText = string(b)
	}
	if err := authzserver.ValidateSchema(schemaText); err != nil {
		return nil, fmt.Errorf("schema %s: %w", schemaSource(cfg.SchemaFile), err)
	}

	if g.telemetry, err = telemetry.New(ctx, telemetry.Config{ServiceVersion: cfg.Version, OTLPEndpoint: cfg.OTLPEndpoint, Logger: log}); err != nil {
		return nil, err
	}

	g.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another trustgate or program using the port? choose another with --listen)", cfg.Listen, err)
	}
	if err := g.listenMetrics(); err != nil {
		return nil, err
	}

	g.store, err = store.Open(ctx, store.Config{
		URL:            cfg.DatabaseURL,
		DataDir:        cfg.DataDir,
		ConnectTimeout: cfg.DatabaseConnectTimeout,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	version, err := g.store.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("read store schema version: %w", err)
	}
	log.Info("store ready", "engine", g.store.Engine(), "schema_version", version)
	g.hot = cache.New(g.store, 0)
	g.audit = audit.NewLog(g.store, audit.Options{Logger: log})

	if cfg.AuthzBackend == AuthzPermit {
		// Assigned only on success: a nil *Backend in the interface would be closed on the way out.
		permit, err := permitbackend.Open(ctx, permitbackend.Config{
			APIKey: cfg.PermitAPIKey, APIURL: cfg.PermitAPIURL, PDPURL: cfg.PermitPDPURL,
			Environments: cfg.PermitHostEnvironments, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		g.backend = permit
	} else {
		if g.spicedb, err = openBackend(ctx, cfg, g.store.Engine()); err != nil {
			return nil, err
		}
		g.backend = g.spicedb
		// A datastore written by an earlier version holds ceilings per human: remove them so
		// that the schema can change; the reconciliation below writes the per-agent copies.
		if n, err := g.spicedb.RemoveLegacyCeilings(ctx); err != nil {
			return nil, err
		} else if n > 0 {
			log.Info("removed ceilings of the earlier schema; each consenting agent gets its copy", "removed", n)
		}
		warnSchemaRemovals(ctx, g.spicedb, schemaText, log)
		if err := g.spicedb.WriteSchema(ctx, schemaText); err != nil {
			return nil, fmt.Errorf("write SpiceDB schema: %w", err)
		}
	}

	if _, err := g.store.EnsureHost(ctx, store.Host{Key: tenant.DefaultHost, Name: "Default"}); err != nil {
		return nil, fmt.Errorf("create the default host: %w", err)
	}

	g.writer = authzserver.NewWriter(g.store, g.backend, log)
	g.writer.Lag().SetBound(cfg.BehindAfter)
	g.writer.SetOnSetAside(g.auditSetAside)
	lag := g.writer.Lag()
	if err := g.telemetry.ObserveRelationshipLag(func() telemetry.RelationshipLag {
		s := lag.Status()
		out := telemetry.RelationshipLag{Unknown: !s.Known, HostsBehind: len(s.Behind), OldestAge: s.OldestAge}
		for _, h := range s.Pending {
			out.SetAside += h.Quarantined
		}
		return out
	}); err != nil {
		return nil, err
	}
	if _, err := g.writer.Reconcile(ctx); err != nil {
		return nil, err
	}

	keys, generated, err := secrets.LoadOrCreate(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if generated {
		log.Warn("generated a master key in the data directory; keep it safe, and give every replica the same key with --master-key", "dir", cfg.DataDir)
	}
	// One catalog for the admin API, Dynamic MCPs and the proxy's tools/list check: a changed
	// tool is flagged the same way, once, whichever sees it first.
	cat := catalog.New(catalog.Config{Store: g.store, Audit: g.audit, Metrics: g.telemetry.Tools(), Log: log, Keys: keys, HostNetworks: cfg.hostNetworks})
	if g.keys, err = accesstoken.Open(ctx, g.store, keys, accesstoken.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("access-token signing keys: %w", err)
	}
	upstream, err := upstreamauth.NewClient(upstreamauth.Config{Store: g.hot, Keys: keys, Logger: log, HostNetworks: cfg.hostNetworks})
	if err != nil {
		return nil, fmt.Errorf("upstream OAuth client: %w", err)
	}
	var mailer oauthserver.Mailer // a nil *mail.Sender would not be a nil Mailer
	if cfg.mailer != nil {
		mailer = cfg.mailer
	}
	if g.oauth, err = oauthserver.NewServer(oauthserver.ServerConfig{
		Upstream: upstream,
		Catalog:  cat,
		Store:    g.store,
		URLs:     g.urls,
		KeySet:   g.keys,
		Syncer:   g.writer,
		// Derived from the master key: stable across restarts, equal on every replica.
		CookieSecret:   keys.Derive("oauth session cookie"),
		GlobalSecret:   keys.Derive("oauth fosite global secret"),
		TrustedProxies: cfg.trustedProxies,
		HostNetworks:   cfg.hostNetworks,
		Audit:          g.audit,
		Keys:           keys,
		Mail:           mailer,
		Logger:         log,

		// An admin's own sign-in at an upstream (the dashboard's Create server) comes back
		// through the host's callback and goes on to the dashboard.
		AdminUpstreamCallback: func(host string) string { return dashboard.UpstreamCallbackURL(g.urls, host) },
	}); err != nil {
		return nil, fmt.Errorf("OAuth server: %w", err)
	}
	// The proxy's checks go through the decision cache when SpiceDB is embedded (it reads the
	// datastore's head revision per check, so it is never stale); a remote SpiceDB and Permit's
	// PDP are asked every time. The metrics sit outside the cache: they show what a decision cost the
	// request, cache hits included. Between them, a host whose relationship changes the
	// backend has not applied gets no allow, cached or not (fail closed: the change may be a
	// revocation); every consumer of checks (the proxy, the admin API's check and explain)
	// goes through it.
	var checks authzserver.Backend = g.backend
	if g.spicedb != nil && cfg.SpiceDBEndpoint == "" {
		if checks, err = authzserver.NewDecisionCache(ctx, g.spicedb, 0); err != nil {
			return nil, err
		}
	}
	checks = authzserver.NewFailClosed(checks, g.writer.Lag())
	checks = authzserver.NewMetrics(checks, g.telemetry.Authz())
	g.webhooks = webhook.New(webhook.Options{
		URLs:    webhook.StoreURLs{Hosts: g.hot, Keys: keys},
		Policy:  cfg.hostNetworks,
		Observe: g.telemetry.Webhooks().Delivery,
		Logger:  log,
	})
	limiter, err := g.rateLimiter(ctx)
	if err != nil {
		return nil, err
	}
	approvalCfg := approval.Config{Store: g.store, URLs: g.urls, LinkKey: keys.Derive("approval links"),
		Webhooks: g.webhooks, Audit: g.audit, Logger: log,
		DashboardURL: func(host string) string { return dashboard.ApprovalsURL(g.urls, host) }}
	if cfg.mailer != nil {
		approvalCfg.Mailer = cfg.mailer
	}
	if g.approvals, err = approval.New(approvalCfg); err != nil {
		return nil, err
	}
	if g.proxy, err = proxy.New(proxy.Config{
		Limiter: limiter,
		Store:   g.hot, Backend: checks, Behind: g.writer.Lag(), KeySet: g.keys, URLs: g.urls, Keys: keys, Logger: log, Audit: g.audit,
		Upstream:     upstream,
		SessionKey:   keys.Derive("mcp session binding"), // the same on every replica
		Telemetry:    g.telemetry,
		HostNetworks: cfg.hostNetworks,
		// Every tools/list answer is compared with the approved definitions (proxy/pinning.go).
		Reviewer: cat,
		Syncer:   g.writer,
		Webhooks: g.webhooks,
		// Agents' last use, written at most once a minute per agent and replica.
		Activity: g.store,
		// Anomaly flags read the audit log every replica shares; a policy may suspend agents.
		Anomalies: anomaly.New(g.store),
		Suspender: agentSuspender{store: g.store, writer: g.writer, audit: g.audit},
		// Calls a host's approval policy holds wait in the store, on every replica's view.
		Approvals: g.store, ApprovalNotifier: g.approvals, ApprovalKeepAlive: cfg.ApprovalKeepAlive,
	}); err != nil {
		return nil, fmt.Errorf("MCP proxy: %w", err)
	}

	// The admin API's check routes ask the proxy, so that other services get the decision an
	// agent's tools/call would get.
	if g.admin, err = admin.New(admin.Config{Store: g.store, Syncer: g.writer, Keys: keys, URLs: g.urls, Logger: log, Audit: g.audit, Catalog: cat, Decider: g.proxy, Backend: g.backend, Behind: g.writer.Lag().Behind, Approvals: g.approvals, HostNetworks: cfg.hostNetworks, CheckAuthConfig: g.oauth.CheckAuthMethod,
		ConditionsUnsupported: conditionsUnsupported(cfg)}); err != nil {
		return nil, err
	}
	// The dashboard makes every change through the admin API's routes, as the signed-in person.
	if g.dashboard, err = dashboard.New(dashboard.Config{
		Store: g.store, API: g.admin, URLs: g.urls, Logger: log, Upstream: upstream,
		// Sign-in runs on the hosts' own sign-in pages, with their methods and rules.
		SignIn:         g.oauth,
		CookieSecret:   keys.Derive("dashboard cookie"),
		TrustedProxies: cfg.trustedProxies,
	}); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	// First run: no operator yet. The one-time setup link is logged once (the first start
	// that finds no operator and no link); `trustgate admin setup-link` issues a new one.
	if link, err := dashboard.FirstRunSetupLink(ctx, g.store, g.urls); err != nil {
		return nil, fmt.Errorf("dashboard setup link: %w", err)
	} else if link != "" {
		log.Warn("no operator yet: open this one-time link to choose the first operator's email and password (it works once; `trustgate admin setup-link` makes a new one)", "url", link)
	}

	g.limited = httplimit.NewListener(g.listener, cfg.MaxConnections)
	trust := forwarded.New(cfg.trustedProxies)
	g.server = &http.Server{
		// A body has RequestBodyTimeout to arrive (the headers have ReadHeaderTimeout).
		// --trusted-proxies decide, in one place, whether X-Forwarded-* are believed: the
		// client's address (rate limits, audit), the scheme (HSTS) and the Host routed on.
		Handler: trust.Middleware(hsts(httplimit.BodyTimeout(g.routes(), cfg.RequestBodyTimeout),
			trust, cfg.servesTLS() || strings.HasPrefix(cfg.PublicURL, "https://"))),
		ConnContext:       g.limited.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	if g.server.TLSConfig, err = tlsConfig(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// warnSchemaRemovals logs what the schema about to be written removes from the one SpiceDB
// holds: replicas still serving the earlier schema (a rolling upgrade) would have those writes
// refused — holding up the relationship outbox every replica shares — or those checks fail
// until they are replaced (README, Upgrades). Nothing held, or a schema that cannot be read,
// is not a warning; the write that follows reports a real failure.
func warnSchemaRemovals(ctx context.Context, backend *authzserver.SpiceDB, next string, log *slog.Logger) {
	held, err := backend.ReadSchema(ctx)
	if err != nil || strings.TrimSpace(held) == "" {
		return
	}
	removed, err := authzserver.SchemaRemovals(held, next)
	if err != nil {
		log.Debug("compare the SpiceDB schema held with the one written", "err", err)
		return
	}
	if len(removed) > 0 {
		log.Warn("the SpiceDB schema written now removes what the schema SpiceDB held has: replicas of an earlier release still serving have their writes or checks refused; replace them all together",
			"removed", removed)
	}
}

// conditionsUnsupported says why tools' argument conditions cannot be set ("" when they can):
// they are SpiceDB caveats, which Permit does not have.
func conditionsUnsupported(cfg Config) string {
	if cfg.AuthzBackend == AuthzPermit {
		return "the Permit backend does not evaluate conditions on arguments (they are SpiceDB caveats); use SpiceDB"
	}
	return ""
}

// openBackend connects to a remote SpiceDB, or starts the embedded one on the datastore that
// matches the store: memory beside SQLite (rebuilt from the store at start), the same database
// beside PostgreSQL or CockroachDB (in a schema of its own).
func openBackend(ctx context.Context, cfg Config, storeEngine string) (*authzserver.SpiceDB, error) {
	log := cfg.Logger
	if cfg.SpiceDBEndpoint != "" {
		var backend *authzserver.SpiceDB
		var err error
		if cfg.SpiceDBCAFile != "" {
			pem, readErr := os.ReadFile(cfg.SpiceDBCAFile)
			if readErr != nil {
				return nil, fmt.Errorf("--spicedb-ca-file: %w", readErr)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--spicedb-ca-file %s: no PEM certificate in it", cfg.SpiceDBCAFile)
			}
			backend, err = authzserver.DialRemoteTLS(cfg.SpiceDBEndpoint, cfg.SpiceDBToken, roots)
		} else {
			backend, err = authzserver.DialRemote(cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure)
		}
		if err != nil {
			return nil, err
		}
		if !cfg.SpiceDBInsecure {
			// A certificate this gateway does not trust stops start-up here, saying which CAs
			// it was checked against, rather than as a failed request further on.
			if err := backend.ProbeTLS(ctx); err != nil {
				_ = backend.Close()
				trusted := "the system's CA certificates; a SpiceDB with a certificate of a private CA needs --spicedb-ca-file"
				if cfg.SpiceDBCAFile != "" {
					trusted = "the CA certificates in --spicedb-ca-file " + cfg.SpiceDBCAFile
				}
				return nil, fmt.Errorf("remote SpiceDB at %s: %w (checked against %s)", cfg.SpiceDBEndpoint, err, trusted)
			}
		}
		log.Info("using remote SpiceDB", "endpoint", cfg.SpiceDBEndpoint, "insecure", cfg.SpiceDBInsecure)
		return backend, nil
	}
	embedded := authzserver.EmbeddedConfig{
		Datastore:       authzserver.DatastoreMemory,
		GRPCListen:      cfg.SpiceDBGRPCListen,
		PresharedKey:    cfg.SpiceDBPresharedKey,
		GRPCAllowWrites: cfg.SpiceDBGRPCAllowWrites,
		Logger:          log,
	}
	if storeEngine != "sqlite" {
		embedded.Datastore = storeEngine
		uri, err := EmbeddedDatastoreURI(ctx, cfg.DatabaseURL, cfg.SpiceDBDatastoreURI)
		if err != nil {
			return nil, err
		}
		embedded.DatastoreURI = uri
	}
	backend, err := authzserver.StartEmbedded(ctx, embedded)
	if err != nil {
		return nil, err
	}
	if cfg.SpiceDBGRPCListen != "" {
		log.Info("embedded SpiceDB gRPC API exposed", "addr", cfg.SpiceDBGRPCListen, "writes", cfg.SpiceDBGRPCAllowWrites)
		if cfg.SpiceDBGRPCAllowWrites {
			log.Warn("the exposed SpiceDB gRPC API accepts writes: relationships written there bypass the store and the audit log, and reconciliation from the store removes them at the next start")
		}
	}
	return backend, nil
}

// EmbeddedDatastoreURI is where the embedded SpiceDB keeps its tables beside a PostgreSQL or
// CockroachDB store: override when given, else the store's database in a schema of its own
// (created here when missing).
func EmbeddedDatastoreURI(ctx context.Context, databaseURL, override string) (string, error) {
	if override != "" {
		return override, nil
	}
	_, connURL, err := store.ParseURL(databaseURL)
	if err != nil {
		return "", err
	}
	return withOwnSchema(ctx, connURL)
}

// withOwnSchema creates the schema the embedded SpiceDB keeps its tables in and returns the
// database URL with that schema as its search path.
func withOwnSchema(ctx context.Context, connURL string) (string, error) {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return "", fmt.Errorf("connect to create SpiceDB's schema: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+SpiceDBSchemaName); err != nil {
		return "", fmt.Errorf("create schema %s for SpiceDB: %w", SpiceDBSchemaName, err)
	}
	u, err := url.Parse(connURL)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", SpiceDBSchemaName)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Store is the gateway's control plane.
func (g *Gateway) Store() store.Store { return g.store }

// Backend is the gateway's authorization backend.
func (g *Gateway) Backend() authzserver.Backend { return g.backend }

// Writer is the gateway's relationship writer.
func (g *Gateway) Writer() *authzserver.Writer { return g.writer }

// Addr is the address the HTTP server listens on.
func (g *Gateway) Addr() string { return g.listener.Addr().String() }

// Run serves HTTP until ctx ends, then shuts down gracefully: it stops accepting connections,
// lets in-flight requests finish (up to the shutdown timeout), applies pending relationship
// changes, and closes SpiceDB and the store.
func (g *Gateway) Run(ctx context.Context) error {
	log := g.cfg.Logger
	syncCtx, stopSync := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { g.writer.Run(syncCtx, g.cfg.SyncInterval) })
	wg.Go(func() { g.keys.Run(syncCtx, 0) }) // follow key rotations made elsewhere
	wg.Go(func() { g.pruneOAuth(syncCtx, oauthPruneInterval) })
	wg.Go(func() { g.expireHeldCalls(syncCtx, heldSweepInterval) }) // held calls whose replica went away
	wg.Go(func() { g.oauth.RunPruner(syncCtx, 0) })                 // clients registered but never used
	wg.Go(func() { g.proxy.Run(syncCtx) })                          // tool-list notifications to agents' streams

	// Shutdown waits for in-flight requests; a client's GET stream is not one (it stays open,
	// idle, as long as the client wants): those are ended when shutdown begins.
	g.server.RegisterOnShutdown(g.proxy.CloseStreams)
	serveErr := make(chan error, 1)
	go func() {
		if g.server.TLSConfig != nil {
			serveErr <- g.server.ServeTLS(g.limited, "", "") // the certificates come from TLSConfig
			return
		}
		serveErr <- g.server.Serve(g.limited)
	}()
	log.Info("trustgate is serving", "url", g.cfg.PublicURL, "listen", g.Addr(),
		"max_connections", g.cfg.MaxConnections, "request_body_timeout", g.cfg.RequestBodyTimeout)
	if g.cfg.mailer == nil {
		log.Info("email is off: no --smtp-url, so sign-in codes, account claims and password resets by email are not offered")
	} else {
		log.Info("email is on", "smtp", g.cfg.mailer.String())
	}
	if g.metricsListener != nil {
		go func() {
			if err := g.metricsServer.Serve(g.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
		log.Info("serving Prometheus metrics", "url", "http://"+g.metricsListener.Addr().String()+"/metrics")
	}

	var err error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight requests", "timeout", g.cfg.ShutdownTimeout)
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
	defer cancel()
	if shutdownErr := g.server.Shutdown(shutdownCtx); shutdownErr != nil && !errors.Is(shutdownErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("graceful shutdown: %w", shutdownErr))
	}
	if g.metricsListener != nil {
		_ = g.metricsServer.Shutdown(shutdownCtx)
	}
	stopSync()
	wg.Wait()
	g.proxy.Close() // legacy upstream streams and idle connections
	// In-flight requests are done: write the audit entries still queued (results of the last
	// calls) before the store closes, and apply the pending relationship changes. Each has a
	// time of its own: the shutdown timeout may be spent already (requests that did not
	// finish), and what is queued must not be lost for that.
	auditCtx, cancelAudit := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	if auditErr := g.audit.Close(auditCtx); auditErr != nil {
		log.Error("audit entries still queued at shutdown were lost", "err", auditErr, "lost", g.audit.Lost())
	}
	cancelAudit()
	drainCtx, cancelSync := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	if _, syncErr := g.writer.Sync(drainCtx); syncErr != nil {
		log.Warn("pending relationship changes stay in the store and are applied at next start", "err", syncErr)
	}
	cancelSync()
	// Webhook messages still queued get a few seconds; a slow receiver must not hold the exit.
	hookCtx, cancelHooks := context.WithTimeout(context.WithoutCancel(ctx), webhookDrainTimeout)
	g.webhooks.Close(hookCtx)
	cancelHooks()
	// Pending spans: a few seconds at most, an unreachable collector must not hold the exit.
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlushTimeout)
	if telErr := g.telemetry.Shutdown(flushCtx); telErr != nil {
		log.Warn("flush telemetry", "err", telErr)
	}
	cancelFlush()
	g.close()
	log.Info("stopped")
	return err
}

// telemetryFlushTimeout bounds the export of pending spans at shutdown.
const telemetryFlushTimeout = 5 * time.Second

// webhookDrainTimeout bounds the delivery of queued webhook messages at shutdown.
const webhookDrainTimeout = 5 * time.Second

// drainTimeout bounds, each on its own, the audit flush and the relationship sync at
// shutdown, after the in-flight requests (whose bound is the shutdown timeout).
const drainTimeout = 15 * time.Second

// rateLimiter is the hosts' rate limits: in Redis with --redis-url (checked at start; an
// unreachable Redis is logged, and calls under a limit then get what --rate-limit-redis-down
// says), else in this process.
func (g *Gateway) rateLimiter(ctx context.Context) (ratelimit.Limiter, error) {
	log := g.cfg.Logger
	if g.cfg.redisOptions == nil {
		log.Info("rate limits are kept in this process: without --redis-url, replicas do not share them")
		return ratelimit.NewMemory(0), nil
	}
	g.redis = redis.NewClient(g.cfg.redisOptions)
	r, err := ratelimit.NewRedis(g.redis, ratelimit.RedisOptions{Down: g.cfg.RateLimitRedisDown, Logger: log})
	if err != nil {
		return nil, err
	}
	addr := g.cfg.redisOptions.Addr
	if err := r.Ping(ctx); err != nil {
		log.Warn("rate limits: Redis does not answer yet", "addr", addr, "when_down", g.cfg.RateLimitRedisDown, "err", err)
	} else {
		log.Info("rate limits are shared in Redis", "addr", addr, "when_down", g.cfg.RateLimitRedisDown)
	}
	return r, nil
}

// close releases what New started, in reverse order.
func (g *Gateway) close() {
	if g.webhooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		g.webhooks.Close(ctx) // a no-op after Run closed it
		cancel()
	}
	if g.redis != nil {
		_ = g.redis.Close()
	}
	if g.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = g.audit.Close(ctx) // a no-op after Run closed it
		cancel()
	}
	if g.backend != nil {
		if err := g.backend.Close(); err != nil {
			g.cfg.Logger.Warn("close the authorization backend", "err", err)
		}
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.cfg.Logger.Warn("close store", "err", err)
		}
	}
	if g.listener != nil {
		_ = g.listener.Close()
	}
	if g.metricsListener != nil {
		_ = g.metricsListener.Close()
	}
	if g.telemetry != nil {
		ctx, cancel := context.WithTimeout(context.Background(), telemetryFlushTimeout)
		defer cancel()
		_ = g.telemetry.Shutdown(ctx) // a second Shutdown (after Run's) does nothing
	}
}

// listenMetrics takes the /metrics address, if any. A taken address is fatal unless it is the
// optional default.
func (g *Gateway) listenMetrics() error {
	addr := g.cfg.MetricsListen
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if g.cfg.MetricsListenOptional {
			g.cfg.Logger.Warn("serving without /metrics: its address is taken; choose one with --metrics-listen", "addr", addr, "err", err)
			return nil
		}
		return fmt.Errorf("listen on %s for /metrics: %w (choose another with --metrics-listen, or turn metrics off with --metrics-listen '')", addr, err)
	}
	g.metricsListener = l
	router := route.NewRouter()
	g.metricsRoutes(router)
	route.CatchAll(router)
	g.metricsServer = &http.Server{
		Handler:           route.CleanPaths(router),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	return nil
}

// MetricsAddr is the address /metrics is served on ("" when it is not).
func (g *Gateway) MetricsAddr() string {
	if g.metricsListener == nil {
		return ""
	}
	return g.metricsListener.Addr().String()
}

func schemaSource(file string) string {
	if file == "" {
		return "(embedded schema.zed)"
	}
	return file
}

// auditSetAside writes an audit entry for each relationship change the writer set aside (the
// backend refused it for good): its host refuses every call until an operator resolves it
// (the admin API's set-aside-changes, the dashboard's host page, trustgate admin outbox).
func (g *Gateway) auditSetAside(ctx context.Context, changes []authzserver.SetAsideChange) {
	for _, c := range changes {
		e := audit.Entry{Host: schema.HostOf(c.Relationship.Resource), Time: time.Now(), Decision: audit.Admin,
			Actor: "relationship writer", Action: "relationship.set_aside", Object: c.Relationship.Key(),
			NewValue: string(c.Op), Reason: c.Reason}
		if err := g.audit.Append(ctx, e); err != nil {
			g.cfg.Logger.Error("audit entry of a relationship change set aside lost", "host", e.Host, "err", err)
		}
	}
}
