package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// TestMetadataCompacted: the metadata group snapshots the catalog and
// consumer state and compacts its log on every node; a node added after
// the compaction gets the snapshot and holds the same catalog and
// commits; every node restarted from its compacted log holds them too.
func TestMetadataCompacted(t *testing.T) {
	c := newTestClusterSnap(t, 3, 40)
	any := c.members[1]
	if err := retry(t, func() error {
		_, err := any.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := retry(t, func() error {
		_, err := any.b.CreateSubscription("orders", "s", catalog.SubConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lead := c.leaderOf("orders", 0)
	for i := range 10 {
		if _, err := lead.b.Publish("orders", []broker.Message{{Value: fmt.Appendf(nil, "m%d", i), Partition: 0}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := retry(t, func() error {
		_, err := any.b.CreateTopic("gone", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	coord := c.coordinator()
	// A node that misses the compacted entries: it restores the snapshot
	// over the catalog it has (a topic deleted, one created meanwhile).
	var behind *member
	for _, m := range c.members {
		if m != coord {
			behind = m
			break
		}
	}
	lastBefore, _ := behind.n.metaLog.LastIndex()
	c.stop(behind)
	if err := retry(t, func() error { return coord.b.DeleteTopic("gone") }); err != nil {
		t.Fatal(err)
	}
	// A reassignment it misses too (the same replicas, another preferred
	// leader): the snapshot carries it.
	om, _ := coord.b.Topic("orders")
	reversed := slices.Clone(om.Assignment[0].Voters)
	slices.Reverse(reversed)
	if err := retry(t, func() error {
		return coord.b.ReassignPartitions("orders", []broker.Reassignment{{Partition: 0, Voters: reversed}})
	}); err != nil {
		t.Fatal(err)
	}
	if err := retry(t, func() error {
		_, err := coord.b.CreateTopic("later", catalog.TopicConfig{Partitions: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sp := coord.b.Space("kafka")
	for i := range 150 {
		if _, err := sp.CommitStream("orders", "s", broker.StreamCommit{Offsets: map[int32]int64{0: int64(i%10 + 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	// The last commit is 10.
	eventually(t, "every node compacted its metadata log", func() error {
		for _, m := range c.members {
			if m == behind {
				continue
			}
			first, _ := m.n.metaLog.FirstIndex()
			if first < 100 {
				return fmt.Errorf("node %d's log starts at %d", m.id, first)
			}
		}
		return nil
	})
	committed := func(m *member) error {
		info, err := m.b.DescribeSubscription("orders", "s")
		if err != nil {
			return err
		}
		if off := info.Partitions[0].Committed; off != 10 {
			return fmt.Errorf("node %d: committed %d, want 10", m.id, off)
		}
		return nil
	}

	c.start(behind, nil)
	eventually(t, "the node that was behind restored the snapshot", func() error {
		if _, ok := behind.b.Topic("gone"); ok {
			return fmt.Errorf("node %d still has the deleted topic", behind.id)
		}
		if _, ok := behind.b.Topic("later"); !ok {
			return fmt.Errorf("node %d lacks the new topic", behind.id)
		}
		if om, _ := behind.b.Topic("orders"); !slices.Equal(om.Assignment[0].Voters, reversed) {
			return fmt.Errorf("node %d has orders/0 on %v, want %v", behind.id, om.Assignment[0].Voters, reversed)
		}
		if first, _ := behind.n.metaLog.FirstIndex(); first <= lastBefore+1 {
			return fmt.Errorf("node %d's log starts at %d: no snapshot (it had up to %d)", behind.id, first, lastBefore)
		}
		return committed(behind)
	})
	c.sameCatalog(coord)

	// A new node: the log it would need is gone, so it gets the snapshot.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := retry(t, func() error { return coord.n.AddNode(ctx, 4, ln.Addr().String()) }); err != nil {
		t.Fatal(err)
	}
	m4 := &member{id: 4, dir: t.TempDir(), addr: ln.Addr().String(), join: true}
	c.mu.Lock()
	c.addrs[4] = m4.addr
	c.members[4] = m4
	c.mu.Unlock()
	c.start(m4, ln)
	eventually(t, "the new node restored the catalog", func() error {
		if _, ok := m4.b.Topic("orders"); !ok {
			return fmt.Errorf("node 4 has no topic: %s", topicsOf(m4.b))
		}
		return committed(m4)
	})
	c.sameCatalog(coord)

	for _, m := range c.members {
		c.stop(m)
		c.start(m, nil)
	}
	eventually(t, "every node after a restart", func() error {
		for _, m := range c.members {
			if err := committed(m); err != nil {
				return err
			}
		}
		return nil
	})
}
