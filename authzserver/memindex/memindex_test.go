package memindex_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	dscmd "github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/datastore/options"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	"github.com/authzed/spicedb/pkg/tuple"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trustgate/trustgate/authzserver/memindex"
)

func newIndexed(t *testing.T) *memindex.Datastore {
	t.Helper()
	ds, err := dscmd.NewDatastore(context.Background(), dscmd.WithEngine(dscmd.MemoryEngine), dscmd.WithEnableDatastoreMetrics(false))
	if err != nil {
		t.Fatal(err)
	}
	d := memindex.New(ds, time.Hour)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

var (
	resTypes  = []string{"doc", "folder"}
	relations = []string{"viewer", "editor"}
	subjTypes = []string{"user", "group"}
)

func randomRel(r *rand.Rand) tuple.Relationship {
	subjRel := tuple.Ellipsis
	if r.IntN(3) == 0 {
		subjRel = "member"
	}
	rel := tuple.Relationship{RelationshipReference: tuple.RelationshipReference{
		Resource: tuple.ObjectAndRelation{ObjectType: resTypes[r.IntN(2)], ObjectID: fmt.Sprint("r", r.IntN(6)), Relation: relations[r.IntN(2)]},
		Subject:  tuple.ObjectAndRelation{ObjectType: subjTypes[r.IntN(2)], ObjectID: fmt.Sprint("s", r.IntN(6)), Relation: subjRel},
	}}
	if r.IntN(3) == 0 { // a caveat, as a tool's argument conditions are written
		ctx, _ := structpb.NewStruct(map[string]any{"prefix": map[string]any{"repository": fmt.Sprint("org", r.IntN(3), "/")}})
		rel.OptionalCaveat = &core.ContextualizedCaveat{CaveatName: caveats[r.IntN(2)], Context: ctx}
	}
	return rel
}

var caveats = []string{"arguments_match", "other_caveat"}

// randomCaveatFilter is no caveat filter, a named caveat, or no caveat at all.
func randomCaveatFilter(r *rand.Rand) datastore.CaveatNameFilter {
	switch r.IntN(4) {
	case 0:
		return datastore.CaveatNameFilter{Option: datastore.CaveatFilterOptionHasMatchingCaveat, CaveatName: caveats[r.IntN(2)]}
	case 1:
		return datastore.CaveatNameFilter{Option: datastore.CaveatFilterOptionNoCaveat}
	}
	return datastore.CaveatNameFilter{}
}

// collect reads a query's answer as sorted strings: collect(t)(reader.QueryRelationships(…)).
func collect(t *testing.T) func(datastore.RelationshipIterator, error) []string {
	return func(it datastore.RelationshipIterator, err error) []string { return collectIt(t, it, err) }
}

func collectIt(t *testing.T, it datastore.RelationshipIterator, err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rel, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tuple.MustString(rel))
	}
	slices.Sort(out)
	return out
}

func randomIDs(r *rand.Rand, prefix string) []string {
	ids := make([]string, 1+r.IntN(3))
	for i := range ids {
		ids[i] = fmt.Sprint(prefix, r.IntN(7)) // sometimes an id that never exists
	}
	return ids
}

func randomSelector(r *rand.Rand) datastore.SubjectsSelector {
	s := datastore.SubjectsSelector{}
	if r.IntN(4) > 0 {
		s.OptionalSubjectType = subjTypes[r.IntN(2)]
	}
	if r.IntN(4) > 0 {
		s.OptionalSubjectIds = randomIDs(r, "s")
	}
	switch r.IntN(5) {
	case 0:
		s.RelationFilter = s.RelationFilter.WithEllipsisRelation()
	case 1:
		s.RelationFilter = s.RelationFilter.WithNonEllipsisRelation("member")
	case 2:
		s.RelationFilter = s.RelationFilter.WithEllipsisRelation().WithNonEllipsisRelation("member")
	case 3:
		s.RelationFilter = s.RelationFilter.WithOnlyNonEllipsisRelations()
	}
	return s
}

