package authzserver_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// seedStore writes a host with a human (ceiling high), an agent (consent medium) and three tools.
func seedStore(t *testing.T, st store.Store) (userID, agentID string) {
	t.Helper()
	ctx := context.Background()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateHost(ctx, store.Host{Key: "acme", Name: "Acme"})
	check(err)
	u, err := st.CreateUser(ctx, store.User{Host: "acme", Email: "alice@acme.test"})
	check(err)
	_, err = st.CreateServer(ctx, store.Server{Host: "acme", Key: "srv", Name: "Server", URL: "https://mcp.example.test/mcp"})
	check(err)
	for _, l := range schema.Levels {
		_, err = st.PutTool(ctx, store.Tool{Host: "acme", Server: "srv", Name: "tool_" + l.String(), Level: l, Enabled: true})
		check(err)
	}
	_, err = st.SetGrant(ctx, store.Grant{Host: "acme", Server: "srv", UserID: u.ID, Ceiling: schema.High})
	check(err)
	a, err := st.CreateAgent(ctx, store.Agent{Host: "acme", UserID: u.ID, ClientID: "c1", Name: "Cursor"})
	check(err)
	_, err = st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: a.ID, Server: "srv", Level: schema.Medium})
	check(err)
	return u.ID, a.ID
}

func callable(t *testing.T, b authzserver.Backend, agentID string) string {
	t.Helper()
	tools, err := b.CallableTools(context.Background(), "acme", "srv", agentID)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(tools)
}

