package authzserver_test

import (
	"context"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
)

func newCache(t *testing.T, b *authzserver.SpiceDB) *authzserver.DecisionCache {
	t.Helper()
	c, err := authzserver.NewDecisionCache(context.Background(), b, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCachedRevocationIsEnforcedByTheVeryNextCheck(t *testing.T) {
	c := newCache(t, startEmbedded(t, authzserver.EmbeddedConfig{}))
	ctx := context.Background()
	for i := range 50 {
		if _, err := c.WriteRelationships(ctx, grantAll(schema.Low)); err != nil {
			t.Fatal(err)
		}
		for range 3 { // the second and third come from the cache
			if ok, err := c.Check(ctx, callTool); err != nil || !ok {
				t.Fatalf("round %d: granted agent denied (%v)", i, err)
			}
		}
		if names, err := c.CallableTools(ctx, "acme", "srv", "a_1"); err != nil || !slices.Equal(names, []string{"tool"}) {
			t.Fatalf("round %d: callable tools = %v, %v", i, names, err)
		}
		if _, err := c.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("acme", "srv", "a_1", schema.Low)}); err != nil {
			t.Fatal(err)
		}
		if ok, err := c.Check(ctx, callTool); err != nil || ok {
			t.Fatalf("round %d: the check right after the revocation allowed the call (err %v)", i, err)
		}
		if names, err := c.CallableTools(ctx, "acme", "srv", "a_1"); err != nil || len(names) != 0 {
			t.Fatalf("round %d: callable tools right after the revocation = %v, %v", i, names, err)
		}
	}
	if c.Len() == 0 {
		t.Fatal("the cache kept nothing")
	}
}

// A write that does not go through the cache (the relationship writer holds the plain backend)
// is seen by the very next cached check too.
func TestCacheSeesWritesMadeBesideIt(t *testing.T) {
	b := startEmbedded(t, authzserver.EmbeddedConfig{})
	c := newCache(t, b)
	ctx := context.Background()
	if _, err := b.WriteRelationships(ctx, grantAll(schema.Low)); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Check(ctx, callTool); err != nil || !ok {
		t.Fatalf("granted agent denied (%v)", err)
	}
	if _, err := b.DeleteRelationships(ctx, schema.AgentTuples("acme", "a_1", "u_1")[2:]); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Check(ctx, callTool); err != nil || ok {
		t.Fatalf("the cached check after a revocation beside the cache allowed the call (err %v)", err)
	}
}

// Two replicas on one PostgreSQL datastore: a revocation written through one is denied by the
// very next check on the other, cached or not.
func TestCachedRevocationAcrossReplicasOnPostgres(t *testing.T) {
	uri := services.Postgres(t)
	ctx := context.Background()
	a := newCache(t, startEmbedded(t, authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri}))
	// The replicas B share the datastore A migrated (see EmbeddedConfig.Migrated).
	replica := authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: uri, Migrated: true}
	b := newCache(t, startEmbedded(t, replica))
	plainB := startEmbedded(t, replica)
	for i := range 10 {
		if _, err := a.WriteRelationships(ctx, grantAll(schema.Low)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if ok, err := b.Check(ctx, callTool); err != nil || !ok {
				t.Fatalf("round %d: replica B denied a granted agent (%v)", i, err)
			}
		}
		if ok, err := plainB.Check(ctx, callTool); err != nil || !ok {
			t.Fatalf("round %d: uncached replica B denied a granted agent (%v)", i, err)
		}
		if _, err := a.DeleteRelationships(ctx, []schema.Relationship{schema.Grant("acme", "srv", "a_1", schema.Low)}); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.Check(ctx, callTool); err != nil || ok {
			t.Fatalf("round %d: replica B allowed the call right after replica A revoked it (err %v)", i, err)
		}
		if ok, err := plainB.Check(ctx, callTool); err != nil || ok {
			t.Fatalf("round %d: uncached replica B allowed the call right after replica A revoked it (err %v)", i, err)
		}
	}
}

func TestCacheNeedsEmbeddedSpiceDB(t *testing.T) {
	remote, err := authzserver.DialRemote("127.0.0.1:1", "key", true)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	if _, err := authzserver.NewDecisionCache(context.Background(), remote, 0); err == nil {
		t.Fatal("a decision cache over a remote SpiceDB was made")
	}
	// Nor over any other Backend.
	if _, err := authzserver.NewDecisionCache(context.Background(), answering{}, 0); err == nil {
		t.Fatal("a decision cache over a Backend without a datastore was made")
	}
}
