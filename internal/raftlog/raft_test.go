package raftlog

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/state"
)

// node is one member of an in-process raft group over a Store, driven by
// hand: the test decides when it ticks and which messages arrive.
type node struct {
	id      uint64
	dir     string
	st      *state.Store
	store   *Store
	rn      *raft.RawNode
	applied []string // data of the normal entries applied, in order: the state machine
	index   uint64   // the last applied index
	cs      *raftpb.ConfState
}

func startNode(t *testing.T, id uint64, dir string, peers []raft.Peer) *node {
	t.Helper()
	n := &node{id: id, dir: dir, st: openState(t, dir)}
	var err error
	if n.store, err = Open(n.st, 0); err != nil {
		t.Fatal(err)
	}
	_, cs, _ := n.store.InitialState()
	n.cs = cs
	// The state machine restarts from the latest snapshot; raft gives
	// back every committed entry after it.
	snap, _ := n.store.Snapshot()
	n.restore(snap)
	cfg := &raft.Config{ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: n.store, MaxSizePerMsg: 1 << 20,
		MaxInflightMsgs: 64, PreVote: true, CheckQuorum: true, Applied: n.index, Logger: discardLogger{}}
	if n.rn, err = raft.NewRawNode(cfg); err != nil {
		t.Fatal(err)
	}
	if last, _ := n.store.LastIndex(); last == 0 && peers != nil {
		if err := n.rn.Bootstrap(peers); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// restore replaces the state machine with a snapshot's.
func (n *node) restore(snap *raftpb.Snapshot) {
	n.applied = nil
	if d := snap.GetData(); len(d) > 0 {
		n.applied = strings.Split(string(d), ",")
	}
	n.index = snap.GetMetadata().GetIndex()
	if cs := snap.GetMetadata().GetConfState(); cs != nil {
		n.cs = cs
	}
}

func (n *node) apply(t *testing.T, ents []*raftpb.Entry) {
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) > 0 {
				n.applied = append(n.applied, string(e.GetData()))
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				t.Fatal(err)
			}
			n.cs = n.rn.ApplyConfChange(&cc)
		}
		n.index = e.GetIndex()
	}
}

// ready persists, then returns the messages to send, then applies: the
// synchronous Ready contract.
func (n *node) ready(t *testing.T) []*raftpb.Message {
	t.Helper()
	if !n.rn.HasReady() {
		return nil
	}
	rd := n.rn.Ready()
	if err := n.store.Save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync); err != nil {
		t.Fatal(err)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		n.restore(rd.Snapshot)
	}
	n.apply(t, rd.CommittedEntries)
	msgs := rd.Messages
	n.rn.Advance(rd)
	return msgs
}

// deliver steps m into its recipient, or drops it; either way the sender
// hears what a transport would tell it (a snapshot's fate, an unreachable
// peer), as the raft contract requires.
func deliver(nodes map[uint64]*node, m *raftpb.Message, ok bool, down uint64) {
	from := nodes[m.GetFrom()]
	if !ok {
		if m.GetType() == raftpb.MsgSnap && m.GetFrom() != down {
			from.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		}
		if m.GetFrom() != down {
			from.rn.ReportUnreachable(m.GetTo())
		}
		return
	}
	nodes[m.GetTo()].rn.Step(m)
	if m.GetType() == raftpb.MsgSnap && m.GetFrom() != down {
		from.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
	}
}

type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

// TestGroupOverStores runs a three-node group whose logs are Stores,
// with messages dropped and reordered at random, a node restarted from
// its state store in the middle, and compaction (so that the restarted
// node may need a snapshot); every node must end with the same applied
// entries, and every proposal acknowledged by a commit must be among them.
func TestGroupOverStores(t *testing.T) {
	rng := seeded(t, 2)
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	nodes := map[uint64]*node{}
	for id := uint64(1); id <= 3; id++ {
		nodes[id] = startNode(t, id, t.TempDir(), peers)
	}
	defer func() {
		for _, n := range nodes {
			n.st.Close()
		}
	}()
	var inflight []*raftpb.Message
	proposed := 0
	down := uint64(0)
	for round := range 3000 {
		// A node goes down for a while, then restarts from its store.
		switch {
		case round == 800:
			down = uint64(1 + rng.IntN(3))
			nodes[down].st.Close()
		case round == 1600:
			nodes[down] = startNode(t, down, nodes[down].dir, nil)
			down = 0
		}
		for id := uint64(1); id <= 3; id++ {
			n := nodes[id]
			if id == down {
				continue
			}
			if rng.IntN(4) == 0 {
				n.rn.Tick()
			}
			if n.rn.Status().RaftState == raft.StateLeader && rng.IntN(3) == 0 && round < 2500 {
				if err := n.rn.Propose([]byte(fmt.Sprintf("p%d", proposed))); err == nil {
					proposed++
				}
			}
			inflight = append(inflight, n.ready(t)...)
			if n.index > 0 && rng.IntN(200) == 0 {
				if err := n.store.Compact(n.index, n.cs, []byte(strings.Join(n.applied, ","))); err != nil && err != raft.ErrCompacted {
					t.Fatal(err)
				}
			}
		}
		// Deliver some messages, in random order, dropping a few.
		rng.Shuffle(len(inflight), func(i, j int) { inflight[i], inflight[j] = inflight[j], inflight[i] })
		k := rng.IntN(len(inflight) + 1)
		for _, m := range inflight[:k] {
			deliver(nodes, m, m.GetTo() != down && rng.IntN(20) != 0, down)
		}
		inflight = slices.Delete(inflight, 0, k)
	}
	// Quiet network: everything is delivered until nothing moves.
	for range 200 {
		for id := uint64(1); id <= 3; id++ {
			n := nodes[id]
			n.rn.Tick()
			inflight = append(inflight, n.ready(t)...)
		}
		for _, m := range inflight {
			deliver(nodes, m, true, 0)
		}
		inflight = inflight[:0]
	}
	ref := nodes[1].applied
	if len(ref) == 0 {
		t.Fatal("nothing was committed")
	}
	for id, n := range nodes {
		if !slices.Equal(n.applied, ref) {
			t.Fatalf("node %d applied %d entries, node 1 %d: logs diverge", id, len(n.applied), len(ref))
		}
	}
	t.Logf("%d proposals, %d committed", proposed, len(ref))
}

// seeded returns a generator seeded from $SPOOL_SEED, or at random; the
// seed is logged so that a failure can be replayed.
func seeded(t *testing.T, stream uint64) *rand.Rand {
	seed := rand.Uint64()
	if v := os.Getenv("SPOOL_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SPOOL_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with SPOOL_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, stream))
}
