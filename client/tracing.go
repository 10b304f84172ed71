package client

// OpenTelemetry: spans for publishes and handler calls, and the W3C trace
// context carried in message headers.
//
// Spans are recorded only when the client was given a TracerProvider
// (WithTracerProvider); without one no span is started and a publish pays
// one check of its context. Propagation always happens: a publish whose
// context carries a valid span context writes it into the message's
// headers (traceparent, and tracestate when there is one) unless the
// message carries a trace context already, and a delivered message that
// carries one gives its handler a context holding it, so spans the handler
// starts continue the producer's trace.

import (
	"context"
	"encoding/hex"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the SDK's spans.
const tracerName = "github.com/spoolmq/spool/client"

// Span attributes, after OpenTelemetry's messaging semantic conventions;
// those named messaging.spool.* are Spool's own.
const (
	attrSystem        = attribute.Key("messaging.system")
	attrDestination   = attribute.Key("messaging.destination.name")
	attrOperationType = attribute.Key("messaging.operation.type")
	attrOperationName = attribute.Key("messaging.operation.name")
	attrMessageID     = attribute.Key("messaging.message.id")
	attrBodySize      = attribute.Key("messaging.message.body.size")
	attrPartition     = attribute.Key("messaging.destination.partition.id")
	attrGroup         = attribute.Key("messaging.consumer.group.name")
	attrOffset        = attribute.Key("messaging.spool.offset")
	attrDuplicate     = attribute.Key("messaging.spool.duplicate")
	attrDeadLettered  = attribute.Key("messaging.spool.dead_lettered")
	attrDeliveryCount = attribute.Key("messaging.spool.delivery_count")
	attrAttempt       = attribute.Key("messaging.spool.attempt")
	attrOutcome       = attribute.Key("messaging.spool.outcome")
)

// The outcomes a process span records (messaging.spool.outcome).
const (
	outcomeAck        = "ack"         // queue: acknowledged
	outcomeNack       = "nack"        // queue: handed back for redelivery
	outcomeReject     = "reject"      // queue: dead-lettered (RejectError)
	outcomeCommit     = "commit"      // stream: processed, committed with the partition's progress
	outcomeRetry      = "retry"       // stream: the handler is called again
	outcomeDeadLetter = "dead_letter" // stream: given up on and dead-lettered
	outcomeHalt       = "halt"        // stream: given up on; the partition halted (or stopped in this consumer)
	outcomeStop       = "stop"        // stream: ConsumerStopOnError stops the consumer
	outcomeAbandoned  = "abandoned"   // the consumer gave up on the running handler (shutdown)
)

var attrSpool = attrSystem.String("spool")

// tracing is a client's OpenTelemetry setup.
type tracing struct {
	tracer trace.Tracer                  // nil: no spans (no WithTracerProvider)
	prop   propagation.TextMapPropagator // never nil
	fields []string                      // the headers prop writes
}

func newTracing(cfg *clientConfig) tracing {
	t := tracing{prop: cfg.propagator}
	if t.prop == nil {
		t.prop = propagation.TraceContext{}
	}
	t.fields = t.prop.Fields()
	if cfg.tracerProvider != nil {
		t.tracer = cfg.tracerProvider.Tracer(tracerName)
	}
	return t
}

// carried reports whether hs holds a header the propagator writes (for the
// default one: traceparent or tracestate).
func (t *tracing) carried(hs []Header) bool {
	for i := range hs {
		for _, f := range t.fields {
			if hs[i].Key == f {
				return true
			}
		}
	}
	return false
}

// inject returns hs followed by ctx's trace context headers, in a new
// slice: hs is the caller's.
func (t *tracing) inject(ctx context.Context, hs []Header) []Header {
	if _, ok := t.prop.(propagation.TraceContext); ok {
		return injectTraceContext(trace.SpanContextFromContext(ctx), hs)
	}
	c := &headerCarrier{hs: make([]Header, len(hs), len(hs)+len(t.fields))}
	copy(c.hs, hs)
	t.prop.Inject(ctx, c)
	return c.hs
}

// injectTraceContext is propagation.TraceContext's Inject for headers,
// which it writes with two allocations instead of five: hs followed by
// sc's traceparent (and tracestate, when sc has one), in a new slice.
func injectTraceContext(sc trace.SpanContext, hs []Header) []Header {
	if !sc.IsValid() {
		return hs
	}
	out := make([]Header, len(hs), len(hs)+2)
	copy(out, hs)
	// version 00, trace id, span id, and the flags the spec defines:
	// sampled (0x01) and random (0x02).
	const n = 2 + 1 + 32 + 1 + 16 + 1 + 2
	v := make([]byte, 0, n)
	v = append(v, "00-"...)
	tid, sid := sc.TraceID(), sc.SpanID()
	v = hex.AppendEncode(v, tid[:])
	v = append(v, '-')
	v = hex.AppendEncode(v, sid[:])
	v = append(v, '-')
	v = hex.AppendEncode(v, []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	out = append(out, Header{Key: "traceparent", Value: v})
	if sc.TraceState().Len() > 0 {
		out = append(out, Header{Key: "tracestate", Value: []byte(sc.TraceState().String())})
	}
	return out
}

// startPublish prepares m, the publisher's own copy, for publishing to
// topic from ctx. With a tracer it starts m's publish span (name, a child
// of ctx's span) and returns it; the caller ends it with endPublish.
// Unless m carries a trace context already, the context of that span, or
// without a tracer ctx's, is written into m's headers.
func (t *tracing) startPublish(ctx context.Context, name, topic string, m *Message) trace.Span {
	if t.tracer == nil {
		if trace.SpanContextFromContext(ctx).IsValid() && !t.carried(m.Headers) {
			m.Headers = t.inject(ctx, m.Headers)
		}
		return nil
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, attrSpool, attrDestination.String(topic), attrOperationType.String("send"),
		attrOperationName.String("publish"), attrBodySize.Int(len(m.Value)))
	if m.ID != "" {
		attrs = append(attrs, attrMessageID.String(m.ID))
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	if !t.carried(m.Headers) {
		m.Headers = t.inject(ctx, m.Headers)
	}
	return span
}

// endPublish ends a publish span with the message's outcome.
func endPublish(span trace.Span, res PublishResult, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else {
		attrs := make([]attribute.KeyValue, 0, 4)
		attrs = append(attrs, attrPartition.String(strconv.Itoa(int(res.Partition))), attrOffset.Int64(res.Offset))
		if res.Duplicate {
			attrs = append(attrs, attrDuplicate.Bool(true))
		}
		if res.DeadLettered {
			attrs = append(attrs, attrDeadLettered.Bool(true))
		}
		span.SetAttributes(attrs...)
	}
	span.End()
}

// handlerContext returns the context m's handler runs in, from ctx: the
// trace context m carries, if any, is added to it (as the remote parent of
// the spans started in it).
func (t *tracing) handlerContext(ctx context.Context, m *Message) context.Context {
	if !t.carried(m.Headers) {
		return ctx
	}
	return t.prop.Extract(ctx, (*deliveredCarrier)(m))
}

// startProcess starts the span of one handler call on m (attempt counts
// from 1), a child of the trace context in ctx (see handlerContext), and
// returns the handler's context holding it; nil without a tracer. The
// caller ends it with endProcess.
func (k *Consumer) startProcess(ctx context.Context, m *Message, attempt int) (context.Context, trace.Span) {
	t := k.c.tr.tracer
	if t == nil {
		return ctx, nil
	}
	attrs := make([]attribute.KeyValue, 0, 11)
	attrs = append(attrs, attrSpool, attrDestination.String(k.topic), attrOperationType.String("process"),
		attrOperationName.String("process"), attrGroup.String(k.sub),
		attrPartition.String(strconv.Itoa(int(m.Partition))), attrOffset.Int64(m.Offset), attrBodySize.Int(len(m.Value)))
	if m.ID != "" {
		attrs = append(attrs, attrMessageID.String(m.ID))
	}
	if m.DeliveryCount > 1 {
		attrs = append(attrs, attrDeliveryCount.Int(int(m.DeliveryCount)))
	}
	if attempt > 1 {
		attrs = append(attrs, attrAttempt.Int(attempt))
	}
	return t.Start(ctx, k.span, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// endProcess ends a process span (nil: none) with the handler's error and
// what became of the message.
func endProcess(span trace.Span, err error, outcome string) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attrOutcome.String(outcome))
	span.End()
}

// headerCarrier adapts headers being built for a publish to the
// propagator: Set replaces a header of the key or appends one.
type headerCarrier struct{ hs []Header }

func (c *headerCarrier) Get(key string) string {
	for _, h := range c.hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	for i := range c.hs {
		if c.hs[i].Key == key {
			c.hs[i].Value = []byte(value)
			return
		}
	}
	c.hs = append(c.hs, Header{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(c.hs))
	for i, h := range c.hs {
		keys[i] = h.Key
	}
	return keys
}

// deliveredCarrier adapts a delivered message's headers to the
// propagator, read-only: Set does nothing.
type deliveredCarrier Message

func (c *deliveredCarrier) Get(key string) string {
	if v, ok := (*Message)(c).HeaderValue(key); ok {
		return string(v)
	}
	return ""
}

func (c *deliveredCarrier) Set(string, string) {}

func (c *deliveredCarrier) Keys() []string {
	keys := make([]string, len(c.Headers))
	for i, h := range c.Headers {
		keys[i] = h.Key
	}
	return keys
}
