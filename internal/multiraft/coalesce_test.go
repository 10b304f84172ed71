package multiraft

import (
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/raftlog"
	"github.com/spoolmq/spool/internal/state"
)

// TestHeartbeatsCoalesced runs 100 groups on three nodes that never
// quiesce: every tick each leader heartbeats its followers, yet a node
// sends each peer a handful of messages per tick, not one per group, and
// every group keeps its leader (the coalesced heartbeats reach them all).
func TestHeartbeatsCoalesced(t *testing.T) {
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
		n := New(Config{ID: id, Sender: sender{nw, id}, Logger: quiet, QuiesceTicks: -1})
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
	step := func() (delivered, coalesced int) {
		for id := uint64(1); id <= 3; id++ {
			nodes[id].Tick()
			nodes[id].Process()
		}
		for range 10 {
			nw.mu.Lock()
			batch := nw.inflight
			nw.inflight = nil
			nw.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, p := range batch {
				nodes[p.to].Receive(p.from, []peer.Envelope{p.env})
				delivered++
				if p.env.Group == CoalescedGroup {
					coalesced += len(p.env.Msg.GetContext()) / hbEntrySize
				}
			}
			for id := uint64(1); id <= 3; id++ {
				nodes[id].Process()
			}
		}
		return delivered, coalesced
	}
	leaders := func() map[uint64]uint64 {
		out := map[uint64]uint64{}
		for g := uint64(1); g <= groups; g++ {
			for id := uint64(1); id <= 3; id++ {
				if st, ok := nodes[id].Status(g); ok && st.RaftState == raft.StateLeader {
					out[g] = id
				}
			}
		}
		return out
	}
	for range 60 { // elections
		step()
	}
	before := leaders()
	if len(before) != groups {
		t.Fatalf("%d of %d groups have a leader", len(before), groups)
	}
	var messages, beats int
	const ticks = 30 // three election timeouts
	for range ticks {
		d, c := step()
		messages += d
		beats += c
	}
	// Each of 3 nodes sends each of 2 peers a few messages per tick.
	if per := messages / ticks; per > 24 {
		t.Fatalf("%d messages per tick for %d groups, want a few per node pair", per, groups)
	}
	// 100 leaders × 2 followers heartbeats and as many answers a tick.
	if per := beats / ticks; per < 2*groups {
		t.Fatalf("%d heartbeats per tick carried, want at least %d", per, 2*groups)
	}
	if after := leaders(); len(after) != groups {
		t.Fatalf("%d groups lost their leader", groups-len(after))
	} else {
		for g, l := range before {
			if after[g] != l {
				t.Fatalf("group %d changed leader (%d → %d) while heartbeats were coalesced", g, l, after[g])
			}
		}
	}
	t.Logf("%d groups: %d messages and %d heartbeats per tick", groups, messages/ticks, beats/ticks)
}
