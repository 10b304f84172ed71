package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

// coordinator waits for one running member to coordinate subscriptions
// and returns it.
func (c *testCluster) coordinator() *member {
	c.t.Helper()
	var coord *member
	eventually(c.t, "a subscription coordinator", func() error {
		coord = nil
		for _, m := range c.members {
			if m.b != nil && m.b.CoordinatorTerm() != 0 {
				if coord != nil {
					return fmt.Errorf("nodes %d and %d both coordinate", coord.id, m.id)
				}
				coord = m
			}
		}
		if coord == nil {
			return fmt.Errorf("no node coordinates")
		}
		return nil
	})
	return coord
}

// queued receives deliveries from a queue session until n arrived or
// nothing more comes for a while.
func queued(t *testing.T, s *broker.Session, n int) []broker.Delivered {
	t.Helper()
	var out []broker.Delivered
	for len(out) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ev, err := s.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		out = append(out, ev.Deliveries...)
	}
	return out
}

// TestSubscriptionsFailOver: the metadata leader coordinates
// subscriptions; other nodes refuse sessions naming it. A stream
// subscription's commit and a queue subscription's acknowledgements made
// on the coordinator survive its death: the next coordinator continues
// from the commit and delivers only what was not acknowledged.
func TestSubscriptionsFailOver(t *testing.T) {
	c := newTestCluster(t, 3)
	any := c.members[1]
	if err := retry(t, func() error {
		_, err := any.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []struct {
		name string
		cfg  catalog.SubConfig
	}{{"s", catalog.SubConfig{}}, {"q", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{
		AckTimeout: time.Minute, MaxDeliveries: 5, Backoff: queue.Backoff{Initial: time.Second, Max: time.Second, Multiplier: 1, Jitter: queue.JitterNone}}}}} {
		if err := retry(t, func() error {
			_, err := any.b.CreateSubscription("orders", sub.name, sub.cfg)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	lead := c.leaderOf("orders", 0)
	for i := range 20 {
		if _, err := lead.b.Publish("orders", []broker.Message{{Value: fmt.Appendf(nil, "m%d", i), Partition: 0}}); err != nil {
			t.Fatal(err)
		}
	}

	coord := c.coordinator()
	for _, m := range c.members {
		if m == coord {
			continue
		}
		_, err := m.b.Join(broker.JoinRequest{Topic: "orders", Subscription: "s"})
		if !errs.Is(err, errs.Unavailable) || !strings.Contains(err.Error(), fmt.Sprintf("node %d does", coord.id)) {
			t.Fatalf("join on node %d (coordinator %d): %v", m.id, coord.id, err)
		}
	}
	s, err := coord.b.Join(broker.JoinRequest{Topic: "orders", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Next(t.Context())
	if err != nil || ev.Assignment == nil {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	if err := s.Commit(1, ev.Assignment.Generation, map[int32]int64{0: 7}); err != nil {
		t.Fatal(err)
	}
	q, err := coord.b.Join(broker.JoinRequest{Topic: "orders", Subscription: "q", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := queued(t, q, 20)
	if len(got) != 20 {
		t.Fatalf("queue delivered %d of 20", len(got))
	}
	var acks []broker.OffsetRange
	for _, d := range got {
		if d.Offset < 10 {
			acks = append(acks, broker.OffsetRange{Partition: 0, From: d.Offset, To: d.Offset + 1})
		}
	}
	if err := q.Ack(1, acks); err != nil {
		t.Fatal(err)
	}
	// Every node learns the acknowledgements with the next queue snapshot.
	eventually(t, "the queue's progress on every node", func() error {
		for _, m := range c.members {
			info, err := m.b.DescribeSubscription("orders", "q")
			if err != nil {
				return err
			}
			if f := info.Partitions[0].Committed; f != 10 {
				return fmt.Errorf("node %d: queue floor %d", m.id, f)
			}
		}
		return nil
	})

	c.stop(coord)
	next := c.coordinator()
	t.Logf("coordinator %d stopped; node %d coordinates", coord.id, next.id)
	info, err := next.b.DescribeSubscription("orders", "s")
	if err != nil {
		t.Fatal(err)
	}
	if off := info.Partitions[0].Committed; off != 7 {
		t.Fatalf("stream commit on the new coordinator: %d, want 7", off)
	}
	var q2 *broker.Session
	if err := retry(t, func() error {
		var err error
		q2, err = next.b.Join(broker.JoinRequest{Topic: "orders", Subscription: "q", Credits: 100})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	again := queued(t, q2, 10)
	var offs []int64
	for _, d := range again {
		offs = append(offs, d.Offset)
	}
	slices.Sort(offs)
	if want := []int64{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}; !slices.Equal(offs, want) {
		t.Fatalf("the new coordinator delivered %v, want the unacknowledged %v", offs, want)
	}
	q2.Leave()
	c.start(coord, nil)
	eventually(t, "the returning node's catalog", func() error {
		info, err := coord.b.DescribeSubscription("orders", "s")
		if err != nil {
			return err
		}
		if off := info.Partitions[0].Committed; off != 7 {
			return fmt.Errorf("stream commit %d on the returning node", off)
		}
		return nil
	})
}

// TestDeadLettersForwarded: the coordinator dead-letters a rejected queue
// message into a dead-letter partition another node leads (forwarded to
// that leader), and redrives it back; the redrive's mark is replicated,
// so the next coordinator does not redrive it again.
func TestDeadLettersForwarded(t *testing.T) {
	c := newTestCluster(t, 3)
	any := c.members[1]
	if err := retry(t, func() error {
		_, err := any.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cfg := catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{AckTimeout: time.Minute, MaxDeliveries: 1,
		Backoff: queue.Backoff{Initial: time.Second, Max: time.Second, Multiplier: 1, Jitter: queue.JitterNone}}}
	if err := retry(t, func() error {
		_, err := any.b.CreateSubscription("jobs", "w", cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dlq := catalog.DeadLetterTopicName("jobs", "w")
	dlqLead := c.leaderOf(dlq, 0)
	coord := c.coordinator()
	if coord == dlqLead {
		// Move coordination away from the dead-letter partition's leader.
		to := c.members[coord.id%3+1]
		if err := coord.n.TransferLeadership(t.Context(), to.id); err != nil {
			t.Fatal(err)
		}
		eventually(t, "coordination moved", func() error {
			if to.b.CoordinatorTerm() == 0 {
				return fmt.Errorf("node %d does not coordinate yet", to.id)
			}
			return nil
		})
		coord = to
	}
	t.Logf("coordinator %d, dead-letter leader %d", coord.id, dlqLead.id)
	lead := c.leaderOf("jobs", 0)
	if _, err := lead.b.Publish("jobs", []broker.Message{{Value: []byte("poison"), Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	s, err := coord.b.Join(broker.JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := queued(t, s, 1)
	if len(got) != 1 {
		t.Fatalf("delivered %d", len(got))
	}
	if err := s.Reject(1, 0, got[0].Offset, "cannot parse"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dead letter on every node", func() error {
		for _, m := range c.members {
			dls, _, err := m.b.ListDeadLetters("jobs", "w", 0, 10)
			if err != nil {
				return err
			}
			if len(dls) != 1 || string(dls[0].Message.Value) != "poison" || dls[0].OriginOffset != got[0].Offset {
				return fmt.Errorf("node %d lists %+v", m.id, dls)
			}
		}
		return nil
	})
	s.Leave()
	rep, err := coord.b.Redrive(t.Context(), broker.RedriveRequest{Topic: "jobs", Subscription: "w"})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive: %+v, %v", rep, err)
	}
	eventually(t, "the redriven message and its mark", func() error {
		for _, m := range c.members {
			if vs := values(t, m.b, "jobs", 0); len(vs) != 2 || vs[1] != "poison" {
				return fmt.Errorf("node %d reads %v from jobs", m.id, vs)
			}
			dls, _, err := m.b.ListDeadLetters("jobs", "w", 0, 10)
			if err != nil {
				return err
			}
			if len(dls) != 1 || !dls[0].Redriven {
				return fmt.Errorf("node %d: dead letter not marked redriven: %+v", m.id, dls)
			}
		}
		return nil
	})
	c.stop(coord)
	next := c.coordinator()
	var again broker.RedriveReport
	if err := retry(t, func() error {
		var err error
		again, err = next.b.Redrive(t.Context(), broker.RedriveRequest{Topic: "jobs", Subscription: "w"})
		return err
	}); err != nil || again.Moved != 0 {
		t.Fatalf("second redrive on the new coordinator: %+v, %v", again, err)
	}
}

// TestQuorumContact: a node knows whether it heard from a majority lately;
// cut off from it (two of three stopped), it stops claiming so within a
// few ticks, so that a deposed metadata leader stops answering from
// memory for the coordinator.
func TestQuorumContact(t *testing.T) {
	c := newTestCluster(t, 3)
	eventually(t, "every node in contact with a majority", func() error {
		for _, m := range c.members {
			if !m.n.InQuorumContact() {
				return fmt.Errorf("node %d is not", m.id)
			}
		}
		return nil
	})
	c.stop(c.members[2])
	if !c.members[1].n.InQuorumContact() {
		t.Fatal("node 1 lost contact with a majority when one of three stopped")
	}
	c.stop(c.members[3])
	eventually(t, "node 1 out of contact", func() error {
		if c.members[1].n.InQuorumContact() {
			return fmt.Errorf("node 1 still claims contact with a majority")
		}
		return nil
	})
}
