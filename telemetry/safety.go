package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MetricWebhookDeliveries counts messages to hosts' incoming webhooks by outcome, as Prometheus
// shows it.
const MetricWebhookDeliveries = "trustgate_webhook_deliveries_total"

// Webhooks is the counter of webhook messages. A nil *Webhooks records nothing.
//
// Labels are bounded: host exists in the store, outcome is one of the webhook package's
// (delivered, failed, dropped, no_webhook).
type Webhooks struct {
	deliveries metric.Int64Counter
}

func newWebhooks(meter metric.Meter) (*Webhooks, error) {
	c, err := meter.Int64Counter("trustgate.webhook_deliveries", metric.WithUnit("{message}"),
		metric.WithDescription("Messages to hosts' incoming webhooks, by host and outcome (delivered; failed: every attempt failed or the webhook refused it; dropped: the queue was full; no_webhook: the host has none)"))
	if err != nil {
		return nil, err
	}
	return &Webhooks{deliveries: c}, nil
}

// Delivery counts one message's outcome.
func (w *Webhooks) Delivery(host, outcome string) {
	if w == nil {
		return
	}
	w.deliveries.Add(context.Background(), 1, metric.WithAttributeSet(attribute.NewSet(labelHost.String(host), attribute.String("outcome", outcome))))
}

// Webhooks is the counter of webhook messages (nil for a nil Telemetry).
func (t *Telemetry) Webhooks() *Webhooks {
	if t == nil {
		return nil
	}
	return t.webhooks
}

// MetricAnomalyFlags counts anomaly flags raised on tool calls, as Prometheus shows it.
const MetricAnomalyFlags = "trustgate_anomaly_flags_total"

// Anomalies is the counter of anomaly flags. A nil *Anomalies records nothing. Labels are
// bounded: host exists in the store, flag is one of package anomaly's five.
type Anomalies struct {
	flags metric.Int64Counter
}

func newAnomalies(meter metric.Meter) (*Anomalies, error) {
	c, err := meter.Int64Counter("trustgate.anomaly_flags", metric.WithUnit("{flag}"),
		metric.WithDescription("Anomaly flags raised on tool calls, by host and flag (new_tool, new_server, off_hours, rate_spike, denial_streak)"))
	if err != nil {
		return nil, err
	}
	return &Anomalies{flags: c}, nil
}

// Flag counts one raised flag.
func (a *Anomalies) Flag(host, flag string) {
	if a == nil {
		return
	}
	a.flags.Add(context.Background(), 1, metric.WithAttributeSet(attribute.NewSet(labelHost.String(host), attribute.String("flag", flag))))
}

// Anomalies is the counter of anomaly flags (nil for a nil Telemetry).
func (t *Telemetry) Anomalies() *Anomalies {
	if t == nil {
		return nil
	}
	return t.anomalies
}
