package gateway

import (
	"context"
	"time"
)

// oauthPruneInterval is how often expired OAuth codes, tokens and revocations are deleted.
const oauthPruneInterval = time.Hour

// pruneOAuth deletes the OAuth rows and revocations that expired (store.PruneOAuthRequests),
// at start and then every interval until ctx ends, so that neither grows without bound. Every
// replica does it; the deletes are idempotent.
func (g *Gateway) pruneOAuth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := g.store.PruneOAuthRequests(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			g.cfg.Logger.Warn("could not delete expired OAuth tokens; trying again later", "err", err)
		case n > 0:
			g.cfg.Logger.Info("deleted expired OAuth codes, tokens and revocations", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heldSweepInterval is how often calls held for approval that no longer wait are expired.
const heldSweepInterval = 10 * time.Second

// expireHeldCalls expires, at start and then every interval, the held calls whose wait ended
// or whose replica went away (a restart while a call was held): they are never forwarded, and
// each expiry is an audit entry (approval.Service.Sweep).
func (g *Gateway) expireHeldCalls(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := g.approvals.Sweep(ctx); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Warn("could not expire abandoned held calls; trying again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
