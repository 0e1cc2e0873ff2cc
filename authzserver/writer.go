package authzserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/trustgate/trustgate/schema"
	"github.com/trustgate/trustgate/store"
)

// drainBatch is how many outbox entries one drain hands to SpiceDB at most.
const drainBatch = 500

// Writer keeps the backend's relationships equal to what the store implies. The store appends
// every relationship change to an outbox in the transaction that makes it; the writer applies
// the outbox in order (Sync, and periodically in Run) and, at start-up, reconciles the whole set
// (Reconcile), so nothing is lost when the backend was down or empty (the embedded memory
// datastore starts empty at every start).
type Writer struct {
	store   store.RelationshipSource
	backend Backend
	logger  *slog.Logger
	mu      sync.Mutex // one drain at a time in this process; the store serializes processes
	// lag is which hosts have changes the backend has not applied, updated after every drain
	// attempt and every sync interval (see Lag).
	lag *Lag
	// onSetAside, when set, is told of the changes a drain set aside (SetOnSetAside).
	onSetAside func(ctx context.Context, changes []SetAsideChange)
}

// SetAsideChange is a change the backend refused for good, which a drain set aside in the
// store's quarantine, with the backend's reason.
type SetAsideChange struct {
	store.RelationshipChange
	Reason string
}

// SetOnSetAside makes fn be called with the changes each drain set aside, once it has
// committed (the gateway writes an audit entry per change). Call it before the writer is used.
func (w *Writer) SetOnSetAside(fn func(ctx context.Context, changes []SetAsideChange)) {
	w.onSetAside = fn
}

// NewWriter makes a writer from the store to the backend. Its Lag counts a pending change
// after DefaultBehindAfter (Lag.SetBound changes that).
func NewWriter(st store.RelationshipSource, backend Backend, logger *slog.Logger) *Writer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{store: st, backend: backend, logger: logger, lag: NewLag(0)}
}

// Lag is which hosts have relationship changes the backend has not applied (NewFailClosed).
func (w *Writer) Lag() *Lag { return w.lag }

// lagReadTimeout bounds the read of the pending hosts after a drain: the caller's context
// (an admin request's) may be done, and the view must still be updated.
const lagReadTimeout = 10 * time.Second

// observe records, after a drain attempt (failed: it returned an error), which hosts still
// have changes pending. A read that fails leaves every host behind until the next one.
func (w *Writer) observe(ctx context.Context, failed bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lagReadTimeout)
	defer cancel()
	if err := w.lag.refresh(ctx, w.store, true, failed); err != nil {
		w.logger.Error("could not read which hosts have relationship changes pending; every host's calls are refused until it is read", "err", err)
	}
}

// ReconcileStats says what a reconciliation changed.
type ReconcileStats struct {
	Desired, Touched, Deleted int
}

// Reconcile makes the backend hold exactly the relationships the store implies (for the object
// types of trustgate's schema), then drops the outbox entries it has made redundant.
//
// It runs inside an outbox drain: the pending entries are read first, then the desired set is
// derived, so every pending entry is already reflected in what is written and may be removed.
func (w *Writer) Reconcile(ctx context.Context) (ReconcileStats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var stats ReconcileStats
	applied := false
	apply := func(ctx context.Context, _ []store.RelationshipChange) error {
		applied = true
		stats = ReconcileStats{}
		desired := map[string]schema.Relationship{}
		if err := w.store.Relationships(ctx, func(r schema.Relationship) error {
			desired[r.Key()] = r
			return nil
		}); err != nil {
			return fmt.Errorf("derive relationships from the store: %w", err)
		}
		stats.Desired = len(desired)
		var updates []Update
		for _, typ := range schema.ObjectTypes {
			if err := w.backend.ReadRelationships(ctx, typ, func(r schema.Relationship) error {
				key := r.Key()
				if d, ok := desired[key]; ok {
					if d.String() == r.String() {
						delete(desired, key) // present on both sides: nothing to do
					} // else: another caveat, which the touch below replaces
					return nil
				}
				updates = append(updates, Update{Op: OpDelete, Relationship: r})
				stats.Deleted++
				return nil
			}); err != nil {
				return err
			}
		}
		for _, r := range desired {
			updates = append(updates, Update{Op: OpTouch, Relationship: r})
			stats.Touched++
		}
		if _, err := w.backend.WriteRelationships(ctx, updates); err != nil {
			return err
		}
		return nil
	}
	if _, err := w.store.DrainRelationshipChanges(ctx, 0, apply); err != nil {
		w.observe(ctx, true)
		return stats, fmt.Errorf("reconcile relationships: %w", err)
	}
	// The drain calls apply only when entries are pending: reconcile regardless.
	if !applied {
		if err := apply(ctx, nil); err != nil {
			w.observe(ctx, true)
			return stats, fmt.Errorf("reconcile relationships: %w", err)
		}
	}
	w.observe(ctx, false)
	w.logger.Info("relationships reconciled", "desired", stats.Desired, "touched", stats.Touched, "deleted", stats.Deleted)
	w.refreshStatistics(ctx, stats)
	return stats, nil
}

// statisticsRefresher is a backend whose datastore's planner statistics can be gathered on
// demand (SpiceDB.RefreshStatistics).
type statisticsRefresher interface {
	RefreshStatistics(ctx context.Context) error
}

