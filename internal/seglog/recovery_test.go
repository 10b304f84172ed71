package seglog

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// crashedLog appends n batches of about size bytes to a fresh log and
// returns the file system as a power loss right afterwards would leave it
// (everything acknowledged is synced; the active segment has no index),
// with the offsets expected after each batch and the batch positions in the
// active segment.
type crashedLog struct {
	fs     *vfs.MemFS
	opts   Options
	active string  // active segment path
	pos    []int64 // start position of each batch in the active segment
	ends   []int64 // offset after each batch in the active segment
	size   int64   // active segment size
}

func buildCrashed(t *testing.T, o Options, n, size int) *crashedLog {
	t.Helper()
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", o)
	for i := range n {
		if _, err := l.Append(padBatch(fmt.Sprint(i), size, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	c := &crashedLog{fs: fs.CrashClone(vfs.CrashOptions{}), opts: o}
	l.Close()
	act := segs[len(segs)-1]
	c.active = filepath.Join("/p", segmentName(act)+logSuffix)
	data := readFile(t, c.fs, c.active)
	c.size = int64(len(data))
	p := int64(0)
	for bt, err := range batch.Batches(data) {
		if err != nil {
			t.Fatal(err)
		}
		c.pos = append(c.pos, p)
		c.ends = append(c.ends, bt.LastOffset()+1)
		p += int64(len(bt.Bytes))
	}
	return c
}

func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		t.Fatal(err)
	}
	return b
}

func mutate(t *testing.T, fs vfs.FS, name string, fn func(f vfs.File)) {
	t.Helper()
	f, err := fs.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	fn(f)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func writeAt(t *testing.T, f vfs.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestTornLastBatches cuts the active segment at every byte of its last
// three batches: recovery must keep exactly the whole batches before the
// cut, report the cut, and lose nothing before it.
func TestTornLastBatches(t *testing.T) {
	c := buildCrashed(t, testOpts(), 20, 300)
	k := len(c.pos)
	from := c.pos[k-3]
	for cut := from; cut < c.size; cut++ {
		fs := c.fs.CrashClone(vfs.CrashOptions{})
		mutate(t, fs, c.active, func(f vfs.File) {
			if err := f.Truncate(cut); err != nil {
				t.Fatal(err)
			}
		})
		// The batch the cut falls in, and the offset recovery must end at.
		i := k - 1
		for c.pos[i] > cut {
			i--
		}
		wantEnd := c.ends[i] - 1 - lastDelta(t, c, i)
		l, rep, err := Open(fs, "/p", c.opts)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if l.EndOffset() != wantEnd {
			t.Fatalf("cut at %d: end %d, want %d", cut, l.EndOffset(), wantEnd)
		}
		if cut == c.pos[i] {
			if rep.Torn != nil {
				t.Fatalf("cut at batch boundary %d reported torn %+v", cut, rep.Torn)
			}
		} else if rep.Torn == nil || rep.Torn.Position != c.pos[i] || rep.Torn.Dropped != cut-c.pos[i] || rep.Torn.Offset != wantEnd {
			t.Fatalf("cut at %d: torn report %+v, want position %d dropped %d", cut, rep.Torn, c.pos[i], cut-c.pos[i])
		}
		if got := readAll(t, l); int64(len(got)) != wantEnd {
			t.Fatalf("cut at %d: read %d batches, want %d", cut, len(got), wantEnd)
		}
		// The log continues at the recovered end.
		if r, err := l.Append(mkBatch("after", 1, 1)); err != nil || r.BaseOffset != wantEnd {
			t.Fatalf("append after recovery: %+v %v", r, err)
		}
		l.Close()
	}
}

// lastDelta is the number of records minus one of the i-th batch.
func lastDelta(t *testing.T, c *crashedLog, i int) int64 {
	if i == 0 {
		return c.ends[0] - 1 - firstBase(t, c)
	}
	return c.ends[i] - c.ends[i-1] - 1
}

func firstBase(t *testing.T, c *crashedLog) int64 {
	b, err := parseSegmentBase(c.active)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseSegmentBase(path string) (int64, error) {
	b, ok := parseSegmentName(filepath.Base(path), logSuffix)
	if !ok {
		return 0, errors.New("bad name")
	}
	return b, nil
}

func TestCorruptionTable(t *testing.T) {
	// Active-segment damage near the end is a torn write; damage further back
	// or in a sealed segment is corruption that must be reported.
	big := testOpts()
	big.SegmentBytes = 1 << 20
	type expect struct {
		tornAt  int // batch index the log is cut back to; -1 none
		corrupt bool
	}
	cases := []struct {
		name  string
		opts  Options
		n     int
		apply func(t *testing.T, c *crashedLog, fs *vfs.MemFS)
		want  expect
	}{
		{"bad-crc-last-batch", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, []byte{0xEE}, c.size-5) })
		}, expect{tornAt: 19}},
		{"bad-length-last-batch", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, []byte{0x7f, 0xff, 0xff, 0xff}, c.pos[19]+8) })
		}, expect{tornAt: 19}},
		{"negative-length-last-batch", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, []byte{0xff, 0xff, 0xff, 0xf0}, c.pos[19]+8) })
		}, expect{tornAt: 19}},
		{"zeroed-page-at-tail", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, make([]byte, 4096), c.size-4096) })
		}, expect{tornAt: -2}}, // computed below: first batch touched by the page
		{"garbage-after-last-batch", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, []byte("garbage garbage garbage"), c.size) })
		}, expect{tornAt: 20}},
		{"zeros-after-last-batch", testOpts(), 20, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, make([]byte, 8192), c.size) })
		}, expect{tornAt: 20}},
		{"mid-log-bit-flip-active", big, 700, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			b := readFile(t, fs, c.active)
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, []byte{b[c.pos[10]+100] ^ 0x10}, c.pos[10]+100) })
		}, expect{tornAt: -1, corrupt: true}},
		{"zeroed-page-mid-log-active", big, 700, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, make([]byte, 4096), 8192) })
		}, expect{tornAt: -1, corrupt: true}},
		{"bit-flip-sealed-segment-without-index", testOpts(), 500, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			seg0 := filepath.Join("/p", segmentName(0)+logSuffix)
			b := readFile(t, fs, seg0)
			mutate(t, fs, seg0, func(f vfs.File) { writeAt(t, f, []byte{b[len(b)-10] ^ 1}, int64(len(b)-10)) })
			if err := fs.Remove(filepath.Join("/p", segmentName(0)+indexSuffix)); err != nil {
				t.Fatal(err)
			}
		}, expect{tornAt: -1, corrupt: true}},
		{"missing-middle-segment", testOpts(), 500, func(t *testing.T, c *crashedLog, fs *vfs.MemFS) {
			names, _ := fs.List("/p")
			var logs []string
			for _, n := range names {
				if filepath.Ext(n) == logSuffix {
					logs = append(logs, n)
				}
			}
			if len(logs) < 3 {
				t.Fatalf("need 3 segments, have %v", logs)
			}
			fs.Remove(filepath.Join("/p", logs[1]))
		}, expect{tornAt: -1, corrupt: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := buildCrashed(t, tc.opts, tc.n, 300)
			fs := c.fs.CrashClone(vfs.CrashOptions{})
			tc.apply(t, c, fs)
			want := tc.want
			if want.tornAt == -2 {
				want.tornAt = len(c.pos) - 1
				for c.pos[want.tornAt] > c.size-4096 {
					want.tornAt--
				}
			}
			l, rep, err := Open(fs, "/p", c.opts)
			if want.corrupt {
				var ce *CorruptionError
				if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("want corruption error, got %v (report %+v)", err, rep)
				}
				if l != nil {
					t.Fatal("corrupt log opened")
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer l.Close()
			wantEnd := c.ends[len(c.ends)-1]
			if want.tornAt < len(c.pos) {
				wantEnd = c.ends[want.tornAt] - 1 // one-record batches
				if rep.Torn == nil || rep.Torn.Position != c.pos[want.tornAt] {
					t.Fatalf("torn report %+v, want cut at %d", rep.Torn, c.pos[want.tornAt])
				}
			} else if rep.Torn == nil || rep.Torn.Position != c.size {
				t.Fatalf("trailing bytes not reported: %+v", rep.Torn)
			}
			if l.EndOffset() != wantEnd {
				t.Fatalf("end %d, want %d", l.EndOffset(), wantEnd)
			}
			if got := readAll(t, l); int64(len(got)) != wantEnd {
				t.Fatalf("read %d batches, want %d", len(got), wantEnd)
			}
		})
	}
}

