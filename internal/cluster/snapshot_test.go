package cluster

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/seglog"
)

// records reads partition p of a topic on a node from its start: offset →
// value.
func records(t *testing.T, b *broker.Broker, topic string, p int32) (map[int64]string, int64, int64) {
	t.Helper()
	start, end, err := b.Offsets(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for off := start; off < end; {
		r, err := b.ReadRaw(topic, p, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			break
		}
		for bt, err := range batch.Batches(r.Data) {
			if err != nil {
				t.Fatal(err)
			}
			recs, err := batch.Records(bt.Bytes, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for k, rec := range recs {
				if o := bt.Header.BaseOffset + int64(k); o >= off {
					out[o] = string(rec.Value)
				}
			}
			off = bt.Header.LastOffset() + 1
		}
	}
	return out, start, end
}

// partLog returns a member's partition log of a topic.
func partLog(t *testing.T, m *member, topic string, p int32) *seglog.Log {
	t.Helper()
	tm, ok := m.b.Topic(topic)
	if !ok {
		t.Fatalf("node %d has no topic %s", m.id, topic)
	}
	ps := m.n.storageOf(PartitionGroupID(tm.ID, p))
	if ps == nil {
		t.Fatalf("node %d runs no group for %s/%d", m.id, topic, p)
	}
	return ps.Log()
}

// sameAsLeader waits until m reads exactly what the leader reads at every
// offset m holds, up to the same end.
func sameAsLeader(t *testing.T, c *testCluster, m *member, topic string) {
	t.Helper()
	eventually(t, fmt.Sprintf("node %d reads what the leader reads", m.id), func() error {
		lead := c.leaderOf(topic, 0)
		want, _, wantEnd := records(t, lead.b, topic, 0)
		got, start, end := records(t, m.b, topic, 0)
		if end != wantEnd {
			return fmt.Errorf("node %d reads up to %d, leader %d up to %d", m.id, end, lead.id, wantEnd)
		}
		for off := start; off < end; off++ {
			if w, ok := want[off]; ok && got[off] != w {
				return fmt.Errorf("offset %d: node %d reads %q, leader %d %q", off, m.id, got[off], lead.id, w)
			}
			if _, ok := got[off]; !ok {
				return fmt.Errorf("node %d has no record at %d in [%d, %d)", m.id, off, start, end)
			}
		}
		return nil
	})
}

// TestPartitionSnapshotCatchUp: a follower stopped while its partition
// goes on, and every other replica's retention — held back to what it
// applied — deletes the entries it needs, catches up from a snapshot of
// the leader's segments when it returns, then by appends, and reads
// exactly the leader's records for every offset it holds. The first
// transfer is cut (its connection closed after a few frames) and retried.
// Then a follower is stopped the same way, and the leader is stopped in
// the middle of the transfer to it: the new leader sends it one. No
// staging directory is left anywhere.
func TestPartitionSnapshotCatchUp(t *testing.T) {
	old := snapChunk
	t.Cleanup(func() { // after the cluster's nodes stopped (cleanups run last first)
		snapChunk = old
		testHookSnapChunk.Store(nil)
	})
	snapChunk = 4 << 10
	c := newTestClusterWith(t, 3, seglog.Options{SegmentBytes: 16 << 10, Limits: batch.Limits{MaxBatchBytes: 8 << 10}})
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateTopic("snap", catalog.TopicConfig{Partitions: 1, RetentionBytes: 40 << 10})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	publish := func(k int) {
		t.Helper()
		for range k {
			var msgs []broker.Message
			for range 5 {
				msgs = append(msgs, broker.Message{Value: []byte(fmt.Sprintf("m%d-%s", n, strings.Repeat("x", 100))), Partition: 0})
				n++
			}
			if err := retry(t, func() error {
				_, err := c.leaderOf("snap", 0).b.Publish("snap", msgs)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// behindAndBack stops follower f, publishes until every running
	// replica's retention passed what f holds, and starts f again.
	behindAndBack := func(f *member, hook func(n *Node, group, to, seq uint64)) {
		t.Helper()
		behind := partLog(t, f, "snap", 0).LastIndex()
		c.stop(f)
		for done := false; !done; {
			publish(20)
			done = true
			for _, m := range c.members {
				if m.b != nil && partLog(t, m, "snap", 0).FirstIndex() <= behind+1 {
					done = false
				}
			}
		}
		testHookSnapChunk.Store(&hook)
		c.start(f, nil)
	}

	publish(10)
	lead := c.leaderOf("snap", 0)
	f := c.members[lead.id%3+1]
	var cuts atomic.Int64
	behindAndBack(f, func(n *Node, group, to, seq uint64) {
		if seq == 3 && cuts.Add(1) == 1 {
			n.transport.Disconnect(to) // the first transfer loses its connection
		}
	})
	sameAsLeader(t, c, f, "snap")
	if cuts.Load() < 2 {
		t.Fatalf("%d transfers started: the cut one was not retried", cuts.Load())
	}
	fl := partLog(t, f, "snap", 0)
	if fl.FirstIndex() == 1 {
		t.Fatal("the returning follower's log was not replaced by a snapshot")
	}
	publish(5) // then by appends
	sameAsLeader(t, c, f, "snap")
	t.Logf("node %d caught up by snapshot: its log holds [%d, %d]", f.id, fl.FirstIndex(), fl.LastIndex())

	lead = c.leaderOf("snap", 0)
	g := c.members[lead.id%3+1]
	started := make(chan struct{})
	var sender atomic.Pointer[Node]
	behindAndBack(g, func(n *Node, group, to, seq uint64) {
		if sender.CompareAndSwap(nil, n) {
			close(started)
		}
		if sender.Load() == n {
			time.Sleep(10 * time.Millisecond) // slow enough to stop the leader in the middle
		}
	})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no leader sent a snapshot")
	}
	for _, m := range c.members {
		if m.n == sender.Load() {
			lead = m
		}
	}
	c.stop(lead) // the other member leads and sends its own snapshot
	sameAsLeader(t, c, g, "snap")
	publish(5)
	sameAsLeader(t, c, g, "snap")
	c.start(lead, nil)
	for _, m := range c.members {
		sameAsLeader(t, c, m, "snap")
		entries, err := os.ReadDir(partLog(t, m, "snap", 0).Dir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				t.Fatalf("node %d: %s left in the partition's directory", m.id, e.Name())
			}
		}
	}
}
