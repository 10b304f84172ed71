package partlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// member is one node of an in-process group whose raft runs with
// AsyncStorageWrites over a Storage, driven by hand.
type member struct {
	id      uint64
	dir     string
	d       *disk
	rn      *raft.RawNode
	writes  []*Write // appends in flight, oldest first
	applied []string // values of the data batches applied: the state machine
	nextOff int64    // the offset the next applied batch must have
	cs      *raftpb.ConfState
}

type cluster struct {
	t       *testing.T
	rng     *rand.Rand
	nodes   map[uint64]*member
	net     []*raftpb.Message
	down    uint64          // a crashed node, or 0
	cut     uint64          // a node cut off the network, or 0
	acked   map[string]bool // values applied somewhere: committed, so acknowledged to a producer
	tail    map[string]bool // values proposed by the cut-off leader
	propose int
	// snapshots: nodes tell their storage what they applied (so that
	// retention may delete it and leaders send snapshots), start from their
	// snapshot, and MsgSnap is delivered with its segments (snapshot_test.go).
	snapshots bool
	transfers int  // snapshots delivered
	cutNext   bool // the next transfer is cut half-way
}

func (c *cluster) start(id uint64, dir string, bootstrap bool) {
	c.t.Helper()
	m := &member{id: id, dir: dir, d: openDisk(c.t, vfs.Default, dir)}
	cfg := &raft.Config{ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: m.d.s, MaxSizePerMsg: 1 << 20,
		MaxInflightMsgs: 64, PreVote: true, CheckQuorum: true, AsyncStorageWrites: true, Logger: discardLogger{}}
	_, cs, err := m.d.s.InitialState()
	if err != nil {
		c.t.Fatal(err)
	}
	m.cs = cs
	if c.snapshots {
		cfg.Applied = m.d.s.SnapshotIndex()
		if m.nextOff, err = m.d.log.OffsetAfterIndex(cfg.Applied); err != nil {
			c.t.Fatal(err)
		}
	}
	if m.rn, err = raft.NewRawNode(cfg); err != nil {
		c.t.Fatal(err)
	}
	if last, _ := m.d.s.LastIndex(); last == 0 && bootstrap {
		if err := m.rn.Bootstrap([]raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}); err != nil {
			c.t.Fatal(err)
		}
	}
	c.nodes[id] = m
}

// crash stops a node: its pending appends' answers are never delivered.
func (c *cluster) crash(id uint64) {
	c.nodes[id].d.close()
	c.down = id
}

// ready hands a node's Ready to its storage, its state machine and the
// network.
func (c *cluster) ready(m *member) {
	for m.rn.HasReady() {
		rd := m.rn.Ready()
		for _, msg := range rd.Messages {
			switch msg.GetTo() {
			case raft.LocalAppendThread:
				w, err := m.d.s.Append(msg)
				if err != nil {
					c.t.Fatalf("node %d: append: %v", m.id, err)
				}
				m.writes = append(m.writes, w)
				if snap := msg.GetSnapshot(); snap != nil && !raft.IsEmptySnap(snap) {
					c.restored(m, snap)
				}
			case raft.LocalApplyThread:
				c.apply(m, msg.GetEntries())
				for _, r := range msg.GetResponses() {
					m.rn.Step(r)
				}
			default:
				c.net = append(c.net, msg)
			}
		}
	}
}

// complete delivers the answers of the node's durable appends, in order.
func (c *cluster) complete(m *member, wait bool) {
	for len(m.writes) > 0 {
		w := m.writes[0]
		if !wait {
			select {
			case <-w.Done():
			default:
				return
			}
		}
		if err := w.Wait(); err != nil {
			c.t.Fatalf("node %d: write: %v", m.id, err)
		}
		for _, r := range w.Responses() {
			if r.GetTo() == m.id {
				m.rn.Step(r)
			} else {
				c.net = append(c.net, r)
			}
		}
		m.writes = m.writes[1:]
	}
}

func (c *cluster) apply(m *member, ents []*raftpb.Entry) {
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				continue
			}
			h, err := batch.ParseHeader(e.GetData())
			if err != nil || h.BaseOffset != m.nextOff || uint64(h.PartitionLeaderEpoch) != e.GetTerm() {
				c.t.Fatalf("node %d: entry %d: batch at offset %d epoch %d, want offset %d epoch %d (%v)",
					m.id, e.GetIndex(), h.BaseOffset, h.PartitionLeaderEpoch, m.nextOff, e.GetTerm(), err)
			}
			m.nextOff = h.LastOffset() + 1
			v := valueOf(e.GetData())
			m.applied = append(m.applied, v)
			c.acked[v] = true
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				c.t.Fatal(err)
			}
			m.cs = m.rn.ApplyConfChange(&cc)
			if err := m.d.s.SaveSnapshotMeta(e.GetIndex(), m.cs); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if c.snapshots && len(ents) > 0 {
		if err := m.d.s.SetApplied(ents[len(ents)-1].GetIndex(), m.cs); err != nil {
			c.t.Fatal(err)
		}
	}
}

// proposeOn makes the node, if it leads, propose a record batch with the
// offsets and epoch a leader gives it: every entry raft holds was handed
// to the storage by the Ready just processed, so the next offset is the
// storage's.
func (c *cluster) proposeOn(m *member) {
	st := m.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return
	}
	v := fmt.Sprintf("p%d", c.propose)
	if err := m.rn.Propose(dataBatch(v, m.d.s.NextOffset(), st.GetTerm())); err == nil {
		c.propose++
		if m.id == c.cut {
			c.tail[v] = true
		}
	}
}

