package client_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// OpenTelemetry against the real broker: spans recorded by the SDK's span
// recorder, trace context read back from the delivered headers.

// newRecorder returns a TracerProvider recording every ended span in the
// returned recorder; it is shut down when the test ends.
func newSpanRecorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// startTraceServer starts a server whose client has opts.
func startTraceServer(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	return spooltest.StartServer(t, spooltest.Config(func(c *server.Config) {
		c.KafkaAddr, c.SchemaRegistryAddr = "-", "-"
	}), spooltest.ClientOptions(opts...)).Client()
}

// handled is what a handler saw of one call.
type handled struct {
	value       string
	traceparent string
	span        trace.SpanContext // the handler's ctx's
	deliveries  int32
}

// handlerLog records handler calls.
type handlerLog struct {
	mu    sync.Mutex
	calls []handled
}

func (l *handlerLog) add(ctx context.Context, m *client.Message) {
	tp, _ := m.HeaderValue("traceparent")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, handled{string(m.Value), string(tp), trace.SpanContextFromContext(ctx), m.DeliveryCount})
}

func (l *handlerLog) get() []handled {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// waitCalls waits until the handler was called n times.
func (l *handlerLog) waitCalls(t *testing.T, n int) []handled {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls := l.get()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handler calls, want %d: %+v", len(calls), n, calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parseTraceparent returns the span context of a traceparent header.
func parseTraceparent(t *testing.T, h string) trace.SpanContext {
	t.Helper()
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": h}))
	if !sc.IsValid() {
		t.Fatalf("traceparent %q is not valid", h)
	}
	return sc
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkAttrs reports the attributes of s that differ from want.
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("span %s: no attribute %s (has %v)", s.Name(), k, s.Attributes())
			continue
		}
		if v.AsInterface() != w {
			t.Errorf("span %s: %s = %v (%T), want %v (%T)", s.Name(), k, v.AsInterface(), v.AsInterface(), w, w)
		}
	}
}

// spansNamed returns the ended spans named name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// TestIntegrationTracingQueue follows messages from a traced publish
// (Producer and Publish) to a queue consumer whose handler fails once: the
// publish spans are children of the caller's span, the delivered headers
// carry their context, and every handler call has a process span, their
// child, with the handler's error recorded on the failed one.
func TestIntegrationTracingQueue(t *testing.T) {
	tp, rec := newSpanRecorder(t)
	c := startTraceServer(t, client.WithTracerProvider(tp))
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", fastQueue(5)); err != nil {
		t.Fatal(err)
	}

	pctx, parent := tp.Tracer("test").Start(ctx, "parent")
	p, err := c.NewProducer("orders")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"ok", "fail"} {
		if _, err := p.PublishSync(pctx, client.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := []client.Message{{Value: []byte("plain"), ID: "plain-1"}}
	if _, err := c.Publish(pctx, "orders", msgs...); err != nil {
		t.Fatal(err)
	}
	if len(msgs[0].Headers) != 0 {
		t.Errorf("Publish changed the caller's message: headers %v", msgs[0].Headers)
	}
	parent.End()
	psc := parent.SpanContext()

	// The publish spans, by value (found through their offsets).
	pubs := spansNamed(rec, "publish orders")
	if len(pubs) != 3 {
		t.Fatalf("%d publish spans, want 3", len(pubs))
	}
	pubByOffset := map[int64]sdktrace.ReadOnlySpan{}
	for _, s := range pubs {
		if s.SpanKind() != trace.SpanKindProducer {
			t.Errorf("publish span kind %v", s.SpanKind())
		}
		if s.Parent().SpanID() != psc.SpanID() || s.SpanContext().TraceID() != psc.TraceID() {
			t.Errorf("publish span's parent %v, want the caller's span %v", s.Parent(), psc)
		}
		if s.Status().Code == codes.Error {
			t.Errorf("publish span status %v", s.Status())
		}
		checkAttrs(t, s, map[string]any{
			"messaging.system":                   "spool",
			"messaging.destination.name":         "orders",
			"messaging.operation.type":           "send",
			"messaging.destination.partition.id": "0",
		})
		pubByOffset[attrs(s)["messaging.spool.offset"].AsInt64()] = s
	}
	checkAttrs(t, pubByOffset[2], map[string]any{"messaging.message.id": "plain-1"})

	var log handlerLog
	var failed atomic.Bool
	stop := runQueueConsumer(t, c, "orders", "billing", func(ctx context.Context, m *client.Message) error {
		log.add(ctx, m)
		if string(m.Value) == "fail" && m.DeliveryCount == 1 {
			failed.Store(true)
			return errors.New("boom")
		}
		return nil
	})
	calls := log.waitCalls(t, 4)
	stop()
	if !failed.Load() {
		t.Fatal("the failing message was not failed")
	}

	// Every delivery carries its publish span's context, and its handler
	// ran in its process span.
	valueOffset := map[string]int64{"ok": 0, "fail": 1, "plain": 2}
	procs := spansNamed(rec, "process orders")
	if len(procs) != 4 {
		t.Fatalf("%d process spans, want 4", len(procs))
	}
	for _, h := range calls {
		pub := pubByOffset[valueOffset[h.value]]
		if sc := parseTraceparent(t, h.traceparent); sc.SpanID() != pub.SpanContext().SpanID() || sc.TraceID() != psc.TraceID() {
			t.Errorf("%s: delivered traceparent %s, want the publish span's %v", h.value, h.traceparent, pub.SpanContext())
		}
		i := slices.IndexFunc(procs, func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().SpanID() == h.span.SpanID() })
		if i < 0 {
			t.Errorf("%s: the handler's context holds span %v, not a process span", h.value, h.span)
			continue
		}
		s := procs[i]
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("process span kind %v", s.SpanKind())
		}
		if s.Parent().SpanID() != pub.SpanContext().SpanID() || s.SpanContext().TraceID() != psc.TraceID() || !s.Parent().IsRemote() {
			t.Errorf("%s: process span's parent %v, want the publish span %v", h.value, s.Parent(), pub.SpanContext())
		}
		want := map[string]any{
			"messaging.system":                   "spool",
			"messaging.destination.name":         "orders",
			"messaging.consumer.group.name":      "billing",
			"messaging.operation.type":           "process",
			"messaging.destination.partition.id": "0",
			"messaging.spool.offset":             valueOffset[h.value],
			"messaging.spool.outcome":            "ack",
		}
		if h.value == "fail" && h.deliveries == 1 {
			want["messaging.spool.outcome"] = "nack"
			if s.Status().Code != codes.Error || s.Status().Description != "boom" {
				t.Errorf("failed call's span status %+v", s.Status())
			}
			if !slices.ContainsFunc(s.Events(), func(e sdktrace.Event) bool { return e.Name == "exception" }) {
				t.Errorf("failed call's span has no exception event: %v", s.Events())
			}
		} else if s.Status().Code == codes.Error {
			t.Errorf("%s: span status %+v", h.value, s.Status())
		}
		if h.deliveries > 1 {
			want["messaging.spool.delivery_count"] = int64(h.deliveries)
		}
		checkAttrs(t, s, want)
	}
}

