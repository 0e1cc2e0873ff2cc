package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// AuthzOperation is a kind of call to the authorization engine (a bounded label).
type AuthzOperation string

const (
	// AuthzCheck is one permission check (CheckPermission).
	AuthzCheck AuthzOperation = "check"
	// AuthzLookup lists what a subject may reach (the tools/list filter).
	AuthzLookup AuthzOperation = "lookup"
	// AuthzWrite writes or deletes relationships.
	AuthzWrite AuthzOperation = "write"
)

// Authz is the latency histogram of calls to the authorization engine, for a Backend (or a
// decorator around one) to report. A nil *Authz records nothing.
type Authz struct {
	duration metric.Float64Histogram
}

func newAuthz(meter metric.Meter) (*Authz, error) {
	h, err := newHistogram(meter, "trustgate.authz.duration",
		"Latency of calls to the authorization engine (SpiceDB), by operation (check, lookup, write) and outcome (ok, error)")
	if err != nil {
		return nil, err
	}
	return &Authz{duration: h}, nil
}

// Observe records one call that took took; err is the call's error (nil: the engine answered,
// whether it allowed or denied).
func (a *Authz) Observe(ctx context.Context, op AuthzOperation, took time.Duration, err error) {
	if a == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	a.duration.Record(context.WithoutCancel(ctx), took.Seconds(), metric.WithAttributeSet(attribute.NewSet(
		attribute.String("operation", string(op)), attribute.String("outcome", outcome))))
}
