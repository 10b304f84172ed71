package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRemovedPeerDroppedAfterStall removes node 3 and then acts as if the
// tick loops of nodes 1 and 2 had not run from before the end of its
// grace period until more than a second after it (a busy machine: each
// tick loop waits for the metadata group's worker, and its ticker drops
// the ticks it misses). They must still drop node 3 from their peers,
// although no registry change follows to make them look again.
func TestRemovedPeerDroppedAfterStall(t *testing.T) {
	c := newTestCluster(t, 3)
	eventually(t, "every node registered", func() error {
		for _, m := range c.members {
			reg, err := m.n.Registry()
			if err != nil {
				return err
			}
			if len(reg) != 3 {
				return fmt.Errorf("node %d's registry: %+v", m.id, reg)
			}
			for _, ni := range reg {
				if ni.HTTPAddr == "" {
					return fmt.Errorf("node %d's registry: %+v", m.id, reg)
				}
			}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := retry(t, func() error { return c.members[1].n.RemoveNode(ctx, 3) }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		n := c.members[id].n
		eventually(t, fmt.Sprintf("node %d saw node 3 removed", id), func() error {
			n.mu.Lock()
			defer n.mu.Unlock()
			r, ok := n.removedSeen[3]
			if !ok {
				return fmt.Errorf("not yet")
			}
			if r.dropped {
				t.Fatalf("node %d dropped node 3 within its grace period", id)
			}
			// The last refresh before the grace ended, and none until a
			// second and more after it.
			r.seen = time.Now().Add(-removedGrace - 2*time.Second)
			n.removedSeen[3] = r
			return nil
		})
	}
	for _, id := range []uint64{1, 2} {
		n := c.members[id].n
		eventually(t, fmt.Sprintf("node 3 dropped from node %d's peers", id), func() error {
			for _, p := range n.transport.Status() {
				if p.ID == 3 {
					return fmt.Errorf("peers %+v", n.transport.Status())
				}
			}
			return nil
		})
	}
}