// TestIntegrationTracingStream: a stream consumer's handler fails once
// and is retried: two process spans, children of the publish span, the
// first with the error and outcome "retry", the second "commit".
func TestIntegrationTracingStream(t *testing.T) {
	tp, rec := newSpanRecorder(t)
	c := startTraceServer(t, client.WithTracerProvider(tp))
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "events", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "events", "audit", client.SubscriptionConfig{Mode: client.ModeStream, Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "events", client.Message{Value: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	pubs := spansNamed(rec, "publish events")
	if len(pubs) != 1 || pubs[0].Parent().IsValid() {
		t.Fatalf("publish spans %v: want one root span", pubs)
	}
	pub := pubs[0].SpanContext()

	var log handlerLog
	stop := runQueueConsumer(t, c, "events", "audit", func(ctx context.Context, m *client.Message) error {
		log.add(ctx, m)
		if len(log.get()) == 1 {
			return errors.New("first try fails")
		}
		return nil
	}, client.ConsumerHandlerRetries(1))
	calls := log.waitCalls(t, 2)
	stop()

	procs := spansNamed(rec, "process events")
	if len(procs) != 2 {
		t.Fatalf("%d process spans, want 2", len(procs))
	}
	for i, s := range procs {
		if s.Parent().SpanID() != pub.SpanID() || s.SpanContext().TraceID() != pub.TraceID() {
			t.Errorf("process span %d's parent %v, want the publish span %v", i, s.Parent(), pub)
		}
		if calls[i].span.SpanID() != s.SpanContext().SpanID() {
			t.Errorf("call %d ran in span %v, want %v", i, calls[i].span, s.SpanContext())
		}
	}
	checkAttrs(t, procs[0], map[string]any{"messaging.spool.outcome": "retry", "messaging.consumer.group.name": "audit"})
	if procs[0].Status().Code != codes.Error {
		t.Errorf("first call's status %+v", procs[0].Status())
	}
	checkAttrs(t, procs[1], map[string]any{"messaging.spool.outcome": "commit", "messaging.spool.attempt": int64(2)})
	if procs[1].Status().Code == codes.Error {
		t.Errorf("second call's status %+v", procs[1].Status())
	}
}

// TestIntegrationTracePropagationWithoutProvider: a client without a
// TracerProvider starts no span but carries the publish context's trace
// context in the headers, and hands it to the handler as the remote
// parent, so a span the handler starts continues the trace.
func TestIntegrationTracePropagationWithoutProvider(t *testing.T) {
	tp, rec := newSpanRecorder(t) // the application's, not the SDK's
	c := startTraceServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "logs", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "logs", "tail", client.SubscriptionConfig{Mode: client.ModeStream, Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	tr := tp.Tracer("app")
	pctx, parent := tr.Start(ctx, "parent")
	psc := parent.SpanContext()
	p, err := c.NewProducer("logs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishSync(pctx, client.Message{Value: []byte("producer"), Headers: []client.Header{{Key: "a", Value: []byte("b")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishSync(ctx, client.Message{Value: []byte("untraced")}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(pctx, "logs", client.Message{Value: []byte("publish")}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var log handlerLog
	stop := runQueueConsumer(t, c, "logs", "tail", func(ctx context.Context, m *client.Message) error {
		log.add(ctx, m)
		_, span := tr.Start(ctx, "work "+string(m.Value))
		span.End()
		return nil
	})
	calls := log.waitCalls(t, 3)
	stop()

	for _, h := range calls {
		if h.value == "untraced" {
			if h.traceparent != "" || h.span.IsValid() {
				t.Errorf("untraced message: traceparent %q, handler span %v", h.traceparent, h.span)
			}
			continue
		}
		if sc := parseTraceparent(t, h.traceparent); sc.SpanID() != psc.SpanID() || sc.TraceID() != psc.TraceID() {
			t.Errorf("%s: traceparent %s, want the caller's span %v", h.value, h.traceparent, psc)
		}
		if h.span.SpanID() != psc.SpanID() || !h.span.IsRemote() {
			t.Errorf("%s: the handler's context holds %v, want the remote caller's span %v", h.value, h.span, psc)
		}
	}
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		if s.Name() != "parent" && s.Name() != "work untraced" && s.Parent().SpanID() != psc.SpanID() {
			t.Errorf("span %s's parent %v, want %v", s.Name(), s.Parent(), psc)
		}
	}
	slices.Sort(names)
	if want := []string{"parent", "work producer", "work publish", "work untraced"}; !slices.Equal(names, want) {
		t.Errorf("spans %v, want %v (none of the SDK's)", names, want)
	}
}

// TestIntegrationTraceparentKept: a message that has a traceparent header
// keeps it; the publish span is still a child of the publish context's
// span, and the process span follows the message's traceparent.
func TestIntegrationTraceparentKept(t *testing.T) {
	tp, rec := newSpanRecorder(t)
	c := startTraceServer(t, client.WithTracerProvider(tp))
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "kept", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "kept", "s", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	pctx, parent := tp.Tracer("test").Start(ctx, "parent")
	p, err := c.NewProducer("kept")
	if err != nil {
		t.Fatal(err)
	}
	m := client.Message{Value: []byte("v"), Headers: []client.Header{{Key: "traceparent", Value: []byte(own)}}}
	if _, err := p.PublishSync(pctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(pctx, "kept", m); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, s := range spansNamed(rec, "publish kept") {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("publish span's parent %v, want %v", s.Parent(), parent.SpanContext())
		}
	}
	n := 0
	for m, err := range c.ReadTopic(ctx, "kept") {
		if err != nil {
			t.Fatal(err)
		}
		n++
		var tps []string
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				tps = append(tps, string(h.Value))
			}
		}
		if !slices.Equal(tps, []string{own}) {
			t.Errorf("offset %d: traceparent headers %q, want only %q", m.Offset, tps, own)
		}
	}
	if n != 2 {
		t.Fatalf("read %d messages, want 2", n)
	}

	var log handlerLog
	stop := runQueueConsumer(t, c, "kept", "s", func(ctx context.Context, m *client.Message) error {
		log.add(ctx, m)
		return nil
	})
	log.waitCalls(t, 2)
	stop()
	ownSC := parseTraceparent(t, own)
	for _, s := range spansNamed(rec, "process kept") {
		if s.Parent().SpanID() != ownSC.SpanID() || s.SpanContext().TraceID() != ownSC.TraceID() {
			t.Errorf("process span's parent %v, want the message's %v", s.Parent(), ownSC)
		}
	}
}
