// Package telemetry is trustgate's OpenTelemetry set-up: one TracerProvider and one
// MeterProvider per process, built from a small Config, with
//
//   - traces exported over OTLP/HTTP when an endpoint is configured (Config.OTLPEndpoint, or the
//     standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT variables), and a
//     no-op tracer otherwise, so that a process that exports nothing pays next to nothing;
//   - metrics read by a Prometheus exporter into a registry of the process's own (never the
//     global one), served by MetricsHandler together with Go runtime and process metrics;
//   - W3C Trace Context (traceparent, tracestate) as the propagation format.
//
// Callers use typed instruments (Proxy, Authz) and never touch OpenTelemetry themselves. Nothing
// here sets OpenTelemetry's global providers.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of the resource when Config.ServiceName is empty.
const DefaultServiceName = "trustgate"

// instrumentationName names trustgate's tracer and meter.
const instrumentationName = "github.com/trustgate/trustgate"

// Environment variables of the OpenTelemetry specification that turn trace export on.
const (
	EnvOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Config is what the process's telemetry is built from.
type Config struct {
	// ServiceName and ServiceVersion describe the process (resource attributes service.name
	// and service.version; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them).
	ServiceName    string
	ServiceVersion string
	// OTLPEndpoint is the base URL of an OTLP/HTTP collector, e.g. http://collector:4318;
	// spans are sent to <endpoint>/v1/traces. Empty: the standard environment variables
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL) and OTEL_EXPORTER_OTLP_ENDPOINT (a base
	// URL) are used; when neither is set, no span is exported and the tracer is a no-op.
	OTLPEndpoint string
	// SpanProcessor, when set, also receives every span (tests record spans with it); it
	// turns tracing on like an OTLP endpoint does.
	SpanProcessor sdktrace.SpanProcessor
	Logger        *slog.Logger // default: discarded
}

// Telemetry is the process's tracer and meter providers and its instruments.
type Telemetry struct {
	log        *slog.Logger
	tracing    bool
	tp         trace.TracerProvider
	sdkTP      *sdktrace.TracerProvider // nil when not tracing
	mp         *sdkmetric.MeterProvider
	registry   *prometheus.Registry
	propagator propagation.TextMapPropagator
	proxy      *Proxy
	authz      *Authz
	tools      *Tools
	webhooks   *Webhooks
	anomalies  *Anomalies
	meter      metric.Meter
}

// New builds the providers and instruments. Nothing is sent anywhere before the first span
// ends; an unreachable collector is reported by the exporter, never fatal.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	t := &Telemetry{log: cfg.Logger, propagator: propagation.TraceContext{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	name := cfg.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	// Traces.
	exporter, endpoint, err := traceExporter(ctx, cfg.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	if exporter != nil || cfg.SpanProcessor != nil {
		opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
		if exporter != nil {
			opts = append(opts, sdktrace.WithBatcher(exporter))
			t.log.Info("exporting traces over OTLP/HTTP", "endpoint", endpoint)
		}
		if cfg.SpanProcessor != nil {
			opts = append(opts, sdktrace.WithSpanProcessor(cfg.SpanProcessor))
		}
		t.sdkTP = sdktrace.NewTracerProvider(opts...)
		t.tp, t.tracing = t.sdkTP, true
	} else {
		t.tp = tracenoop.NewTracerProvider()
	}

	// Metrics: a Prometheus registry of our own, with Go runtime and process metrics.
	t.registry = prometheus.NewRegistry()
	if err := t.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register Go metrics: %w", err)
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register process metrics: %w", err)
	}
	promExporter, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(promExporter), sdkmetric.WithResource(res))

	tracer := t.tp.Tracer(instrumentationName)
	meter := t.mp.Meter(instrumentationName)
	t.meter = meter
	if t.proxy, err = newProxy(tracer, meter, t.propagator); err != nil {
		return nil, err
	}
	if t.authz, err = newAuthz(meter); err != nil {
		return nil, err
	}
	if t.tools, err = newTools(meter); err != nil {
		return nil, err
	}
	if t.webhooks, err = newWebhooks(meter); err != nil {
		return nil, err
	}
	if t.anomalies, err = newAnomalies(meter); err != nil {
		return nil, err
	}
	return t, nil
}

// traceExporter is the OTLP/HTTP span exporter when an endpoint is configured (nil when not),
// and the endpoint for the logs.
func traceExporter(ctx context.Context, endpoint string) (sdktrace.SpanExporter, string, error) {
	var opts []otlptracehttp.Option
	switch {
	case endpoint != "":
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "", fmt.Errorf("OTLP endpoint %q must be an http(s) URL such as http://collector:4318", redactURL(endpoint))
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, "", fmt.Errorf("OTLP endpoint %q: give scheme, host, port and path only (headers go in OTEL_EXPORTER_OTLP_HEADERS)", redactURL(endpoint))
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		endpoint = u.String()
	case os.Getenv(EnvOTLPTracesEndpoint) != "":
		endpoint = os.Getenv(EnvOTLPTracesEndpoint) // read by the exporter itself
	case os.Getenv(EnvOTLPEndpoint) != "":
		endpoint = os.Getenv(EnvOTLPEndpoint) // read by the exporter itself
	default:
		return nil, "", nil
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return exp, redactURL(endpoint), nil
}

// redactURL drops credentials and query from a URL for the logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Tracing reports whether spans are recorded (an exporter or a span processor is configured).
func (t *Telemetry) Tracing() bool { return t != nil && t.tracing }

// Proxy is the MCP proxy's instruments (nil for a nil Telemetry: recording nothing).
func (t *Telemetry) Proxy() *Proxy {
	if t == nil {
		return nil
	}
	return t.proxy
}

// Tools is the counter of reviewed tool definitions (nil for a nil Telemetry).
func (t *Telemetry) Tools() *Tools {
	if t == nil {
		return nil
	}
	return t.tools
}

// Authz is the authorization backend's instruments (nil for a nil Telemetry).
func (t *Telemetry) Authz() *Authz {
	if t == nil {
		return nil
	}
	return t.authz
}

// MetricsHandler serves the Prometheus text exposition of the process's metrics: trustgate's
// own, Go runtime and process metrics. Serve it where only operators reach it.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(t.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// Handler wraps h in a server span per request named "<operation> <METHOD>", continuing a W3C
// trace context the client sent. Without tracing it returns h itself.
func (t *Telemetry) Handler(operation string, h http.Handler) http.Handler {
	if !t.Tracing() {
		return h
	}
	return otelhttp.NewHandler(h, operation,
		otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(t.propagator),
		// Spans only: HTTP metrics would take labels from client-chosen values (Host).
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string { return op + " " + r.Method }),
	)
}

// Shutdown flushes pending spans and stops the providers; ctx bounds the flush.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	if t.sdkTP != nil {
		if err := t.sdkTP.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush spans: %w", err))
		}
	}
	if err := t.mp.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop metrics: %w", err))
	}
	return errors.Join(errs...)
}

// newHistogram is a histogram in seconds with buckets from 100µs to 60s.
func newHistogram(meter metric.Meter, name, description string) (metric.Float64Histogram, error) {
	h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(description),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	if err != nil {
		return nil, fmt.Errorf("histogram %s: %w", name, err)
	}
	return h, nil
}

// latencyBuckets (seconds): a decision from a warm cache takes well under a millisecond, a
// proxied tool call up to a minute.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}
