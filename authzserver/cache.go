package authzserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/datalayer"
	dsapi "github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/zedtoken"

	"github.com/trustgate/trustgate/schema"
)

// DefaultCacheEntries bounds a DecisionCache when NewDecisionCache is given no size.
const DefaultCacheEntries = 1 << 16

// DecisionCache is a decorator over a Backend that remembers the answers of Check and
// CallableTools of an embedded SpiceDB, and is never stale: every answer is stored with the datastore revision it
// was computed at. Each call reads the head revision first (an in-memory read on the memory
// datastore, one query on PostgreSQL and CockroachDB). An answer is reused when it was computed
// at exactly the head revision, or when the datastore's Watch stream shows that no relationship
// of the answer's host changed since (see changeIndex); otherwise the question is asked again at
// exactly the head revision. A change written by anyone (this process, the relationship writer,
// another replica on the same datastore) moves the head, and the cached answers of its host are
// not reused at the new head before the watch has delivered that change.
//
// Host granularity rests on the ids: every object id starts with its host key (see schema), and
// a check walks only from its resource's host while no relationship leads out of that host.
// Hosts where one does (possible only through SpiceDB's API, never through trustgate) and
// relationships that expire are noticed and fall back to the exact-revision rule. While the
// watch is not running (starting, restarting after a failure, or unsupported: PostgreSQL
// without track_commit_timestamp) every answer falls back to that rule: any relationship write
// invalidates every entry.
type DecisionCache struct {
	// Backend is the wrapped backend: writes, reads and Ready go straight to it.
	Backend
	inner  snapshotBackend
	ds     dsapi.Datastore
	holder revisionHolder
	max    int

	mu     sync.RWMutex
	checks map[string]cachedCheck
	tools  map[string]cachedTools
	// token is the ZedToken of the newest head revision seen (encoded once per revision).
	token cachedToken

	// index is what the watch has delivered; follow keeps it until StopWatch.
	index     changeIndex
	logger    *slog.Logger
	stopWatch func()
	watchDone chan struct{}
}

type cachedCheck struct {
	rev     dsapi.Revision
	host    string
	allowed bool
}

type cachedTools struct {
	rev   dsapi.Revision
	host  string
	names []string
}

type cachedToken struct {
	rev   dsapi.Revision
	token *v1.ZedToken
}

var _ Backend = (*DecisionCache)(nil)

// snapshotBackend is what a DecisionCache needs of the Backend beneath it beyond Backend: the
// in-process datastore, whose head revision and Watch stream tell whether an answer is still
// current; questions asked at one exact snapshot; and a hook that stops the cache when the
// backend closes. The SpiceDB type implements it; only an embedded one has a datastore.
type snapshotBackend interface {
	Backend
	// datastore is the engine's datastore, nil when the engine is not in this process.
	datastore() dsapi.Datastore
	// datastoreLogger is the logger of the in-process engine (nil: none).
	datastoreLogger() *slog.Logger
	checkAt(ctx context.Context, req CheckRequest, consistency *v1.Consistency) (bool, error)
	callableToolsAt(ctx context.Context, hostKey, serverKey, agentID string, consistency *v1.Consistency) ([]string, error)
	// onCloseHook makes the backend's Close call fn first.
	onCloseHook(fn func())
}

// NewDecisionCache wraps inner, an embedded SpiceDB (one started with StartEmbedded), with a
// decision cache of at most entries answers (0: DefaultCacheEntries), and starts following the
// datastore's Watch stream; it stops with StopWatch, Close, or when inner is closed. A remote
// SpiceDB, or any other Backend, cannot be wrapped: its head revision is not readable cheaply.
func NewDecisionCache(ctx context.Context, inner Backend, entries int) (*DecisionCache, error) {
	b, ok := inner.(snapshotBackend)
	if !ok || b.datastore() == nil {
		return nil, errors.New("decision cache: needs an embedded SpiceDB (its datastore's head revision)")
	}
	if entries <= 0 {
		entries = DefaultCacheEntries
	}
	ds := b.datastore()
	id, err := ds.UniqueID(ctx)
	if err != nil {
		return nil, fmt.Errorf("decision cache: datastore id: %w", err)
	}
	c := &DecisionCache{
		Backend: b, inner: b, ds: ds, holder: revisionHolder{Datastore: ds, id: id}, max: entries,
		checks: map[string]cachedCheck{}, tools: map[string]cachedTools{},
		logger: b.datastoreLogger(), watchDone: make(chan struct{}),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stopWatch = sync.OnceFunc(func() {
		cancel()
		<-c.watchDone
		c.index.stop()
	})
	b.onCloseHook(c.stopWatch)
	go c.follow(watchCtx)
	return c, nil
}

// StopWatch stops following the datastore's changes: from then on an answer is reused only at
// exactly the revision it was computed at. Stopping twice is harmless.
func (c *DecisionCache) StopWatch() { c.stopWatch() }

// Close stops the watch and closes the wrapped backend.
func (c *DecisionCache) Close() error {
	c.StopWatch()
	return c.Backend.Close()
}

// revisionHolder gives zedtoken the datastore's id read once at start.
type revisionHolder struct {
	dsapi.Datastore
	id string
}

func (h revisionHolder) UniqueID(context.Context) (string, error) { return h.id, nil }

// head reads the datastore's head revision and its ZedToken.
func (c *DecisionCache) head(ctx context.Context) (dsapi.Revision, *v1.ZedToken, error) {
	h, err := c.ds.HeadRevision(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("spicedb head revision: %w: %v", ErrUnavailable, err)
	}
	c.mu.RLock()
	t := c.token
	c.mu.RUnlock()
	if t.rev != nil && t.rev.Equal(h.Revision) {
		return h.Revision, t.token, nil
	}
	token, err := zedtoken.NewFromRevision(ctx, h.Revision, datalayer.SchemaHash(h.SchemaHash), c.holder)
	if err != nil {
		return nil, nil, fmt.Errorf("spicedb head revision: %w", err)
	}
	c.mu.Lock()
	if c.token.rev == nil || h.Revision.GreaterThan(c.token.rev) {
		c.token = cachedToken{rev: h.Revision, token: token}
	}
	c.mu.Unlock()
	return h.Revision, token, nil
}

func atExact(token *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: token}}
}

