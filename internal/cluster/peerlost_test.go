package cluster

import (
	"fmt"
	"testing"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/spoolmq/spool/internal/catalog"
)

// TestLeaderLossElectsAtOnce: when a leader's process stops, its peers see
// its connections close, and the lowest remaining voter of each group it
// led starts an election at once (multiraft.PeerLost) rather than after
// an election timeout — here 10 to 20 s, so that only that can elect the
// new leaders within the test's 5 s.
func TestLeaderLossElectsAtOnce(t *testing.T) {
	c := newTestClusterOf(&testCluster{t: t, electionTicks: 500}, 3)
	// The metadata group's first election would take an election
	// timeout too: node 1 campaigns.
	c.members[1].n.rafts.Report(MetaGroup, func(rn *raft.RawNode) { _ = rn.Campaign() })
	if err := retry(t, func() error {
		_, err := c.members[2].b.CreateTopic("t", catalog.TopicConfig{Partitions: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(c.members[2])
	tm, _ := c.members[2].b.Topic("t")
	groups := []uint64{MetaGroup}
	for p := range int32(3) {
		c.leaderOf("t", p) // the preferred replicas campaign at once
		groups = append(groups, PartitionGroupID(tm.ID, p))
	}
	lead, _ := c.members[1].n.rafts.Leader(MetaGroup)
	if lead == 0 {
		t.Fatal("no metadata leader")
	}
	stopped := c.members[lead]
	led := 0
	for _, g := range groups {
		if l, _ := stopped.n.rafts.Leader(g); l == lead {
			led++
		}
	}
	start := time.Now()
	c.stop(stopped)
	eventuallyWithin(t, 5*time.Second, "new leaders for the stopped node's groups", func() error {
		for _, g := range groups {
			var seen uint64
			for _, m := range c.members {
				if m.n == nil {
					continue
				}
				l, _ := m.n.rafts.Leader(g)
				if l == 0 || l == lead || (seen != 0 && l != seen) {
					return fmt.Errorf("group %x: node %d sees leader %d", g, m.id, l)
				}
				seen = l
			}
		}
		return nil
	})
	t.Logf("%d groups led by the stopped node had new leaders %v after it was stopped", led, time.Since(start).Round(time.Millisecond))
}
