package gateway

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// NewOTLPTracer returns a tracer exporting spans over OTLP/HTTP to endpoint
// (host:port; the OTEL_EXPORTER_OTLP_* variables refine it), sampling ratio
// of the requests, and the function that flushes and stops it. Spans carry
// the route, the status code and the context id: never a body, a header or
// a PAN.
func NewOTLPTracer(ctx context.Context, endpoint string, insecure bool, ratio float64) (trace.Tracer, func(context.Context) error, error) {
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(endpoint)}
	if insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP exporter for %s: %w", endpoint, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "pcistream-gateway"))),
	)
	return tp.Tracer("github.com/pcistream/pcistream/processors/gateway"), tp.Shutdown, nil
}
