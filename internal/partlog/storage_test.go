package partlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// same fails unless the storage answers raft's reads as ms does.
func same(t *testing.T, what string, rng *rand.Rand, s *Storage, ms *raft.MemoryStorage) {
	t.Helper()
	sf, _ := s.FirstIndex()
	mf, _ := ms.FirstIndex()
	sl, _ := s.LastIndex()
	ml, _ := ms.LastIndex()
	if sf != mf || sl != ml {
		t.Fatalf("%s: indexes [%d, %d], want [%d, %d]", what, sf, sl, mf, ml)
	}
	for i := sf - 1; i <= sl+1; i++ {
		st, serr := s.Term(i)
		mt, merr := ms.Term(i)
		if st != mt || !errors.Is(serr, merr) {
			t.Fatalf("%s: term %d: %d %v, want %d %v", what, i, st, serr, mt, merr)
		}
	}
	for range 4 {
		if sl < sf {
			break
		}
		lo := sf + rng.Uint64N(sl-sf+1)
		hi := lo + 1 + rng.Uint64N(sl-lo+1)
		maxSize := []uint64{0, 1, 100, 300, 1000, 1 << 62}[rng.IntN(6)]
		se, serr := s.Entries(lo, hi, maxSize)
		me, merr := ms.Entries(lo, hi, maxSize)
		if serr != nil || merr != nil || len(se) != len(me) {
			t.Fatalf("%s: entries [%d, %d) max %d: %d %v, want %d %v", what, lo, hi, maxSize, len(se), serr, len(me), merr)
		}
		for k := range se {
			if !proto.Equal(se[k], me[k]) {
				t.Fatalf("%s: entry %s, want %s", what, describe(se[k]), describe(me[k]))
			}
		}
	}
	shs, scs, _ := s.InitialState()
	mhs, mcs, _ := ms.InitialState()
	if shs.GetTerm() != mhs.GetTerm() || shs.GetVote() != mhs.GetVote() || shs.GetCommit() != mhs.GetCommit() || !proto.Equal(scs, mcs) {
		t.Fatalf("%s: initial state %v %v, want %v %v", what, shs, scs, mhs, mcs)
	}
	ssn, serr := s.Snapshot()
	msn, _ := ms.Snapshot()
	if serr != nil || ssn.GetMetadata().GetIndex() != msn.GetMetadata().GetIndex() || ssn.GetMetadata().GetTerm() != msn.GetMetadata().GetTerm() ||
		!proto.Equal(ssn.GetMetadata().GetConfState(), msn.GetMetadata().GetConfState()) {
		t.Fatalf("%s: snapshot %v %v, want %v", what, ssn.GetMetadata(), serr, msn.GetMetadata())
	}
}

// randomEntries returns n entries from index first, of terms from term,
// of every kind the storage maps: record batches (given their offsets and
// epochs as a leader does), empty entries, configuration changes and
// normal entries whose data is no batch.
func randomEntries(rng *rand.Rand, prefix []*raftpb.Entry, first, term uint64, n int, tag string) []*raftpb.Entry {
	off := offsetAfter(prefix)
	ents := make([]*raftpb.Entry, n)
	for k := range ents {
		e := &raftpb.Entry{Index: new(first + uint64(k)), Term: new(term)}
		switch rng.IntN(6) {
		case 0:
			// an empty entry (a new leader's)
		case 1:
			e.Type = raftpb.EntryConfChange.Enum()
			e.Data = []byte("cc" + tag)
		case 2:
			e.Type = raftpb.EntryConfChangeV2.Enum()
			e.Data = []byte("cc2" + tag)
		case 3:
			e.Data = []byte("not a batch " + tag)
		default:
			e.Data = dataBatch(fmt.Sprintf("%s.%d", tag, k), off, term)
			off++
		}
		ents[k] = e
	}
	return ents
}

