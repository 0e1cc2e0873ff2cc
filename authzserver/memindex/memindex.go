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
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	"github.com/authzed/spicedb/pkg/tuple"
)

// objectKey names one object.
type objectKey struct{ typ, id string }

// relationKey names one relation of one object.
type relationKey struct{ typ, id, relation string }

// lifetime is one lifetime of a relationship: visible at revisions in [created, deleted), with
// what it was written with besides its reference.
type lifetime struct {
	caveat    *core.ContextualizedCaveat
	integrity *core.RelationshipIntegrity
	created   datastore.Revision
	deleted   datastore.Revision // nil while alive
	// deletedAt is when deleted was set (Unix nanoseconds), to forget the lifetime after the
	// GC window.
	deletedAt int64
}

func (l *lifetime) visibleAt(rev datastore.Revision) bool {
	if l.created.GreaterThan(rev) {
		return false
	}
	return l.deleted == nil || l.deleted.GreaterThan(rev)
}

// entry is one relationship and every lifetime of it, oldest first. An entry is held once, in
// three places: by its reference, in its resource's relation and in its subject object.
type entry struct {
	ref   tuple.RelationshipReference
	lives []lifetime
}

func (e *entry) live() *lifetime {
	if n := len(e.lives); n > 0 && e.lives[n-1].deleted == nil {
		return &e.lives[n-1]
	}
	return nil
}

// at returns the relationship as visible at rev.
func (e *entry) at(rev datastore.Revision) (tuple.Relationship, bool) {
	for i := len(e.lives) - 1; i >= 0; i-- {
		if l := &e.lives[i]; l.visibleAt(rev) {
			return tuple.Relationship{RelationshipReference: e.ref, OptionalCaveat: l.caveat, OptionalIntegrity: l.integrity}, true
		}
	}
	return tuple.Relationship{}, false
}

// tombstone is a deleted lifetime to forget once no reader can ask for it.
type tombstone struct {
	at  int64 // Unix nanoseconds
	ref tuple.RelationshipReference
}

// Datastore wraps the memory datastore with the index.
type Datastore struct {
	datastore.Datastore
	window time.Duration

	mu sync.RWMutex
	// rels holds every relationship with a lifetime the GC window keeps; resources lists them
	// by resource relation, relations the relations each resource has, and subjects lists them
	// by subject object. Flat maps and slices rather than a map per object: most objects have a
	// relationship or two, and a map costs a group of eight slots from its first entry.
	rels      map[tuple.RelationshipReference]*entry
	resources map[relationKey][]*entry
	relations map[objectKey][]string
	subjects  map[objectKey][]*entry
	graves    []tombstone
	off       bool // the index no longer answers: everything goes to the wrapped datastore
}

