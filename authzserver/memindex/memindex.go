// Package memindex gives SpiceDB's memory datastore an index by object: a query that names its
// resources (or, reversed, its subjects) by id reads only their relationships instead of every
// relationship of a (type, relation) pair, so a check's cost does not grow with other hosts' data.
//
// The memory datastore stays the source of truth: the index is written after each of its commits
// (inside the same critical section, so no reader sees a revision the index has not caught up
// with), keeps each relationship's history (created and deleted revisions) so that snapshot reads
// at older revisions stay exact, and serves only the queries it can answer exactly; every other
// query, and every query after a relationship with an expiration was written (trustgate writes
// none), goes to the memory datastore unchanged. Relationships with a caveat (a tool's argument
// conditions) are indexed with their caveat and context, as the memory datastore returns them.
package memindex

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/datastore/options"
	"github.com/authzed/spicedb/pkg/tuple"
)

// objectKey names one object.
type objectKey struct{ typ, id string }

// version is one lifetime of a relationship: visible at revisions in [created, deleted).
type version struct {
	rel     tuple.Relationship
	created datastore.Revision
	deleted datastore.Revision // nil while alive
	// deletedAt is when deleted was set, to forget the lifetime after the GC window.
	deletedAt time.Time
}

func (v *version) visibleAt(rev datastore.Revision) bool {
	if v.created.GreaterThan(rev) {
		return false
	}
	return v.deleted == nil || v.deleted.GreaterThan(rev)
}

// history is every lifetime of one relationship, oldest first.
type history []*version

func (h history) live() *version {
	if len(h) > 0 && h[len(h)-1].deleted == nil {
		return h[len(h)-1]
	}
	return nil
}

func (h history) at(rev datastore.Revision) *version {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].visibleAt(rev) {
			return h[i]
		}
	}
	return nil
}

// object is one resource's relationships: relation, then subject.
type object map[string]map[tuple.ObjectAndRelation]history

// tombstone is a deleted lifetime to forget once no reader can ask for it.
type tombstone struct {
	at  time.Time
	ref tuple.RelationshipReference
}

// Datastore wraps the memory datastore with the index.
type Datastore struct {
	datastore.Datastore
	window time.Duration

	mu       sync.RWMutex
	objects  map[objectKey]object
	subjects map[objectKey]map[tuple.RelationshipReference]struct{}
	graves   []tombstone
	off      bool // the index no longer answers: everything goes to the wrapped datastore
}

// New wraps ds, a memory datastore; window is its GC window (how far back readers may ask).
func New(ds datastore.Datastore, window time.Duration) *Datastore {
	return &Datastore{
		Datastore: ds,
		window:    window,
		objects:   map[objectKey]object{},
		subjects:  map[objectKey]map[tuple.RelationshipReference]struct{}{},
	}
}

// Unwrap returns the memory datastore.
func (d *Datastore) Unwrap() datastore.Datastore { return d.Datastore }

// Indexing reports whether the index answers queries (false once a relationship it cannot
// represent was written).
func (d *Datastore) Indexing() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return !d.off
}

// SnapshotReader reads at rev, through the index where it can.
func (d *Datastore) SnapshotReader(rev datastore.Revision) datastore.Reader {
	return &reader{Reader: d.Datastore.SnapshotReader(rev), d: d, rev: rev}
}

// change is one relationship write of a transaction, in order.
type change struct {
	op  tuple.UpdateOperation
	rel tuple.Relationship
}

// ReadWriteTx runs fn in a transaction of the memory datastore and brings the index up to the
// committed revision before any reader may read through it.
func (d *Datastore) ReadWriteTx(ctx context.Context, fn datastore.TxUserFunc, opts ...options.RWTOptionsOption) (datastore.Revision, error) {
	var rec *recorder
	locked := false
	defer func() {
		if locked {
			d.mu.Unlock()
		}
	}()
	rev, err := d.Datastore.ReadWriteTx(ctx, func(ctx context.Context, rwt datastore.ReadWriteTransaction) error {
		rec = &recorder{ReadWriteTransaction: rwt} // a retried attempt starts over
		if err := fn(ctx, rec); err != nil {
			return err
		}
		// The commit follows fn: from here until the index has the commit, readers wait.
		if !locked {
			d.mu.Lock()
			locked = true
		}
		return nil
	}, opts...)
	if err != nil || rec == nil || !locked {
		return rev, err
	}
	d.apply(rev, rec)
	return rev, nil
}

