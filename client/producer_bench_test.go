package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
)

// BenchmarkProducerPipelined publishes 256-byte messages to a one-partition
// topic of an in-process server as spool bench native does: Send in
// windows of 4,096, waiting for each window's outcomes.
func BenchmarkProducerPipelined(b *testing.B) {
	for _, linger := range []time.Duration{-1, 0} {
		b.Run(fmt.Sprintf("linger=%v", linger), func(b *testing.B) {
			c := spooltest.StartServer(b).Client()
			ctx := context.Background()
			if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			var opts []client.ProducerOption
			if linger >= 0 {
				opts = append(opts, client.ProducerLinger(linger))
			}
			p, err := c.NewProducer("bench", opts...)
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			futures := make([]*client.Future, 0, 4096)
			b.SetBytes(256)
			b.ResetTimer()
			for i := range b.N {
				futures = append(futures, p.Send(ctx, client.Message{Value: value}))
				if len(futures) == cap(futures) || i == b.N-1 {
					for _, f := range futures {
						if _, err := f.Wait(ctx); err != nil {
							b.Fatal(err)
						}
					}
					futures = futures[:0]
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkProducerTracing is BenchmarkProducerPipelined (default linger)
// with tracing: "propagate" publishes from a context holding a span
// context, without a TracerProvider (the traceparent header is written);
// "spans" gives the client an OpenTelemetry SDK provider that samples
// every span and exports none, so every message also has a publish span.
func BenchmarkProducerTracing(b *testing.B) {
	for _, mode := range []string{"propagate", "spans"} {
		b.Run(mode, func(b *testing.B) {
			var opts []spooltest.Option
			if mode == "spans" {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts = append(opts, spooltest.ClientOptions(client.WithTracerProvider(tp)))
			}
			c := spooltest.StartServer(b, opts...).Client()
			ctx := context.Background()
			if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
				SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
				TraceFlags: trace.FlagsSampled,
				Remote:     true,
			})
			sctx := trace.ContextWithSpanContext(ctx, sc)
			p, err := c.NewProducer("bench")
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			futures := make([]*client.Future, 0, 4096)
			b.SetBytes(256)
			b.ResetTimer()
			for i := range b.N {
				futures = append(futures, p.Send(sctx, client.Message{Value: value}))
				if len(futures) == cap(futures) || i == b.N-1 {
					for _, f := range futures {
						if _, err := f.Wait(ctx); err != nil {
							b.Fatal(err)
						}
					}
					futures = futures[:0]
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
