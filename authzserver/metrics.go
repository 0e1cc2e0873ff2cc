package authzserver

import (
	"context"
	"time"

	"github.com/trustgate/trustgate/telemetry"
)

// metrics is a decorator over a Backend that reports the latency and outcome of its checks and
// tool lookups to the trustgate_authz_duration_seconds histogram. Writes, reads and Ready are
// not measured.
type metrics struct {
	Backend
	authz *telemetry.Authz
}

// NewMetrics wraps inner so that its Check and CallableTools are measured with a's instruments.
// Put outside the decision cache, the histogram shows what a decision cost the request, cache
// hits included. Without instruments (a nil a) it returns inner itself.
func NewMetrics(inner Backend, a *telemetry.Authz) Backend {
	if a == nil {
		return inner
	}
	return metrics{Backend: inner, authz: a}
}

func (m metrics) Check(ctx context.Context, req CheckRequest) (bool, error) {
	start := time.Now()
	ok, err := m.Backend.Check(ctx, req)
	m.authz.Observe(ctx, telemetry.AuthzCheck, time.Since(start), err)
	return ok, err
}

func (m metrics) CallableTools(ctx context.Context, hostKey, serverKey, agentID string) ([]string, error) {
	start := time.Now()
	names, err := m.Backend.CallableTools(ctx, hostKey, serverKey, agentID)
	m.authz.Observe(ctx, telemetry.AuthzLookup, time.Since(start), err)
	return names, err
}
