package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spoolmq/spool/internal/vfs"
)

// snapLeader builds a replicated log of n entries over many small
// segments: terms rise every 37 entries, every fifth entry is internal.
func snapLeader(t *testing.T, dir string, n int) (*Log, []modelEntry) {
	t.Helper()
	l, _ := mustOpen(t, vfs.Default, dir, replOpts())
	var model []modelEntry
	for i := range n {
		model = append(model, modelEntry{term: 1 + uint64(i/37), internal: i%5 == 4, tag: fmt.Sprintf("e%d", i)})
	}
	for i := 0; i < n; i += 10 {
		submit(t, l, uint64(i+1), model[i:min(i+10, n)])
	}
	return l, model
}

// transfer copies a snapshot of src at index into dst's staging area in
// chunks of size chunk and finishes it.
func transfer(t *testing.T, src, dst *Log, id, index uint64, chunk int) SnapshotManifest {
	t.Helper()
	s, err := src.OpenSnapshot(index)
	if err != nil {
		t.Fatalf("open snapshot at %d: %v", index, err)
	}
	defer s.Close()
	st, err := dst.StageSnapshot(id, s.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, chunk)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				t.Fatal(werr)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Finish(); err != nil {
		t.Fatalf("finish: %v", err)
	}
	return s.Manifest
}

// sameLogs checks that b holds exactly a's entries from b's first index to
// last, and reads the same records at every offset b holds.
func sameLogs(t *testing.T, a, b *Log, last uint64) {
	t.Helper()
	if b.LastIndex() != last || b.NextIndex() != last+1 {
		t.Fatalf("log ends at %d (next %d), want %d", b.LastIndex(), b.NextIndex(), last)
	}
	var ea, eb []Entry
	first := b.FirstIndex()
	for _, x := range []struct {
		l   *Log
		out *[]Entry
	}{{a, &ea}, {b, &eb}} {
		if err := x.l.ScanEntries(first, last+1, func(e Entry) bool { *x.out = append(*x.out, e); return true }); err != nil {
			t.Fatal(err)
		}
	}
	if len(ea) != len(eb) || len(eb) != int(last+1-first) {
		t.Fatalf("%d and %d entries from %d to %d", len(ea), len(eb), first, last)
	}
	for k := range ea {
		if ea[k].Index != eb[k].Index || ea[k].Term != eb[k].Term || ea[k].Internal != eb[k].Internal || !bytes.Equal(ea[k].Data, eb[k].Data) {
			t.Fatalf("entry %d differs", ea[k].Index)
		}
	}
	if ta, _ := a.Term(first - 1); first > 1 {
		if tb, err := b.Term(first - 1); err != nil || tb != ta {
			t.Fatalf("term before the first entry: %d %v, want %d", tb, err, ta)
		}
	}
	end, err := b.OffsetAfterIndex(last)
	if err != nil {
		t.Fatal(err)
	}
	ra := readAll(t, a)
	for off, bt := range readAll(t, b) {
		if off >= end {
			t.Fatalf("follower reads a batch at %d, after the snapshot's end %d", off, end)
		}
		if !bytes.Equal(ra[off], bt) {
			t.Fatalf("batch at %d differs", off)
		}
	}
}