// apply records a committed transaction's changes at rev; d.mu is held.
func (d *Datastore) apply(rev datastore.Revision, rec *recorder) {
	if d.off {
		return
	}
	if rec.unindexable {
		d.turnOff()
		return
	}
	now := time.Now()
	for _, c := range rec.changes {
		if c.rel.OptionalExpiration != nil {
			d.turnOff()
			return
		}
		h := d.history(c.rel.RelationshipReference)
		live := h.live()
		switch c.op {
		case tuple.UpdateOperationDelete:
			if live != nil {
				live.deleted, live.deletedAt = rev, now
				d.graves = append(d.graves, tombstone{at: now, ref: c.rel.RelationshipReference})
			}
			continue
		default: // touch, create
			if live != nil {
				live.deleted, live.deletedAt = rev, now
				d.graves = append(d.graves, tombstone{at: now, ref: c.rel.RelationshipReference})
			}
			d.setHistory(c.rel.RelationshipReference, append(h, &version{rel: c.rel, created: rev}))
		}
	}
	d.forget(now)
}

// turnOff stops answering from the index for good and frees it; d.mu is held.
func (d *Datastore) turnOff() {
	d.off = true
	d.objects, d.subjects, d.graves = nil, nil, nil
}

func (d *Datastore) history(ref tuple.RelationshipReference) history {
	o := d.objects[objectKey{ref.Resource.ObjectType, ref.Resource.ObjectID}]
	if o == nil {
		return nil
	}
	return o[ref.Resource.Relation][ref.Subject]
}

func (d *Datastore) setHistory(ref tuple.RelationshipReference, h history) {
	rk := objectKey{ref.Resource.ObjectType, ref.Resource.ObjectID}
	o := d.objects[rk]
	if o == nil {
		o = object{}
		d.objects[rk] = o
	}
	subjects := o[ref.Resource.Relation]
	if subjects == nil {
		subjects = map[tuple.ObjectAndRelation]history{}
		o[ref.Resource.Relation] = subjects
	}
	sk := objectKey{ref.Subject.ObjectType, ref.Subject.ObjectID}
	if len(h) == 0 {
		delete(subjects, ref.Subject)
		if len(subjects) == 0 {
			delete(o, ref.Resource.Relation)
			if len(o) == 0 {
				delete(d.objects, rk)
			}
		}
		if refs := d.subjects[sk]; refs != nil {
			delete(refs, ref)
			if len(refs) == 0 {
				delete(d.subjects, sk)
			}
		}
		return
	}
	subjects[ref.Subject] = h
	refs := d.subjects[sk]
	if refs == nil {
		refs = map[tuple.RelationshipReference]struct{}{}
		d.subjects[sk] = refs
	}
	refs[ref] = struct{}{}
}

// forget drops lifetimes deleted longer than the GC window ago: no reader may ask for a
// revision that old; d.mu is held.
func (d *Datastore) forget(now time.Time) {
	n := 0
	for ; n < len(d.graves) && now.Sub(d.graves[n].at) > d.window; n++ {
		ref := d.graves[n].ref
		var kept history
		for _, v := range d.history(ref) {
			if v.deleted == nil || now.Sub(v.deletedAt) <= d.window {
				kept = append(kept, v)
			}
		}
		d.setHistory(ref, kept)
	}
	if n > 0 {
		d.graves = slices.Delete(d.graves, 0, n)
	}
}

