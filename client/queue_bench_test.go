package client_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
)

// BenchmarkQueueConsumeAck consumes and acknowledges b.N 256-byte messages
// (published beforehand, with the producer's random ids) from a
// one-partition queue subscription of an in-process server, with one
// consumer as spool bench queue runs it (prefetch 5,000, 4 handlers, 20,000
// in flight) and a handler that does nothing: "plain" without a processed-key ledger, "ledger=id"
// with the ledger keyed by message id (a lookup per delivery, a record per
// ack). The clock stops when every message is acknowledged.
func BenchmarkQueueConsumeAck(b *testing.B) {
	for _, bc := range []struct{ name, key string }{{"plain", ""}, {"ledger=id", client.ProcessedKeyID}} {
		b.Run(bc.name, func(b *testing.B) {
			c := spooltest.StartServer(b).Client()
			ctx := context.Background()
			if _, err := c.CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			cfg := client.SubscriptionConfig{Mode: client.ModeQueue, MaxInFlight: 20000, ProcessedKey: bc.key}
			if _, err := c.CreateSubscription(ctx, "bench", "work", cfg); err != nil {
				b.Fatal(err)
			}
			p, err := c.NewProducer("bench")
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			futures := make([]*client.Future, 0, 4096)
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
			var handled atomic.Int64
			k, err := c.NewConsumer("bench", "work", func(context.Context, *client.Message) error {
				handled.Add(1)
				return nil
			}, client.ConsumerPrefetch(5000), client.ConsumerConcurrency(4))
			if err != nil {
				b.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			cpu0 := processCPU()
			b.ResetTimer()
			go func() { done <- k.Run(runCtx) }()
			for {
				if handled.Load() >= int64(b.N) {
					info, err := c.DescribeSubscription(ctx, "bench", "work")
					if err != nil {
						b.Fatal(err)
					}
					acked := true
					for _, p := range info.Partitions {
						if p.Queue == nil || p.Queue.AckFloor != p.EndOffset {
							acked = false
						}
					}
					if acked {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			// The process's CPU time (server and consumer) per message: on a
			// shared machine a steadier measure than the rate.
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if bc.key != "" && handled.Load() != int64(b.N) {
				b.Fatalf("handled %d of %d", handled.Load(), b.N)
			}
		})
	}
}

// processCPU returns the user and system CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
