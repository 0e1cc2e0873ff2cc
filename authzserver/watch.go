package authzserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	dsapi "github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/tuple"

	"github.com/trustgate/trustgate/schema"
)

// Watch retry bounds: after a failed watch the cache behaves as if it had none, and tries
// again after a pause that doubles up to the maximum.
const (
	watchRetryMin = 500 * time.Millisecond
	watchRetryMax = 30 * time.Second
)

// changeIndex is what the datastore's Watch stream has told the decision cache: per host, the
// revision of the newest relationship change that touched it. It lets an answer computed at
// revision R for host H be reused at a later head revision R' when the stream has delivered
// everything up to R' and nothing of H changed after R.
//
// It is only as good as the stream: until a session has both started its watch and checked
// the relationships that existed when it began (see follow), it answers that nothing may be
// reused, and the cache falls back to reusing answers only at exactly their revision.
type changeIndex struct {
	mu sync.RWMutex
	// live: the current session's watch is running and its start-up scan is done.
	live bool
	// start is the revision the session's watch began after; changes before it are unknown.
	start dsapi.Revision
	// checkpoint: the watch has delivered every change up to and including it.
	checkpoint dsapi.Revision
	// changed is, per host key, the revision of the newest change touching a relationship
	// whose resource or subject belongs to that host.
	changed map[string]dsapi.Revision
	// tainted hosts have (or had, since the session began) a relationship that leads out of the
	// host or that expires by itself: an answer about them may depend on changes recorded
	// under another host, or on none at all, so it is reused only at exactly its revision.
	tainted map[string]struct{}
	// schemaChanged is the revision of the newest schema change the session saw.
	schemaChanged dsapi.Revision
}

// atLeast reports whether revision a is known to be at or after b. Revisions are only partly
// ordered on some datastores; "not known" is false, which makes the cache miss.
func atLeast(a, b dsapi.Revision) bool {
	return a.Equal(b) || a.GreaterThan(b)
}

// reusable reports whether an answer about host, computed at revision computed, is still the
// answer at revision head.
func (x *changeIndex) reusable(host string, computed, head dsapi.Revision) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.live || !atLeast(x.checkpoint, head) || !atLeast(computed, x.start) || !atLeast(head, computed) {
		return false
	}
	if _, ok := x.tainted[host]; ok {
		return false
	}
	if x.schemaChanged != nil && !atLeast(computed, x.schemaChanged) {
		return false
	}
	if last, ok := x.changed[host]; ok && !atLeast(computed, last) {
		return false
	}
	return true
}

// begin starts a new session whose watch delivers the changes after start.
func (x *changeIndex) begin(start dsapi.Revision) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.live, x.start, x.checkpoint, x.schemaChanged = false, start, start, nil
	x.changed, x.tainted = map[string]dsapi.Revision{}, map[string]struct{}{}
}

// goLive ends the session's start-up: tainted are the hosts found tainted at its start.
func (x *changeIndex) goLive(tainted map[string]struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for h := range tainted {
		x.tainted[h] = struct{}{}
	}
	x.live = true
}

// stop makes every answer unreusable across revisions until the next session is live.
func (x *changeIndex) stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.live = false
}

// apply records one revision's changes, then its checkpoint.
func (x *changeIndex) apply(ch dsapi.RevisionChanges) {
	x.mu.Lock()
	defer x.mu.Unlock()
	rev := ch.Revision
	for _, u := range ch.RelationshipChanges {
		resource, subject, taints := relationshipHosts(u.Relationship)
		x.record(resource, rev)
		x.record(subject, rev)
		if taints {
			x.tainted[resource] = struct{}{}
		}
	}
	if len(ch.ChangedDefinitions) > 0 || len(ch.DeletedNamespaces) > 0 || len(ch.DeletedCaveats) > 0 {
		if x.schemaChanged == nil || rev.GreaterThan(x.schemaChanged) {
			x.schemaChanged = rev
		}
	}
	if ch.IsCheckpoint && rev.GreaterThan(x.checkpoint) {
		x.checkpoint = rev
	}
}

func (x *changeIndex) record(host string, rev dsapi.Revision) {
	if last, ok := x.changed[host]; !ok || !last.GreaterThan(rev) {
		x.changed[host] = rev
	}
}

// hostOf is the host key an object belongs to (schema.HostOf): the same rule is applied to
// questions and to changes, so it only has to be consistent, not meaningful.
func hostOf(objectType, id string) string {
	return schema.HostOf(schema.ObjectRef{Type: objectType, ID: id})
}

