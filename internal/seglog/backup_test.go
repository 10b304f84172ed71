package seglog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/vfs"
)

// TestBackup copies a log while appends go on, on the operating system's
// file system (sealed segments linked) and on MemFS (copied), and checks
// that the copy opens clean with every record appended before Backup was
// called, byte for byte, and the start offset.
func TestBackup(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func() vfs.FS
	}{
		{"os", func() vfs.FS { return vfs.Default }},
		{"mem", func() vfs.FS { return vfs.NewMemFS() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, root := tc.fs(), t.TempDir()
			if err := fs.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			l, _ := mustOpen(t, fs, filepath.Join(root, "log"), testOpts())
			defer l.Close()
			for i := range 300 {
				if _, err := l.Append(padBatch(fmt.Sprintf("a%d", i), 900, int64(i))); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.DeleteRecordsBefore(5); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, l)
			end := l.EndOffset()

			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					if _, err := l.Append(padBatch(fmt.Sprintf("b%d", i), 900, int64(1000+i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
			st, err := l.Backup(filepath.Join(root, "copy"))
			stop.Store(true)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if st.Segments < 4 || st.Start != 5 {
				t.Fatalf("stats %+v: want several segments and start 5", st)
			}
			if tc.name == "os" && st.Linked != st.Segments-1 {
				t.Fatalf("stats %+v: want every sealed segment linked", st)
			}
			if tc.name == "mem" && st.Linked != 0 {
				t.Fatalf("stats %+v: MemFS cannot link", st)
			}
			c, rep := mustOpen(t, fs, filepath.Join(root, "copy"), testOpts())
			defer c.Close()
			if rep.Torn != nil {
				t.Fatalf("the copy has a torn tail: %+v", rep.Torn)
			}
			if c.StartOffset() != 5 || c.EndOffset() < end {
				t.Fatalf("copy holds [%d, %d), want start 5 and end at least %d", c.StartOffset(), c.EndOffset(), end)
			}
			got := readAll(t, c)
			for off, b := range before {
				if !bytes.Equal(got[off], b) {
					t.Fatalf("batch at %d differs in the copy", off)
				}
			}
			// The copy is a log of its own: appending to it leaves the
			// original alone.
			if _, err := c.Append(padBatch("c", 900, 5000)); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, l); !bytes.Equal(got[end-1], before[end-1]) {
				t.Fatal("appending to the copy changed the original")
			}
		})
	}
}

func TestBackupClosed(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, vfs.Default, filepath.Join(dir, "log"), testOpts())
	l.Close()
	if _, err := l.Backup(filepath.Join(dir, "copy")); err == nil {
		t.Fatal("backup of a closed log succeeded")
	}
}

// Retention deleting segments while Backup copies them: the copy is still
// a whole log, from some start to at least the end when Backup began.
func TestBackupDuringRetention(t *testing.T) {
	for round := range 8 {
		root := t.TempDir()
		l, _ := mustOpen(t, vfs.Default, filepath.Join(root, "log"), testOpts())
		for i := range 300 {
			if _, err := l.Append(padBatch(fmt.Sprintf("a%d", i), 900, int64(i))); err != nil {
				t.Fatal(err)
			}
		}
		before := readAll(t, l)
		end := l.EndOffset()
		if err := l.SetRetention(0, 64<<10); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			if round%2 == 1 {
				time.Sleep(time.Duration(round) * 50 * time.Microsecond)
			}
			if _, err := l.EnforceRetention(); err != nil {
				t.Error(err)
			}
		})
		_, err := l.Backup(filepath.Join(root, "copy"))
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		c, rep := mustOpen(t, vfs.Default, filepath.Join(root, "copy"), testOpts())
		if rep.Torn != nil || c.EndOffset() < end {
			t.Fatalf("copy: torn %+v, end %d, want at least %d", rep.Torn, c.EndOffset(), end)
		}
		for off, b := range readAll(t, c) {
			if off < end && !bytes.Equal(before[off], b) {
				t.Fatalf("batch at %d differs in the copy", off)
			}
		}
		c.Close()
	}
}
