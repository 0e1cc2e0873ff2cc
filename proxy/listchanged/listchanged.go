// Package listchanged tells connected agents when the tools they may call change: the
// notifier behind trustgate's notifications/tools/list_changed.
//
// The proxy subscribes each open client stream under its key (host, agent, server). One
// watcher goroutine (Run) follows the store's control-plane generation, which every committed
// change to hosts, humans, servers, tools, grants, agents or consents advances in its own
// transaction, on whichever replica made it. When the generation moves, the watcher first
// applies the pending relationship changes (Settle), so that the authorization backend holds
// every change the new generation stands for, then computes, per subscribed key, the names of
// the tools the agent's tools/list would show (Listed), and signals the subscriptions of the
// keys whose set differs from the one it computed before. A change that leaves an agent's set
// as it was (another agent's level, a tool of another server, a new human) signals nothing.
//
// Cost: while nothing is subscribed the watcher sleeps; while something is, it reads the
// generation once per Interval (one single-row read) and, per change, computes the set of each
// subscribed key once (several changes within one interval count as one).
package listchanged

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultInterval is how often the watcher reads the generation while streams are subscribed.
const DefaultInterval = 250 * time.Millisecond

// computeTimeout bounds one round's settling, and each key's computation.
const computeTimeout = 10 * time.Second

// parallel bounds the keys computed at once.
const parallel = 8

// Key names the tool list of one agent on one server.
type Key struct{ Host, Agent, Server string }

// Config is what the notifier reads.
type Config struct {
	// Generation is the store's control-plane generation (store.Store.ControlGeneration).
	Generation func(ctx context.Context) (int64, error)
	// Listed is the names of the tools the key's agent is shown on the key's server.
	Listed func(ctx context.Context, k Key) ([]string, error)
	// Settle, when set, applies the store's pending relationship changes to the authorization
	// backend before a round computes anything (the relationship writer's Sync).
	Settle func(ctx context.Context) error
	// Interval is how often the generation is read while something is subscribed (default
	// DefaultInterval).
	Interval time.Duration
	Logger   *slog.Logger // default: discarded
}

// Notifier signals subscriptions when their key's tool set changes. It is safe for concurrent
// use; Run is its one long-lived goroutine.
type Notifier struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{} // a subscription came: the watcher stops sleeping

	mu   sync.Mutex
	keys map[Key]*watched
}

// watched is the state of one subscribed key.
type watched struct {
	subs map[*Subscription]struct{}
	set  []string // sorted; valid when known
	// known: set was computed after the control-plane generation was gen (so it reflects every
	// change up to gen at least).
	known bool
	gen   int64
}

// Subscription is one stream's interest in a key. C receives a value when the key's tool set
// changed since the last value was taken (signals coalesce).
type Subscription struct {
	C    <-chan struct{}
	c    chan struct{}
	key  Key
	n    *Notifier
	once sync.Once
}

// New makes a notifier; Run makes it watch.
func New(cfg Config) *Notifier {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg, log: log, wake: make(chan struct{}, 1), keys: map[Key]*watched{}}
}

// Subscribe registers interest in k until the subscription is closed. The first subscription
// of a key computes its set before it returns (after settling, as a round does), so that a
// change made once the stream is open is compared with the set as it was then; when that
// fails, the watcher computes it in its next round.
func (n *Notifier) Subscribe(ctx context.Context, k Key) *Subscription {
	c := make(chan struct{}, 1)
	s := &Subscription{C: c, c: c, key: k, n: n}
	n.mu.Lock()
	w := n.keys[k]
	first := w == nil
	if first {
		w = &watched{subs: map[*Subscription]struct{}{}}
		n.keys[k] = w
	}
	w.subs[s] = struct{}{}
	n.mu.Unlock()
	if first {
		if g, err := n.generation(ctx); err == nil && n.settle(ctx) == nil {
			_ = n.compute(ctx, k, g)
		}
	}
	select {
	case n.wake <- struct{}{}: // the watcher starts following the generation (or computes k)
	default:
	}
	return s
}

// Close ends the subscription; closing twice is harmless. A key without subscriptions is
// forgotten.
func (s *Subscription) Close() {
	s.once.Do(func() {
		n := s.n
		n.mu.Lock()
		defer n.mu.Unlock()
		w := n.keys[s.key]
		if w == nil {
			return
		}
		delete(w.subs, s)
		if len(w.subs) == 0 {
			delete(n.keys, s.key)
		}
	})
}

// Subscribed is the number of keys with at least one subscription.
func (n *Notifier) Subscribed() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.keys)
}

// Run watches until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Interval)
	defer tick.Stop()
	var (
		failing  bool
		lastFail time.Time
	)
	for {
		wait := tick.C
		if n.Subscribed() == 0 {
			wait = nil // nobody listens: sleep until someone does
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-n.wake:
		}
		if failing && time.Since(lastFail) < time.Second {
			continue // a failing store or backend is asked once a second, not at every tick
		}
		err := n.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				n.log.Warn("tool-list notifications delayed: the store or the authorization backend failed; retrying", "err", err)
			}
			failing, lastFail = true, time.Now()
			continue
		}
		if failing {
			n.log.Info("tool-list notifications resumed")
			failing = false
		}
	}
}

// round reads the generation and computes every key whose set is not known as of it, after
// applying the pending relationship changes. A key whose computation fails keeps its older
// generation and is computed again in the next round; the error is the last such failure, or
// the failure to read the generation or to settle.
func (n *Notifier) round(ctx context.Context) error {
	g, err := n.generation(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	var todo []Key
	for k, w := range n.keys {
		if !w.known || w.gen != g {
			todo = append(todo, k)
		}
	}
	n.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	// Every change committed before the generation was read is applied to the backend before
	// a set is computed, also a change another replica committed and has not applied yet.
	if err := n.settle(ctx); err != nil {
		return err
	}
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallel)
		errMu   sync.Mutex
		lastErr error
	)
	for _, k := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.compute(ctx, k, g); err != nil {
				errMu.Lock()
				lastErr = err
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	return lastErr
}

// settle applies the pending relationship changes (Config.Settle).
func (n *Notifier) settle(ctx context.Context) error {
	if n.cfg.Settle == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, computeTimeout)
	defer cancel()
	return n.cfg.Settle(ctx)
}

func (n *Notifier) generation(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, computeTimeout)
	defer cancel()
	return n.cfg.Generation(ctx)
}

// compute sets k's tool set as of generation g (read before) and signals its subscriptions
// when the set differs from the one known before.
func (n *Notifier) compute(ctx context.Context, k Key, g int64) error {
	ctx, cancel := context.WithTimeout(ctx, computeTimeout)
	defer cancel()
	names, err := n.cfg.Listed(ctx, k)
	if err != nil {
		return err
	}
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.keys[k]
	if w == nil {
		return nil // its last stream closed meanwhile
	}
	if w.known && w.gen > g {
		return nil // a newer computation was first
	}
	changed := w.known && !slices.Equal(w.set, names)
	w.set, w.known, w.gen = names, true, g
	if changed {
		n.log.Debug("tool list changed; notifying the agent's streams", "host", k.Host, "agent", k.Agent, "server", k.Server, "streams", len(w.subs))
		for s := range w.subs {
			select {
			case s.c <- struct{}{}:
			default: // a signal is already waiting
			}
		}
	}
	return nil
}
