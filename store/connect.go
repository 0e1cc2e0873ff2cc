package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Backoff of the first connection to a network database.
const (
	connectFirstWait = 200 * time.Millisecond
	connectMaxWait   = 5 * time.Second
)

// connectWithRetry calls ping until it succeeds, retrying with exponential backoff until timeout
// runs out: at start-up the database may not be up yet. Errors the server answers with that no
// wait will fix (bad credentials, missing database) end the retries at once. Every message goes
// through red, so that no password is ever logged or returned.
func connectWithRetry(ctx context.Context, engine, addr string, timeout time.Duration, log *slog.Logger, red redactor, ping func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	attemptCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	wait := connectFirstWait
	var cause error // the last failure that says why, not merely that time ran out
	for attempt := 1; ; attempt++ {
		err := ping(attemptCtx)
		if err != nil && (cause == nil || !errors.Is(err, context.DeadlineExceeded)) {
			cause = err
		}
		if err == nil {
			if attempt > 1 {
				log.Info("connected to database", "engine", engine, "addr", addr, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("connect to %s at %s: %w", engine, addr, ctx.Err())
		}
		if permanentConnectError(err) {
			return red.err(fmt.Errorf("connect to %s at %s: %w", engine, addr, err))
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return red.err(fmt.Errorf("cannot reach %s database at %s: gave up after %s (%d attempts): %w", engine, addr, timeout, attempt, cause))
		}
		w := min(wait, remaining)
		log.Warn("database is not reachable yet; retrying",
			"engine", engine, "addr", addr, "attempt", attempt, "retry_in", w, "error", red.text(err.Error()))
		if sleepCtx(attemptCtx, w) != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("connect to %s at %s: %w", engine, addr, ctx.Err())
			}
			return red.err(fmt.Errorf("cannot reach %s database at %s: gave up after %s (%d attempts): %w", engine, addr, timeout, attempt, cause))
		}
		wait = min(wait*2, connectMaxWait)
	}
}

// permanentConnectError reports an error the server answered with that waiting will not fix.
func permanentConnectError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	// Class 28: invalid authorization; 3D000: the database does not exist.
	return strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000"
}