// relationshipHosts returns the hosts of a relationship's resource and subject, and whether
// the relationship taints its resource's host: it leads to another host (a check walking from
// the resource would then read that host's relationships), or it expires (it disappears
// without a change the watch would deliver).
func relationshipHosts(r tuple.Relationship) (resource, subject string, taints bool) {
	resource = hostOf(r.Resource.ObjectType, r.Resource.ObjectID)
	subject = hostOf(r.Subject.ObjectType, r.Subject.ObjectID)
	return resource, subject, resource != subject || r.OptionalExpiration != nil
}

// follow runs watch sessions until ctx ends. A session that fails (the datastore dropped the
// watch, or the consumer fell behind) leaves the index stopped, and a new one starts after a
// pause. A datastore without Watch (PostgreSQL without track_commit_timestamp) ends it: the
// cache then works as if it had no index.
func (c *DecisionCache) follow(ctx context.Context) {
	defer close(c.watchDone)
	features, err := c.ds.Features(ctx)
	if err != nil || features.Watch.Status != dsapi.FeatureSupported {
		reason := "unsupported by the datastore"
		if err != nil {
			reason = err.Error()
		} else if features.Watch.Reason != "" {
			reason = features.Watch.Reason
		}
		c.logger.Info("decision cache: no SpiceDB watch; any relationship write invalidates every cached answer", "reason", reason)
		return
	}
	pause := watchRetryMin
	for {
		began := time.Now()
		err := c.session(ctx)
		c.index.stop()
		if ctx.Err() != nil {
			return
		}
		var disabled dsapi.WatchDisabledError
		if errors.As(err, &disabled) {
			c.logger.Info("decision cache: SpiceDB watch disabled; any relationship write invalidates every cached answer", "reason", err.Error())
			return
		}
		if time.Since(began) > watchRetryMax {
			pause = watchRetryMin // it ran a good while: not a failure loop
		}
		c.logger.Warn("decision cache: SpiceDB watch ended; answers are reused only at their exact revision until it restarts", "error", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, watchRetryMax)
	}
}

// session watches the datastore from its current head and, beside it, scans the relationships
// at that head for tainted hosts. The index goes live when the scan is done; it returns when
// the watch fails or ctx ends.
func (c *DecisionCache) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	head, err := c.ds.HeadRevision(ctx)
	if err != nil {
		return fmt.Errorf("head revision: %w", err)
	}
	start := head.Revision
	c.index.begin(start)
	changes, errs := c.ds.Watch(ctx, start, dsapi.WatchOptions{
		Content: dsapi.WatchRelationships | dsapi.WatchSchema | dsapi.WatchCheckpoints,
	})
	type scanResult struct {
		tainted map[string]struct{}
		err     error
	}
	scanned := make(chan scanResult, 1)
	go func() {
		t, err := c.scanTainted(ctx, start)
		scanned <- scanResult{t, err}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-scanned:
			if r.err != nil {
				return fmt.Errorf("scan relationships at the watch's start: %w", r.err)
			}
			c.index.goLive(r.tainted)
		case ch, ok := <-changes:
			if !ok {
				select {
				case err := <-errs:
					if err != nil {
						return fmt.Errorf("watch: %w", err)
					}
				default:
				}
				return errors.New("watch: the stream ended")
			}
			c.index.apply(ch)
		case err, ok := <-errs:
			if !ok || err == nil {
				errs = nil // closed: the changes channel tells the end
				continue
			}
			return fmt.Errorf("watch: %w", err)
		}
	}
}

// scanTainted reads every relationship at rev and returns the hosts it taints (see
// relationshipHosts). It runs once per watch session, beside the watch.
func (c *DecisionCache) scanTainted(ctx context.Context, rev dsapi.Revision) (map[string]struct{}, error) {
	tainted := map[string]struct{}{}
	reader := c.ds.SnapshotReader(rev)
	// Every relationship, not only those of trustgate's object types: a check may walk through
	// any type the schema has.
	it, err := reader.QueryRelationships(ctx, dsapi.RelationshipsFilter{})
	if err != nil {
		return nil, fmt.Errorf("read relationships: %w", err)
	}
	n := 0
	for r, err := range it {
		if err != nil {
			return nil, fmt.Errorf("read relationships: %w", err)
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if resource, _, taints := relationshipHosts(r); taints {
			tainted[resource] = struct{}{}
		}
	}
	return tainted, ctx.Err()
}
