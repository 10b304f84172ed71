package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// leaderOf waits for partition p's group to have a leader that every
// running member agrees on, and returns it.
func (c *testCluster) leaderOf(topic string, p int32) *member {
	c.t.Helper()
	var lead *member
	eventually(c.t, "a partition leader", func() error {
		var seen uint64
		for _, m := range c.members {
			if m.b == nil {
				continue
			}
			tm, ok := m.b.Topic(topic)
			if !ok {
				return fmt.Errorf("node %d has no topic %s yet", m.id, topic)
			}
			l, _ := m.n.rafts.Leader(PartitionGroupID(tm.ID, p))
			if l == 0 || (seen != 0 && l != seen) || c.members[l] == nil || c.members[l].b == nil {
				return fmt.Errorf("node %d sees leader %d (others %d)", m.id, l, seen)
			}
			seen = l
		}
		lead = c.members[seen]
		return nil
	})
	return lead
}

// values reads partition p of a topic on a node: every record's value, in
// offset order.
func values(t *testing.T, b *broker.Broker, topic string, p int32) []string {
	t.Helper()
	var out []string
	for off := int64(0); ; {
		r, err := b.ReadRaw(topic, p, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) == 0 {
			return out
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
					out = append(out, string(rec.Value))
					off = o + 1
				}
			}
		}
	}
}

// TestReplicatedPartition: a topic's partition is a raft group over the
// nodes' partition logs. Publishes go through its leader and are answered
// once a majority holds them; followers refuse publishes; every node's log
// reads the same records; with the leader stopped, another node leads and
// publishing goes on; the stopped node catches up when it returns, and
// nothing acknowledged is missing anywhere.
func TestReplicatedPartition(t *testing.T) {
	c := newTestCluster(t, 3)
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateTopic("orders", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var acked []string
	publish := func(lead *member, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			v := fmt.Sprintf("m%d", i)
			res, err := lead.b.Publish("orders", []broker.Message{{Value: []byte(v), Partition: 0}})
			if err != nil {
				t.Fatalf("publish %s through leader %d: %v", v, lead.id, err)
			}
			if want := int64(len(acked)); res[0].Offset != want {
				t.Fatalf("publish %s: offset %d, want %d", v, res[0].Offset, want)
			}
			acked = append(acked, v)
		}
	}
	lead := c.leaderOf("orders", 0)
	publish(lead, 0, 50)
	st := lead.n.Status()
	if len(st.Groups) != 2 || st.Groups[1].Name != "orders/0" || st.Groups[1].Role != "leader" || len(st.Groups[1].Followers) != 3 {
		t.Fatalf("status of the partition's leader: %+v", st.Groups)
	}
	for _, m := range c.members {
		if m != lead {
			_, err := m.b.Publish("orders", []broker.Message{{Value: []byte("x"), Partition: 0}})
			if !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), fmt.Sprintf("node %d does, at http://%s", lead.id, nativeAddr(lead.id))) {
				t.Fatalf("publish on follower %d: %v, want unavailable naming the leader and its address", m.id, err)
			}
			break
		}
	}
	same := func() {
		t.Helper()
		eventually(t, "every log has what was acknowledged", func() error {
			for _, m := range c.members {
				if m.b == nil {
					continue
				}
				if got := values(t, m.b, "orders", 0); !slices.Equal(got, acked) {
					return fmt.Errorf("node %d reads %d records, %d acknowledged", m.id, len(got), len(acked))
				}
			}
			return nil
		})
	}
	same()

	old := lead
	c.stop(old)
	t0 := time.Now()
	lead = c.leaderOf("orders", 0)
	t.Logf("leader %d stopped: node %d leads after %v", old.id, lead.id, time.Since(t0).Round(time.Millisecond))
	publish(lead, 50, 100)
	c.start(old, nil)
	same()
}

// TestLeadersBalanced: a topic's partitions start with their leaders
// spread over the nodes, and a partition whose leader was stopped returns
// to its preferred leader once that node is back and caught up.
func TestLeadersBalanced(t *testing.T) {
	c := newTestCluster(t, 3)
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateTopic("wide", catalog.TopicConfig{Partitions: 6})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// The preferred leaders campaign at once; one that loses a race to
	// another member's election gets its partition handed back by the
	// balancer.
	eventually(t, "two leaders per node", func() error {
		count := map[uint64]int{}
		for p := range int32(6) {
			count[c.leaderOf("wide", p).id]++
		}
		for id := range c.members {
			if count[id] != 2 {
				return fmt.Errorf("leaders per node %v, want 2 each", count)
			}
		}
		return nil
	})
	victim := c.leaderOf("wide", 0)
	c.stop(victim)
	if moved := c.leaderOf("wide", 0); moved == victim {
		t.Fatal("the stopped node still leads")
	}
	c.start(victim, nil)
	eventually(t, "partition 0 back on its preferred leader", func() error {
		tm, _ := victim.b.Topic("wide")
		if l, _ := victim.n.rafts.Leader(PartitionGroupID(tm.ID, 0)); l != victim.id {
			return fmt.Errorf("node %d leads", l)
		}
		return nil
	})
}
