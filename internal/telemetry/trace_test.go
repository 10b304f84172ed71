package telemetry_test

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// receiver is an OTLP/HTTP trace receiver: it keeps every span exported
// to it.
type receiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	block chan struct{} // non-nil: requests hang until it is closed
	srv   *http.Server
	addr  string
}

func startReceiver(t *testing.T, block bool) *receiver {
	t.Helper()
	r := &receiver{}
	if block {
		r.block = make(chan struct{})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		if r.block != nil {
			select {
			case <-r.block:
			case <-req.Context().Done():
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var ex coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &ex); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	r.srv = &http.Server{Handler: mux}
	go r.srv.Serve(ln)
	t.Cleanup(func() {
		if r.block != nil {
			close(r.block)
		}
		r.srv.Close()
	})
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
	return r
}

func (r *receiver) named(prefix string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if len(s.Name) >= len(prefix) && s.Name[:len(prefix)] == prefix {
			out = append(out, s)
		}
	}
	return out
}

func (r *receiver) waitFor(t *testing.T, prefix string, n int) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s := r.named(prefix); len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			var names []string
			for _, s := range r.spans {
				names = append(names, s.Name)
			}
			r.mu.Unlock()
			t.Fatalf("%d spans named %q, want %d; have %v", len(r.named(prefix)), prefix, n, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	traceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	producer1 = "00f067aa0ba902b7"
	producer2 = "b7ad6b7169203331"
)

func traceparent(span string) []byte { return []byte("00-" + traceID + "-" + span + "-01") }

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the broker exports spans for
// traced messages: their publish (child of the producer's span, linked
// to each message's), each delivery, ack and reject, and the dead
// letter, all in the producer's trace; through Kafka too. Untraced
// messages make no spans.
func TestBrokerSpansReachAnOTLPReceiver(t *testing.T) {
	rec := startReceiver(t, false)
	srv := start(t)
	b := srv.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b.CreateTopic("orders", catalog.TopicConfig{})
	b.CreateSubscription("orders", "billing", catalog.SubConfig{Mode: catalog.ModeQueue})
	tp := func(span string) []batch.RecordHeader {
		return []batch.RecordHeader{{Key: broker.HeaderTraceparent, Value: traceparent(span)}, {Key: broker.HeaderTracestate, Value: []byte("spool=1")}}
	}
	if _, err := b.Publish("orders", []broker.Message{
		{Value: []byte("a"), Partition: -1, Headers: tp(producer1)},
		{Value: []byte("b"), Partition: -1, Headers: tp(producer2)},
		{Value: []byte("untraced"), Partition: -1},
	}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Join(broker.JoinRequest{Topic: "orders", Subscription: "billing", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	var got []broker.Delivered
	for len(got) < 3 {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.Deliveries...)
	}
	for _, d := range got {
		switch string(d.Value) {
		case "a", "untraced":
			if err := s.Ack(1, []broker.OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}); err != nil {
				t.Fatal(err)
			}
		case "b":
			if err := s.Reject(2, d.Partition, d.Offset, "bad"); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.QueueTick() // writes the dead letter

	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.Server().KafkaAddr()), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte("k"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: traceparent(producer1)}}}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	pubs := rec.waitFor(t, "publish orders", 2)
	for _, sp := range pubs {
		if hexOf(sp.TraceId) != traceID || hexOf(sp.ParentSpanId) != producer1 || sp.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("publish span: trace %x parent %x kind %v", sp.TraceId, sp.ParentSpanId, sp.Kind)
		}
		if sp.EndTimeUnixNano <= sp.StartTimeUnixNano {
			t.Errorf("publish span of no duration: it covers the request to durable")
		}
	}
	native := pubs[0]
	if native.TraceState != "spool=1" {
		t.Errorf("publish span's trace state %q: tracestate was not carried", native.TraceState)
	}
	if len(native.Links) != 2 {
		t.Fatalf("native publish span links %d, want one per traced message", len(native.Links))
	}
	var linked []string
	for _, l := range native.Links {
		linked = append(linked, hexOf(l.SpanId))
		if hexOf(l.TraceId) != traceID {
			t.Errorf("link %x/%x", l.TraceId, l.SpanId)
		}
	}
	slices.Sort(linked)
	if want := []string{producer1, producer2}; !slices.Equal(linked, []string{min(want[0], want[1]), max(want[0], want[1])}) {
		t.Errorf("links to %v", linked)
	}
	for name, parent := range map[string]string{"deliver orders": "", "ack orders": producer1, "reject orders": producer2, "dead-letter orders": producer2} {
		spans := rec.waitFor(t, name, 1)
		for _, sp := range spans {
			if hexOf(sp.TraceId) != traceID {
				t.Errorf("%s span in trace %x", name, sp.TraceId)
			}
			if parent != "" && hexOf(sp.ParentSpanId) != parent {
				t.Errorf("%s span's parent %x, want the producer's %s", name, sp.ParentSpanId, parent)
			}
		}
	}
	// One deliver span per event, linked to each traced message (the
	// untraced one has no link).
	links := 0
	for _, sp := range rec.named("deliver orders") {
		links += len(sp.Links)
	}
	if links != 2 {
		t.Errorf("deliver spans link %d messages, want 2", links)
	}
}

