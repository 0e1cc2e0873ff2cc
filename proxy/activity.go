package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/trustgate/trustgate/store"
)

// ActivityRecorder records when an agent last made an authenticated request (the "last used"
// of the admin API, the dashboard and My connections). store.Store satisfies it.
type ActivityRecorder interface {
	TouchAgent(ctx context.Context, host, id string, at time.Time) error
}

// activityInterval is how often one agent's activity is written at most: the store keeps it to
// the minute, so more writes would change nothing.
const activityInterval = time.Minute

// activityMemoLimit bounds the agents remembered between writes; past it the memory is
// forgotten at once (the next request of each agent writes again, which is harmless).
const activityMemoLimit = 1 << 16

// activityWriteTimeout bounds one write in the background.
const activityWriteTimeout = 5 * time.Second

// activity writes agents' last use in the background, at most once per activityInterval per
// agent and replica, so a request never waits for it and the hot path reads nothing for it.
type activity struct {
	rec ActivityRecorder
	log *slog.Logger

	mu   sync.Mutex
	last map[activityKey]time.Time
}

type activityKey struct{ host, agent string }

func newActivity(rec ActivityRecorder, log *slog.Logger) *activity {
	if rec == nil {
		return nil
	}
	return &activity{rec: rec, log: log, last: make(map[activityKey]time.Time)}
}

// seen notes that the agent made a request at at; it writes when this replica has not written
// for the agent within activityInterval.
func (a *activity) seen(host, agent string, at time.Time) {
	if a == nil || agent == "" {
		return
	}
	k := activityKey{host, agent}
	a.mu.Lock()
	if prev, ok := a.last[k]; ok && at.Sub(prev) < activityInterval {
		a.mu.Unlock()
		return
	}
	if len(a.last) >= activityMemoLimit {
		clear(a.last)
	}
	a.last[k] = at
	a.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), activityWriteTimeout)
		defer cancel()
		if err := a.rec.TouchAgent(ctx, host, agent, at); err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.Warn("proxy: could not record the agent's last use", "host", host, "agent", agent, "err", err)
			a.mu.Lock()
			delete(a.last, k) // try again at the next request
			a.mu.Unlock()
		}
	}()
}
