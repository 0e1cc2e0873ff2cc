// Package cache keeps the control-plane reads of the MCP hot path (host settings, servers,
// tools, agents, humans, consents) in memory without ever serving stale data: every cached
// answer is stamped with the store's control-plane generation, which every change to those
// objects advances in its own transaction, and is used only while the generation is the same.
//
// One request asks for the generation once (Snapshot) and every cached read in it is checked
// against that number, so a request costs at most one small read instead of one per object (the
// store itself remembers the generation for store.GenerationMaxAge), and sees the control plane
// as of its start — a change that returned before the request began is always seen, by any
// replica sharing the database.
//
// The cache is a decorator: a Store wraps a Source and is one, so its users (the proxy, which
// takes store.HotReads, and the upstream token client) do not know whether they are cached.
package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/trustgate/trustgate/store"
)

// DefaultMaxEntries bounds the cache; when full it starts over (the next reads fill it again).
const DefaultMaxEntries = 65536

// Source is what a Store wraps and implements: the hot path's reads, and the upstream token
// store whose lookups of a token the human does not have it answers.
type Source interface {
	store.HotReads
	store.Upstream
}

// Store is a Source whose hot-path reads are cached. Values it returns are shared: callers
// must not modify them. Every other method goes straight to the wrapped Source.
type Store struct {
	Source
	max int

	mu      sync.Mutex
	entries map[key]entry
}

// key names a cached answer: its kind and up to three strings (no concatenation, so that a
// lookup allocates nothing).
type key struct {
	kind       string
	host, a, b string
}

type entry struct {
	gen   int64
	value any
	err   error // only store.ErrNotFound answers are cached
}

// New wraps st. maxEntries <= 0 means DefaultMaxEntries.
func New(st Source, maxEntries int) *Store {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	return &Store{Source: st, max: maxEntries, entries: map[key]entry{}}
}

type snapshotKey struct{}

// Snapshot reads the control-plane generation once and returns a context under which every
// cached read is checked against it. A context without a snapshot reads the generation on each
// cached read.
func (s *Store) Snapshot(ctx context.Context) (context.Context, error) {
	gen, err := s.Source.ControlGeneration(ctx)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, snapshotKey{}, gen), nil
}

func (s *Store) generation(ctx context.Context) (int64, error) {
	if gen, ok := ctx.Value(snapshotKey{}).(int64); ok {
		return gen, nil
	}
	return s.Source.ControlGeneration(ctx)
}

// cached answers k from the cache when it was stored at the current generation, else with load.
func cached[T any](ctx context.Context, s *Store, k key, load func() (T, error)) (T, error) {
	gen, err := s.generation(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("control-plane cache: %w", err)
	}
	if e, ok := s.get(k, gen); ok {
		if e.err != nil {
			var zero T
			return zero, e.err
		}
		return e.value.(T), nil
	}
	v, err := load()
	if err != nil && !isNotFound(err) {
		return v, err
	}
	// A load that raced with a change may hold newer data than gen: stamping it with gen is
	// safe (it is dropped as soon as the generation moves), never the other way round.
	s.put(k, entry{gen: gen, value: v, err: err})
	return v, err
}

// get is the entry of k when it was stored at generation gen.
func (s *Store) get(k key, gen int64) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[k]
	return e, ok && e.gen == gen
}

// put stores e under k, starting over when the cache is full.
func (s *Store) put(k key, e entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) >= s.max {
		clear(s.entries)
	}
	s.entries[k] = e
}

var _ Source = (*Store)(nil)

func isNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }

// GetHost is store.HotReads.GetHost, cached.
func (s *Store) GetHost(ctx context.Context, host string) (store.Host, error) {
	return cached(ctx, s, key{kind: "host", host: host}, func() (store.Host, error) { return s.Source.GetHost(ctx, host) })
}