// TestSealedSegmentCorruptionDetectedOnRead: a trusted sealed segment is not
// rescanned at open, so damage in it must be caught when it is read.
func TestSealedSegmentCorruptionDetectedOnRead(t *testing.T) {
	c := buildCrashed(t, testOpts(), 500, 300)
	fs := c.fs
	seg0 := filepath.Join("/p", segmentName(0)+logSuffix)
	b := readFile(t, fs, seg0)
	mutate(t, fs, seg0, func(f vfs.File) { writeAt(t, f, []byte{b[500] ^ 4}, 500) })
	l, rep := mustOpen(t, fs, "/p", c.opts)
	defer l.Close()
	if rep.Trusted == 0 {
		t.Fatal("sealed segment was not trusted from its index")
	}
	var ce *CorruptionError
	for off := int64(0); off < 10; off++ {
		if _, err := l.Read(off, 1<<20); errors.As(err, &ce) {
			if ce.Segment != 0 {
				t.Fatalf("corruption reported in segment %d", ce.Segment)
			}
			return
		}
	}
	t.Fatal("damaged batch served without error")
}

func TestCorruptedIndexIsRebuilt(t *testing.T) {
	c := buildCrashed(t, testOpts(), 500, 300)
	fs := c.fs
	idx := filepath.Join("/p", segmentName(0)+indexSuffix)
	b := readFile(t, fs, idx)
	mutate(t, fs, idx, func(f vfs.File) { writeAt(t, f, []byte{b[60] ^ 0xff}, 60) })
	// A leftover temporary file and an orphaned index are cleaned up too.
	for _, name := range []string{segmentName(0) + indexSuffix + tmpSuffix, segmentName(99999) + indexSuffix} {
		f, err := fs.Create(filepath.Join("/p", name))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	l, rep := mustOpen(t, fs, "/p", c.opts)
	defer l.Close()
	if len(rep.Scanned) < 2 || rep.Scanned[0] != 0 {
		t.Fatalf("segment with bad index not scanned: %v", rep.Scanned)
	}
	if len(rep.Removed) != 2 {
		t.Fatalf("removed %v", rep.Removed)
	}
	if got := readAll(t, l); int64(len(got)) != c.ends[len(c.ends)-1] {
		t.Fatalf("read %d batches", len(got))
	}
	if _, err := l.Read(0, 100); err != nil {
		t.Fatal(err)
	}
}

// A scan reads in chunks smaller than the largest batch allowed: batches
// larger than a chunk, between small ones and last in the file, are read
// whole and kept.
func TestScanBatchesLargerThanAChunk(t *testing.T) {
	fs := vfs.NewMemFS()
	o := Options{SegmentBytes: 64 << 20, Limits: batch.Limits{MaxBatchBytes: 3*scanChunk + 1000}, Logger: quietLogger}
	l, _ := mustOpen(t, fs, "/p", o)
	var sizes []int
	for i, size := range []int{1000, scanChunk + 5000, 300, 2*scanChunk + 77, scanChunk - 3, 3 * scanChunk} {
		if _, err := l.Append(padBatch(fmt.Sprintf("b%d", i), size, 1)); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, size)
	}
	end := l.EndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Lose the seal, as a crash before it was written would: a full scan.
	names, err := fs.List("/p")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, indexSuffix) {
			if err := fs.Remove(filepath.Join("/p", name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	l, rep := mustOpen(t, fs, "/p", o)
	defer l.Close()
	if rep.Torn != nil || l.EndOffset() != end {
		t.Fatalf("after the scan: end %d (want %d), torn %+v", l.EndOffset(), end, rep.Torn)
	}
	got := readAll(t, l)
	if len(got) != len(sizes) {
		t.Fatalf("read %d batches, want %d", len(got), len(sizes))
	}
	for i := range sizes {
		if tag := tagOf(t, got[int64(i)]); tag != fmt.Sprintf("b%d", i) {
			t.Fatalf("batch at offset %d has tag %q", i, tag)
		}
	}
}
