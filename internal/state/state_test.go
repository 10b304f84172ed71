package state

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var quiet = slog.New(slog.DiscardHandler)

func collect(t *testing.T, s *Store, prefix []byte) []string {
	t.Helper()
	var out []string
	if err := s.Scan(prefix, func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Get, batches, scans and prefix deletion, on the real Pebble, including
// prefixes that end in 0xff bytes.
func TestStoreOperations(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get([]byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	b := s.NewBatch()
	if !b.Empty() {
		t.Fatal("new batch not empty")
	}
	for _, k := range []string{"a/1", "a/2", "a/\xff", "a/\xff\xff", "b/1", "a0"} {
		b.Set([]byte(k), []byte("v"+k))
	}
	if b.Empty() {
		t.Fatal("batch with writes is empty")
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get([]byte("a/2"))
	if err != nil || string(v) != "va/2" {
		t.Fatalf("Get: %q %v", v, err)
	}
	v[0] = 'X' // a copy: the store is unchanged
	if v2, _ := s.Get([]byte("a/2")); string(v2) != "va/2" {
		t.Fatal("Get returned the store's own bytes")
	}
	if got := collect(t, s, []byte("a/")); len(got) != 4 {
		t.Fatalf("scan a/: %v", got)
	}
	if got := collect(t, s, []byte("a/\xff")); len(got) != 2 {
		t.Fatalf("scan of a prefix ending in 0xff: %v", got)
	}
	var keys []string
	if err := s.ScanRange([]byte("a/2"), []byte("b/"), func(k, _ []byte) error { keys = append(keys, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 || keys[0] != "a/2" || keys[3] != "a0" { // "a0" sorts after "a/…" and before "b/"
		t.Fatalf("range [a/2, b/): %q", keys)
	}
	stop := errors.New("stop")
	if err := s.Scan([]byte("a/"), func(k, _ []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan error not returned: %v", err)
	}
	b = s.NewBatch()
	b.DeletePrefix([]byte("a/"))
	b.Delete([]byte("b/1"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, s, nil); len(got) != 1 || got[0] != "a0=va0" {
		t.Fatalf("after deleting prefix a/ and b/1: %v", got)
	}
	if !bytes.Equal(prefixEnd([]byte{0xff, 0xff}), nil) || !bytes.Equal(prefixEnd([]byte("a\xff")), []byte("b")) {
		t.Fatal("prefixEnd")
	}
}

// A synced commit survives a crash that drops everything unsynced; an
// unsynced one may not, and nothing half-applied is ever visible.
func TestStoreSyncedCommitSurvivesCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	dir := filepath.Join("/", "state")
	s, err := Open(dir, Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.Set([]byte("k/1"), []byte("one"))
	b.Set([]byte("k/2"), []byte("two"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b = s.NewBatch()
	b.Set([]byte("k/3"), []byte("three"))
	b.Set([]byte("k/4"), []byte("four"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{}) // exactly what was synced
	s.Close()
	s, err = Open(dir, Options{FS: crashed, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := collect(t, s, []byte("k/"))
	if len(got) != 2 && len(got) != 4 {
		t.Fatalf("after the crash: %v (a batch half applied)", got)
	}
	if got[0] != "k/1=one" || got[1] != "k/2=two" {
		t.Fatalf("synced batch lost: %v", got)
	}
}

// A Reader keeps the first shortfall, returns zero afterwards, refuses
// counts the payload cannot hold and trailing bytes.
func TestReader(t *testing.T) {
	r := NewReader([]byte{1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 'h', 'i', 9})
	if r.U8() != 1 || r.U16() != 2 || r.U32() != 3 || r.I64() != 4 || r.Str() != "hi" {
		t.Fatal("fields read wrong")
	}
	if err := r.Done(); err == nil {
		t.Fatal("a trailing byte was accepted")
	}
	r = NewReader([]byte{0, 0, 0, 200, 1, 2})
	if n := r.Count(8); n != 0 || r.Err == nil {
		t.Fatalf("count of 200 items of 8 bytes in 2 bytes: %d %v", n, r.Err)
	}
	r = NewReader([]byte{0, 0})
	if r.U32() != 0 || r.Err == nil || r.U8() != 0 {
		t.Fatal("a short read did not stick")
	}
	r = NewReader(nil)
	r.Fail("first %d", 1)
	r.Fail("second")
	if r.Done() == nil || r.Done().Error() != "first 1" {
		t.Fatalf("Fail kept %v", r.Done())
	}
}

// A checkpoint holds every commit made before it, synced or not, and none
// made after; it opens as a store of its own.
func TestCheckpoint(t *testing.T) {
	root := t.TempDir()
	s, err := Open(filepath.Join(root, "db"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, sync := range []bool{true, false} {
		b := s.NewBatch()
		b.Set([]byte{'k', byte('0' + i)}, []byte("before"))
		if err := b.Commit(sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(filepath.Join(root, "copy")); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.Set([]byte("k2"), []byte("after"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(filepath.Join(root, "copy")); err == nil {
		t.Fatal("a checkpoint over an existing directory succeeded")
	}
	c, err := Open(filepath.Join(root, "copy"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := collect(t, c, []byte("k")); len(got) != 2 || got[0] != "k0=before" || got[1] != "k1=before" {
		t.Fatalf("checkpoint holds %v", got)
	}
}
