package authzserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/authzed/grpcutil"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/cmd/server"
	"github.com/authzed/spicedb/pkg/cmd/util"
	spicedatastore "github.com/authzed/spicedb/pkg/datastore"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trustgate/trustgate/authzserver/memindex"
)

// Datastore engines of the embedded SpiceDB.
const (
	DatastoreMemory    = "memory"
	DatastorePostgres  = "postgres"
	DatastoreCockroach = "cockroachdb"
)

// memoryGCWindow is how far back the memory datastore (and its index) keeps deleted
// relationships for reads at older revisions.
const memoryGCWindow = 24 * time.Hour

// EmbeddedConfig configures a SpiceDB server run inside the trustgate process.
type EmbeddedConfig struct {
	// Datastore is DatastoreMemory (the embedded default: relationships are rebuilt from the
	// store at every start), DatastorePostgres or DatastoreCockroach.
	Datastore string
	// DatastoreURI is the connection URL for PostgreSQL or CockroachDB. SpiceDB keeps its own
	// tables (namespace_config, relation_tuple, ...): give it its own database or schema.
	DatastoreURI string
	// GRPCListen, when set, exposes SpiceDB's gRPC API on this TCP address (for zed and
	// authzed-go clients), protected by PresharedKey. When empty the API is reachable only in
	// process.
	GRPCListen string
	// PresharedKey is the bearer token clients of the exposed API must present.
	PresharedKey string
	// GRPCAllowWrites lets clients of the exposed API write (relationships, schema). Off, the
	// API is read-only for them: trustgate's store is the source of truth, and reconciliation
	// from it removes any relationship written around it at the next start.
	GRPCAllowWrites bool
	// Migrated skips migrating the database datastore: another embedded server in this
	// process (or a `migrate` run) already did.
	Migrated bool
	Logger   *slog.Logger
}

