package multiraft

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/partlog"
	"github.com/spoolmq/spool/internal/peer"
)

// snapNet moves partition groups' snapshots between the members of a test,
// as the cluster's transfers do over the peer connections: the leader's
// segments are staged in the follower's log and checked, then the MsgSnap
// naming them is handed to the follower's driver. SendSnapshot only queues
// (it runs on a worker); the test's loop runs the transfers.
type snapNet struct {
	ms        map[uint64]*partMember
	mu        sync.Mutex
	queued    []*raftpb.Message
	transfers int // completed
	cutNext   int // transfers still to cut half-way
	failed    int
}

func (s *snapNet) SendSnapshot(group uint64, m *raftpb.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued = append(s.queued, m)
}

// run runs the queued transfers.
func (s *snapNet) run(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	q := s.queued
	s.queued = nil
	s.mu.Unlock()
	for _, m := range q {
		from, to := s.ms[m.GetFrom()], s.ms[m.GetTo()]
		if !from.alive {
			continue
		}
		if !to.alive {
			from.node.ReportSnapshot(1, to.id, raft.SnapshotFailure)
			s.failed++
			continue
		}
		src, err := from.ps.OpenSnapshot(m.GetSnapshot().GetMetadata())
		if err != nil {
			t.Fatalf("node %d: snapshot for %d: %v", from.id, to.id, err)
		}
		id := uint64(100 + s.transfers + s.failed)
		st, err := to.ps.StageSnapshot(id, src.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(st, src, src.Manifest.Bytes()/2); err != nil {
			t.Fatal(err)
		}
		if s.cutNext > 0 {
			s.cutNext--
			s.failed++
			src.Close()
			st.Abort()
			from.node.ReportSnapshot(1, to.id, raft.SnapshotFailure)
			continue
		}
		if _, err := io.Copy(st, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := st.Finish(); err != nil {
			t.Fatal(err)
		}
		mm := proto.Clone(m).(*raftpb.Message)
		mm.Snapshot.Data = partlog.SnapshotData(id)
		if !to.node.ReceiveSnapshot(from.id, 1, mm) {
			t.Fatalf("node %d did not take the snapshot", to.id)
		}
		from.node.ReportSnapshot(1, to.id, raft.SnapshotFinish)
		s.transfers++
	}
}

// TestAsyncSnapshotCatchUp: a member of a partition group is down while
// the others go on and their retention — held back to what each applied —
// deletes the entries it needs. When it returns the leader's raft asks for
// a snapshot; the driver hands the MsgSnap to the snapshot sender (not the
// transport); the first two transfers are cut and reported failed, raft
// retries, the third is received, installed by the storage with raft's
// append and restored into the state machine, and the member goes on by
// appends. Its log then holds the leader's entries, its state machine the
// leader's batches after the snapshot, and no staging directory is left.
// A bare MsgSnap received as a message is dropped.
func TestAsyncSnapshotCatchUp(t *testing.T) {
	nw := &net{cut: map[[2]uint64]bool{}}
	sn := &snapNet{ms: map[uint64]*partMember{}}
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	for id := uint64(1); id <= 3; id++ {
		sn.ms[id] = &partMember{id: id, dir: t.TempDir(), snaps: sn}
		sn.ms[id].start(t, nw, peers)
	}
	ms := sn.ms
	defer func() {
		for _, m := range ms {
			if m.alive {
				m.crash()
			}
		}
	}()
	step := func() {
		for id := uint64(1); id <= 3; id++ {
			if m := ms[id]; m.alive {
				m.node.Tick()
				m.node.Process()
			}
		}
		nw.mu.Lock()
		q := nw.inflight
		nw.inflight = nil
		nw.mu.Unlock()
		for _, p := range q {
			if to := ms[p.to]; to.alive && ms[p.from].alive {
				to.node.Receive(p.from, []peer.Envelope{p.env})
			}
		}
		sn.run(t)
		time.Sleep(200 * time.Microsecond)
	}
	leader := func() *partMember {
		for _, m := range ms {
			if m.alive {
				if st, _ := m.node.Status(1); st.RaftState == raft.StateLeader {
					return m
				}
			}
		}
		return nil
	}
	n := 0
	propose := func(k int) {
		for range k {
			step()
			if l := leader(); l != nil {
				st, _ := l.node.Status(1)
				if l.node.ProposeUntagged(1, recordBatch(fmt.Sprintf("v%d", n), l.ps.NextOffset(), st.HardState.GetTerm())) == nil {
					n++
				}
			}
		}
	}
	propose(60)
	lead := leader()
	if lead == nil {
		t.Fatal("no leader")
	}
	f := ms[lead.id%3+1]
	for range 20 {
		step()
	}
	behind := f.log.LastIndex()
	f.crash()
	for lead.log.LastIndex() < behind+300 {
		propose(1)
	}
	for _, m := range ms {
		if !m.alive {
			continue
		}
		for range 20 {
			step() // every member applies what is committed: the floor moves
		}
		if err := m.log.SetRetention(0, 6<<10); err != nil {
			t.Fatal(err)
		}
		if _, err := m.log.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if first := m.log.FirstIndex(); first <= behind+1 {
			t.Fatalf("node %d: retention kept from %d, the returning node needs %d", m.id, first, behind+1)
		}
	}
	// A bare MsgSnap (no staged data) is dropped, not handed to raft.
	lead.node.Receive(f.id, []peer.Envelope{{Group: 1, Msg: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(f.id), To: new(lead.id),
		Term: new(uint64(1 << 20)), Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(1 << 20)), Term: new(uint64(1))}}}}})
	sn.cutNext = 2
	f.start(t, nw, nil)
	propose(50)
	deadline := time.Now().Add(20 * time.Second)
	for {
		step()
		lead = leader()
		if lead != nil && f.log.LastIndex() == lead.log.LastIndex() {
			lv, fv := lead.sm.snapshot(), f.sm.snapshot()
			if k := slices.Index(fv, "<snapshot>"); k >= 0 && len(fv)-k-1 <= len(lv) && slices.Equal(fv[k+1:], lv[len(lv)-(len(fv)-k-1):]) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the returning node did not catch up: %d transfers, %d failed; its log ends at %d", sn.transfers, sn.failed, f.log.LastIndex())
		}
	}
	if sn.transfers == 0 || sn.failed < 2 {
		t.Fatalf("%d transfers, %d failed", sn.transfers, sn.failed)
	}
	first := max(f.log.FirstIndex(), lead.log.FirstIndex())
	want, err := lead.ps.Entries(first, lead.log.LastIndex()+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ps.Entries(first, f.log.LastIndex()+1, 1<<62)
	if err != nil || len(got) != len(want) {
		t.Fatalf("%d entries (%v), leader %d", len(got), err, len(want))
	}
	for k := range got {
		if !proto.Equal(got[k], want[k]) {
			t.Fatalf("entry %d differs", got[k].GetIndex())
		}
	}
	if _, ok := lead.node.Status(1); !ok {
		t.Fatal("the leader's group stopped")
	}
	if st, ok := f.node.Status(1); !ok || st.Applied != st.HardState.GetCommit() {
		t.Fatalf("the returning node: running %v, applied %d of %d", ok, st.Applied, st.HardState.GetCommit())
	}
	t.Logf("%d batches; node %d behind at %d caught up by snapshot to [%d, %d] (%d transfers, %d cut)",
		n, f.id, behind, f.log.FirstIndex(), f.log.LastIndex(), sn.transfers, sn.failed)
}