// recorder passes a transaction through and notes the relationships it changes.
type recorder struct {
	datastore.ReadWriteTransaction
	changes     []change
	unindexable bool
}

func (r *recorder) WriteRelationships(ctx context.Context, mutations []tuple.RelationshipUpdate) error {
	if err := r.ReadWriteTransaction.WriteRelationships(ctx, mutations); err != nil {
		return err
	}
	for _, m := range mutations {
		r.changes = append(r.changes, change{op: m.Operation, rel: m.Relationship})
	}
	return nil
}

func (r *recorder) DeleteRelationships(ctx context.Context, filter *v1.RelationshipFilter, opts ...options.DeleteOptionsOption) (uint64, bool, error) {
	f, err := datastore.RelationshipsFilterFromPublicFilter(filter)
	if err != nil {
		r.unindexable = true
		return r.ReadWriteTransaction.DeleteRelationships(ctx, filter, opts...)
	}
	before, err := r.matching(ctx, f)
	if err != nil {
		r.unindexable = true
		return r.ReadWriteTransaction.DeleteRelationships(ctx, filter, opts...)
	}
	n, limited, err := r.ReadWriteTransaction.DeleteRelationships(ctx, filter, opts...)
	if err != nil {
		return n, limited, err
	}
	// What was deleted is what matched before and no longer does (a limit may leave some).
	after, err := r.matching(ctx, f)
	if err != nil {
		r.unindexable = true
		return n, limited, nil
	}
	for ref, rel := range before {
		if _, ok := after[ref]; !ok {
			r.changes = append(r.changes, change{op: tuple.UpdateOperationDelete, rel: rel})
		}
	}
	return n, limited, nil
}

func (r *recorder) matching(ctx context.Context, f datastore.RelationshipsFilter) (map[tuple.RelationshipReference]tuple.Relationship, error) {
	it, err := r.ReadWriteTransaction.QueryRelationships(ctx, f)
	if err != nil {
		return nil, err
	}
	out := map[tuple.RelationshipReference]tuple.Relationship{}
	for rel, err := range it {
		if err != nil {
			return nil, err
		}
		out[rel.RelationshipReference] = rel
	}
	return out, nil
}

func (r *recorder) BulkLoad(ctx context.Context, src datastore.BulkWriteRelationshipSource) (uint64, error) {
	rs := &recordingSource{src: src}
	n, err := r.ReadWriteTransaction.BulkLoad(ctx, rs)
	if err != nil {
		return n, err
	}
	for _, rel := range rs.seen {
		r.changes = append(r.changes, change{op: tuple.UpdateOperationCreate, rel: rel})
	}
	return n, nil
}

// LegacyDeleteNamespaces may delete every relationship of a type: the index steps aside.
func (r *recorder) LegacyDeleteNamespaces(ctx context.Context, names []string, opt datastore.DeleteNamespacesRelationshipsOption) error {
	r.unindexable = true
	return r.ReadWriteTransaction.LegacyDeleteNamespaces(ctx, names, opt)
}

type recordingSource struct {
	src  datastore.BulkWriteRelationshipSource
	seen []tuple.Relationship
}

func (s *recordingSource) Next(ctx context.Context) (*tuple.Relationship, error) {
	rel, err := s.src.Next(ctx)
	if rel != nil && err == nil {
		s.seen = append(s.seen, *rel)
	}
	return rel, err
}

// reader answers id-addressed queries from the index at its revision.
type reader struct {
	datastore.Reader
	d   *Datastore
	rev datastore.Revision
}

