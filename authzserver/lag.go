package authzserver

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// DefaultBehindAfter is how long a relationship change may wait in the outbox, without a drain
// having failed to apply it, before its host's decisions fail closed (NewFailClosed): a few
// times the writer's default sync interval of a second, so that a change made by another
// process (the CLI, another replica) is applied before it counts.
const DefaultBehindAfter = 5 * time.Second

// Lag knows which hosts have relationship changes the authorization backend has not applied:
// their decisions are not the store's, so NewFailClosed turns their allows into denials. A host
// is behind when it has
//
//   - a change that a drain has failed to apply (the outbox is drained in order: after a failed
//     drain every change pending is stuck behind the one refused), or
//   - a change pending longer than the bound (a drain that hangs, or a process whose drains
//     fail while this one does not attempt them), or
//   - a change set aside in the quarantine (refused for good, until an operator resolves it).
//
// The writer updates it after every drain attempt, success or failure, and every sync interval
// from the store (Writer.Run), so a process that does not drain itself learns within one
// interval; Behind reads it from memory, never from the store. Until the first update, and
// after a read of the store failed, every host is behind.
type Lag struct {
	bound atomic.Int64 // nanoseconds
	now   func() time.Time
	// seq orders the updates by when their read of the store began: an update whose read began
	// before the one held is dropped, so a slow read never replaces a newer view.
	seq   atomic.Uint64
	state atomic.Pointer[lagState]
}

type lagState struct {
	seq uint64
	// known: read from the store (false: every host is behind).
	known bool
	// failing: the last drain attempt failed; every host with a pending change is behind.
	failing bool
	hosts   map[string]store.PendingHost
}

// NewLag makes a Lag whose pending changes count after bound (0: DefaultBehindAfter). Every
// host is behind until its first update.
func NewLag(bound time.Duration) *Lag {
	l := &Lag{now: time.Now}
	l.SetBound(bound)
	l.state.Store(&lagState{})
	return l
}

// SetBound sets how long a change may be pending before its host is behind (0:
// DefaultBehindAfter).
func (l *Lag) SetBound(bound time.Duration) {
	if bound <= 0 {
		bound = DefaultBehindAfter
	}
	l.bound.Store(int64(bound))
}

// Bound is how long a change may be pending before its host is behind.
func (l *Lag) Bound() time.Duration { return time.Duration(l.bound.Load()) }

// Behind reports whether host's decisions must fail closed: it has a change the backend has not
// applied (see Lag).
func (l *Lag) Behind(host string) bool {
	s := l.state.Load()
	if !s.known {
		return true
	}
	h, ok := s.hosts[host]
	if !ok {
		return false
	}
	return s.behind(h, l.now(), l.Bound())
}

func (s *lagState) behind(h store.PendingHost, now time.Time, bound time.Duration) bool {
	if h.Quarantined > 0 {
		return true
	}
	return h.Pending > 0 && (s.failing || now.Sub(h.Oldest) > bound)
}

// LagStatus is a Lag's view at one moment.
type LagStatus struct {
	// Known is false until the store was read, and after a read failed: every host is behind.
	Known bool
	// Failing: the last drain attempt failed.
	Failing bool
	// Behind lists the hosts whose decisions fail closed, sorted.
	Behind []string
	// Pending lists every host with a change not applied (behind or not yet), by host.
	Pending []store.PendingHost
	// OldestAge is the age of the oldest pending change of any host (0: none).
	OldestAge time.Duration
}

// Status is the Lag's view now.
func (l *Lag) Status() LagStatus {
	s := l.state.Load()
	now, bound := l.now(), l.Bound()
	out := LagStatus{Known: s.known, Failing: s.failing}
	for _, h := range s.hosts {
		out.Pending = append(out.Pending, h)
		if s.behind(h, now, bound) {
			out.Behind = append(out.Behind, h.Host)
		}
		if h.Pending > 0 && !h.Oldest.IsZero() {
			out.OldestAge = max(out.OldestAge, now.Sub(h.Oldest))
		}
	}
	slices.SortFunc(out.Pending, func(a, b store.PendingHost) int { return strings.Compare(a.Host, b.Host) })
	slices.Sort(out.Behind)
	return out
}

