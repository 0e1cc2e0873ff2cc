package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/store/cache"
)

// counting counts the reads that reach the store.
type counting struct {
	store.Store
	serverReads atomic.Int64
}

func (c *counting) GetServer(ctx context.Context, host, key string) (store.Server, error) {
	c.serverReads.Add(1)
	return c.Store.GetServer(ctx, host, key)
}

func open(t *testing.T, cfg store.Config) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func testNeverStale(t *testing.T, cfg store.Config) {
	ctx := context.Background()
	raw := open(t, cfg)
	if _, err := raw.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker", Name: "Tracker", URL: "https://one.example/mcp"}); err != nil {
		t.Fatal(err)
	}
	c := &counting{Store: raw}
	hot := cache.New(c, 0)

	read := func() store.Server {
		t.Helper()
		snap, err := hot.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s, err := hot.GetServer(snap, "acme", "tracker")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for range 2 {
		if got := read().URL; got != "https://one.example/mcp" {
			t.Fatalf("read %s", got)
		}
	}
	if n := c.serverReads.Load(); n != 1 {
		t.Fatalf("two reads at one generation reached the store %d times, want 1", n)
	}

	// A change through another handle of the database (another replica, the CLI) is seen by the
	// very next read.
	other := open(t, cfg)
	sv, err := other.GetServer(ctx, "acme", "tracker")
	if err != nil {
		t.Fatal(err)
	}
	sv.URL = "https://two.example/mcp"
	if _, err := other.UpdateServer(ctx, sv); err != nil {
		t.Fatal(err)
	}
	if got := read().URL; got != "https://two.example/mcp" {
		t.Fatalf("after an update elsewhere the cache answered %s", got)
	}
	if err := other.DeleteServer(ctx, "acme", "tracker"); err != nil {
		t.Fatal(err)
	}
	snap, err := hot.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hot.GetServer(snap, "acme", "tracker"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a delete elsewhere the cache answered %v, want not found", err)
	}
	// Without a snapshot every read checks the generation itself.
	if _, err := hot.GetServer(ctx, "acme", "tracker"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read without a snapshot: %v", err)
	}
	// Every change to the control plane moves the generation.
	before, _ := raw.ControlGeneration(ctx)
	if _, err := raw.CreateHost(ctx, store.Host{Key: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	after, _ := raw.ControlGeneration(ctx)
	if after <= before {
		t.Fatalf("creating a host left the generation at %d", after)
	}
}

func TestNeverStaleSQLite(t *testing.T) {
	testNeverStale(t, store.Config{DataDir: t.TempDir()})
}

func TestNeverStalePostgres(t *testing.T) {
	testNeverStale(t, store.Config{URL: services.Postgres(t)})
}

// "No upstream token" is remembered; a token is never served from memory.
func TestUpstreamTokenAbsenceOnly(t *testing.T) {
	ctx := context.Background()
	raw := open(t, store.Config{DataDir: t.TempDir()})
	if _, err := raw.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker", Name: "Tracker", URL: "https://one.example/mcp"}); err != nil {
		t.Fatal(err)
	}
	u, err := raw.CreateUser(ctx, store.User{Host: "acme", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	hot := cache.New(raw, 0)
	if _, err := hot.GetUpstreamToken(ctx, "acme", u.ID, "tracker"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no token yet: %v", err)
	}
	if _, err := raw.PutUpstreamToken(ctx, store.UpstreamToken{Host: "acme", UserID: u.ID, Server: "tracker", Sealed: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	if _, err := hot.GetUpstreamToken(ctx, "acme", u.ID, "tracker"); err != nil {
		t.Fatalf("a token stored after a cached absence is not seen: %v", err)
	}
}
