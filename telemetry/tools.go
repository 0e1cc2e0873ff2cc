package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MetricToolDefinitionChanges counts tool definitions found changed since their approval, and
// new tools found, as Prometheus shows it.
const MetricToolDefinitionChanges = "trustgate_tool_definition_changes_total"

// Tools is the counter of reviewed tool definitions. A nil *Tools records nothing.
//
// Labels are bounded: host and server exist in the store, kind is "changed", "new" or "screened", source
// is "sync" (an admin's server sync) or "tools_list" (seen in a tools/list answer passing the
// gateway). The tool is not a label: upstreams choose tool names.
type Tools struct {
	changes metric.Int64Counter
}

func newTools(meter metric.Meter) (*Tools, error) {
	c, err := meter.Int64Counter("trustgate.tool_definition_changes", metric.WithUnit("{change}"),
		metric.WithDescription("Tool definitions flagged for review (changed since approval, or new), each counted once, by host, server, kind (changed, new, screened: new and its definition may carry hidden instructions) and source (sync, tools_list)"))
	if err != nil {
		return nil, err
	}
	return &Tools{changes: c}, nil
}

// DefinitionChange counts one change, flagged once.
func (t *Tools) DefinitionChange(ctx context.Context, host, server, kind, source string) {
	if t == nil {
		return
	}
	t.changes.Add(context.WithoutCancel(ctx), 1, metric.WithAttributeSet(attribute.NewSet(
		labelHost.String(host), labelServer.String(server), attribute.String("kind", kind), attribute.String("source", source))))
}