// TestSnapshotInstall: a follower with an old, divergent log receives a
// leader's snapshot (cut inside a segment, after retention and a
// DeleteRecords start), installs it, reads exactly the leader's records,
// appends after it and keeps it all across a reopen.
func TestSnapshotInstall(t *testing.T) {
	leader, model := snapLeader(t, t.TempDir(), 400)
	defer leader.Close()
	if start, err := leader.DeleteRecordsBefore(40); err != nil || start != 40 {
		t.Fatalf("delete records: %d %v", start, err)
	}
	if err := leader.SetRetention(0, 20<<10); err != nil {
		t.Fatal(err)
	}
	leader.SetRetentionFloor(250)
	if _, err := leader.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	first := leader.FirstIndex()
	if first < 50 {
		t.Fatalf("retention kept the leader's log from %d", first)
	}
	if leader.segs[0].nextIndex.Load()-1 > 250 {
		t.Fatalf("retention deleted past the floor: first segment ends at %d", leader.segs[0].nextIndex.Load()-1)
	}

	dir := t.TempDir()
	f, _ := mustOpen(t, vfs.Default, dir, replOpts())
	submit(t, f, 1, []modelEntry{{term: 1, tag: "e0"}, {term: 1, tag: "e1"}, {term: 9, tag: "divergent"}})
	index := uint64(333)
	m := transfer(t, leader, f, 7, index, 1000)
	if m.Index != index || m.Term != model[index-1].term || m.Segments[0].Base != leader.Segments()[0] {
		t.Fatalf("manifest %+v", m)
	}
	if err := f.InstallSnapshot(7, index, m.Term+1, []byte("meta")); !errors.Is(err, ErrUnknownSnapshot) {
		t.Fatalf("install with the wrong term: %v", err)
	}
	m = transfer(t, leader, f, 8, index, 1<<20)
	if err := f.InstallSnapshot(8, index, m.Term, []byte("meta")); err != nil {
		t.Fatal(err)
	}
	if f.FirstIndex() != first || f.StartOffset() != leader.StartOffset() {
		t.Fatalf("follower starts at index %d offset %d, leader %d %d", f.FirstIndex(), f.StartOffset(), first, leader.StartOffset())
	}
	sameLogs(t, leader, f, index)
	if err := f.InstallSnapshot(8, index, m.Term, nil); !errors.Is(err, ErrUnknownSnapshot) {
		t.Fatalf("second install of one stage: %v", err)
	}
	// It goes on from the snapshot's end.
	submit(t, f, index+1, model[index:index+5])
	sameLogs(t, leader, f, index+5)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ = mustOpen(t, vfs.Default, dir, replOpts())
	defer f.Close()
	sameLogs(t, leader, f, index+5)
	if got := f.InstalledSnapshot(); string(got) != "meta" {
		t.Fatalf("installed record after reopen: %q", got)
	}
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if n.IsDir() {
			t.Fatalf("directory %s left in the log", n.Name())
		}
	}
}

