package gateway

import (
	"context"
	"time"

	"github.com/trustgate/trustgate/authzserver"
	"github.com/trustgate/trustgate/telemetry"
)

// observedBackend reports the latency and outcome of the proxy's authorization questions to
// the trustgate_authz_duration_seconds histogram. It sits outside the decision cache, so the
// histogram shows what a decision cost the request, cache hits included.
type observedBackend struct {
	authzserver.Backend
	authz *telemetry.Authz
}

func observeBackend(b authzserver.Backend, a *telemetry.Authz) authzserver.Backend {
	if a == nil {
		return b
	}
	return observedBackend{Backend: b, authz: a}
}

func (o observedBackend) Check(ctx context.Context, req authzserver.CheckRequest) (bool, error) {
	start := time.Now()
	ok, err := o.Backend.Check(ctx, req)
	o.authz.Observe(ctx, telemetry.AuthzCheck, time.Since(start), err)
	return ok, err
}

func (o observedBackend) CallableTools(ctx context.Context, host, server, agentID string) ([]string, error) {
	start := time.Now()
	names, err := o.Backend.CallableTools(ctx, host, server, agentID)
	o.authz.Observe(ctx, telemetry.AuthzLookup, time.Since(start), err)
	return names, err
}