// StartEmbedded migrates the datastore when it is a database, starts SpiceDB in process and
// returns a backend connected to it. Closing the backend stops the server. Everything started is
// released again when start-up fails half-way.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (_ *SpiceDB, err error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Datastore == "" {
		cfg.Datastore = DatastoreMemory
	}
	if cfg.GRPCListen != "" && cfg.PresharedKey == "" {
		return nil, errors.New("exposing the embedded SpiceDB's gRPC API needs a preshared key (--spicedb-preshared-key or TRUSTGATE_SPICEDB_KEY)")
	}
	// trustgate's own connection presents a key of its own, never shown to anyone: the
	// read-only guard tells it apart from the operator's key.
	key := randomKey()
	keys := []string{key}
	if cfg.PresharedKey != "" {
		keys = append(keys, cfg.PresharedKey)
	}
	guard := readOnlyGuard{internalKey: []byte(key)}

	dsOpts := []datastore.ConfigOption{
		datastore.WithEngine(cfg.Datastore),
		// Several datastores may live in one process (tests, replicas): SpiceDB's datastore
		// metrics register global collectors and would collide.
		datastore.WithEnableDatastoreMetrics(false),
	}
	switch cfg.Datastore {
	case DatastoreMemory:
		dsOpts = append(dsOpts, datastore.WithGCWindow(memoryGCWindow))
	case DatastorePostgres, DatastoreCockroach:
		if cfg.DatastoreURI == "" {
			return nil, fmt.Errorf("embedded SpiceDB on %s needs a datastore URI", cfg.Datastore)
		}
		if !cfg.Migrated {
			if err := MigrateDatastore(ctx, cfg.Datastore, cfg.DatastoreURI); err != nil {
				return nil, err
			}
		}
		uri := cfg.DatastoreURI
		if cfg.Datastore == DatastorePostgres {
			uri = withStatementCache(uri)
		}
		dsOpts = append(dsOpts, datastore.WithURI(uri))
	default:
		return nil, fmt.Errorf("unknown SpiceDB datastore engine %q (want memory, postgres or cockroachdb)", cfg.Datastore)
	}

	var ds spicedatastore.Datastore
	ds, err = datastore.NewDatastore(ctx, dsOpts...)
	if err != nil {
		return nil, fmt.Errorf("open SpiceDB %s datastore: %w", cfg.Datastore, redactErr(err, cfg.DatastoreURI))
	}
	if cfg.Datastore == DatastoreMemory {
		// The memory datastore finds relationships by (type, relation) only: the index makes a
		// check read the relationships of the objects it names, whatever else is stored.
		ds = memindex.New(ds, memoryGCWindow)
	}
	defer func() {
		if err != nil {
			_ = ds.Close()
		}
	}()
	// An unmigrated datastore starts fine and fails on first use: check before serving.
	state, err := ds.ReadyState(ctx)
	if err != nil {
		return nil, fmt.Errorf("SpiceDB %s datastore: %w", cfg.Datastore, redactErr(err, cfg.DatastoreURI))
	}
	if !state.IsReady {
		return nil, fmt.Errorf("SpiceDB %s datastore is not ready: %s", cfg.Datastore, state.Message)
	}

	grpcConfig := util.GRPCServerConfig{Network: util.BufferedNetwork, Enabled: true}
	if cfg.GRPCListen != "" {
		grpcConfig = util.GRPCServerConfig{Network: "tcp", Address: cfg.GRPCListen, Enabled: true}
	}
	srvOpts := []server.ConfigOption{
		server.WithDatastore(ds),
		server.SetPresharedSecureKey(keys),
		server.WithGRPCServer(grpcConfig),
		server.WithHTTPGateway(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithMetricsAPI(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithDispatchServer(util.GRPCServerConfig{Enabled: false}),
		server.WithSilentlyDisableTelemetry(true),
		server.WithShutdownGracePeriod(2 * time.Second),
	}
	if !cfg.GRPCAllowWrites {
		srvOpts = append(srvOpts,
			server.WithUnaryMiddlewareModification(server.MiddlewareModification[grpc.UnaryServerInterceptor]{
				DependencyMiddlewareName: server.DefaultMiddlewareGRPCAuth,
				Operation:                server.OperationAppend,
				Middlewares:              []server.ReferenceableMiddleware[grpc.UnaryServerInterceptor]{{Name: "trustgate-read-only", Middleware: guard.unary}},
			}),
			server.WithStreamingMiddlewareModification(server.MiddlewareModification[grpc.StreamServerInterceptor]{
				DependencyMiddlewareName: server.DefaultMiddlewareGRPCAuth,
				Operation:                server.OperationAppend,
				Middlewares:              []server.ReferenceableMiddleware[grpc.StreamServerInterceptor]{{Name: "trustgate-read-only", Middleware: guard.stream}},
			}))
	}
	srvConfig := server.NewConfigWithOptionsAndDefaults(srvOpts...)
	runnable, err := srvConfig.Complete(ctx)
	if err != nil {
		if cfg.GRPCListen != "" {
			return nil, fmt.Errorf("start embedded SpiceDB gRPC API on %s: %w", cfg.GRPCListen, err)
		}
		return nil, fmt.Errorf("start embedded SpiceDB: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runnable.Run(runCtx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("embedded SpiceDB stopped: %w", err)
			}
		case <-time.After(10 * time.Second):
			return errors.New("embedded SpiceDB did not stop within 10s")
		}
		return ds.Close()
	})

	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcutil.WithInsecureBearerToken(key),
	}
	var conn *grpc.ClientConn
	if cfg.GRPCListen != "" {
		conn, err = grpc.NewClient(dialAddress(cfg.GRPCListen), dialOpts...)
	} else {
		conn, err = runnable.NewClient(dialOpts...)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("connect to embedded SpiceDB: %w", err), stop())
	}
	backend := NewSpiceDB(conn)
	backend.onClose = stop
	backend.ds = ds
	backend.memory = cfg.Datastore == DatastoreMemory
	backend.logger = logger
	if cfg.Datastore == DatastorePostgres {
		backend.postgresURI = cfg.DatastoreURI
	}
	logger.Info("embedded SpiceDB started", "datastore", cfg.Datastore, "grpc_listen", cfg.GRPCListen, "grpc_writes", cfg.GRPCAllowWrites)
	return backend, nil
}