// GetServer is store.HotReads.GetServer, cached.
func (s *Store) GetServer(ctx context.Context, host, server string) (store.Server, error) {
	return cached(ctx, s, key{kind: "server", host: host, a: server}, func() (store.Server, error) { return s.Source.GetServer(ctx, host, server) })
}

// GetTool is store.HotReads.GetTool, cached: every tools/call reads its tool (its argument
// conditions), and tools are control-plane objects like the servers that list them.
func (s *Store) GetTool(ctx context.Context, host, server, name string) (store.Tool, error) {
	return cached(ctx, s, key{kind: "tool", host: host, a: server, b: name}, func() (store.Tool, error) { return s.Source.GetTool(ctx, host, server, name) })
}

// ListTools is store.HotReads.ListTools, cached.
func (s *Store) ListTools(ctx context.Context, host, server string) ([]store.Tool, error) {
	return cached(ctx, s, key{kind: "tools", host: host, a: server}, func() ([]store.Tool, error) { return s.Source.ListTools(ctx, host, server) })
}

// ToolsByName is the server's tools (store.HotReads.ListTools) by name, cached: the approved
// definitions every tools/list answer is compared with.
func (s *Store) ToolsByName(ctx context.Context, host, server string) (map[string]store.Tool, error) {
	return cached(ctx, s, key{kind: "tools-by-name", host: host, a: server}, func() (map[string]store.Tool, error) {
		list, err := s.Source.ListTools(ctx, host, server)
		if err != nil {
			return nil, err
		}
		m := make(map[string]store.Tool, len(list))
		for _, t := range list {
			m[t.Name] = t
		}
		return m, nil
	})
}

// GetAgent is store.HotReads.GetAgent, cached.
func (s *Store) GetAgent(ctx context.Context, host, id string) (store.Agent, error) {
	return cached(ctx, s, key{kind: "agent", host: host, a: id}, func() (store.Agent, error) { return s.Source.GetAgent(ctx, host, id) })
}

// GetUser is store.HotReads.GetUser, cached.
func (s *Store) GetUser(ctx context.Context, host, id string) (store.User, error) {
	return cached(ctx, s, key{kind: "user", host: host, a: id}, func() (store.User, error) { return s.Source.GetUser(ctx, host, id) })
}

// ListConsents is store.HotReads.ListConsents, cached.
func (s *Store) ListConsents(ctx context.Context, host, agentID string) ([]store.Consent, error) {
	return cached(ctx, s, key{kind: "consents", host: host, a: agentID}, func() ([]store.Consent, error) { return s.Source.ListConsents(ctx, host, agentID) })
}

// GetUpstreamToken is store.Upstream.GetUpstreamToken with only its "not found" answers cached: a
// human without an upstream token for a server (every server that needs none) costs no read,
// while tokens themselves are always read fresh (a refresh must never start from an older copy).
func (s *Store) GetUpstreamToken(ctx context.Context, host, userID, server string) (store.UpstreamToken, error) {
	gen, err := s.generation(ctx)
	if err != nil {
		return store.UpstreamToken{}, fmt.Errorf("control-plane cache: %w", err)
	}
	k := key{kind: "no-upstream-token", host: host, a: userID, b: server}
	if e, ok := s.get(k, gen); ok {
		return store.UpstreamToken{}, e.err
	}
	t, err := s.Source.GetUpstreamToken(ctx, host, userID, server)
	if isNotFound(err) {
		s.put(k, entry{gen: gen, err: err})
	}
	return t, err
}

// OAuthTokenRevoked is store.HotReads.OAuthTokenRevoked, cached: the store advances the
// generation with every revocation it records, so a revocation committed before the request
// began is always seen, on every replica, while an agent's repeated calls cost no read.
func (s *Store) OAuthTokenRevoked(ctx context.Context, tokenID, grantID string) (bool, error) {
	return cached(ctx, s, key{kind: "oauth-revoked", a: tokenID, b: grantID}, func() (bool, error) {
		return s.Source.OAuthTokenRevoked(ctx, tokenID, grantID)
	})
}
