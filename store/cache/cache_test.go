package cache_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
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

// everyRead counts, per method, the hot-path reads that reach the store.
type everyRead struct {
	store.Store
	mu    sync.Mutex
	reads map[string]int
}

func (c *everyRead) count(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads[name]++
}

func (c *everyRead) GetHost(ctx context.Context, key string) (store.Host, error) {
	c.count("GetHost")
	return c.Store.GetHost(ctx, key)
}
func (c *everyRead) GetUser(ctx context.Context, host, id string) (store.User, error) {
	c.count("GetUser")
	return c.Store.GetUser(ctx, host, id)
}
func (c *everyRead) GetServer(ctx context.Context, host, key string) (store.Server, error) {
	c.count("GetServer")
	return c.Store.GetServer(ctx, host, key)
}
func (c *everyRead) GetTool(ctx context.Context, host, server, name string) (store.Tool, error) {
	c.count("GetTool")
	return c.Store.GetTool(ctx, host, server, name)
}
func (c *everyRead) ListTools(ctx context.Context, host, server string) ([]store.Tool, error) {
	c.count("ListTools")
	return c.Store.ListTools(ctx, host, server)
}
func (c *everyRead) GetGrant(ctx context.Context, host, server, userID string) (store.Grant, error) {
	c.count("GetGrant")
	return c.Store.GetGrant(ctx, host, server, userID)
}
func (c *everyRead) ListGrants(ctx context.Context, host, userID string) ([]store.Grant, error) {
	c.count("ListGrants")
	return c.Store.ListGrants(ctx, host, userID)
}
func (c *everyRead) GetAgent(ctx context.Context, host, id string) (store.Agent, error) {
	c.count("GetAgent")
	return c.Store.GetAgent(ctx, host, id)
}
func (c *everyRead) GetConsent(ctx context.Context, host, agentID, server string) (store.Consent, error) {
	c.count("GetConsent")
	return c.Store.GetConsent(ctx, host, agentID, server)
}
func (c *everyRead) ListConsents(ctx context.Context, host, agentID string) ([]store.Consent, error) {
	c.count("ListConsents")
	return c.Store.ListConsents(ctx, host, agentID)
}
func (c *everyRead) OAuthTokenRevoked(ctx context.Context, tokenID, grantID string) (bool, error) {
	c.count("OAuthTokenRevoked")
	return c.Store.OAuthTokenRevoked(ctx, tokenID, grantID)
}

// Every read of store.HotReads is either answered from memory while the generation stands, or
// named here as one that only the denial path makes (it reads the store each time). A read
// added to HotReads without a decision fails this test: a read on every call that slipped past
// the cache cost each tools/call about 60 allocations and a SQLite query (GetTool, for the
// tool's argument conditions).
func TestEveryHotReadIsCachedOrNamed(t *testing.T) {
	ctx := context.Background()
	cfg := store.Config{DataDir: t.TempDir()}
	raw := open(t, cfg)
	if _, err := raw.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.CreateServer(ctx, store.Server{Host: "acme", Key: "tracker", Name: "Tracker", URL: "https://one.example/mcp"}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "create_issue", Level: schema.Medium, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	c := &everyRead{Store: raw, reads: map[string]int{}}
	hot := cache.New(c, 0)
	cached := map[string]func(context.Context) error{
		"GetHost": func(ctx context.Context) error { _, err := hot.GetHost(ctx, "acme"); return err },
		"GetUser": func(ctx context.Context) error { _, err := hot.GetUser(ctx, "acme", "nobody"); return err },
		"GetServer": func(ctx context.Context) error {
			_, err := hot.GetServer(ctx, "acme", "tracker")
			return err
		},
		"GetTool": func(ctx context.Context) error {
			_, err := hot.GetTool(ctx, "acme", "tracker", "create_issue")
			return err
		},
		"ListTools": func(ctx context.Context) error { _, err := hot.ListTools(ctx, "acme", "tracker"); return err },
		"GetAgent":  func(ctx context.Context) error { _, err := hot.GetAgent(ctx, "acme", "nobody"); return err },
		"ListConsents": func(ctx context.Context) error {
			_, err := hot.ListConsents(ctx, "acme", "nobody")
			return err
		},
		"OAuthTokenRevoked": func(ctx context.Context) error {
			_, err := hot.OAuthTokenRevoked(ctx, "token", "grant")
			return err
		},
	}
	// Read on the denial path only (proxy/facts.go denialFacts): not cached.
	denialPath := map[string]bool{"GetGrant": true, "ListGrants": true, "GetConsent": true}

	hotReads := reflect.TypeFor[store.HotReads]()
	for i := range hotReads.NumMethod() {
		name := hotReads.Method(i).Name
		if _, ok := cached[name]; !ok && !denialPath[name] && name != "ControlGeneration" {
			t.Errorf("store.HotReads.%s is neither cached by store/cache nor named as a denial-path read here", name)
		}
	}
	snap, err := hot.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, read := range cached {
		for range 3 {
			if err := read(snap); err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if n := c.reads[name]; n != 1 {
			t.Errorf("%s: three reads at one generation reached the store %d times, want 1", name, n)
		}
	}

	// A tool changed through another handle of the database (another replica, the CLI) is
	// seen by the next request, and so is its removal.
	other := open(t, cfg)
	if _, err := other.PutTool(ctx, store.Tool{Host: "acme", Server: "tracker", Name: "create_issue", Level: schema.High, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if snap, err = hot.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if tool, err := hot.GetTool(snap, "acme", "tracker", "create_issue"); err != nil || tool.Level != schema.High {
		t.Fatalf("after a change elsewhere the cache answered %+v, %v; want level high", tool, err)
	}
	if err := other.DeleteTool(ctx, "acme", "tracker", "create_issue"); err != nil {
		t.Fatal(err)
	}
	if snap, err = hot.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := hot.GetTool(snap, "acme", "tracker", "create_issue"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a delete elsewhere the cache answered %v, want not found", err)
	}
}
