package authzserver_test

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/internal/testkit/services"
	"github.com/trustgate/trustgate/schema"
)

// TestImportAllOrNothing loads relationships through the bulk import, on the memory datastore
// and on PostgreSQL (its COPY path): the check they make allowed is allowed, and an import that
// names a relationship that exists creates nothing, not even its new relationships.
func TestImportAllOrNothing(t *testing.T) {
	for name, cfg := range map[string]func(t *testing.T) authzserver.EmbeddedConfig{
		"memory": func(*testing.T) authzserver.EmbeddedConfig { return authzserver.EmbeddedConfig{} },
		"postgres": func(t *testing.T) authzserver.EmbeddedConfig {
			return authzserver.EmbeddedConfig{Datastore: authzserver.DatastorePostgres, DatastoreURI: services.Postgres(t)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := startEmbedded(t, cfg(t))
			var rels []schema.Relationship
			for _, u := range grantAll(schema.Medium) {
				rels = append(rels, u.Relationship)
			}
			imp, err := b.StartImport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := imp.Send(rels[:3]); err != nil {
				t.Fatal(err)
			}
			if err := imp.Send(rels[3:]); err != nil {
				t.Fatal(err)
			}
			n, err := imp.Close()
			if err != nil || n != len(rels) {
				t.Fatalf("import: %d, %v (want %d)", n, err, len(rels))
			}
			if ok, err := b.Check(ctx, callTool); err != nil || !ok {
				t.Fatalf("check after the import: %v, %v", ok, err)
			}

			other := schema.Grant("acme", "srv", "a_2", schema.Low)
			imp, err = b.StartImport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = imp.Send([]schema.Relationship{other, rels[0]})
			if err == nil {
				_, err = imp.Close()
			}
			if err == nil {
				t.Fatal("an import of an existing relationship succeeded")
			}
			// An aborted import creates nothing either.
			imp, err = b.StartImport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := imp.Send([]schema.Relationship{other}); err != nil {
				t.Fatal(err)
			}
			imp.Abort()
			found := false
			if err := b.ReadRelationships(ctx, schema.TypeServer, func(r schema.Relationship) error {
				found = found || r.Key() == other.Key()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if found {
				t.Fatalf("a failed import created %s", other)
			}
		})
	}
}