// TestAgreesWithMemoryStorage runs random appends (overwriting at random
// indexes), hard states, snapshot metadata and restarts against the
// storage and raft's MemoryStorage, comparing them after every step.
func TestAgreesWithMemoryStorage(t *testing.T) {
	rng := seeded(t, 1)
	dir := t.TempDir()
	d := openDisk(t, vfs.Default, dir)
	defer func() { d.close() }()
	ms := raft.NewMemoryStorage()
	term, commit := uint64(1), uint64(0)
	for step := range 300 {
		first, _ := ms.FirstIndex()
		last, _ := ms.LastIndex()
		switch r := rng.IntN(10); {
		case r < 7:
			from := last + 1
			if last >= first && rng.IntN(3) == 0 {
				from = max(commit+1, first+rng.Uint64N(last-first+1)) // overwrite an uncommitted suffix
				term++
			}
			prefix, _ := ms.Entries(first, from, 1<<62)
			ents := randomEntries(rng, prefix, from, term, 1+rng.IntN(8), fmt.Sprint(step))
			newLast := from + uint64(len(ents)) - 1
			commit = min(newLast, commit+rng.Uint64N(4))
			hs := &raftpb.HardState{Term: new(term), Vote: new(rng.Uint64N(4)), Commit: new(commit)}
			w, err := d.s.Append(appendMsg(ents, hs))
			if err != nil {
				t.Fatalf("step %d: append: %v", step, err)
			}
			if err := w.Wait(); err != nil {
				t.Fatalf("step %d: wait: %v", step, err)
			}
			if err := ms.Append(ents); err != nil {
				t.Fatal(err)
			}
			ms.SetHardState(hs)
		case r < 8 && commit > 0:
			snap, _ := ms.Snapshot()
			if i := snap.GetMetadata().GetIndex() + 1 + rng.Uint64N(commit-snap.GetMetadata().GetIndex()+1); i <= commit {
				cs := &raftpb.ConfState{Voters: []uint64{1, 2, uint64(3 + rng.IntN(3))}, AutoLeave: new(false)}
				if err := d.s.SaveSnapshotMeta(i, cs); err != nil {
					t.Fatal(err)
				}
				if _, err := ms.CreateSnapshot(i, cs, nil); err != nil {
					t.Fatal(err)
				}
			}
		default:
			d.close()
			d = openDisk(t, vfs.Default, dir)
		}
		same(t, fmt.Sprintf("step %d", step), rng, d.s, ms)
	}
	if n := len(d.log.Segments()); n < 3 {
		t.Fatalf("%d segments: the test did not roll", n)
	}
}

// TestReadersSeeDataOnly: the records readers of the partition see are the
// data entries' batches with contiguous offsets, across rolls and
// overwrites; internal entries are invisible.
func TestReadersSeeDataOnly(t *testing.T) {
	rng := seeded(t, 2)
	d := openDisk(t, vfs.NewMemFS(), "/n")
	defer d.close()
	ms := raft.NewMemoryStorage()
	term := uint64(1)
	for step := range 120 {
		first, _ := ms.FirstIndex()
		last, _ := ms.LastIndex()
		from := last + 1
		if last >= first && rng.IntN(4) == 0 {
			from = first + rng.Uint64N(last-first+1)
			term++
		}
		prefix, _ := ms.Entries(first, from, 1<<62)
		ents := randomEntries(rng, prefix, from, term, 1+rng.IntN(6), fmt.Sprint(step))
		w, err := d.s.Append(appendMsg(ents, nil))
		if err != nil || w.Wait() != nil {
			t.Fatalf("append: %v", err)
		}
		ms.Append(ents)
	}
	last, _ := ms.LastIndex()
	all, _ := ms.Entries(1, last+1, 1<<62)
	var want []string
	for _, e := range all {
		if e.GetType() == raftpb.EntryNormal && isDataBatch(e.GetData()) {
			want = append(want, valueOf(e.GetData()))
		}
	}
	var got []string
	for off := d.log.StartOffset(); off < d.log.EndOffset(); {
		data, err := d.log.Read(off, 200)
		if err != nil {
			t.Fatal(err)
		}
		for bt, err := range batch.Batches(data) {
			if err != nil || bt.BaseOffset != off {
				t.Fatalf("batch at offset %d, want %d: %v", bt.BaseOffset, off, err)
			}
			got = append(got, valueOf(bt.Bytes))
			off = bt.LastOffset() + 1
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || int64(len(want)) != d.log.EndOffset() {
		t.Fatalf("readers see %d batches (end %d), want %d", len(got), d.log.EndOffset(), len(want))
	}
}