// Check answers from the cache when the answer is still the one at the current head revision.
func (c *DecisionCache) Check(ctx context.Context, req CheckRequest) (bool, error) {
	if req.Context != nil {
		// The answer depends on the call's arguments: asked every time, never cached.
		return c.inner.Check(ctx, req)
	}
	rev, token, err := c.head(ctx)
	if err != nil {
		return false, err
	}
	key := checkKey(req)
	c.mu.RLock()
	e, ok := c.checks[key]
	c.mu.RUnlock()
	if ok && (e.rev.Equal(rev) || c.index.reusable(e.host, e.rev, rev)) {
		return e.allowed, nil
	}
	// The head is at least as fresh as req.AtLeastAsFresh when that names a write already
	// made; asking at exactly the head keeps the answer tied to rev.
	allowed, err := c.inner.checkAt(ctx, req, atExact(token))
	if err != nil {
		// The head read may have stopped being the head and fallen out of the datastore's
		// garbage-collection window in between (SpiceDB refuses such a snapshot): ask at the
		// current head instead, without caching.
		if errors.Is(err, ErrUnavailable) {
			return false, err
		}
		return c.inner.checkAt(ctx, req, fullyConsistent)
	}
	c.mu.Lock()
	if old, ok := c.checks[key]; !ok || !old.rev.GreaterThan(rev) {
		if !ok && len(c.checks) >= c.max {
			evictOne(c.checks)
		}
		c.checks[key] = cachedCheck{rev: rev, host: hostOf(req.Resource.Type, req.Resource.ID), allowed: allowed}
	}
	c.mu.Unlock()
	return allowed, nil
}

// CallableTools answers from the cache when the list is still the one at the current head
// revision.
// The returned slice is shared: callers must not modify it.
func (c *DecisionCache) CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error) {
	rev, token, err := c.head(ctx)
	if err != nil {
		return nil, err
	}
	key := hostKey + "\x00" + serverKey + "\x00" + agentID
	c.mu.RLock()
	e, ok := c.tools[key]
	c.mu.RUnlock()
	if ok && (e.rev.Equal(rev) || c.index.reusable(e.host, e.rev, rev)) {
		return e.names, nil
	}
	names, err := c.inner.callableToolsAt(ctx, hostKey, serverKey, agentID, atExact(token))
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return c.inner.callableToolsAt(ctx, hostKey, serverKey, agentID, fullyConsistent) // as in Check
	}
	c.mu.Lock()
	if old, ok := c.tools[key]; !ok || !old.rev.GreaterThan(rev) {
		if !ok && len(c.tools) >= c.max {
			evictOne(c.tools)
		}
		// The tools listed are those of the server, whose ids carry the host.
		server := schema.Server(hostKey, serverKey)
		c.tools[key] = cachedTools{rev: rev, host: hostOf(server.Type, server.ID), names: names}
	}
	c.mu.Unlock()
	return names, nil
}

// Len is the number of cached answers (checks and tool lists).
func (c *DecisionCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.checks) + len(c.tools)
}

// evictOne removes one entry (Go's map iteration order makes it an arbitrary one).
func evictOne[V any](m map[string]V) {
	for k := range m {
		delete(m, k)
		return
	}
}

// checkKey identifies a question. Object types, ids and relations never contain NUL.
func checkKey(req CheckRequest) string {
	var b strings.Builder
	b.Grow(len(req.Resource.Type) + len(req.Resource.ID) + len(req.Permission) + len(req.Subject.Object.Type) +
		len(req.Subject.Object.ID) + len(req.Subject.Relation) + 5)
	for i, s := range []string{req.Resource.Type, req.Resource.ID, req.Permission, req.Subject.Object.Type, req.Subject.Object.ID, req.Subject.Relation} {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(s)
	}
	return b.String()
}
