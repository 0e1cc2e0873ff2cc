package oauthserver

import (
	"context"
	"time"
)

// Dynamically registered clients that nobody uses are deleted: registration is open, and
// without this every registration (throttled per address, see RegistrationsPerHour) would stay
// in the store forever. A client is used once an authorization code was issued to it.

const (
	// UnusedClientTTL is how long a registered client may stay unused before it is deleted.
	UnusedClientTTL = 24 * time.Hour
	// DefaultPruneInterval is how often RunPruner deletes unused clients.
	DefaultPruneInterval = time.Hour
)

// PruneUnusedClients deletes the dynamically registered clients of every host registered more
// than UnusedClientTTL ago (by the server's clock) that were never used, and returns how many.
func (s *Server) PruneUnusedClients(ctx context.Context) (int, error) {
	return s.cfg.Store.PruneUnusedOAuthClients(ctx, s.now().Add(-UnusedClientTTL))
}

// RunPruner calls PruneUnusedClients every interval (DefaultPruneInterval when <= 0) until ctx
// ends. Replicas may all run it: deleting twice is harmless.
func (s *Server) RunPruner(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPruneInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.addrLimiter.Sweep(s.now())
			s.regLimiter.Sweep(s.now())
			s.codeLimiter.Sweep(s.now())
			s.beginLimiter.Sweep(s.now())
			s.acctBackoff.Sweep(s.now())
			if _, err := s.cfg.Store.PruneBrowserSessions(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("oauthserver: prune expired browser sessions", "err", err)
			}
			if _, err := s.cfg.Store.PruneEmailCodes(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("oauthserver: prune email codes", "err", err)
			}
			n, err := s.PruneUnusedClients(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("oauthserver: prune unused clients", "err", err)
				}
				continue
			}
			if n > 0 {
				s.log.Info("oauthserver: deleted clients registered but never used", "count", n, "unused_for", UnusedClientTTL)
			}
		}
	}
}
