package vfs

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestMemFSString(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/d", 0o755))
	mustSyncDir(t, fs, "/")
	syncedFile(t, fs, "/d/gone", "x")
	mustSyncDir(t, fs, "/d")
	check(t, fs.Remove("/d/gone"))
	f := mustCreate(t, fs, "/d/f")
	mustWrite(t, f, "abc")
	check(t, f.Close())
	got := fs.String()
	for _, want := range []string{
		"/\n",
		"/d/\n",
		"/d/f  3 bytes (synced 0, 1 unsynced ops)  [unsynced entry]\n",
		"/d/gone  1 bytes (synced 1, 0 unsynced ops)  [removed, entry still synced]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("String() lacks %q:\n%s", want, got)
		}
	}
}

func TestMemFSStats(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustWrite(t, f, "abc")
	if _, err := f.WriteAt([]byte("de"), 1); err != nil {
		t.Fatal(err)
	}
	check(t, f.Sync())
	check(t, f.Close())
	mustSyncDir(t, fs, "/")
	want := MemFSStats{FileSyncs: 1, DirSyncs: 1, Writes: 2, BytesWritten: 5}
	if got := fs.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestMemFSPaths(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("a/b", 0o755))
	syncedFile(t, fs, "/a/b/../b/./f", "x")
	wantContent(t, fs, "a/b/f", "x")
	wantContent(t, fs, "/../a/b/f", "x")
	if _, err := fs.Stat(""); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("Stat(\"\") = %v", err)
	}
	if fi, err := fs.Stat("/"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat(/) = %v", err)
	}
	if err := fs.Remove("/"); err == nil {
		t.Fatal("Remove(/) succeeded")
	}
	if err := fs.RemoveAll("/"); err == nil {
		t.Fatal("RemoveAll(/) succeeded")
	}
	wantContent(t, fs, "/a/b/f", "x")
}

func TestMemFSConcurrent(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/log", 0o755))
	f := mustCreate(t, fs, "/log/seg")
	const (
		records = 500
		size    = 64
	)
	record := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

	var wg sync.WaitGroup
	var written atomic.Int64 // index of the last record fully written
	var done atomic.Bool     // the writer has stopped
	written.Store(-1)
	wg.Go(func() {
		defer done.Store(true)
		for i := range records {
			if _, err := f.Write(record(i)); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				if err := f.Sync(); err != nil {
					t.Error(err)
				}
			}
			written.Store(int64(i))
		}
	})
	for range 3 {
		wg.Go(func() {
			buf := make([]byte, size)
			for {
				stop := done.Load()
				n := written.Load()
				if n < 0 {
					if stop {
						return
					}
					runtime.Gosched()
					continue
				}
				i := n / 2
				if _, err := f.ReadAt(buf, i*size); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf, record(int(i))) {
					t.Errorf("record %d reads %v", i, buf[:4])
					return
				}
				if stop {
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			name := fmt.Sprintf("/log/tmp%d", i%7)
			g, err := fs.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			g.Write([]byte("x"))
			g.Close()
			if err := fs.Rename(name, "/log/meta"); err != nil {
				t.Error(err)
				return
			}
			if _, err := fs.List("/log"); err != nil {
				t.Error(err)
			}
			if err := SyncDir(fs, "/log"); err != nil {
				t.Error(err)
			}
			_ = fs.CrashClone(CrashOptions{}).String()
		}
	})
	wg.Wait()
	check(t, f.Close())
	fi, err := fs.Stat("/log/seg")
	check(t, err)
	if fi.Size() != records*size {
		t.Fatalf("size %d", fi.Size())
	}
}
