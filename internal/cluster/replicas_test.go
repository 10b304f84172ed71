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
	"github.com/spoolmq/spool/internal/errs"
)

// eventuallyWithin is eventually with its own deadline (a five-node
// cluster in one process under the race detector is slow).
func eventuallyWithin(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMatches checks that partition p of a topic has, on every running
// node, the voters voters and every other running member of the cluster as
// a learner.
func (c *testCluster) groupMatches(topic string, p int32, voters []uint64) error {
	var learners []uint64
	for id := range c.members {
		if !slices.Contains(voters, id) {
			learners = append(learners, id)
		}
	}
	slices.Sort(learners)
	want := slices.Sorted(slices.Values(voters))
	for _, m := range c.members {
		if m.b == nil {
			continue
		}
		tm, ok := m.b.Topic(topic)
		if !ok {
			return fmt.Errorf("node %d has no topic %s", m.id, topic)
		}
		v, ok := m.n.rafts.View(PartitionGroupID(tm.ID, p))
		if !ok {
			return fmt.Errorf("node %d runs no group for %s/%d", m.id, topic, p)
		}
		if !slices.Equal(v.Voters, want) || !slices.Equal(v.Learners, learners) || v.Joint {
			return fmt.Errorf("node %d: %s/%d has voters %v, learners %v (joint %v); want %v and %v", m.id, topic, p, v.Voters, v.Learners, v.Joint, want, learners)
		}
	}
	return nil
}

// publishTo publishes values to partition p through its leader, retrying
// while the partition changes leader, and returns them as acknowledged.
func (c *testCluster) publishTo(topic string, p int32, vals ...string) {
	c.t.Helper()
	for _, v := range vals {
		err := retry(c.t, func() error {
			lead := c.leaderOf(topic, p)
			_, err := lead.b.Publish(topic, []broker.Message{{Value: []byte(v), Partition: p}})
			return err
		})
		if err != nil {
			c.t.Fatalf("publish %s to %s/%d: %v", v, topic, p, err)
		}
	}
}

// sameRecords waits until every running node reads want from partition p.
func (c *testCluster) sameRecords(topic string, p int32, want []string) {
	c.t.Helper()
	eventuallyWithin(c.t, 30*time.Second, "every node reads the partition's records", func() error {
		for _, m := range c.members {
			if m.b == nil {
				continue
			}
			if got := values(c.t.(*testing.T), m.b, topic, p); !slices.Equal(got, want) {
				return fmt.Errorf("node %d reads %v, want %v", m.id, got, want)
			}
		}
		return nil
	})
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestReplicationFactor: on a five-node cluster, topics of replication
// factor 1 and 3 get the replicas the catalog records — spread so that
// consecutive partitions start on consecutive nodes — as their groups'
// voters, every other node a learner that reads the same records; the
// preferred (first) replica leads; a publish is acknowledged with every
// node that is not a replica stopped; and a partition reassigned to other
// nodes moves its voters there with nothing lost.
func TestReplicationFactor(t *testing.T) {
	c := newTestCluster(t, 5)
	m1 := c.members[1]
	for _, bad := range []int32{2, 4, 7} {
		if _, err := m1.b.CreateTopic("bad", catalog.TopicConfig{Partitions: 1, Replicas: bad}); !errs.Is(err, errs.InvalidArgument) {
			t.Fatalf("replication factor %d: %v, want invalid_argument", bad, err)
		}
	}
	for _, tc := range []struct {
		name string
		rf   int32
	}{{"one", 1}, {"three", 3}, {"dflt", 0}} {
		if err := retry(t, func() error {
			_, err := m1.b.CreateTopic(tc.name, catalog.TopicConfig{Partitions: 5, Replicas: tc.rf})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.sameCatalog(m1)
	for _, name := range []string{"one", "three", "dflt"} {
		tm, _ := m1.b.Topic(name)
		want := map[string]int32{"one": 1, "three": 3, "dflt": 3}[name]
		if tm.Config.Replicas != want || len(tm.Assignment) != 5 {
			t.Fatalf("%s: replication factor %d, %d assignments", name, tm.Config.Replicas, len(tm.Assignment))
		}
		firsts := map[uint64]bool{}
		for p, a := range tm.Assignment {
			if len(a.Voters) != int(want) || !slices.Equal(a.Voters, a.Initial) {
				t.Fatalf("%s/%d: replicas %+v", name, p, a)
			}
			firsts[a.Voters[0]] = true
		}
		if len(firsts) != 5 {
			t.Fatalf("%s: the partitions' first replicas are %v, want every node once", name, firsts)
		}
		for p, a := range tm.Assignment {
			eventuallyWithin(t, 30*time.Second, "the group as assigned", func() error { return c.groupMatches(name, int32(p), a.Voters) })
			eventuallyWithin(t, 30*time.Second, "the preferred replica leads", func() error {
				if lead := c.leaderOf(name, int32(p)); lead.id != a.Voters[0] {
					return fmt.Errorf("%s/%d: node %d leads, preferred %d", name, p, lead.id, a.Voters[0])
				}
				return nil
			})
		}
	}

	// Every node, learners included, reads what a partition's replicas
	// acknowledged.
	tm, _ := m1.b.Topic("three")
	for p := range int32(5) {
		c.publishTo("three", p, seq(fmt.Sprintf("p%d-", p), 0, 5)...)
	}
	for p := range int32(5) {
		c.sameRecords("three", p, seq(fmt.Sprintf("p%d-", p), 0, 5))
	}
	one, _ := m1.b.Topic("one")
	c.publishTo("one", 2, "solo")
	c.sameRecords("one", 2, []string{"solo"})
	if lead := c.leaderOf("one", 2); lead.id != one.Assignment[2].Voters[0] {
		t.Fatalf("one/2 led by %d, its replica is %d", lead.id, one.Assignment[2].Voters[0])
	}

	// With every node but partition 0's replicas stopped, a publish is
	// acknowledged (a majority of the replicas, not of the nodes).
	voters := tm.Assignment[0].Voters
	var stopped []*member
	for id, m := range c.members {
		if !slices.Contains(voters, id) {
			c.stop(m)
			stopped = append(stopped, m)
		}
	}
	lead := c.leaderOf("three", 0)
	if _, err := lead.b.Publish("three", []broker.Message{{Value: []byte("alone"), Partition: 0}}); err != nil {
		t.Fatalf("publish with only the replicas running: %v", err)
	}
	for _, m := range stopped {
		c.start(m, nil)
	}
	want0 := append(seq("p0-", 0, 5), "alone")
	c.sameRecords("three", 0, want0)

	// Reassign partition 0 to the two nodes that were not replicas and
	// one that was (not its leader): the voters move, nothing is lost.
	lead = c.leaderOf("three", 0)
	var target []uint64
	for id := uint64(1); id <= 5; id++ {
		if !slices.Contains(voters, id) {
			target = append(target, id)
		}
	}
	for _, v := range voters {
		if v != lead.id {
			target = append(target, v)
			break
		}
	}
	for _, bad := range [][]uint64{{1, 2}, {1, 1, 2}, {1, 2, 9}, {0, 1, 2}} {
		if err := m1.b.ReassignPartitions("three", []broker.Reassignment{{Partition: 0, Voters: bad}}); !errs.Is(err, errs.InvalidArgument) {
			t.Fatalf("reassign to %v: %v, want invalid_argument", bad, err)
		}
	}
	if err := m1.b.ReassignPartitions("three", []broker.Reassignment{{Partition: 9, Voters: target}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("reassign partition 9: %v", err)
	}
	if err := retry(t, func() error {
		return m1.b.ReassignPartitions("three", []broker.Reassignment{{Partition: 0, Voters: target}})
	}); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 30*time.Second, "partition 0 on its new replicas", func() error { return c.groupMatches("three", 0, target) })
	c.publishTo("three", 0, "moved")
	if lead := c.leaderOf("three", 0); !slices.Contains(target, lead.id) {
		t.Fatalf("partition 0 led by %d, not one of its replicas %v", lead.id, target)
	}
	c.sameRecords("three", 0, append(want0, "moved"))
	for _, m := range c.members {
		tm, _ := m.b.Topic("three")
		if !slices.Equal(tm.Assignment[0].Voters, target) || !slices.Equal(tm.Assignment[0].Initial, voters) {
			t.Fatalf("node %d records partition 0's replicas as %+v", m.id, tm.Assignment[0])
		}
	}

	// A restart keeps the groups as they are.
	c.stop(m1)
	c.start(m1, nil)
	eventuallyWithin(t, 30*time.Second, "partition 0 after a restart", func() error { return c.groupMatches("three", 0, target) })
	c.sameRecords("three", 0, append(want0, "moved"))
}

// TestReplicasFollowMembership: a node added later becomes a learner of
// every existing partition and reads it; removing a node that is a
// replica, while it is down, reassigns its partitions to another node, and
// every group drops it (TestMembership removes a node that is up).
func TestReplicasFollowMembership(t *testing.T) {
	c := newTestCluster(t, 3)
	m2 := c.members[2]
	if err := retry(t, func() error {
		_, err := m2.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		c.publishTo("orders", p, seq(fmt.Sprintf("p%d-", p), 0, 3)...)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := retry(t, func() error { return m2.n.AddNode(ctx, 4, ln.Addr().String()) }); err != nil {
		t.Fatal(err)
	}
	m4 := &member{id: 4, dir: t.TempDir(), addr: ln.Addr().String(), join: true}
	c.addrs[4] = m4.addr
	c.members[4] = m4
	c.start(m4, ln)
	c.sameCatalog(m2)
	tm, _ := m2.b.Topic("orders")
	for p := range int32(3) {
		eventuallyWithin(t, 30*time.Second, "node 4 a learner", func() error { return c.groupMatches("orders", p, tm.Assignment[p].Voters) })
		c.sameRecords("orders", p, seq(fmt.Sprintf("p%d-", p), 0, 3))
	}
	eventuallyWithin(t, 30*time.Second, "node 4 promoted to a metadata voter", func() error {
		st, _ := m2.n.rafts.Status(MetaGroup)
		if _, ok := st.Config.Voters.IDs()[4]; !ok {
			return fmt.Errorf("voters %v", st.Config.Voters)
		}
		return nil
	})

	// Node 1 is a replica of every partition (three replicas on three
	// nodes), and it is down: removing it moves each to node 4, and no
	// partition waits for it.
	m1 := c.members[1]
	c.stop(m1)
	delete(c.members, 1)
	if err := retry(t, func() error { return m2.n.RemoveNode(ctx, 1) }); err != nil {
		t.Fatal(err)
	}
	tm, _ = m2.b.Topic("orders")
	for p := range int32(3) {
		want := []uint64{2, 3, 4}
		if got := slices.Sorted(slices.Values(tm.Assignment[p].Voters)); !slices.Equal(got, want) {
			t.Fatalf("orders/%d reassigned to %v, want %v", p, got, want)
		}
		eventuallyWithin(t, 30*time.Second, "node 1 gone from the group", func() error { return c.groupMatches("orders", p, want) })
		c.publishTo("orders", p, fmt.Sprintf("p%d-after", p))
		c.sameRecords("orders", p, append(seq(fmt.Sprintf("p%d-", p), 0, 3), fmt.Sprintf("p%d-after", p)))
	}
}

// TestLearnerRestart: a learner of a quiet partition (its leader has
// quiesced the group) that restarts reads what was committed before.
func TestLearnerRestart(t *testing.T) {
	c := newTestCluster(t, 3)
	m1 := c.members[1]
	if err := retry(t, func() error {
		_, err := m1.b.CreateTopic("solo", catalog.TopicConfig{Partitions: 1, Replicas: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(m1)
	tm, _ := m1.b.Topic("solo")
	voter := tm.Assignment[0].Voters[0]
	eventuallyWithin(t, 30*time.Second, "the learners added", func() error { return c.groupMatches("solo", 0, []uint64{voter}) })
	c.publishTo("solo", 0, "a", "b")
	c.sameRecords("solo", 0, []string{"a", "b"})
	learner := c.members[voter%3+1]
	time.Sleep(500 * time.Millisecond) // the group quiesces
	c.stop(learner)
	c.start(learner, nil)
	c.sameRecords("solo", 0, []string{"a", "b"})
	c.stop(learner)
	time.Sleep(time.Second)
	c.start(learner, nil)
	c.sameRecords("solo", 0, []string{"a", "b"})
}

// TestPlaceReplicas: consecutive partitions start on consecutive nodes,
// each partition's replicas are distinct, and over many partitions every
// node holds about as many replicas as any other.
func TestPlaceReplicas(t *testing.T) {
	members := []uint64{1, 2, 4, 7, 9}
	for _, rf := range []int{1, 3, 5} {
		asg := placeReplicas("topic-id", members, rf, 0, 50)
		count := map[uint64]int{}
		for p, a := range asg {
			if len(a.Voters) != rf || !slices.Equal(a.Voters, a.Initial) {
				t.Fatalf("rf %d, partition %d: %+v", rf, p, a)
			}
			seen := map[uint64]bool{}
			for _, v := range a.Voters {
				if seen[v] || !slices.Contains(members, v) {
					t.Fatalf("rf %d, partition %d: replicas %v", rf, p, a.Voters)
				}
				seen[v] = true
				count[v]++
			}
			if p > 0 {
				prev := slices.Index(members, asg[p-1].Voters[0])
				if cur := slices.Index(members, a.Voters[0]); cur != (prev+1)%len(members) {
					t.Fatalf("rf %d: partition %d starts on %d after %d", rf, p, a.Voters[0], asg[p-1].Voters[0])
				}
			}
		}
		for _, m := range members {
			if want := 50 * rf / len(members); count[m] < want-rf || count[m] > want+rf {
				t.Fatalf("rf %d: node %d holds %d replicas, about %d expected: %v", rf, m, count[m], want, count)
			}
		}
	}
	// Added partitions continue the rotation.
	all := placeReplicas("t", members, 3, 0, 8)
	more := placeReplicas("t", members, 3, 5, 8)
	for i, a := range more {
		if !slices.Equal(a.Voters, all[5+i].Voters) {
			t.Fatalf("partition %d placed %v when added, %v at creation", 5+i, a.Voters, all[5+i].Voters)
		}
	}
}
