package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/internal/broker"
)

// Tracing turns the broker's trace reports (broker.Tracer) into
// OpenTelemetry spans exported over OTLP. It is configured by the
// standard variables: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (unset: no tracing),
// OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (http/protobuf, the default, or
// grpc), their headers, timeout, compression and certificate variables,
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (default: parent-based,
// always on), OTEL_BSP_* (the batch processor), OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, and OTEL_SDK_DISABLED.
//
// Spans are queued to a bounded batch processor that drops when full:
// a slow or broken endpoint never blocks a publish.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TraceContext
	// parentBased: the sampler follows the parent's sampled flag (the
	// default), so a message whose traceparent is not sampled is skipped
	// before any work.
	parentBased bool
}

// TracingFromEnv returns the Tracing the environment configures, or nil
// when it configures none.
func TracingFromEnv(ctx context.Context, logger *slog.Logger) (*Tracing, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q: Spool exports traces with http/protobuf or grpc", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName())))
	if err != nil {
		res = resource.Default()
	}
	// The sampler comes from OTEL_TRACES_SAMPLER (the SDK reads it).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	logger.Info("tracing: exporting spans over OTLP", "protocol", cmpOr(proto, "http/protobuf"))
	sampler := os.Getenv("OTEL_TRACES_SAMPLER")
	return &Tracing{tp: tp, tracer: tp.Tracer("github.com/spoolmq/spool/broker"),
		parentBased: sampler == "" || strings.HasPrefix(sampler, "parentbased_")}, nil
}

func serviceName() string {
	if n := os.Getenv("OTEL_SERVICE_NAME"); n != "" {
		return n
	}
	return "spool"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Shutdown exports what is queued (within ctx) and stops.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Broker returns the broker.Tracer of t; nil when t is nil, so that an
// untraced broker does no tracing work.
func (t *Tracing) Broker() broker.Tracer {
	if t == nil {
		return nil
	}
	return brokerTracer{t}
}

type brokerTracer struct{ t *Tracing }

// skip reports whether a message's spans would not be recorded: its
// producer did not sample it and the sampler follows the parent.
func (bt brokerTracer) skip(tc broker.TraceContext) bool { return !wants(bt.t.parentBased, tc.Parent) }

func (bt brokerTracer) Wants(traceparent []byte) bool { return wants(bt.t.parentBased, traceparent) }

// wants reads the sampled flag, bit 0 of the traceparent's last hex digit
// (version 00: 55 bytes); anything else is left to the sampler.
func wants[T string | []byte](parentBased bool, p T) bool {
	if !parentBased || len(p) != 55 {
		return true
	}
	switch c := p[54]; {
	case c >= '0' && c <= '9':
		return (c-'0')&1 == 1
	case c >= 'a' && c <= 'f':
		return (c-'a'+10)&1 == 1
	}
	return true
}

// remote returns the span context a message's trace context names.
func (bt brokerTracer) remote(tc broker.TraceContext) trace.SpanContext {
	carrier := propagation.MapCarrier{"traceparent": tc.Parent}
	if tc.State != "" {
		carrier["tracestate"] = tc.State
	}
	return trace.SpanContextFromContext(bt.t.prop.Extract(context.Background(), carrier))
}

var spoolSystem = attribute.String("messaging.system", "spool")

func (bt brokerTracer) Published(topic string, parents []broker.TraceContext, messages int, start, end time.Time, err error) {
	links := make([]trace.Link, 0, len(parents))
	var parent trace.SpanContext
	traces := 0
	for _, tc := range parents {
		if bt.skip(tc) {
			continue
		}
		sc := bt.remote(tc)
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() || parent.TraceID() != sc.TraceID() {
			traces++
		}
		if !parent.IsValid() {
			parent = sc
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	if len(links) == 0 {
		return
	}
	ctx := context.Background()
	if traces == 1 {
		// One trace: the broker's span is a child of its first producer
		// span (and linked to every message's).
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	_, span := bt.t.tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithLinks(links...), trace.WithAttributes(spoolSystem,
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", messages)))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
}

func (bt brokerTracer) child(tc broker.TraceContext, name string, at time.Time, attrs ...attribute.KeyValue) trace.Span {
	if bt.skip(tc) {
		return nil
	}
	sc := bt.remote(tc)
	if !sc.IsValid() {
		return nil
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	_, span := bt.t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(at),
		trace.WithLinks(trace.Link{SpanContext: sc}), trace.WithAttributes(append(attrs, spoolSystem)...))
	return span
}

// batchSpan records one span for an event of traced messages at at: a
// child of the first message's producer span when they all belong to one
// trace (a single message always does), linked to each message's span
// (up to maxLinks), with the messages' partition and offset when there
// is one.
func (bt brokerTracer) batchSpan(name string, msgs []broker.TracedMessage, at time.Time, status string, attrs ...attribute.KeyValue) {
	links := make([]trace.Link, 0, min(len(msgs), maxLinks))
	var parent trace.SpanContext
	oneTrace := true
	for _, m := range msgs {
		if bt.skip(m.TraceContext) {
			continue
		}
		sc := bt.remote(m.TraceContext)
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() {
			parent = sc
		} else if sc.TraceID() != parent.TraceID() {
			oneTrace = false
		}
		if len(links) < maxLinks {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if len(links) == 0 {
		return
	}
	ctx := context.Background()
	if oneTrace {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	attrs = append(attrs, spoolSystem, attribute.Int("messaging.batch.message_count", len(msgs)))
	if len(msgs) == 1 {
		attrs = append(attrs, attribute.Int("messaging.destination.partition.id", int(msgs[0].Partition)),
			attribute.Int64("messaging.spool.offset", msgs[0].Offset))
		if msgs[0].Delivery > 0 {
			attrs = append(attrs, attribute.Int("messaging.spool.delivery_count", msgs[0].Delivery))
		}
	}
	_, span := bt.t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithTimestamp(at),
		trace.WithLinks(links...), trace.WithAttributes(attrs...))
	if status != "" {
		span.SetStatus(codes.Error, status)
	}
	span.End(trace.WithTimestamp(at))
}

// maxLinks bounds the links of one span.
const maxLinks = 128

func (bt brokerTracer) Delivered(topic, sub string, msgs []broker.TracedMessage, at time.Time) {
	bt.batchSpan("deliver "+topic, msgs, at, "",
		attribute.String("messaging.destination.name", topic), attribute.String("messaging.consumer.group.name", sub))
}

func (bt brokerTracer) Settled(topic, sub, op string, msgs []broker.TracedMessage, at time.Time) {
	status := ""
	if op != "ack" {
		status = op
	}
	bt.batchSpan(op+" "+topic, msgs, at, status,
		attribute.String("messaging.destination.name", topic), attribute.String("messaging.consumer.group.name", sub),
		attribute.String("messaging.operation.name", op))
}

func (bt brokerTracer) DeadLettered(topic, sub string, tc broker.TraceContext, reason, dlq string, at time.Time) {
	if bt.skip(tc) {
		return
	}
	if span := bt.child(tc, "dead-letter "+topic, at,
		attribute.String("messaging.destination.name", topic), attribute.String("messaging.consumer.group.name", sub),
		attribute.String("messaging.spool.dead_letter.reason", reason), attribute.String("messaging.spool.dead_letter.topic", dlq)); span != nil {
		span.SetStatus(codes.Error, errors.New("dead-lettered: "+reason).Error())
		span.End(trace.WithTimestamp(at))
	}
}