// New wraps ds, a memory datastore; window is its GC window (how far back readers may ask).
func New(ds datastore.Datastore, window time.Duration) *Datastore {
	return &Datastore{
		Datastore: ds,
		window:    window,
		rels:      map[tuple.RelationshipReference]*entry{},
		resources: map[relationKey][]*entry{},
		relations: map[objectKey][]string{},
		subjects:  map[objectKey][]*entry{},
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
	now := time.Now().UnixNano()
	for _, c := range rec.changes {
		if c.rel.OptionalExpiration != nil {
			d.turnOff()
			return
		}
		ref := c.rel.RelationshipReference
		e := d.rels[ref]
		if e != nil {
			if live := e.live(); live != nil {
				live.deleted, live.deletedAt = rev, now
				d.graves = append(d.graves, tombstone{at: now, ref: ref})
			}
		}
		if c.op == tuple.UpdateOperationDelete {
			continue
		}
		// touch, create
		if e == nil {
			e = d.add(ref)
		}
		e.lives = append(e.lives, lifetime{caveat: c.rel.OptionalCaveat, integrity: c.rel.OptionalIntegrity, created: rev})
	}
	d.forget(now)
}

// turnOff stops answering from the index for good and frees it; d.mu is held.
func (d *Datastore) turnOff() {
	d.off = true
	d.rels, d.resources, d.relations, d.subjects, d.graves = nil, nil, nil, nil, nil
}

// add makes the entry of a relationship the index does not hold; d.mu is held.
func (d *Datastore) add(ref tuple.RelationshipReference) *entry {
	e := &entry{ref: ref}
	d.rels[ref] = e
	rk := resourceKey(ref)
	if len(d.resources[rk]) == 0 {
		ok := objectKey{ref.Resource.ObjectType, ref.Resource.ObjectID}
		d.relations[ok] = append(d.relations[ok], ref.Resource.Relation)
	}
	d.resources[rk] = append(d.resources[rk], e)
	sk := objectKey{ref.Subject.ObjectType, ref.Subject.ObjectID}
	d.subjects[sk] = append(d.subjects[sk], e)
	return e
}

// remove drops an entry without lifetimes from every place it is held; d.mu is held.
func (d *Datastore) remove(e *entry) {
	ref := e.ref
	delete(d.rels, ref)
	rk := resourceKey(ref)
	if without(d.resources, rk, e) {
		ok := objectKey{ref.Resource.ObjectType, ref.Resource.ObjectID}
		rels := slices.DeleteFunc(d.relations[ok], func(r string) bool { return r == ref.Resource.Relation })
		if len(rels) == 0 {
			delete(d.relations, ok)
		} else {
			d.relations[ok] = rels
		}
	}
	without(d.subjects, objectKey{ref.Subject.ObjectType, ref.Subject.ObjectID}, e)
}

// without removes e from m[k] (order is not kept) and reports whether m[k] is gone.
func without[K comparable](m map[K][]*entry, k K, e *entry) bool {
	s := m[k]
	i := slices.Index(s, e)
	if i < 0 {
		return len(s) == 0
	}
	last := len(s) - 1
	s[i], s[last] = s[last], nil
	if last == 0 {
		delete(m, k)
		return true
	}
	m[k] = s[:last]
	return false
}

func resourceKey(ref tuple.RelationshipReference) relationKey {
	return relationKey{ref.Resource.ObjectType, ref.Resource.ObjectID, ref.Resource.Relation}
}

// forget drops lifetimes deleted longer than the GC window ago: no reader may ask for a
// revision that old; d.mu is held.
func (d *Datastore) forget(now int64) {
	window := d.window.Nanoseconds()
	n := 0
	for ; n < len(d.graves) && now-d.graves[n].at > window; n++ {
		e := d.rels[d.graves[n].ref]
		if e == nil {
			continue
		}
		e.lives = slices.DeleteFunc(e.lives, func(l lifetime) bool { return l.deleted != nil && now-l.deletedAt > window })
		if len(e.lives) == 0 {
			d.remove(e)
		}
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
	keys, named := subjectKeys(filter.OptionalSubjectsSelectors)
	for _, id := range uniq(filter.OptionalResourceIds) {
		if filter.OptionalResourceRelation != "" {
			out = r.collect(out, relationKey{filter.OptionalResourceType, id, filter.OptionalResourceRelation}, keys, named, filter)
			continue
		}
		for _, rel := range r.d.relations[objectKey{filter.OptionalResourceType, id}] {
			out = r.collect(out, relationKey{filter.OptionalResourceType, id, rel}, keys, named, filter)
		}
	}
	r.d.mu.RUnlock()
	return finish(out, q.Sort, q.Limit), nil
}

// collect appends the relationships of one resource relation visible at the reader's revision
// that match filter, looking subjects up directly when the filter names them (keys, named).
func (r *reader) collect(out []tuple.Relationship, rk relationKey, keys []tuple.ObjectAndRelation, named bool, filter datastore.RelationshipsFilter) []tuple.Relationship {
	if named {
		resource := tuple.ObjectAndRelation{ObjectType: rk.typ, ObjectID: rk.id, Relation: rk.relation}
		for _, k := range keys {
			if e := r.d.rels[tuple.RelationshipReference{Resource: resource, Subject: k}]; e != nil {
				if rel, ok := e.at(r.rev); ok && matches(filter, rel) {
					out = append(out, rel)
				}
			}
		}
		return out
	}
	for _, e := range r.d.resources[rk] {
		if rel, ok := e.at(r.rev); ok && matches(filter, rel) {
			out = append(out, rel)
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
		for _, e := range r.d.subjects[objectKey{sf.SubjectType, id}] {
			ref := e.ref
			if q.ResRelation != nil && (ref.Resource.ObjectType != q.ResRelation.Namespace || ref.Resource.Relation != q.ResRelation.Relation) {
				continue
			}
			if !selects(sel, ref.Subject) {
				continue
			}
			if rel, ok := e.at(r.rev); ok {
				out = append(out, rel)
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
