package seglog

import (
	"testing"

	"github.com/spoolmq/spool/internal/vfs"
)

// TestLazyTornWindowIsTheActiveSegment: under the lazy policies anything in
// the active segment may be unsynced at a crash, however large the segment
// is. A log reopened with a smaller segment size than it was written with
// (a bounded topic's size changes with its bound or partition count) still
// treats damage anywhere in its active segment as a torn tail, not as
// corruption.
func TestLazyTornWindowIsTheActiveSegment(t *testing.T) {
	big := testOpts()
	big.SegmentBytes = 1 << 20
	c := buildCrashed(t, big, 700, 300)
	small := testOpts() // 64 KiB segments: the active segment is larger
	if c.size <= small.SegmentBytes+int64(small.Limits.MaxBatchBytes) {
		t.Fatalf("active segment of %d bytes does not exceed the small segment size", c.size)
	}
	for _, p := range []Policy{SyncInterval, SyncNone} {
		fs := c.fs.CrashClone(vfs.CrashOptions{})
		mutate(t, fs, c.active, func(f vfs.File) { writeAt(t, f, make([]byte, 64), c.pos[10]+20) })
		o := small
		o.Sync = p
		l, rep, err := Open(fs, "/p", o)
		if err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		if rep.Torn == nil || rep.Torn.Position != c.pos[10] || l.EndOffset() != c.ends[9] {
			t.Fatalf("%v: torn %+v, end %d; want a cut at %d, end %d", p, rep.Torn, l.EndOffset(), c.pos[10], c.ends[9])
		}
		l.Close()
	}
}
