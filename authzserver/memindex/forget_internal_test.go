package memindex

import (
	"context"
	"testing"
	"time"

	dscmd "github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/tuple"
)

// TestDeletedRelationshipsAreForgotten: a relationship written and deleted again and again
// leaves nothing in the index once its lifetimes are older than the GC window, and one still
// alive keeps only its live lifetime.
func TestDeletedRelationshipsAreForgotten(t *testing.T) {
	ds, err := dscmd.NewDatastore(context.Background(), dscmd.WithEngine(dscmd.MemoryEngine), dscmd.WithEnableDatastoreMetrics(false))
	if err != nil {
		t.Fatal(err)
	}
	const window = 50 * time.Millisecond
	d := New(ds, window)
	t.Cleanup(func() { _ = d.Close() })
	gone := tuple.MustParse("doc:d1#viewer@user:u1")
	kept := tuple.MustParse("doc:d1#editor@user:u1")
	write := func(updates ...tuple.RelationshipUpdate) {
		t.Helper()
		if _, err := d.ReadWriteTx(context.Background(), func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
			return rwt.WriteRelationships(ctx, updates)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		write(tuple.Touch(gone), tuple.Touch(kept))
		write(tuple.Delete(gone))
	}
	time.Sleep(2 * window)
	write(tuple.Touch(tuple.MustParse("doc:d2#viewer@user:u2"))) // a commit forgets what is older than the window

	d.mu.RLock()
	defer d.mu.RUnlock()
	if e := d.rels[gone.RelationshipReference]; e != nil {
		t.Errorf("the deleted relationship still has %d lifetimes", len(e.lives))
	}
	if e := d.rels[kept.RelationshipReference]; e == nil || len(e.lives) != 1 || e.lives[0].deleted != nil {
		t.Errorf("the live relationship's lifetimes: %+v, want the live one only", e)
	}
	if n := len(d.resources[relationKey{"doc", "d1", "viewer"}]); n != 0 {
		t.Errorf("doc:d1#viewer still lists %d relationships", n)
	}
	if rels := d.relations[objectKey{"doc", "d1"}]; len(rels) != 1 || rels[0] != "editor" {
		t.Errorf("doc:d1's relations: %v, want [editor]", rels)
	}
	if n := len(d.subjects[objectKey{"user", "u1"}]); n != 1 {
		t.Errorf("user:u1 is the subject of %d relationships in the index, want 1", n)
	}
	if n := len(d.graves); n != 0 {
		t.Errorf("%d tombstones left", n)
	}
}