// TestIndexAnswersLikeTheMemoryDatastore writes random relationships (touch, create, delete,
// delete by filter, with and without a limit; a third of them with a caveat and its context, and a
// touch may replace a relationship's caveat) and asks the same random queries of the index and of
// the memory datastore underneath (some filtering by caveat), at every revision written so far:
// the answers, caveats and contexts included, must be equal.
func TestIndexAnswersLikeTheMemoryDatastore(t *testing.T) {
	ctx := context.Background()
	d := newIndexed(t)
	r := rand.New(rand.NewPCG(7, 16))
	var revs []datastore.Revision
	for range 120 {
		rev, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
			switch r.IntN(6) {
			case 0: // delete by filter, sometimes limited
				f := &v1.RelationshipFilter{ResourceType: resTypes[r.IntN(2)]}
				if r.IntN(2) == 0 {
					f.OptionalRelation = relations[r.IntN(2)]
				}
				if r.IntN(2) == 0 {
					f.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: subjTypes[r.IntN(2)]}
				}
				var opts []options.DeleteOptionsOption
				if r.IntN(2) == 0 {
					opts = append(opts, options.WithDeleteLimit(new(uint64(1+r.IntN(2)))))
				}
				_, _, err := rwt.DeleteRelationships(ctx, f, opts...)
				return err
			default:
				seen := map[string]bool{}
				var ups []tuple.RelationshipUpdate
				for range 1 + r.IntN(5) {
					rel := randomRel(r)
					if seen[tuple.MustString(rel)] {
						continue
					}
					seen[tuple.MustString(rel)] = true
					op := tuple.UpdateOperationTouch
					if r.IntN(3) == 0 {
						op = tuple.UpdateOperationDelete
					}
					ups = append(ups, tuple.RelationshipUpdate{Operation: op, Relationship: rel})
				}
				return rwt.WriteRelationships(ctx, ups)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
		// A create of something that exists fails the whole transaction: nothing changes.
		if _, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
			it, err := rwt.QueryRelationships(ctx, datastore.RelationshipsFilter{OptionalResourceType: "doc"})
			if err != nil {
				return err
			}
			for rel, err := range it {
				if err != nil {
					return err
				}
				return rwt.WriteRelationships(ctx, []tuple.RelationshipUpdate{
					{Operation: tuple.UpdateOperationDelete, Relationship: randomRel(r)},
					{Operation: tuple.UpdateOperationCreate, Relationship: rel},
				})
			}
			return nil
		}, options.WithDisableRetries(true)); err == nil {
			continue
		}
	}
	if !d.Indexing() {
		t.Fatal("the index stepped aside without an expiration")
	}
	queries := 0
	for i, rev := range revs {
		indexed, plain := d.SnapshotReader(rev), d.Unwrap().SnapshotReader(rev)
		for range 40 {
			f := datastore.RelationshipsFilter{OptionalResourceType: resTypes[r.IntN(2)], OptionalResourceIds: randomIDs(r, "r")}
			if r.IntN(2) == 0 {
				f.OptionalResourceRelation = relations[r.IntN(2)]
			}
			for range r.IntN(3) {
				f.OptionalSubjectsSelectors = append(f.OptionalSubjectsSelectors, randomSelector(r))
			}
			f.OptionalCaveatNameFilter = randomCaveatFilter(r)
			var opts []options.QueryOptionsOption
			if r.IntN(3) == 0 {
				opts = append(opts, options.WithSort(options.ByResource))
			}
			got := collect(t)(indexed.QueryRelationships(ctx, f, opts...))
			want := collect(t)(plain.QueryRelationships(ctx, f, opts...))
			if !slices.Equal(got, want) {
				t.Fatalf("revision %d, query %+v:\nindex  %s\nmemory %s", i, f, strings.Join(got, " "), strings.Join(want, " "))
			}
			sf := datastore.SubjectsFilter{SubjectType: subjTypes[r.IntN(2)], OptionalSubjectIds: randomIDs(r, "s"), RelationFilter: randomSelector(r).RelationFilter}
			var ropts []options.ReverseQueryOptionsOption
			if r.IntN(2) == 0 {
				ropts = append(ropts, options.WithResRelation(&options.ResourceRelation{Namespace: resTypes[r.IntN(2)], Relation: relations[r.IntN(2)]}))
			}
			got = collect(t)(indexed.ReverseQueryRelationships(ctx, sf, ropts...))
			want = collect(t)(plain.ReverseQueryRelationships(ctx, sf, ropts...))
			if !slices.Equal(got, want) {
				t.Fatalf("revision %d, reverse query %+v:\nindex  %s\nmemory %s", i, sf, strings.Join(got, " "), strings.Join(want, " "))
			}
			queries++
		}
	}
	t.Logf("%d revisions, %d queries of each kind agreed", len(revs), queries)
}

// TestExpirationTurnsTheIndexOff writes a relationship the index does not represent: from then
// on every query is the memory datastore's own.
func TestExpirationTurnsTheIndexOff(t *testing.T) {
	ctx := context.Background()
	d := newIndexed(t)
	rel := randomRel(rand.New(rand.NewPCG(1, 2)))
	rel.OptionalCaveat = nil
	exp := time.Now().Add(time.Hour)
	rel.OptionalExpiration = &exp
	if _, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
		return rwt.WriteRelationships(ctx, []tuple.RelationshipUpdate{{Operation: tuple.UpdateOperationTouch, Relationship: rel}})
	}); err != nil {
		t.Fatal(err)
	}
	if d.Indexing() {
		t.Fatal("the index still answers after a relationship with an expiration")
	}
	rev, err := d.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t)(d.SnapshotReader(rev.Revision).QueryRelationships(ctx, datastore.RelationshipsFilter{
		OptionalResourceType: rel.Resource.ObjectType, OptionalResourceIds: []string{rel.Resource.ObjectID}}))
	if len(got) != 1 {
		t.Fatalf("query after the index stepped aside: %v", got)
	}
}