// deliver passes some in-flight messages, in random order, dropping some
// when lossy, and every message to or from a node that is down or cut off.
func (c *cluster) deliver(lossy bool) {
	c.rng.Shuffle(len(c.net), func(i, j int) { c.net[i], c.net[j] = c.net[j], c.net[i] })
	k := len(c.net)
	if lossy {
		k = c.rng.IntN(len(c.net) + 1)
	}
	for _, msg := range c.net[:k] {
		from, to := msg.GetFrom(), msg.GetTo()
		if to == c.down || from == c.down || to == c.cut || from == c.cut || (lossy && c.rng.IntN(20) == 0) {
			if msg.GetType() == raftpb.MsgSnap && from != c.down {
				c.nodes[from].rn.ReportSnapshot(to, raft.SnapshotFailure)
			}
			continue
		}
		if msg.GetType() == raftpb.MsgSnap && c.snapshots {
			c.sendSnapshot(msg)
			continue
		}
		c.nodes[to].rn.Step(msg)
	}
	c.net = slices.Delete(c.net, 0, k)
}

func (c *cluster) round(lossy, proposals bool) {
	for id := uint64(1); id <= 3; id++ {
		m := c.nodes[id]
		if id == c.down {
			continue
		}
		m.rn.Tick()
		c.complete(m, c.rng.IntN(3) == 0)
		c.ready(m)
		if proposals && c.rng.IntN(2) == 0 {
			c.proposeOn(m)
			c.ready(m)
		}
	}
	c.deliver(lossy)
}

func (c *cluster) leader() uint64 {
	for id, m := range c.nodes {
		if id != c.down && id != c.cut && m.rn.BasicStatus().RaftState == raft.StateLeader {
			return id
		}
	}
	return 0
}

// TestThreeNodes runs a group of three nodes with AsyncStorageWrites, each
// on its own partition log and state store. Its leader is cut off while it
// keeps proposing (an uncommitted tail), then crashes; a new leader takes
// over and overwrites that tail when the old one comes back. At the end
// every node holds the same log, every acknowledged proposal is in it, and
// none of the cut-off leader's tail is.
func TestThreeNodes(t *testing.T) {
	c := &cluster{t: t, rng: seeded(t, 4), nodes: map[uint64]*member{}, acked: map[string]bool{}, tail: map[string]bool{}}
	dirs := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		dirs[id] = t.TempDir()
		c.start(id, dirs[id], true)
	}
	defer func() {
		for id, m := range c.nodes {
			if id != c.down {
				m.d.close()
			}
		}
	}()
	for range 150 {
		c.round(true, true)
	}
	old := c.leader()
	for range 100 {
		if old != 0 {
			break
		}
		c.round(false, false)
		old = c.leader()
	}
	if old == 0 {
		t.Fatal("no leader")
	}
	c.cut = old
	for range 8 { // the cut-off leader appends proposals nobody else gets
		c.proposeOn(c.nodes[old])
		c.ready(c.nodes[old])
		c.complete(c.nodes[old], true)
	}
	if len(c.tail) == 0 {
		t.Fatal("the cut-off leader proposed nothing")
	}
	c.crash(old)
	c.cut = 0
	for range 200 {
		c.round(true, true)
	}
	c.start(old, dirs[old], false)
	c.down = 0
	for range 150 {
		c.round(true, true)
	}
	for range 100 {
		c.round(false, false)
	}
	for _, m := range c.nodes {
		c.complete(m, true)
	}
	checkSameLogs(t, c)
	t.Logf("%d proposals, %d acknowledged, %d in the deposed leader's tail", c.propose, len(c.acked), len(c.tail))
}

// checkSameLogs compares the nodes' logs and state machines.
func checkSameLogs(t *testing.T, c *cluster) {
	t.Helper()
	ref := c.nodes[1]
	last, _ := ref.d.s.LastIndex()
	want, err := ref.d.s.Entries(1, last+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range c.nodes {
		if st := m.rn.BasicStatus(); st.GetCommit() != last {
			t.Fatalf("node %d: commit %d, node 1 holds %d entries", id, st.GetCommit(), last)
		}
		got, err := m.d.s.Entries(1, last+1, 1<<62)
		if err != nil || len(got) != len(want) {
			t.Fatalf("node %d: %d entries %v, node 1 %d", id, len(got), err, len(want))
		}
		for k := range got {
			if !proto.Equal(got[k], want[k]) {
				t.Fatalf("node %d: entry %s, node 1 %s", id, describe(got[k]), describe(want[k]))
			}
		}
		if !slices.Equal(m.applied, ref.applied) || m.d.log.EndOffset() != int64(len(ref.applied)) {
			t.Fatalf("node %d applied %d batches (end offset %d), node 1 %d", id, len(m.applied), m.d.log.EndOffset(), len(ref.applied))
		}
	}
	held := map[string]bool{}
	for _, v := range ref.applied {
		held[v] = true
	}
	for v := range c.acked {
		if !held[v] {
			t.Fatalf("acknowledged proposal %s lost", v)
		}
	}
	for v := range c.tail {
		if held[v] {
			t.Fatalf("the deposed leader's uncommitted %s survived", v)
		}
	}
}