// withStatementCache makes the PostgreSQL datastore prepare each statement once per connection
// (pgx's cache_statement) instead of SpiceDB's default, which parses and plans every query
// again: a check's dozen small index lookups cost PostgreSQL about three times less that way
// (README, Performance). A URI that names default_query_exec_mode keeps its own (exec, for a
// PgBouncer in transaction mode).
func withStatementCache(uri string) string {
	const param = "default_query_exec_mode"
	if strings.Contains(uri, param) {
		return uri
	}
	if !strings.Contains(uri, "://") {
		// key=value connection string
		return strings.TrimSpace(uri) + " " + param + "=cache_statement"
	}
	u, err := url.Parse(uri)
	if err != nil {
		return uri // SpiceDB reports it
	}
	q := u.Query()
	q.Set(param, "cache_statement")
	u.RawQuery = q.Encode()
	return u.String()
}

// DialRemote connects to a SpiceDB server elsewhere. TLS with the system's CAs is used unless
// insecure is set (plaintext, for a SpiceDB on loopback or inside a private network).
func DialRemote(endpoint, token string, insecureTransport bool) (*SpiceDB, error) {
	if endpoint == "" {
		return nil, errors.New("remote SpiceDB needs an endpoint (host:port)")
	}
	if token == "" {
		return nil, errors.New("remote SpiceDB needs a token (--spicedb-token)")
	}
	var opts []grpc.DialOption
	if insecureTransport {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(token))
	} else {
		certs, err := grpcutil.WithSystemCerts(grpcutil.VerifyCA)
		if err != nil {
			return nil, fmt.Errorf("load system CA certificates: %w", err)
		}
		opts = append(opts, certs, grpcutil.WithBearerToken(token))
	}
	return dialRemote(endpoint, opts...)
}

// DialRemoteTLS connects to a SpiceDB over TLS verified against roots (a private CA, e.g.
// --spicedb-ca-file) instead of the system's CA certificates.
func DialRemoteTLS(endpoint, token string, roots *x509.CertPool) (*SpiceDB, error) {
	if endpoint == "" {
		return nil, errors.New("remote SpiceDB needs an endpoint (host:port)")
	}
	if token == "" {
		return nil, errors.New("remote SpiceDB needs a token (--spicedb-token)")
	}
	if roots == nil {
		return nil, errors.New("remote SpiceDB over TLS needs CA certificates")
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	return dialRemote(endpoint, grpc.WithTransportCredentials(creds), grpcutil.WithBearerToken(token))
}

// remoteServiceConfig spreads requests over every address the endpoint resolves to (a
// "dns:///spicedb.internal:50051" name of several SpiceDB nodes) and drops an address that stops
// answering until it is back; an endpoint of one address behaves as before.
const remoteServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

func dialRemote(endpoint string, opts ...grpc.DialOption) (*SpiceDB, error) {
	opts = append(opts, grpc.WithDefaultServiceConfig(remoteServiceConfig))
	conn, err := grpc.NewClient(endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to SpiceDB at %s: %w", endpoint, err)
	}
	return NewSpiceDB(conn), nil
}

// dialAddress turns a listen address into one to dial: an empty or wildcard host means this
// machine.
func dialAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// analyzeTimeout bounds ANALYZE of the relationship table (it samples a fixed number of rows:
// well under a second at 10^6 relationships).
const analyzeTimeout = 2 * time.Minute

// RefreshStatistics has PostgreSQL gather the planner's statistics of SpiceDB's relationship
// table now, when the embedded SpiceDB keeps it there; for any other datastore it does nothing.
// After a bulk load into a fresh table the planner still has the empty table's statistics until
// autovacuum gets to it (up to a minute or more): checks at 10^6 relationships then took 240–270
// ms instead of under 10 (README, Performance).
func (s *SpiceDB) RefreshStatistics(ctx context.Context) error {
	if s.postgresURI == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, analyzeTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.postgresURI)
	if err != nil {
		return fmt.Errorf("analyze SpiceDB's relationships: connect: %w", redactErr(err, s.postgresURI))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Unqualified: the URI's search_path names SpiceDB's schema, as it does for SpiceDB itself.
	if _, err := conn.Exec(ctx, "ANALYZE relation_tuple"); err != nil {
		return fmt.Errorf("analyze SpiceDB's relationships: %w", err)
	}
	return nil
}
