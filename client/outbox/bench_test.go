package outbox_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/outbox"
)

// BenchmarkRelay measures the relay's throughput from the outbox table to a
// durable topic (DurabilityAlways, four partitions) of an in-process
// server, or of the server SPOOLTEST_BENCH_SERVER names (a URL: spool
// serve in its own process, as users run it): b.N events of 256 bytes over 1,000 aggregates are written first
// (not timed), then one relay publishes them all; events/s is the figure.
// PostgreSQL is the one scripts/postgres.sh starts (fsync off).
func BenchmarkRelay(b *testing.B) {
	for _, d := range []string{"postgres", "sqlite"} {
		for _, batch := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("%s/batch=%d", d, batch), func(b *testing.B) {
				var e *env
				if d == "postgres" {
					e = newPostgres(b)
				} else {
					e = newSQLite(b)
				}
				benchRelay(b, e, batch)
			})
		}
	}
}

func benchRelay(b *testing.B, e *env, batch int) {
	topic := randomName("bench_")
	var c *client.Client
	if url := os.Getenv("SPOOLTEST_BENCH_SERVER"); url != "" {
		var err error
		if c, err = client.New(url, client.WithLogger(discard)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
	} else {
		c = startServer(b).Client()
	}
	ctx := context.Background()
	createTopic(b, c, topic, client.TopicConfig{Partitions: 4, Durability: client.DurabilityAlways})
	r := newRelay(b, e, e.db, c, func(cfg *outbox.RelayConfig) {
		cfg.BatchSize = batch
		cfg.LeaseTTL = 15 * time.Second // the default
	})
	value := make([]byte, 256)
	b.StopTimer()
	if err := fill(ctx, e, topic, b.N, value); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	b.StartTimer()
	for total, failures := 0, 0; total < b.N; {
		n, err := r.RunOnce(ctx)
		total += n
		if err != nil {
			// A step that failed (a publish that ran out of time on a
			// loaded machine) is retried, as Run does.
			if failures++; failures > 10 {
				b.Fatal(err)
			}
			b.Logf("step failed, retrying: %v", err)
			continue
		}
		failures = 0
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// fill writes n events in transactions of 1,000.
func fill(ctx context.Context, e *env, topic string, n int, value []byte) error {
	evs := make([]outbox.Event, 0, 1000)
	flush := func() error {
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := outbox.WriteTable(ctx, tx, e.table, evs...); err != nil {
			return err
		}
		evs = evs[:0]
		return tx.Commit()
	}
	for i := range n {
		evs = append(evs, outbox.Event{Topic: topic, Aggregate: "agg-" + strconv.Itoa(i%1000), Value: value})
		if len(evs) == cap(evs) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(evs) > 0 {
		return flush()
	}
	return nil
}