// begin numbers an update whose read of the store starts now.
func (l *Lag) begin() uint64 { return l.seq.Add(1) }

// update records what the store said at the read numbered seq, and whether the drain attempt
// before it failed (drained false: no drain was attempted; the last attempt's outcome stands).
func (l *Lag) update(seq uint64, hosts []store.PendingHost, drained, failing bool) {
	next := &lagState{seq: seq, known: true, failing: failing, hosts: make(map[string]store.PendingHost, len(hosts))}
	for _, h := range hosts {
		next.hosts[h.Host] = h
	}
	for {
		cur := l.state.Load()
		if cur.seq > seq {
			// A newer read is held. The drain's outcome is still the latest one (drains run
			// one at a time, each recording before the next begins): keep it with that view.
			if !drained || cur.failing == failing {
				return
			}
			merged := *cur
			merged.failing = failing
			if l.state.CompareAndSwap(cur, &merged) {
				return
			}
			continue
		}
		if !drained {
			next.failing = cur.failing
		}
		if l.state.CompareAndSwap(cur, next) {
			return
		}
	}
}

// unknown records that the store could not be read at seq: every host is behind until the
// next update.
func (l *Lag) unknown(seq uint64) {
	for {
		cur := l.state.Load()
		if cur.seq > seq {
			return
		}
		if l.state.CompareAndSwap(cur, &lagState{seq: seq, failing: cur.failing}) {
			return
		}
	}
}

// refresh reads the pending hosts from st and records them (see update).
func (l *Lag) refresh(ctx context.Context, st store.RelationshipSource, drained, failing bool) error {
	seq := l.begin()
	hosts, err := st.PendingRelationshipHosts(ctx)
	if err != nil {
		l.unknown(seq)
		return err
	}
	l.update(seq, hosts, drained, failing)
	return nil
}

// failClosed is a decorator over a Backend that denies, for a host that is behind (Lag), what
// the backend would allow: its relationships are not the store's, and a revocation waiting in
// the outbox must not leave the access it revokes in place. Put outside the decision cache, it
// covers cached answers too, and everything that asks the backend through it: the proxy's
// checks and tool lists, the admin API's check and explain.
type failClosed struct {
	Backend
	lag *Lag
}

// NewFailClosed wraps inner so that Check and CallableTools of a host that lag says is behind
// answer no (and no tools), before and after asking inner. Writes, reads and Ready go
// straight to inner. A nil lag returns inner itself.
func NewFailClosed(inner Backend, lag *Lag) Backend {
	if lag == nil {
		return inner
	}
	return failClosed{Backend: inner, lag: lag}
}

// behind reports whether the host of the check's resource, or of its subject when that is
// another one (never for what trustgate writes), is behind.
func (f failClosed) behind(req CheckRequest) bool {
	resource, subject := schema.HostOf(req.Resource), schema.HostOf(req.Subject.Object)
	return f.lag.Behind(resource) || (subject != resource && f.lag.Behind(subject))
}

func (f failClosed) Check(ctx context.Context, req CheckRequest) (bool, error) {
	if f.behind(req) {
		return false, nil
	}
	allowed, err := f.Backend.Check(ctx, req)
	if err != nil || !allowed {
		return false, err
	}
	// The host may have fallen behind while the backend answered.
	return !f.behind(req), nil
}

func (f failClosed) CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error) {
	if f.lag.Behind(hostKey) {
		return nil, nil
	}
	names, err := f.Backend.CallableTools(ctx, hostKey, serverKey, agentID)
	if err != nil || f.lag.Behind(hostKey) {
		return nil, err
	}
	return names, nil
}
