package multiraft

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/raftlog"
	"github.com/spoolmq/spool/internal/state"
)

// TestIdleGroupsQuiesce runs 100 groups on three nodes: once they have
// nothing to do they stop sending anything but the nodes' keepalives; a
// proposal wakes its group; and when a leader's node goes silent, the
// groups it led wake up on the other nodes and elect new leaders.
func TestIdleGroupsQuiesce(t *testing.T) {
	const groups = 100
	nw := &net{cut: map[[2]uint64]bool{}}
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	nodes := map[uint64]*Node{}
	for id := uint64(1); id <= 3; id++ {
		st, err := state.Open(t.TempDir(), state.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n := New(Config{ID: id, Sender: sender{nw, id}, Logger: quiet})
		defer n.Close()
		for g := uint64(1); g <= groups; g++ {
			log, err := raftlog.Open(st, g)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.AddGroup(g, log, &list{}, 0, peers); err != nil {
				t.Fatal(err)
			}
		}
		nodes[id] = n
	}
	dead := uint64(0)
	// step runs one tick: every live node ticks and processes, the
	// network delivers everything between live nodes, and every live node
	// hears the others' keepalives. It returns the messages delivered.
	step := func() int {
		for id := uint64(1); id <= 3; id++ {
			if id != dead {
				nodes[id].Tick()
				nodes[id].Process()
			}
		}
		delivered := 0
		for range 10 {
			nw.mu.Lock()
			batch := nw.inflight
			nw.inflight = nil
			nw.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, p := range batch {
				if p.to == dead || p.from == dead {
					continue
				}
				nodes[p.to].Receive(p.from, []peer.Envelope{p.env})
				delivered++
			}
			for id := uint64(1); id <= 3; id++ {
				if id != dead {
					nodes[id].Process()
				}
			}
		}
		for a := uint64(1); a <= 3; a++ {
			for b := uint64(1); b <= 3; b++ {
				if a != b && a != dead && b != dead {
					nodes[b].Receive(a, nil) // keepalive
				}
			}
		}
		return delivered
	}
	propose := func(g uint64) error {
		errc := make(chan error, 3)
		for id := uint64(1); id <= 3; id++ {
			if id == dead {
				continue
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				errc <- nodes[id].Propose(ctx, g, []byte("x"))
			}()
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			step()
			select {
			case err := <-errc:
				if err == nil {
					return nil
				}
			default:
			}
		}
		return context.DeadlineExceeded
	}
	for range 60 { // elections
		step()
	}
	for g := uint64(1); g <= groups; g++ {
		if err := propose(g); err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
	}
	for range 30 {
		step()
	}
	var idle int
	for range 20 {
		idle += step()
	}
	if idle > 0 {
		t.Fatalf("%d raft messages in 20 ticks of 100 idle groups, want none", idle)
	}
	// A proposal wakes one group.
	if err := propose(7); err != nil {
		t.Fatal(err)
	}
	// The node leading the most groups goes silent.
	leads := map[uint64]int{}
	for g := uint64(1); g <= groups; g++ {
		for id := uint64(1); id <= 3; id++ {
			if st, ok := nodes[id].Status(g); ok && st.RaftState == raft.StateLeader {
				leads[id]++
			}
		}
	}
	for id, n := range leads {
		if dead == 0 || n > leads[dead] {
			dead = id
		}
	}
	t.Logf("leaders per node %v; node %d goes silent", leads, dead)
	for range 80 {
		step()
	}
	for g := uint64(1); g <= groups; g++ {
		if err := propose(g); err != nil {
			t.Fatalf("group %d after node %d went silent: %v", g, dead, err)
		}
	}
}

// TestQuiescedLeaderCutOff cuts a node off from both others while it
// leads quiesced groups: it goes on ticking, hears nobody, and must stop
// saying it leads them (check-quorum), as the two others elect new
// leaders; a follower's silence alone wakes nothing on the leaders (a
// quorum is still heard), so idle groups stay quiet with one node down.
func TestQuiescedLeaderCutOff(t *testing.T) {
	const groups = 20
	nw := &net{cut: map[[2]uint64]bool{}}
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	nodes := map[uint64]*Node{}
	for id := uint64(1); id <= 3; id++ {
		st, err := state.Open(t.TempDir(), state.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n := New(Config{ID: id, Sender: sender{nw, id}, Logger: quiet})
		defer n.Close()
		for g := uint64(1); g <= groups; g++ {
			log, err := raftlog.Open(st, g)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.AddGroup(g, log, &list{}, 0, peers); err != nil {
				t.Fatal(err)
			}
		}
		nodes[id] = n
	}
	cut, down := uint64(0), uint64(0) // cut off: ticks, hears nothing; down: does nothing
	step := func() int {
		for id := uint64(1); id <= 3; id++ {
			if id != down {
				nodes[id].Tick()
				nodes[id].Process()
			}
		}
		delivered := 0
		for range 10 {
			nw.mu.Lock()
			batch := nw.inflight
			nw.inflight = nil
			nw.mu.Unlock()
			for _, p := range batch {
				if p.to == cut || p.from == cut || p.to == down || p.from == down {
					continue
				}
				nodes[p.to].Receive(p.from, []peer.Envelope{p.env})
				delivered++
			}
			for id := uint64(1); id <= 3; id++ {
				if id != down {
					nodes[id].Process()
				}
			}
		}
		for a := uint64(1); a <= 3; a++ {
			for b := uint64(1); b <= 3; b++ {
				if a != b && a != cut && b != cut && a != down && b != down {
					nodes[b].Receive(a, nil) // keepalive
				}
			}
		}
		return delivered
	}
	leads := func(id uint64) (n int) {
		for g := uint64(1); g <= groups; g++ {
			if st, ok := nodes[id].Status(g); ok && st.RaftState == raft.StateLeader {
				n++
			}
		}
		return n
	}
	for range 60 { // elections, then quiescence
		step()
	}
	if n := step(); n > 0 {
		t.Fatalf("%d messages among idle groups", n)
	}
	for id := uint64(1); id <= 3; id++ {
		if cut == 0 || leads(id) > leads(cut) {
			cut = id
		}
	}
	n := leads(cut)
	if n == 0 {
		t.Fatal("no node leads a group")
	}
	for range 50 {
		step()
	}
	if l := leads(cut); l != 0 {
		t.Fatalf("node %d, cut off for 50 ticks, still says it leads %d of its %d groups", cut, l, n)
	}
	// The two others elect a leader for every group: each election takes
	// 10–20 ticks and a split vote another round, so allow a few rounds.
	others := 0
	for range 100 {
		others = 0
		for id := uint64(1); id <= 3; id++ {
			if id != cut {
				others += leads(id)
			}
		}
		if others == groups {
			break
		}
		step()
	}
	if others != groups {
		t.Fatalf("the two others lead %d of %d groups", others, groups)
	}

	// Healed, then a follower of every group goes down: the leaders hear
	// a quorum and their quiesced groups stay quiet.
	cut = 0
	for range 60 {
		step()
	}
	for id := uint64(1); id <= 3; id++ {
		if leads(id) == 0 {
			down = id
		}
	}
	if down == 0 {
		t.Skip("every node leads a group: no node is a follower of all of them")
	}
	for range 30 {
		step()
	}
	if n := step() + step() + step(); n > 0 {
		t.Fatalf("%d messages among idle groups with follower %d down", n, down)
	}
}
