package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// sendSnapshot delivers a MsgSnap as the transport does: the leader's
// segments up to the snapshot go to a staging area of the follower's log
// (cut half-way if c.cutNext: then the leader hears it failed), are
// checked, and only then is the MsgSnap, naming the transfer, stepped into
// the follower's raft; its staged files are released if raft did not take
// them.
func (c *cluster) sendSnapshot(msg *raftpb.Message) {
	c.t.Helper()
	from, to := c.nodes[msg.GetFrom()], c.nodes[msg.GetTo()]
	c.transfers++
	id := uint64(c.transfers)
	src, err := from.d.s.OpenSnapshot(msg.GetSnapshot().GetMetadata())
	if err != nil {
		c.t.Fatalf("node %d: snapshot for %d: %v", from.id, to.id, err)
	}
	defer src.Close()
	st, err := to.d.s.StageSnapshot(id, src.Manifest)
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := io.CopyN(st, src, src.Manifest.Bytes()/2)
	if err != nil {
		c.t.Fatalf("copied %d bytes: %v", n, err)
	}
	if c.cutNext {
		c.cutNext = false
		st.Abort()
		from.rn.ReportSnapshot(to.id, raft.SnapshotFailure)
		return
	}
	if _, err := io.Copy(st, src); err != nil {
		c.t.Fatal(err)
	}
	if err := st.Finish(); err != nil {
		c.t.Fatalf("node %d: snapshot from %d: %v", to.id, from.id, err)
	}
	m := proto.Clone(msg).(*raftpb.Message)
	m.Snapshot.Data = SnapshotData(id)
	to.rn.Step(m)
	c.ready(to)
	to.d.s.ReleaseSnapshot(m.GetSnapshot())
	from.rn.ReportSnapshot(to.id, raft.SnapshotFinish)
}

// restored is a node's state machine taking a snapshot: its log holds
// everything up to the snapshot's index.
func (c *cluster) restored(m *member, snap *raftpb.Snapshot) {
	c.t.Helper()
	off, err := m.d.log.OffsetAfterIndex(snap.GetMetadata().GetIndex())
	if err != nil {
		c.t.Fatal(err)
	}
	m.nextOff = off
	m.applied = append(m.applied, "<snapshot>")
	m.cs = snap.GetMetadata().GetConfState()
}

// TestFollowerCatchesUpBySnapshot: a follower is down while the others go
// on and retention (held back to what each node applied) deletes what it
// needs; when it returns the leader sends it a snapshot — the first
// transfer is cut and retried — and it goes on by appends. Its log then
// holds exactly the leader's entries and records from its first index on,
// and it survives a restart.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	c := &cluster{t: t, rng: seeded(t, 5), nodes: map[uint64]*member{}, acked: map[string]bool{}, tail: map[string]bool{}, snapshots: true}
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
	for range 60 {
		c.round(false, true)
	}
	lead := c.leader()
	if lead == 0 {
		t.Fatal("no leader")
	}
	f := lead%3 + 1
	c.complete(c.nodes[f], true)
	behind := c.nodes[f].d.log.LastIndex()
	c.crash(f)
	for c.nodes[lead].d.log.LastIndex() < behind+300 {
		c.round(false, true)
		if c.leader() != lead {
			t.Fatalf("leader changed from %d to %d", lead, c.leader())
		}
	}
	for id, m := range c.nodes {
		if id == f {
			continue
		}
		c.complete(m, true)
		if err := m.d.log.SetRetention(0, 6<<10); err != nil {
			t.Fatal(err)
		}
		if _, err := m.d.log.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if first, floor := m.d.log.FirstIndex(), m.d.s.SnapshotIndex(); first <= behind+1 || first > floor+1 {
			t.Fatalf("node %d: retention kept from index %d (follower needs %d, floor %d)", id, first, behind+1, floor)
		}
	}
	c.cutNext = true
	c.start(f, dirs[f], false)
	c.down = 0
	for range 100 {
		c.round(false, true)
	}
	for range 50 {
		c.round(false, false)
	}
	for _, m := range c.nodes {
		c.complete(m, true)
	}
	if c.transfers < 2 || c.cutNext {
		t.Fatalf("%d snapshot transfers", c.transfers)
	}
	fm, lm := c.nodes[f], c.nodes[c.leader()]
	if !slices.Contains(fm.applied, "<snapshot>") {
		t.Fatalf("the follower did not restore a snapshot: %v", fm.applied)
	}
	sameFrom(t, lm, fm)
	fm.d.close()
	c.start(f, dirs[f], false)
	sameFrom(t, lm, c.nodes[f])
	t.Logf("follower behind at %d; leader's log [%d, %d]; follower's [%d, %d]; %d transfers",
		behind, lm.d.log.FirstIndex(), lm.d.log.LastIndex(), c.nodes[f].d.log.FirstIndex(), c.nodes[f].d.log.LastIndex(), c.transfers)
}

