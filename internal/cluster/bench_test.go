package cluster

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/state"
)

// BenchmarkConsumerStateCommits measures commits of consumer state through
// the metadata group of three in-process nodes on this machine (each
// commit: a proposal on the coordinator, a majority fsyncing it, and the
// coordinator applying it), with 16 committing goroutines, one group each
// as Kafka groups would be. Compare with the same on one node (no
// cluster: one synced Pebble batch per commit).
func BenchmarkConsumerStateCommits(b *testing.B) {
	for _, mode := range []string{"single", "cluster"} {
		b.Run(mode, func(b *testing.B) {
			var br, lead *broker.Broker
			if mode == "cluster" {
				c := newTestCluster(b, 3)
				br = c.coordinator().b
				if err := retry(b, func() error {
					_, err := br.CreateTopic("bench", catalog.TopicConfig{Partitions: 1})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				lead = c.leaderOf("bench", 0).b
			} else {
				br = singleBroker(b)
				if _, err := br.CreateTopic("bench", catalog.TopicConfig{Partitions: 1}); err != nil {
					b.Fatal(err)
				}
				lead = br
			}
			for range 100 {
				if _, err := lead.Publish("bench", []broker.Message{{Value: []byte("x"), Partition: 0}}); err != nil {
					b.Fatal(err)
				}
			}
			sp := br.Space("kafka")
			var next atomic.Int64
			b.SetParallelism(8) // 16 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := fmt.Sprintf("g%d", next.Add(1))
				off := int64(0)
				for pb.Next() {
					off = off%100 + 1
					_, err := sp.CommitStream("bench", g, broker.StreamCommit{Offsets: map[int32]int64{0: off}, Create: &catalog.SubConfig{}})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// singleBroker opens a broker with no cluster over a temporary directory.
func singleBroker(tb testing.TB) *broker.Broker {
	dir := tb.TempDir()
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet, MaintenanceInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Close()
		st.Close()
	})
	return b
}
