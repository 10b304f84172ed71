package raftlog

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openState(t *testing.T, dir string) *state.Store {
	t.Helper()
	st, err := state.Open(dir, state.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func entry(i, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(i), Term: new(term), Data: []byte(data)}
}

// same fails unless a and b answer raft's reads alike over [lo, hi].
func same(t *testing.T, what string, a, b raft.Storage) {
	t.Helper()
	af, _ := a.FirstIndex()
	bf, _ := b.FirstIndex()
	al, _ := a.LastIndex()
	bl, _ := b.LastIndex()
	if af != bf || al != bl {
		t.Fatalf("%s: indexes [%d, %d] vs [%d, %d]", what, af, al, bf, bl)
	}
	for i := af - 1; i <= al+1; i++ {
		at, aerr := a.Term(i)
		bt, berr := b.Term(i)
		if at != bt || (aerr == nil) != (berr == nil) {
			t.Fatalf("%s: term %d: %d %v vs %d %v", what, i, at, aerr, bt, berr)
		}
	}
	if al >= af {
		ae, aerr := a.Entries(af, al+1, 1<<62)
		be, berr := b.Entries(af, al+1, 1<<62)
		if (aerr == nil) != (berr == nil) || len(ae) != len(be) {
			t.Fatalf("%s: entries: %d %v vs %d %v", what, len(ae), aerr, len(be), berr)
		}
		for k := range ae {
			if !proto.Equal(ae[k], be[k]) {
				t.Fatalf("%s: entry %d differs", what, ae[k].GetIndex())
			}
		}
	}
	ahs, acs, _ := a.InitialState()
	bhs, bcs, _ := b.InitialState()
	if !proto.Equal(ahs, bhs) || !proto.Equal(acs, bcs) {
		t.Fatalf("%s: initial state %v %v vs %v %v", what, ahs, acs, bhs, bcs)
	}
	as, _ := a.Snapshot()
	bs, _ := b.Snapshot()
	if !proto.Equal(as, bs) {
		t.Fatalf("%s: snapshot %v vs %v", what, as.GetMetadata(), bs.GetMetadata())
	}
}

// TestAgreesWithMemoryStorage runs random appends (with overwrites),
// hard-state changes, compactions and received snapshots against the
// store and raft's own MemoryStorage, and checks after every step that
// both — and the store reopened from disk — answer alike.
func TestAgreesWithMemoryStorage(t *testing.T) {
	rng := seeded(t, 1)
	dir := t.TempDir()
	st := openState(t, dir)
	s, err := Open(st, 7)
	if err != nil {
		t.Fatal(err)
	}
	ref := raft.NewMemoryStorage()
	term := uint64(1)
	for step := range 400 {
		first, _ := ref.FirstIndex()
		last, _ := ref.LastIndex()
		switch op := rng.IntN(10); {
		case op < 6: // append, sometimes overwriting a suffix
			from := last + 1
			if last >= first && rng.IntN(3) == 0 {
				from = first + uint64(rng.IntN(int(last-first+1)))
				term++
			}
			var ents []*raftpb.Entry
			for i := range uint64(1 + rng.IntN(5)) {
				ents = append(ents, entry(from+i, term, "x"))
			}
			hs := &raftpb.HardState{Term: new(term), Vote: new(uint64(1 + rng.IntN(3))), Commit: new(first - 1)}
			if err := s.Save(hs, ents, nil, true); err != nil {
				t.Fatal(err)
			}
			ref.Append(ents)
			ref.SetHardState(hs)
		case op < 8 && last >= first: // compact at an index we hold
			i := first + uint64(rng.IntN(int(last-first+1)))
			cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
			if err := s.Compact(i, cs, []byte("state")); err != nil {
				t.Fatal(err)
			}
			ref.CreateSnapshot(i, cs, []byte("state"))
			ref.Compact(i)
		case op == 8: // a snapshot from the leader replaces the log
			term++
			idx := last + uint64(1+rng.IntN(5))
			snap := &raftpb.Snapshot{Data: []byte("leader"), Metadata: &raftpb.SnapshotMetadata{Index: new(idx), Term: new(term),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
			if err := s.Save(nil, nil, snap, true); err != nil {
				t.Fatal(err)
			}
			ref.ApplySnapshot(snap)
		default: // reopen from the state store
			st.Close()
			st = openState(t, dir)
			if s, err = Open(st, 7); err != nil {
				t.Fatal(err)
			}
		}
		same(t, fmt.Sprintf("step %d", step), s, ref)
	}
	st.Close()
	st = openState(t, dir)
	defer st.Close()
	s, err = Open(st, 7)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "reopened", s, ref)
	// Another group in the same store is independent.
	other, err := Open(st, 8)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := other.LastIndex(); l != 0 {
		t.Fatalf("group 8 has entries up to %d", l)
	}
}

func TestCorruptEntryRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	st := openState(t, dir)
	defer st.Close()
	s, err := Open(st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(nil, []*raftpb.Entry{entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")}, nil, true); err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	b.Delete(s.entryKey(2)) // a hole in the log
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(st, 1); err == nil {
		t.Fatal("a log with a hole opened")
	}
	b = st.NewBatch()
	b.Set(s.entryKey(2), []byte{0xff, 0xff, 0xff})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(st, 1); err == nil {
		t.Fatal("a log with an undecodable entry opened")
	}
}