// sameFrom checks that b holds a's entries from the first index both hold
// to the end, and reads a's record batches at every offset both hold.
func sameFrom(t *testing.T, a, b *member) {
	t.Helper()
	first := max(a.d.log.FirstIndex(), b.d.log.FirstIndex())
	last, _ := a.d.s.LastIndex()
	if bl, _ := b.d.s.LastIndex(); bl != last {
		t.Fatalf("node %d ends at %d, node %d at %d", b.id, bl, a.id, last)
	}
	want, err := a.d.s.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.d.s.Entries(first, last+1, 1<<62)
	if err != nil || len(got) != len(want) {
		t.Fatalf("node %d: %d entries from %d (%v), node %d %d", b.id, len(got), first, err, a.id, len(want))
	}
	for k := range got {
		if !proto.Equal(got[k], want[k]) {
			t.Fatalf("node %d: entry %s, node %d %s", b.id, describe(got[k]), a.id, describe(want[k]))
		}
	}
	if b.d.log.EndOffset() != a.d.log.EndOffset() {
		t.Fatalf("node %d reads up to offset %d, node %d %d", b.id, b.d.log.EndOffset(), a.id, a.d.log.EndOffset())
	}
	for off := max(a.d.log.StartOffset(), b.d.log.StartOffset()); off < b.d.log.EndOffset(); {
		gb, err := b.d.log.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		wb, err := a.d.log.Read(off, len(gb))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wb[:min(len(wb), len(gb))]) {
			t.Fatalf("node %d reads other records than node %d at offset %d", b.id, a.id, off)
		}
		for bt, err := range batch.Batches(gb) {
			if err != nil {
				t.Fatal(err)
			}
			off = bt.LastOffset() + 1
		}
	}
}

// TestSnapshotRefusals: a snapshot whose transfer id names nothing staged
// is refused by Append (raft must not be told it is installed), and a
// snapshot source is only opened for an entry of the snapshot's term.
func TestSnapshotRefusals(t *testing.T) {
	d := openDisk(t, vfs.Default, t.TempDir())
	defer d.close()
	ents := []*raftpb.Entry{{Index: new(uint64(1)), Term: new(uint64(1)), Data: dataBatch("a", 0, 1)}}
	w, err := d.s.Append(appendMsg(ents, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	meta := &raftpb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1)), ConfState: cs}
	for _, data := range [][]byte{nil, {1, 2}, SnapshotData(99)} {
		m := &raftpb.Message{Type: raftpb.MsgStorageAppend.Enum(), Snapshot: &raftpb.Snapshot{Metadata: meta, Data: data}}
		if _, err := d.s.Append(m); err == nil {
			t.Fatalf("snapshot with data %x installed", data)
		}
	}
	if _, err := d.s.OpenSnapshot(&raftpb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(2))}); err == nil {
		t.Fatal("snapshot source opened with the wrong term")
	}
	if _, err := d.s.OpenSnapshot(&raftpb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(1))}); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("snapshot source after the last entry: %v", err)
	}
	if err := d.s.SetApplied(1, cs); err != nil {
		t.Fatal(err)
	}
	if snap, err := d.s.Snapshot(); err != nil || snap.GetMetadata().GetIndex() != 1 || !proto.Equal(snap.GetMetadata().GetConfState(), cs) {
		t.Fatalf("snapshot after applying 1: %v %v", snap, err)
	}
}

// TestInstalledSnapshotAdoptedAtOpen: a node that stopped after its log
// installed a snapshot but before the state store recorded it takes the
// snapshot's metadata from the log at the next start: the configuration,
// a commit index at least the snapshot's, and the retention floor.
func TestInstalledSnapshotAdoptedAtOpen(t *testing.T) {
	a := openDisk(t, vfs.Default, t.TempDir())
	defer a.close()
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 50; i++ {
		ents = append(ents, &raftpb.Entry{Index: new(i), Term: new(1 + i/20), Data: dataBatch(fmt.Sprint(i), int64(i-1), 1+i/20)})
	}
	w, err := a.s.Append(appendMsg(ents, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	meta := &raftpb.SnapshotMetadata{Index: new(uint64(40)), Term: new(uint64(3)), ConfState: cs}
	src, err := a.s.OpenSnapshot(meta)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := t.TempDir()
	b := openDisk(t, vfs.Default, dir)
	st, err := b.s.StageSnapshot(5, src.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(st, src); err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(); err != nil {
		t.Fatal(err)
	}
	rec, _ := proto.Marshal(&raftpb.Snapshot{Metadata: meta})
	if err := b.log.InstallSnapshot(5, 40, 3, rec); err != nil { // the log only: a stop before the state store
		t.Fatal(err)
	}
	b.close()
	b = openDisk(t, vfs.Default, dir)
	defer b.close()
	hs, gotCS, err := b.s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if b.s.SnapshotIndex() != 40 || !slices.Equal(gotCS.GetVoters(), cs.GetVoters()) || hs.GetCommit() < 40 {
		t.Fatalf("after the restart: snapshot %d, configuration %v, commit %d", b.s.SnapshotIndex(), gotCS, hs.GetCommit())
	}
	if last, _ := b.s.LastIndex(); last != 40 {
		t.Fatalf("log ends at %d", last)
	}
	snap, err := b.s.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != 40 || snap.GetMetadata().GetTerm() != 3 {
		t.Fatalf("snapshot %v %v", snap, err)
	}
}