func relationshipSet(t *testing.T, b authzserver.Backend) []string {
	t.Helper()
	var all []string
	for _, typ := range schema.ObjectTypes {
		if err := b.ReadRelationships(context.Background(), typ, func(r schema.Relationship) error {
			all = append(all, r.String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(all)
	return all
}

func storeSet(t *testing.T, st store.Store) []string {
	t.Helper()
	var all []string
	if err := st.Relationships(context.Background(), func(r schema.Relationship) error {
		all = append(all, r.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	return all
}

func testWriter(t *testing.T, st store.Store) {
	ctx := context.Background()
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	w := authzserver.NewWriter(st, b, nil)
	userID, agentID := seedStore(t, st)

	// A stray relationship in SpiceDB that the store does not imply is removed by reconciliation.
	stray := schema.Grant("acme", "srv", "a_stray", schema.High)
	if _, err := b.WriteRelationships(ctx, []authzserver.Update{{Op: authzserver.OpTouch, Relationship: stray}}); err != nil {
		t.Fatal(err)
	}
	stats, err := w.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Deleted != 1 || stats.Touched != stats.Desired || stats.Desired == 0 {
		t.Errorf("reconcile stats %+v: want the stray deleted and every desired tuple touched", stats)
	}
	if n, err := st.PendingRelationshipChanges(ctx); err != nil || n != 0 {
		t.Errorf("outbox after reconcile: %d pending (%v), want 0", n, err)
	}
	if got, want := relationshipSet(t, b), storeSet(t, st); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reconcile SpiceDB holds\n%v\nwant\n%v", got, want)
	}
	if got := callable(t, b, agentID); got != "[tool_low tool_medium]" {
		t.Fatalf("medium consent under a high ceiling calls %s", got)
	}
	// A second reconcile changes nothing.
	if stats, err := w.Reconcile(ctx); err != nil || stats.Touched != 0 || stats.Deleted != 0 {
		t.Fatalf("second reconcile: %+v %v", stats, err)
	}

	// Changes through the store reach SpiceDB with Sync, and the next check sees them.
	steps := []struct {
		name   string
		change func() error
		want   string
	}{
		{"raise consent", func() error {
			_, err := st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agentID, Server: "srv", Level: schema.High})
			return err
		}, "[tool_high tool_low tool_medium]"},
		{"lower ceiling", func() error {
			_, err := st.SetGrant(ctx, store.Grant{Host: "acme", Server: "srv", UserID: userID, Ceiling: schema.Low})
			return err
		}, "[tool_low]"},
		{"disable tool", func() error {
			_, err := st.PutTool(ctx, store.Tool{Host: "acme", Server: "srv", Name: "tool_low", Level: schema.Low, Enabled: false})
			return err
		}, "[]"},
		{"re-enable tool", func() error {
			_, err := st.PutTool(ctx, store.Tool{Host: "acme", Server: "srv", Name: "tool_low", Level: schema.Low, Enabled: true})
			return err
		}, "[tool_low]"},
		{"revoke ceiling", func() error { return st.DeleteGrant(ctx, "acme", "srv", userID) }, "[]"},
		// The revocation ended the consent too: granting again restores nothing by itself.
		{"grant again", func() error {
			_, err := st.SetGrant(ctx, store.Grant{Host: "acme", Server: "srv", UserID: userID, Ceiling: schema.High})
			return err
		}, "[]"},
		{"consent again", func() error {
			_, err := st.SetConsent(ctx, store.Consent{Host: "acme", AgentID: agentID, Server: "srv", Level: schema.High})
			return err
		}, "[tool_high tool_low tool_medium]"},
		{"kill the agent", func() error { return st.DeleteAgent(ctx, "acme", agentID) }, "[]"},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, err := w.Sync(ctx); err != nil {
			t.Fatalf("%s: sync: %v", s.name, err)
		}
		if got := callable(t, b, agentID); got != s.want {
			t.Fatalf("after %s the agent calls %s, want %s", s.name, got, s.want)
		}
	}
	if got, want := relationshipSet(t, b), storeSet(t, st); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the steps SpiceDB holds\n%v\nwant\n%v", got, want)
	}
}

func TestWriterSQLite(t *testing.T) { testWriter(t, openSQLite(t)) }

func TestWriterPostgres(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{URL: services.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testWriter(t, st)
}

func TestSyncKeepsChangesWhenSpiceDBIsDown(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	b, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WriteSchema(ctx, schema.Text); err != nil {
		t.Fatal(err)
	}
	w := authzserver.NewWriter(st, b, nil)
	seedStore(t, st)
	pending, _ := st.PendingRelationshipChanges(ctx)
	if pending == 0 {
		t.Fatal("store changes left no outbox entries")
	}
	_ = b.Close()
	if _, err := w.Sync(ctx); err == nil {
		t.Fatal("sync to a stopped SpiceDB succeeded")
	}
	if n, _ := st.PendingRelationshipChanges(ctx); n != pending {
		t.Fatalf("a failed sync dropped changes: %d pending, had %d", n, pending)
	}

	// A new SpiceDB (as after a restart of the embedded default) gets everything.
	b2 := startEmbedded(t, authzserver.EmbeddedConfig{})
	w2 := authzserver.NewWriter(st, b2, nil)
	if _, err := w2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := relationshipSet(t, b2), storeSet(t, st); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the outbox replay SpiceDB holds\n%v\nwant\n%v", got, want)
	}
}

func TestEmbeddedOnPostgresKeepsRelationshipsAcrossRestart(t *testing.T) {
	uri := services.Postgres(t)
	ctx := context.Background()
	b := startEmbedded(t, authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri})
	if _, err := b.WriteRelationships(ctx, grantAll(schema.High)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The second start finds SpiceDB's tables migrated and the relationships there.
	b2, err := authzserver.StartEmbedded(ctx, authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Ready(ctx); err != nil {
		t.Fatalf("restarted SpiceDB lost its schema: %v", err)
	}
	if ok, err := b2.Check(ctx, callTool); err != nil || !ok {
		t.Fatalf("restarted SpiceDB lost the relationships: %v %v", ok, err)
	}
}

// TestReconcileRefreshesPostgresStatistics: a reconciliation that loads as much as autovacuum
// waits for into the embedded SpiceDB's PostgreSQL tables has PostgreSQL analyze the
// relationship table at once (before, checks were planned for an empty table until autovacuum
// came by); a small one leaves it to autovacuum.
func TestReconcileRefreshesPostgresStatistics(t *testing.T) {
	uri := services.Postgres(t)
	ctx := context.Background()
	b := startEmbedded(t, authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri})
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// reltuples is the planner's row count (-1 or 0 for the fresh table, whose indexes were
	// built empty); ANALYZE sets it in pg_class at once, where the statistics views are updated
	// later.
	reltuples := func() float64 {
		t.Helper()
		var n float64
		if err := conn.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = 'relation_tuple'::regclass").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	st := openSQLite(t)
	seedHost(t, st, "acme")
	stats, err := authzserver.NewWriter(st, b, nil).Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Touched >= 50 {
		t.Fatalf("the small load touched %d relationships: the test needs fewer than 50", stats.Touched)
	}
	if n := reltuples(); n >= float64(stats.Touched) {
		t.Fatalf("after a load of %d relationships reltuples is %v: analyzed though autovacuum would not have", stats.Touched, n)
	}

	for i := range 10 {
		seedHost(t, st, fmt.Sprintf("host%d", i))
	}
	// As a restart reconciles (the writer has not drained the changes).
	stats, err = authzserver.NewWriter(st, b, nil).Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Touched < 50 {
		t.Fatalf("the large load touched %d relationships: the test needs at least 50", stats.Touched)
	}
	if n := reltuples(); n < float64(stats.Desired)/2 {
		t.Fatalf("after a load of %d relationships (%d in all) reltuples is %v: the table was not analyzed", stats.Touched, stats.Desired, n)
	}
}