func (r *reader) QueryRelationships(ctx context.Context, filter datastore.RelationshipsFilter, opts ...options.QueryOptionsOption) (datastore.RelationshipIterator, error) {
	q := options.NewQueryOptionsWithOptions(opts...)
	if filter.OptionalResourceType == "" || len(filter.OptionalResourceIds) == 0 || filter.OptionalResourceIDPrefix != "" ||
		q.After != nil || q.BeforeOrEqual != nil || q.Sort == options.BySubject {
		return r.Reader.QueryRelationships(ctx, filter, opts...)
	}
	r.d.mu.RLock()
	if r.d.off {
		r.d.mu.RUnlock()
		return r.Reader.QueryRelationships(ctx, filter, opts...)
	}
	var out []tuple.Relationship
	for _, id := range uniq(filter.OptionalResourceIds) {
		o := r.d.objects[objectKey{filter.OptionalResourceType, id}]
		if o == nil {
			continue
		}
		if filter.OptionalResourceRelation != "" {
			out = r.collect(out, o[filter.OptionalResourceRelation], filter)
			continue
		}
		for _, subjects := range o {
			out = r.collect(out, subjects, filter)
		}
	}
	r.d.mu.RUnlock()
	return finish(out, q.Sort, q.Limit), nil
}

// collect appends the relationships of one (resource, relation) visible at the reader's revision
// that match filter, looking subjects up directly when the filter names them.
func (r *reader) collect(out []tuple.Relationship, subjects map[tuple.ObjectAndRelation]history, filter datastore.RelationshipsFilter) []tuple.Relationship {
	if len(subjects) == 0 {
		return out
	}
	if keys, ok := subjectKeys(filter.OptionalSubjectsSelectors); ok {
		for _, k := range keys {
			if v := subjects[k].at(r.rev); v != nil && matches(filter, v.rel) {
				out = append(out, v.rel)
			}
		}
		return out
	}
	for _, h := range subjects {
		if v := h.at(r.rev); v != nil && matches(filter, v.rel) {
			out = append(out, v.rel)
		}
	}
	return out
}

// subjectKeys lists every subject the selectors can match when each of them names its type, ids
// and relations; false when one leaves any of them open.
func subjectKeys(selectors []datastore.SubjectsSelector) ([]tuple.ObjectAndRelation, bool) {
	if len(selectors) == 0 {
		return nil, false
	}
	var keys []tuple.ObjectAndRelation
	for _, s := range selectors {
		rf := s.RelationFilter
		if s.OptionalSubjectType == "" || len(s.OptionalSubjectIds) == 0 || rf.OnlyNonEllipsisRelations ||
			(!rf.IncludeEllipsisRelation && rf.NonEllipsisRelation == "") {
			return nil, false
		}
		for _, id := range s.OptionalSubjectIds {
			if rf.IncludeEllipsisRelation {
				keys = append(keys, tuple.ObjectAndRelation{ObjectType: s.OptionalSubjectType, ObjectID: id, Relation: tuple.Ellipsis})
			}
			if rf.NonEllipsisRelation != "" {
				keys = append(keys, tuple.ObjectAndRelation{ObjectType: s.OptionalSubjectType, ObjectID: id, Relation: rf.NonEllipsisRelation})
			}
		}
	}
	return uniq(keys), true
}

func (r *reader) ReverseQueryRelationships(ctx context.Context, sf datastore.SubjectsFilter, opts ...options.ReverseQueryOptionsOption) (datastore.RelationshipIterator, error) {
	q := options.NewReverseQueryOptionsWithOptions(opts...)
	if sf.SubjectType == "" || len(sf.OptionalSubjectIds) == 0 || q.AfterForReverse != nil || q.SortForReverse == options.BySubject {
		return r.Reader.ReverseQueryRelationships(ctx, sf, opts...)
	}
	r.d.mu.RLock()
	if r.d.off {
		r.d.mu.RUnlock()
		return r.Reader.ReverseQueryRelationships(ctx, sf, opts...)
	}
	sel := sf.AsSelector()
	var out []tuple.Relationship
	for _, id := range uniq(sf.OptionalSubjectIds) {
		for ref := range r.d.subjects[objectKey{sf.SubjectType, id}] {
			if q.ResRelation != nil && (ref.Resource.ObjectType != q.ResRelation.Namespace || ref.Resource.Relation != q.ResRelation.Relation) {
				continue
			}
			if !selects(sel, ref.Subject) {
				continue
			}
			if v := r.d.history(ref).at(r.rev); v != nil {
				out = append(out, v.rel)
			}
		}
	}
	r.d.mu.RUnlock()
	return finish(out, q.SortForReverse, q.LimitForReverse), nil
}

