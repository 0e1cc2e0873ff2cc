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
