package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/admin"
	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/keyset"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/secrets"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// Gateway is one running trustgate process.
type Gateway struct {
	cfg      Config
	urls     tenant.URLs
	listener net.Listener
	store    store.Store
	backend  *authzserver.SpiceDB
	writer   *authzserver.Writer
	admin    *admin.API
	keys     *keyset.KeySet
	oauth    *oauthserver.Server
	proxy    *proxy.Proxy
	server   *http.Server
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

	g.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another trustgate or program using the port? choose another with --listen)", cfg.Listen, err)
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

	g.backend, err = openBackend(ctx, cfg, g.store.Engine())
	if err != nil {
		return nil, err
	}
	if err := g.backend.WriteSchema(ctx, schemaText); err != nil {
		return nil, fmt.Errorf("write SpiceDB schema: %w", err)
	}

	if _, err := g.store.EnsureHost(ctx, store.Host{Key: tenant.DefaultHost, Name: "Default"}); err != nil {
		return nil, fmt.Errorf("create the default host: %w", err)
	}

	g.writer = authzserver.NewWriter(g.store, g.backend, log)
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
	if g.admin, err = admin.New(admin.Config{Store: g.store, Syncer: g.writer, Keys: keys, URLs: g.urls, Logger: log}); err != nil {
		return nil, err
	}
	if g.keys, err = keyset.Open(ctx, g.store, keys, keyset.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("access-token signing keys: %w", err)
	}
	if g.oauth, err = oauthserver.NewServer(oauthserver.ServerConfig{
		Store:  g.store,
		URLs:   g.urls,
		KeySet: g.keys,
		Syncer: g.writer,
		// Derived from the master key: stable across restarts, equal on every replica.
		CookieSecret: keys.Derive("oauth session cookie"),
		GlobalSecret: keys.Derive("oauth fosite global secret"),
		Logger:       log,
	}); err != nil {
		return nil, fmt.Errorf("OAuth server: %w", err)
	}
	if g.proxy, err = proxy.New(proxy.Config{
		Store: g.store, Backend: g.backend, KeySet: g.keys, URLs: g.urls, Keys: keys, Logger: log,
		SessionKey: keys.Derive("mcp session binding"), // the same on every replica
	}); err != nil {
		return nil, fmt.Errorf("MCP proxy: %w", err)
	}

	g.server = &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
	return g, nil
}

// openBackend connects to a remote SpiceDB, or starts the embedded one on the datastore that
// matches the store: memory beside SQLite (rebuilt from the store at start), the same database
// beside PostgreSQL or CockroachDB (in a schema of its own).
func openBackend(ctx context.Context, cfg Config, storeEngine string) (*authzserver.SpiceDB, error) {
	log := cfg.Logger
	if cfg.SpiceDBEndpoint != "" {
		backend, err := authzserver.DialRemote(cfg.SpiceDBEndpoint, cfg.SpiceDBToken, cfg.SpiceDBInsecure)
		if err != nil {
			return nil, err
		}
		log.Info("using remote SpiceDB", "endpoint", cfg.SpiceDBEndpoint, "insecure", cfg.SpiceDBInsecure)
		return backend, nil
	}
	embedded := authzserver.EmbeddedConfig{
		Datastore:    authzserver.DatastoreMemory,
		GRPCListen:   cfg.SpiceDBGRPCListen,
		PresharedKey: cfg.SpiceDBPresharedKey,
		Logger:       log,
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
		log.Info("embedded SpiceDB gRPC API exposed", "addr", cfg.SpiceDBGRPCListen)
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

	serveErr := make(chan error, 1)
	go func() { serveErr <- g.server.Serve(g.listener) }()
	log.Info("trustgate is serving", "url", g.cfg.PublicURL, "listen", g.Addr())

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
	stopSync()
	wg.Wait()
	g.proxy.Close() // legacy upstream streams and idle connections
	if _, syncErr := g.writer.Sync(shutdownCtx); syncErr != nil {
		log.Warn("pending relationship changes stay in the store and are applied at next start", "err", syncErr)
	}
	g.close()
	log.Info("stopped")
	return err
}

// close releases what New started, in reverse order.
func (g *Gateway) close() {
	if g.backend != nil {
		if err := g.backend.Close(); err != nil {
			g.cfg.Logger.Warn("close SpiceDB", "err", err)
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
}

func schemaSource(file string) string {
	if file == "" {
		return "(embedded schema.zed)"
	}
	return file
}