// An OTLP endpoint that never answers does not hold publishing: spans
// queue in the bounded batch processor and are dropped, and the server
// shuts down within its bound.
func TestStuckOTLPEndpointDoesNotBlockPublishing(t *testing.T) {
	startReceiver(t, true)
	srv := spooltest.StartServer(t, spooltest.Config(noKafka))
	b := srv.Broker()
	b.CreateTopic("t", catalog.TopicConfig{})
	hs := []batch.RecordHeader{{Key: broker.HeaderTraceparent, Value: traceparent(producer1)}}
	for i := range 3000 { // beyond the processor's queue of 2048
		if _, err := b.Publish("t", []broker.Message{{Value: []byte{byte(i)}, Partition: -1, Headers: hs}}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		srv.Stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not shut down with a stuck OTLP endpoint")
	}
}

func noKafka(c *server.Config) {
	c.KafkaAddr = "-"
	c.SchemaRegistryAddr = "-"
}

// One event followed across services: a service publishes with the Go
// SDK under its own span, another consumes from a queue subscription.
// The SDK's spans and the broker's reach the same OTLP receiver in one
// trace: the producer's publish span is the parent of the broker's
// publish, deliver and ack spans and of the consumer's process span.
func TestOneTraceAcrossSDKAndBroker(t *testing.T) {
	rec := startReceiver(t, false)
	srv := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exp, err := otlptracehttp.New(ctx) // the OTEL_* variables the receiver set
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	c, err := client.New(srv.URL(), client.WithTracerProvider(tp), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "shipping", client.SubscriptionConfig{Mode: client.ModeQueue, Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	reqCtx, root := tp.Tracer("orders-service").Start(ctx, "POST /orders")
	if _, err := c.Publish(reqCtx, "orders", client.Message{Value: []byte("order 1")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	handled := make(chan struct{})
	var once sync.Once
	k, err := c.NewConsumer("orders", "shipping", func(context.Context, *client.Message) error {
		once.Do(func() { close(handled) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(runCtx) }()
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatal("not consumed")
	}
	ack := rec.waitFor(t, "ack orders", 1)[0]
	stop()
	<-done

	var producer *tracepb.Span
	for _, sp := range rec.named("publish orders") {
		if sp.Kind == tracepb.Span_SPAN_KIND_PRODUCER {
			producer = sp
		}
	}
	if producer == nil {
		t.Fatal("no producer span from the SDK")
	}
	rootSpans := rec.named("POST /orders")
	if len(rootSpans) != 1 || hexOf(producer.ParentSpanId) != hexOf(rootSpans[0].SpanId) {
		t.Fatalf("the producer span's parent is not the request's span")
	}
	want := hexOf(producer.SpanId)
	for _, name := range []string{"publish orders", "deliver orders", "process orders"} {
		found := false
		for _, sp := range rec.waitFor(t, name, 1) {
			if sp.Kind == tracepb.Span_SPAN_KIND_PRODUCER {
				continue
			}
			found = true
			if !slices.Equal(sp.TraceId, producer.TraceId) || hexOf(sp.ParentSpanId) != want {
				t.Errorf("%s span (kind %v): trace %x parent %x, want trace %x parent %s", name, sp.Kind, sp.TraceId, sp.ParentSpanId, producer.TraceId, want)
			}
		}
		if !found {
			t.Errorf("no %s span", name)
		}
	}
	if !slices.Equal(ack.TraceId, producer.TraceId) || hexOf(ack.ParentSpanId) != want {
		t.Errorf("ack span: trace %x parent %x", ack.TraceId, ack.ParentSpanId)
	}
}