// refreshStatistics has the backend's datastore gather statistics after a reconciliation that
// changed as much as autovacuum waits for (50 rows and a tenth of the table), so that the
// first checks after a load into a fresh datastore (a new replica, a restore) are planned with
// the table's real size. A failure costs only speed until autovacuum runs: it is logged.
func (w *Writer) refreshStatistics(ctx context.Context, stats ReconcileStats) {
	r, ok := w.backend.(statisticsRefresher)
	changed := stats.Touched + stats.Deleted
	before := stats.Desired - stats.Touched + stats.Deleted
	if !ok || changed < 50+before/10 {
		return
	}
	if err := r.RefreshStatistics(ctx); err != nil {
		w.logger.Warn("could not refresh the authorization datastore's statistics after reconciling; checks may be slow until autovacuum analyzes it", "err", err)
	}
}

// Sync applies every pending outbox entry to the backend, in order, and returns the revision of
// the last write (empty when nothing was pending). When it returns nil, every change committed
// to the store before the call is enforced by checks made at least as fresh as that revision.
func (w *Writer) Sync(ctx context.Context) (rev Revision, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() { w.observe(ctx, err != nil) }()
	for {
		// The changes the drain sets aside, reported once it has committed (the transaction
		// may run apply more than once).
		var aside []SetAsideChange
		n, err := w.store.DrainRelationshipChanges(ctx, drainBatch, func(ctx context.Context, changes []store.RelationshipChange) error {
			aside = nil
			r, err := w.backend.WriteRelationships(ctx, collapse(changes))
			if err == nil {
				rev = r
				return nil
			}
			if !errors.Is(err, ErrRefused) {
				return err
			}
			// Refused for good: find the changes refused, apply the others in order, and
			// set the refused ones aside.
			refused := map[int64]string{}
			if r, err = w.applyIsolating(ctx, changes, refused); err != nil {
				return err
			}
			if r != "" {
				rev = r
			}
			for _, c := range changes {
				if reason, ok := refused[c.ID]; ok {
					aside = append(aside, SetAsideChange{RelationshipChange: c, Reason: reason})
				}
			}
			return &store.SetAside{Refused: refused}
		})
		if err != nil {
			return rev, fmt.Errorf("apply relationship changes: %w", err)
		}
		for _, c := range aside {
			w.logger.Error("the authorization backend refused a relationship change for good; it is set aside, and its host's calls are refused until an operator retries or discards it (the admin API's set-aside-changes, the dashboard's host page, trustgate admin outbox)",
				"id", c.ID, "host", schema.HostOf(c.Relationship.Resource), "op", c.Op, "relationship", c.Relationship.Key(), "reason", c.Reason)
		}
		if len(aside) > 0 && w.onSetAside != nil {
			w.onSetAside(ctx, aside)
		}
		if n < drainBatch {
			return rev, nil
		}
	}
}

// Run applies the outbox every interval until ctx ends, so changes made by other processes
// sharing the store (the CLI, other replicas) and changes whose first apply failed are enforced
// without waiting for a restart. Beside it, every interval, it reads which hosts have changes
// pending (Lag), so that a drain that hangs does not hide them.
func (w *Writer) Run(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		w.every(ctx, interval, func(ctx context.Context) error {
			readCtx, cancel := context.WithTimeout(ctx, lagReadTimeout)
			defer cancel()
			return w.lag.refresh(readCtx, w.store, false, false)
		}, "could not read which hosts have relationship changes pending; every host's calls are refused until it is read", "")
	})
	w.every(ctx, interval, func(ctx context.Context) error {
		_, err := w.Sync(ctx)
		return err
	}, "relationship changes not yet applied; retrying", "relationship changes applied again")
}

// every runs step every interval until ctx ends. The first failure of a run of failures is
// logged at error level as failed, and the first success after them as recovered (when not "").
func (w *Writer) every(ctx context.Context, interval time.Duration, step func(context.Context) error, failed, recovered string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := step(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			w.logger.Error(failed, "err", err)
			failing = true
		case err == nil && failing:
			if recovered != "" {
				w.logger.Info(recovered)
			}
			failing = false
		}
	}
}

// applyIsolating applies changes in order when a write of them all was refused for good:
// halves are written one after the other, a refused half is split again, and a single change
// refused is recorded in refused (id → reason) instead of written. Any other failure ends it.
func (w *Writer) applyIsolating(ctx context.Context, changes []store.RelationshipChange, refused map[int64]string) (Revision, error) {
	if len(changes) == 0 {
		return "", nil
	}
	rev, err := w.backend.WriteRelationships(ctx, collapse(changes))
	switch {
	case err == nil:
		return rev, nil
	case !errors.Is(err, ErrRefused):
		return "", err
	case len(changes) == 1:
		refused[changes[0].ID] = err.Error()
		return "", nil
	}
	mid := len(changes) / 2
	first, err := w.applyIsolating(ctx, changes[:mid], refused)
	if err != nil {
		return "", err
	}
	second, err := w.applyIsolating(ctx, changes[mid:], refused)
	if err != nil {
		return "", err
	}
	if second != "" {
		return second, nil
	}
	return first, nil
}

// collapse turns an ordered run of outbox entries into one write: SpiceDB refuses a request
// that names a relationship twice (caveat aside: a tuple is one relationship whatever its
// caveat), and only the last change to each relationship matters.
func collapse(changes []store.RelationshipChange) []Update {
	last := make(map[string]int, len(changes))
	for i, c := range changes {
		last[c.Relationship.Key()] = i
	}
	updates := make([]Update, 0, len(last))
	for i, c := range changes {
		if last[c.Relationship.Key()] != i {
			continue
		}
		op := OpTouch
		if c.Op == store.Delete {
			op = OpDelete
		}
		updates = append(updates, Update{Op: op, Relationship: c.Relationship})
	}
	return updates
}