// TestSnapshotInstallRedone: a crash once the install is committed (the
// staging directory renamed to snapshot.ready) is completed by Open,
// whether no file or some of them were moved; a crash before it leaves the
// old log and removes the staging directory.
func TestSnapshotInstallRedone(t *testing.T) {
	leader, _ := snapLeader(t, t.TempDir(), 200)
	defer leader.Close()
	for _, moved := range []int{-1, 0, 2} {
		t.Run(fmt.Sprint(moved), func(t *testing.T) {
			dir := t.TempDir()
			f, _ := mustOpen(t, vfs.Default, dir, replOpts())
			submit(t, f, 1, []modelEntry{{term: 1, tag: "e0"}, {term: 1, tag: "e1"}, {term: 9, tag: "divergent"}})
			m := transfer(t, leader, f, 3, 150, 4096)
			if moved >= 0 {
				if err := f.commitStage(f.stageDir(3), []byte("rec")); err != nil {
					t.Fatal(err)
				}
				ready := filepath.Join(dir, snapReadyDir)
				names, _ := os.ReadDir(ready)
				for _, n := range names[:moved] {
					if err := os.Rename(filepath.Join(ready, n.Name()), filepath.Join(dir, n.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
			f.Close()
			f, rep := mustOpen(t, vfs.Default, dir, replOpts())
			defer f.Close()
			if moved < 0 {
				if f.LastIndex() != 3 || !slices.Contains(rep.Removed, filepath.Base(f.stageDir(3))) {
					t.Fatalf("uncommitted stage: log ends at %d, removed %v", f.LastIndex(), rep.Removed)
				}
				return
			}
			if !slices.Contains(rep.Removed, snapReadyDir) || string(f.InstalledSnapshot()) != "rec" {
				t.Fatalf("install not completed: removed %v, record %q", rep.Removed, f.InstalledSnapshot())
			}
			sameLogs(t, leader, f, m.Index)
		})
	}
}

// TestSnapshotBadInput: bytes damaged in transit, too many bytes, too few,
// a manifest that does not match the bytes, and bad manifests are refused
// with an error, and the follower's log is untouched.
func TestSnapshotBadInput(t *testing.T) {
	leader, _ := snapLeader(t, t.TempDir(), 120)
	defer leader.Close()
	f, _ := mustOpen(t, vfs.Default, t.TempDir(), replOpts())
	defer f.Close()
	submit(t, f, 1, []modelEntry{{term: 1, tag: "e0"}})
	src, err := leader.OpenSnapshot(100)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(src)
	src.Close()
	if err != nil || int64(len(all)) != src.Manifest.Bytes() {
		t.Fatalf("read %d bytes of %d: %v", len(all), src.Manifest.Bytes(), err)
	}
	try := func(what string, m SnapshotManifest, data []byte) error {
		st, err := f.StageSnapshot(11, m)
		if err != nil {
			return err
		}
		defer st.Abort()
		if _, err := st.Write(data); err != nil {
			return err
		}
		return st.Finish()
	}
	flipped := slices.Clone(all)
	flipped[len(flipped)/2] ^= 0x20
	wrongTerm := src.Manifest
	wrongTerm.Term++
	wrongIndex := src.Manifest
	wrongIndex.Index--
	cases := []struct {
		what string
		m    SnapshotManifest
		data []byte
	}{
		{"a damaged byte", src.Manifest, flipped},
		{"a byte too many", src.Manifest, append(slices.Clone(all), 0)},
		{"a byte short", src.Manifest, all[:len(all)-1]},
		{"the wrong term", wrongTerm, all},
		{"the wrong index", wrongIndex, all},
		{"no segments", SnapshotManifest{Index: 5, Term: 1}, nil},
		{"bases out of order", SnapshotManifest{Index: 5, Term: 1, Segments: []SnapshotSegment{{Base: 9, Size: 1}, {Base: 3, Size: 1}}}, nil},
		{"a huge segment", SnapshotManifest{Index: 5, Term: 1, Segments: []SnapshotSegment{{Base: 0, Size: 1 << 40}}}, nil},
	}
	for _, c := range cases {
		err := try(c.what, c.m, c.data)
		if err == nil {
			t.Fatalf("%s: accepted", c.what)
		}
		t.Logf("%s: %v", c.what, err)
		if err := f.InstallSnapshot(11, c.m.Index, c.m.Term, nil); !errors.Is(err, ErrUnknownSnapshot) {
			t.Fatalf("%s: install: %v", c.what, err)
		}
	}
	if f.LastIndex() != 1 || f.FirstIndex() != 1 {
		t.Fatalf("follower's log changed: [%d, %d]", f.FirstIndex(), f.LastIndex())
	}
	names, _ := os.ReadDir(f.Dir())
	for _, n := range names {
		if n.IsDir() {
			t.Fatalf("staging directory %s left", n.Name())
		}
	}
}

// TestRetentionFloor: a replicated log's retention (by bytes, dropping the
// oldest segment, DeleteRecords) deletes no segment holding an entry after
// its floor.
func TestRetentionFloor(t *testing.T) {
	l, _ := snapLeader(t, t.TempDir(), 300)
	defer l.Close()
	if err := l.SetRetention(0, 1); err != nil {
		t.Fatal(err)
	}
	l.SetRetentionFloor(0)
	if n, err := l.EnforceRetention(); n != 0 || err != nil {
		t.Fatalf("retention below floor 0 deleted %d: %v", n, err)
	}
	if ok, _ := l.DropOldestSegment(); ok {
		t.Fatal("dropped the oldest segment below floor 0")
	}
	if _, err := l.DeleteRecordsBefore(100); err != nil || l.FirstIndex() != 1 {
		t.Fatalf("delete records: first index %d, %v", l.FirstIndex(), err)
	}
	l.SetRetentionFloor(123)
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	if l.FirstIndex() > 124 || l.FirstIndex() == 1 || len(segs) < 2 {
		t.Fatalf("floor 123: first index %d", l.FirstIndex())
	}
	off, err := l.OffsetAfterIndex(l.FirstIndex() - 1)
	if err != nil || off != segs[0] {
		t.Fatalf("offset after the entry before the first: %d %v, want %d", off, err, segs[0])
	}
	if _, err := l.OffsetAfterIndex(l.FirstIndex() - 2); !errors.Is(err, ErrIndexCompacted) {
		t.Fatalf("offset after a deleted entry: %v", err)
	}
	if off, err := l.OffsetAfterIndex(l.LastIndex()); err != nil || off != l.NextOffset() {
		t.Fatalf("offset after the last entry: %d %v, want %d", off, err, l.NextOffset())
	}
}
