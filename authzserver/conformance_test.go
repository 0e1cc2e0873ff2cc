package authzserver_test

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/authzserver/backendtest"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/telemetry"
)

// The conformance suite (authzserver/backendtest) on every backend trustgate ships: the embedded
// SpiceDB on its memory datastore and on PostgreSQL, a remote SpiceDB reached over its gRPC API,
// and the decorators the gateway composes over a backend.

// embeddedTarget starts an embedded SpiceDB per case; its restart is a new server on the same
// datastore (on the memory datastore, an empty one: volatile).
func embeddedTarget(cfg authzserver.EmbeddedConfig) backendtest.NewTarget {
	return func(t *testing.T) backendtest.Target {
		b := startEmbedded(t, cfg)
		return backendtest.Target{
			Backend:  b,
			Volatile: cfg.DatastoreURI == "",
			Restart: func(t *testing.T) authzserver.Backend {
				if err := b.Close(); err != nil {
					t.Fatalf("close the embedded SpiceDB: %v", err)
				}
				return startEmbedded(t, cfg)
			},
			Stop: func(t *testing.T) {
				if err := b.Close(); err != nil {
					t.Fatalf("stop the embedded SpiceDB: %v", err)
				}
			},
		}
	}
}

func TestBackendConformanceMemory(t *testing.T) {
	backendtest.Run(t, embeddedTarget(authzserver.EmbeddedConfig{}))
}

// One fresh database per run, migrated once, shared by the suite's cases (each case starts its
// own embedded server on it, as replicas of one deployment would).
func TestBackendConformancePostgres(t *testing.T) {
	uri := services.Postgres(t)
	if err := authzserver.MigrateDatastore(context.Background(), authzserver.DatastorePostgres, uri); err != nil {
		t.Fatalf("migrate the SpiceDB datastore: %v", err)
	}
	backendtest.Run(t, embeddedTarget(authzserver.EmbeddedConfig{
		Datastore: authzserver.DatastorePostgres, DatastoreURI: uri, Migrated: true,
	}))
}

// remoteTarget is, per case, a second trustgate's embedded SpiceDB exposed over TCP with a
// preshared key and writes allowed (serve --spicedb-grpc-listen … --spicedb-grpc-allow-writes),
// reached the way serve --spicedb-endpoint … --spicedb-insecure does (DialRemote, which writes
// the schema through the remote API at start). A restart is a new connection to the same
// server; Stop stops the server.
func remoteTarget(t *testing.T) backendtest.Target {
	const key = "conformance-remote-key"
	addr := freePort(t)
	server, err := authzserver.StartEmbedded(context.Background(), authzserver.EmbeddedConfig{
		GRPCListen: addr, PresharedKey: key, GRPCAllowWrites: true,
	})
	if err != nil {
		t.Fatalf("start the remote SpiceDB: %v", err)
	}
	t.Cleanup(func() { _ = server.Close() })
	dial := func(t *testing.T) *authzserver.SpiceDB {
		t.Helper()
		b, err := authzserver.DialRemote(addr, key, true)
		if err != nil {
			t.Fatalf("dial the remote SpiceDB: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		if err := b.WriteSchema(context.Background(), schema.Text); err != nil {
			t.Fatalf("write the schema through the remote API: %v", err)
		}
		return b
	}
	b := dial(t)
	return backendtest.Target{
		Backend: b,
		Restart: func(t *testing.T) authzserver.Backend {
			if err := b.Close(); err != nil {
				t.Fatalf("close the connection to the remote SpiceDB: %v", err)
			}
			return dial(t)
		},
		Stop: func(t *testing.T) {
			if err := server.Close(); err != nil {
				t.Fatalf("stop the remote SpiceDB: %v", err)
			}
		},
	}
}

func TestBackendConformanceRemote(t *testing.T) {
	backendtest.Run(t, remoteTarget)
}

// decorated wraps every backend of next as the gateway does for the proxy: the decision cache
// (when the backend is embedded) inside the latency metrics.
func decorated(t *testing.T, next backendtest.NewTarget, cache bool) backendtest.NewTarget {
	tel, err := telemetry.New(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	wrap := func(t *testing.T, b authzserver.Backend) authzserver.Backend {
		t.Helper()
		if cache {
			c, err := authzserver.NewDecisionCache(context.Background(), b, 0)
			if err != nil {
				t.Fatalf("decision cache: %v", err)
			}
			b = c
		}
		return authzserver.NewMetrics(b, tel.Authz())
	}
	return func(t *testing.T) backendtest.Target {
		inner := next(t)
		target := backendtest.Target{Backend: wrap(t, inner.Backend), Volatile: inner.Volatile, Stop: inner.Stop}
		if inner.Restart != nil {
			target.Restart = func(t *testing.T) authzserver.Backend {
				// Closing the decorators closes the backend beneath; the hook restarts it.
				if err := target.Backend.Close(); err != nil {
					t.Fatalf("close the decorated backend: %v", err)
				}
				return wrap(t, inner.Restart(t))
			}
		}
		return target
	}
}

func TestBackendConformanceDecoratedMemory(t *testing.T) {
	backendtest.Run(t, decorated(t, embeddedTarget(authzserver.EmbeddedConfig{}), true))
}

func TestBackendConformanceDecoratedPostgres(t *testing.T) {
	uri := services.Postgres(t)
	if err := authzserver.MigrateDatastore(context.Background(), authzserver.DatastorePostgres, uri); err != nil {
		t.Fatalf("migrate the SpiceDB datastore: %v", err)
	}
	backendtest.Run(t, decorated(t, embeddedTarget(authzserver.EmbeddedConfig{
		Datastore: authzserver.DatastorePostgres, DatastoreURI: uri, Migrated: true,
	}), true))
}

// The metrics alone over a remote SpiceDB, as the gateway composes them there (no cache).
func TestBackendConformanceDecoratedRemote(t *testing.T) {
	backendtest.Run(t, decorated(t, remoteTarget, false))
}