// matches applies the whole filter as the memory datastore does.
func matches(f datastore.RelationshipsFilter, rel tuple.Relationship) bool {
	switch {
	case f.OptionalResourceType != "" && f.OptionalResourceType != rel.Resource.ObjectType,
		len(f.OptionalResourceIds) > 0 && !slices.Contains(f.OptionalResourceIds, rel.Resource.ObjectID),
		f.OptionalResourceRelation != "" && f.OptionalResourceRelation != rel.Resource.Relation,
		f.OptionalExpirationOption == datastore.ExpirationFilterOptionHasExpiration: // the index holds no expiration
		return false
	}
	switch f.OptionalCaveatNameFilter.Option {
	case datastore.CaveatFilterOptionHasMatchingCaveat:
		if rel.OptionalCaveat == nil || rel.OptionalCaveat.CaveatName != f.OptionalCaveatNameFilter.CaveatName {
			return false
		}
	case datastore.CaveatFilterOptionNoCaveat:
		if rel.OptionalCaveat != nil && rel.OptionalCaveat.CaveatName != "" {
			return false
		}
	}
	if len(f.OptionalSubjectsSelectors) == 0 {
		return true
	}
	return slices.ContainsFunc(f.OptionalSubjectsSelectors, func(s datastore.SubjectsSelector) bool {
		return selects(s, rel.Subject)
	})
}

// selects reports whether the selector matches the subject, as the memory datastore decides it.
func selects(s datastore.SubjectsSelector, subject tuple.ObjectAndRelation) bool {
	switch {
	case s.OptionalSubjectType != "" && s.OptionalSubjectType != subject.ObjectType,
		len(s.OptionalSubjectIds) > 0 && !slices.Contains(s.OptionalSubjectIds, subject.ObjectID):
		return false
	case s.RelationFilter.OnlyNonEllipsisRelations:
		return subject.Relation != tuple.Ellipsis
	case s.RelationFilter.IncludeEllipsisRelation && subject.Relation == tuple.Ellipsis:
		return true
	case s.RelationFilter.NonEllipsisRelation != "":
		return subject.Relation == s.RelationFilter.NonEllipsisRelation
	}
	return !s.RelationFilter.IncludeEllipsisRelation
}

// finish orders the results by resource (then subject) when asked, cuts them to the limit and
// makes them an iterator.
func finish(out []tuple.Relationship, sort options.SortOrder, limit *uint64) datastore.RelationshipIterator {
	if sort == options.ByResource || limit != nil {
		slices.SortFunc(out, compareRelationships)
	}
	if limit != nil && uint64(len(out)) > *limit {
		out = out[:*limit]
	}
	return func(yield func(tuple.Relationship, error) bool) {
		for _, rel := range out {
			if !yield(rel, nil) {
				return
			}
		}
	}
}

func compareRelationships(a, b tuple.Relationship) int {
	return cmp.Or(
		cmp.Compare(a.Resource.ObjectType, b.Resource.ObjectType),
		cmp.Compare(a.Resource.ObjectID, b.Resource.ObjectID),
		cmp.Compare(a.Resource.Relation, b.Resource.Relation),
		cmp.Compare(a.Subject.ObjectType, b.Subject.ObjectType),
		cmp.Compare(a.Subject.ObjectID, b.Subject.ObjectID),
		cmp.Compare(a.Subject.Relation, b.Subject.Relation),
	)
}

// uniq returns s without repeated elements (a query may name an id twice; the datastore answers
// each relationship once).
func uniq[T comparable](s []T) []T {
	if len(s) < 2 {
		return s
	}
	seen := make(map[T]struct{}, len(s))
	out := make([]T, 0, len(s))
	for _, v := range s {
		if _, ok := seen[v]; !ok {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}
