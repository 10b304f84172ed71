package shop

import (
	"context"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// NewTracerProvider returns the tracer provider of service: it samples
// every trace and exports its spans with exp, if not nil.
func NewTracerProvider(service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(sdkresource.NewSchemaless(attribute.String("service.name", service))),
	}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...)
}

// TracerFromEnv returns the tracer provider of service for the programs:
// with OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// set, spans are exported there over OTLP/HTTP (the exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables); otherwise they are not
// exported, and the trace ids in the logs and the databases show the
// traces. Shut the provider down to flush its spans.
func TracerFromEnv(ctx context.Context, service string) (*sdktrace.TracerProvider, error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return NewTracerProvider(service, nil), nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	return NewTracerProvider(service, exp), nil
}
