package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// TestLedgerFailsOver: a queue subscription's processed keys ride in the
// coordinator's replicated snapshot writes; after the coordinator dies, the
// next one (its filter rebuilt from its own store) skips messages whose
// keys were processed before.
func TestLedgerFailsOver(t *testing.T) {
	c := newTestCluster(t, 3)
	any := c.members[1]
	if err := retry(t, func() error {
		_, err := any.b.CreateTopic("pay", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := retry(t, func() error {
		_, err := any.b.CreateSubscription("pay", "q", catalog.SubConfig{Mode: catalog.ModeQueue,
			Queue: catalog.QueueConfig{AckTimeout: time.Minute, ProcessedKey: "key"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	publish := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if err := retry(t, func() error {
				_, err := c.leaderOf("pay", 0).b.Publish("pay", []broker.Message{{Key: []byte(k), Value: []byte(k), Partition: 0}})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("k0", "k1", "k2", "k3", "k4")
	coord := c.coordinator()
	q, err := coord.b.Join(broker.JoinRequest{Topic: "pay", Subscription: "q", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := queued(t, q, 5)
	if len(got) != 5 {
		t.Fatalf("delivered %d of 5", len(got))
	}
	if err := q.Ack(1, []broker.OffsetRange{{Partition: 0, From: 0, To: 5}}); err != nil {
		t.Fatal(err)
	}
	// The keys are applied with the snapshot that has the acks.
	eventually(t, "the queue's progress on every node", func() error {
		for _, m := range c.members {
			info, err := m.b.DescribeSubscription("pay", "q")
			if err != nil {
				return err
			}
			if f := info.Partitions[0].Committed; f != 5 {
				return fmt.Errorf("node %d: queue floor %d", m.id, f)
			}
		}
		return nil
	})
	c.stop(coord)
	next := c.coordinator()
	publish("k1", "k5", "k3")
	var q2 *broker.Session
	if err := retry(t, func() error {
		var err error
		q2, err = next.b.Join(broker.JoinRequest{Topic: "pay", Subscription: "q", Credits: 100})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer q2.Leave()
	again := queued(t, q2, 1)
	if len(again) != 1 || string(again[0].Key) != "k5" {
		var keys []string
		for _, d := range again {
			keys = append(keys, string(d.Key))
		}
		t.Fatalf("the new coordinator delivered %v, want [k5]", keys)
	}
	if more := queued(t, q2, 1); len(more) != 0 {
		t.Fatalf("then delivered %d more", len(more))
	}
	info, err := next.b.DescribeSubscription("pay", "q")
	if err != nil {
		t.Fatal(err)
	}
	if info.Stats.IdempotentSkips != 2 {
		t.Fatalf("idempotent skips on the new coordinator: %d, want 2", info.Stats.IdempotentSkips)
	}
}
