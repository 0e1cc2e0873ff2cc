package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// RelationshipLag is what the relationship writer knows at one moment (authzserver.Lag): how
// many hosts are behind (their calls are refused until their changes are applied), how many
// changes are set aside, and the age of the oldest change not yet applied.
type RelationshipLag struct {
	// Unknown: the writer has not read the outbox from the store yet, or its last read failed;
	// every host is behind then, whatever HostsBehind counts.
	Unknown     bool
	HostsBehind int
	SetAside    int
	OldestAge   time.Duration
}

// ObserveRelationshipLag reports read() at every collection as the gauges
// trustgate_relationships_unknown, trustgate_relationships_hosts_behind,
// trustgate_relationships_set_aside and trustgate_relationships_oldest_pending_age_seconds. A nil
// Telemetry does nothing.
func (t *Telemetry) ObserveRelationshipLag(read func() RelationshipLag) error {
	if t == nil || t.meter == nil {
		return nil
	}
	unknown, err := t.meter.Int64ObservableGauge("trustgate.relationships.unknown",
		metric.WithDescription("1 while this process has not read the relationship outbox from the store, or its last read failed: every host's calls are refused; 0 otherwise"))
	if err != nil {
		return fmt.Errorf("gauge unknown: %w", err)
	}
	behind, err := t.meter.Int64ObservableGauge("trustgate.relationships.hosts_behind",
		metric.WithDescription("Hosts whose relationship changes the authorization backend has not applied (failed, set aside, or pending longer than the bound): their calls are refused"))
	if err != nil {
		return fmt.Errorf("gauge hosts_behind: %w", err)
	}
	aside, err := t.meter.Int64ObservableGauge("trustgate.relationships.set_aside",
		metric.WithDescription("Relationship changes the authorization backend refused for good, set aside until an operator retries or discards them"))
	if err != nil {
		return fmt.Errorf("gauge set_aside: %w", err)
	}
	age, err := t.meter.Float64ObservableGauge("trustgate.relationships.oldest_pending_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest relationship change not yet applied to the authorization backend (0: none)"))
	if err != nil {
		return fmt.Errorf("gauge oldest_pending_age: %w", err)
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		l := read()
		var u int64
		if l.Unknown {
			u = 1
		}
		o.ObserveInt64(unknown, u)
		o.ObserveInt64(behind, int64(l.HostsBehind))
		o.ObserveInt64(aside, int64(l.SetAside))
		o.ObserveFloat64(age, l.OldestAge.Seconds())
		return nil
	}, unknown, behind, aside, age)
	if err != nil {
		return fmt.Errorf("relationship lag gauges: %w", err)
	}
	return nil
}
