package authzserver_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// sqliteStore is a SQLite store and a second connection to its file, for what only SQL can do:
// putting into the outbox a change that trustgate would never write.
func sqliteStore(t testing.TB) (store.Store, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	db, err := sql.Open("sqlite", filepath.Join(dir, "trustgate.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return st, db
}

// poison is a relationship of host whose relation SpiceDB's schema does not have: SpiceDB
// refuses every write that carries it.
func poison(host string) schema.Relationship {
	return schema.Relationship{Resource: schema.Server(host, "srv"), Relation: "no_such_relation", Subject: schema.SubjectRef{Object: schema.Agent(host, "a_poison")}}
}

// putPoison appends the poison of host to the outbox, as the previous release writes a change
// (without its host: the writer reads it from the relationship), and returns its row id.
func putPoison(t testing.TB, db *sql.DB, host string) int64 {
	t.Helper()
	res, err := db.Exec("INSERT INTO relationship_outbox (op, relationship, created_at) VALUES ('touch', ?, ?)",
		poison(host).String(), time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// seedHost writes host with a human (ceiling high), an agent (consent medium) and a tool of
// each level on server srv, and returns the agent's id.
func seedHost(t testing.TB, st store.Store, host string) string {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateHost(ctx, store.Host{Key: host, Name: host})
	must(err)
	u, err := st.CreateUser(ctx, store.User{Host: host, Email: "alice@" + host + ".test"})
	must(err)
	_, err = st.CreateServer(ctx, store.Server{Host: host, Key: "srv", Name: "Server", URL: "https://mcp.example.test/mcp"})
	must(err)
	for _, l := range schema.Levels {
		_, err = st.PutTool(ctx, store.Tool{Host: host, Server: "srv", Name: "tool_" + l.String(), Level: l, Enabled: true})
		must(err)
	}
	_, err = st.SetGrant(ctx, store.Grant{Host: host, Server: "srv", UserID: u.ID, Ceiling: schema.High})
	must(err)
	a, err := st.CreateAgent(ctx, store.Agent{Host: host, UserID: u.ID, ClientID: "c1", Name: "Cursor"})
	must(err)
	_, err = st.SetConsent(ctx, store.Consent{Host: host, AgentID: a.ID, Server: "srv", Level: schema.Medium})
	must(err)
	return a.ID
}

func callOfTool(host, agentID, tool string) authzserver.CheckRequest {
	return authzserver.CheckRequest{Resource: schema.Tool(host, "srv", tool), Permission: schema.PermToolCall,
		Subject: schema.SubjectRef{Object: schema.Agent(host, agentID)}}
}

func wantCheck(t *testing.T, b authzserver.Backend, req authzserver.CheckRequest, want bool, what string) {
	t.Helper()
	got, err := b.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: allowed %v, want %v", what, got, want)
	}
}

func sortedNames(names []string) string {
	names = slices.Clone(names)
	slices.Sort(names)
	return fmt.Sprint(names)
}

func wantCallable(t *testing.T, b authzserver.Backend, host, agentID, want, what string) {
	t.Helper()
	names, err := b.CallableTools(context.Background(), host, "srv", agentID)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got := sortedNames(names); got != want {
		t.Fatalf("%s: callable %s, want %s", what, got, want)
	}
}

// A change SpiceDB refuses for good is set aside so that the changes behind it (here the
// lowering of a consent) are applied; its host gets no allow (from the decision cache either)
// until an operator resolves it, another host is not affected, and a retried change is queued
// as what the store implies now.
func TestRefusedChangeIsSetAsideAndItsHostFailsClosed(t *testing.T) {
	ctx := context.Background()
	st, db := sqliteStore(t)
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	cache := newCache(t, b)
	w := authzserver.NewWriter(st, b, nil)
	var setAside []authzserver.SetAsideChange
	w.SetOnSetAside(func(_ context.Context, cs []authzserver.SetAsideChange) { setAside = append(setAside, cs...) })
	acme, globex := seedHost(t, st, "acme"), seedHost(t, st, "globex")
	guard := authzserver.NewFailClosed(cache, w.Lag())
	// Until the writer has read the outbox, no host is known to be current.
	wantCheck(t, guard, callOfTool("globex", globex, "tool_low"), false, "before the first drain")
	if _, err := w.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	medium := callOfTool("acme", acme, "tool_medium")
	wantCheck(t, guard, medium, true, "medium consent calls a medium tool")
	wantCheck(t, guard, medium, true, "the same, from the cache")

	putPoison(t, db, "acme")
	if _, err := st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: acme, Server: "srv", Level: schema.Low}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sync(ctx); err != nil {
		t.Fatalf("a drain with a change SpiceDB refuses for good: %v", err)
	}
	// The lowering behind the refused change was applied; the refused one is set aside.
	wantCheck(t, cache, medium, false, "the cache beneath, after the lowering")
	wantCheck(t, cache, callOfTool("acme", acme, "tool_low"), true, "the cache beneath, the low tool")
	quarantined, err := st.ListQuarantinedChanges(ctx, "")
	if err != nil || len(quarantined) != 1 || quarantined[0].Relationship != poison("acme") || quarantined[0].Host != "acme" ||
		!strings.Contains(quarantined[0].Reason, "no_such_relation") {
		t.Fatalf("quarantine %+v (%v): want the poison of acme with SpiceDB's reason", quarantined, err)
	}
	if len(setAside) != 1 || setAside[0].ID != quarantined[0].ID {
		t.Fatalf("reported as set aside: %+v", setAside)
	}
	wantCheck(t, guard, callOfTool("acme", acme, "tool_low"), false, "a host with a change set aside")
	wantCallable(t, guard, "acme", acme, "[]", "tool list of a host with a change set aside")
	wantCheck(t, guard, callOfTool("globex", globex, "tool_medium"), true, "another host")
	wantCallable(t, guard, "globex", globex, "[tool_low tool_medium]", "another host's tool list")
	if s := w.Lag().Status(); s.Failing || len(s.Behind) != 1 || s.Behind[0] != "acme" {
		t.Fatalf("lag status %+v: want acme behind", s)
	}

	// Retried: the store does not imply the poison, so its delete is queued — which SpiceDB
	// refuses too, and it is set aside again.
	_, op, err := st.RetryQuarantinedChange(ctx, quarantined[0].ID)
	if err != nil || op != store.Delete {
		t.Fatalf("retry: %v %v, want a delete queued", op, err)
	}
	if _, err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := st.ListQuarantinedChanges(ctx, "acme")
	if err != nil || len(again) != 1 || again[0].Op != store.Delete || again[0].ID == quarantined[0].ID {
		t.Fatalf("quarantine after the retry %+v (%v): want the queued delete set aside", again, err)
	}
	wantCheck(t, guard, callOfTool("acme", acme, "tool_low"), false, "still set aside")

	// Discarded: the host's decisions follow the store again.
	if _, err := st.DiscardQuarantinedChange(ctx, again[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, guard, medium, false, "medium tool after the lowering")
	wantCheck(t, guard, callOfTool("acme", acme, "tool_low"), true, "low tool once the change set aside was discarded")
	wantCallable(t, guard, "acme", acme, "[tool_low]", "tool list once the change set aside was discarded")
	if s := w.Lag().Status(); s.Failing || len(s.Behind) != 0 || len(s.Pending) != 0 {
		t.Fatalf("lag status %+v after a clean drain: want nothing pending", s)
	}
}

// A SpiceDB that answers checks but refuses writes (here: the read-only API an embedded SpiceDB
// exposes, reached as a remote one) leaves the change pending: the host fails closed at once
// (not after the bound), and is current again when the change was applied elsewhere (another
// replica's drain) and this writer's next drain finds the outbox empty.
func TestRefusedWritesFailClosedUntilTheChangeIsApplied(t *testing.T) {
	ctx := context.Background()
	st, _ := sqliteStore(t)
	addr := freePort(t)
	server, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{GRPCListen: addr, PresharedKey: "reader-key"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	if err := server.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatal(err)
	}
	remote, err := authzserver.DialRemote(addr, "reader-key", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remote.Close() })
	agent := seedHost(t, st, "acme")
	replica := authzserver.NewWriter(st, server, nil) // writes through trustgate's own connection
	if _, err := replica.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	w := authzserver.NewWriter(st, remote, nil)
	w.Lag().SetBound(time.Hour) // only the failed drain counts here
	if _, err := w.Sync(ctx); err != nil {
		t.Fatalf("a drain of an empty outbox: %v", err)
	}
	guard := authzserver.NewFailClosed(remote, w.Lag())
	medium := callOfTool("acme", agent, "tool_medium")
	wantCheck(t, guard, medium, true, "before the change")

	if _, err := st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agent, Server: "srv", Level: schema.Low}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Sync(ctx); err == nil {
		t.Fatal("a write through the read-only API succeeded")
	}
	wantCheck(t, remote, medium, true, "SpiceDB itself, which did not take the lowering")
	wantCheck(t, guard, medium, false, "after the lowering SpiceDB refused to take")

	if _, err := replica.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, guard, callOfTool("acme", agent, "tool_low"), false, "applied by another writer, before this one drained again")
	if _, err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantCheck(t, guard, medium, false, "the medium tool, after the lowering")
	wantCheck(t, guard, callOfTool("acme", agent, "tool_low"), true, "the low tool, after the lowering")
}