// TestReadersSeeEveryCommittedWrite reads while another goroutine writes: at whatever head
// revision a reader gets, the index answers what the memory datastore answers (a commit is in the
// index before any reader can get its revision).
func TestReadersSeeEveryCommittedWrite(t *testing.T) {
	ctx := context.Background()
	d := newIndexed(t)
	const writes = 300
	ids := make([]string, writes)
	for i := range ids {
		ids[i] = fmt.Sprint("d", i)
	}
	// The memory datastore's first revision (the one it starts with, before any commit) reads its
	// live database rather than a snapshot: a reader at that revision sees whatever was committed
	// since, so it cannot be the reference for a read racing the first write (the index, which
	// answers that revision exactly, would seem to miss it). trustgate never reads there (its
	// first write is the schema); one commit before the race makes every head revision a snapshot.
	first := tuple.Relationship{RelationshipReference: tuple.RelationshipReference{
		Resource: tuple.ObjectAndRelation{ObjectType: "folder", ObjectID: "first", Relation: "viewer"},
		Subject:  tuple.ObjectAndRelation{ObjectType: "user", ObjectID: "u", Relation: tuple.Ellipsis},
	}}
	if _, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
		return rwt.WriteRelationships(ctx, []tuple.RelationshipUpdate{{Operation: tuple.UpdateOperationCreate, Relationship: first}})
	}); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer done.Store(true)
		for _, id := range ids {
			rel := tuple.Relationship{RelationshipReference: tuple.RelationshipReference{
				Resource: tuple.ObjectAndRelation{ObjectType: "doc", ObjectID: id, Relation: "viewer"},
				Subject:  tuple.ObjectAndRelation{ObjectType: "user", ObjectID: "u", Relation: tuple.Ellipsis},
			}}
			if _, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
				return rwt.WriteRelationships(ctx, []tuple.RelationshipUpdate{{Operation: tuple.UpdateOperationCreate, Relationship: rel}})
			}); err != nil {
				errs <- err
				return
			}
		}
	}()
	reads, seen := 0, 0
	for !done.Load() {
		rev, err := d.HeadRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f := datastore.RelationshipsFilter{OptionalResourceType: "doc", OptionalResourceIds: ids}
		want := collect(t)(d.Unwrap().SnapshotReader(rev.Revision).QueryRelationships(ctx, f))
		got := collect(t)(d.SnapshotReader(rev.Revision).QueryRelationships(ctx, f))
		if !slices.Equal(got, want) {
			t.Fatalf("at the head revision the index has %d relationships, the memory datastore %d", len(got), len(want))
		}
		reads, seen = reads+1, len(want)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads agreed, the last with %d relationships", reads, seen)
}

// TestFirstRevisionIsASnapshot: a reader at the revision the datastore started with does not see
// relationships committed after it (the memory datastore's own reader there reads its live
// database, see TestReadersSeeEveryCommittedWrite; the index stays exact).
func TestFirstRevisionIsASnapshot(t *testing.T) {
	ctx := context.Background()
	d := newIndexed(t)
	start, err := d.HeadRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rel := tuple.Relationship{RelationshipReference: tuple.RelationshipReference{
		Resource: tuple.ObjectAndRelation{ObjectType: "doc", ObjectID: "later", Relation: "viewer"},
		Subject:  tuple.ObjectAndRelation{ObjectType: "user", ObjectID: "u", Relation: tuple.Ellipsis},
	}}
	written, err := d.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
		return rwt.WriteRelationships(ctx, []tuple.RelationshipUpdate{{Operation: tuple.UpdateOperationCreate, Relationship: rel}})
	})
	if err != nil {
		t.Fatal(err)
	}
	f := datastore.RelationshipsFilter{OptionalResourceType: "doc", OptionalResourceIds: []string{"later"}}
	if got := collect(t)(d.SnapshotReader(start.Revision).QueryRelationships(ctx, f)); len(got) != 0 {
		t.Fatalf("at the first revision the index shows %d relationships written after it", len(got))
	}
	if got := collect(t)(d.SnapshotReader(written).QueryRelationships(ctx, f)); len(got) != 1 {
		t.Fatalf("at the write's revision the index shows %d relationships, want 1", len(got))
	}
}
