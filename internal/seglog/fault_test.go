package seglog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// ledger records acknowledged appends: base offset -> tag.
type ledger struct {
	mu    sync.Mutex
	acked map[int64]string
}

func newLedger() *ledger { return &ledger{acked: map[int64]string{}} }

func (g *ledger) add(off int64, tag string) {
	g.mu.Lock()
	g.acked[off] = tag
	g.mu.Unlock()
}

func (g *ledger) snapshot() map[int64]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[int64]string, len(g.acked))
	for k, v := range g.acked {
		m[k] = v
	}
	return m
}

// verifyLog opens the log in fs and checks that every acknowledged batch at
// or after the start offset is there with its content, that offsets are
// contiguous, and that new appends get offsets past everything acknowledged.
func verifyLog(t *testing.T, fs vfs.FS, o Options, acked map[int64]string, what string) {
	t.Helper()
	l, _, err := Open(fs, "/p", o)
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer l.Close()
	stored := map[int64]string{}
	off := l.StartOffset()
	for off < l.EndOffset() {
		data, err := l.Read(off, 1<<20)
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: read at %d (end %d): %v", what, off, l.EndOffset(), err)
		}
		for bt, err := range batch.Batches(data) {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if bt.BaseOffset != off {
				t.Fatalf("%s: offsets not contiguous: expected %d, found batch at %d", what, off, bt.BaseOffset)
			}
			stored[off] = tagOf(t, bt.Bytes)
			off = bt.LastOffset() + 1
		}
	}
	var maxAcked int64 = -1
	for o, tag := range acked {
		maxAcked = max(maxAcked, o)
		if o < l.StartOffset() {
			continue // removed by retention
		}
		if got, ok := stored[o]; !ok || got != tag {
			t.Fatalf("%s: acknowledged batch %q at %d lost (found %q, log %d..%d)", what, tag, o, got, l.StartOffset(), l.EndOffset())
		}
	}
	if l.EndOffset() <= maxAcked {
		t.Fatalf("%s: end %d does not cover acknowledged offset %d", what, l.EndOffset(), maxAcked)
	}
	r, err := l.Append(mkBatch("probe", 1, 1))
	if err != nil {
		t.Fatalf("%s: append after recovery: %v", what, err)
	}
	if r.BaseOffset <= maxAcked {
		t.Fatalf("%s: offset %d reassigned after recovery", what, r.BaseOffset)
	}
}

// TestOpIndexSweep fails the i-th file-system operation of a workload of
// appends, rolls, retention, truncation and close, for i = 0, 1, 2, … until
// the workload runs without the injected error firing. After each run every
// acknowledged append must be readable, both from the file system as the
// process left it and from a crash that keeps only synced data.
func TestOpIndexSweep(t *testing.T) {
	o := testOpts()
	o.SegmentBytes = 16 << 10
	o.RetentionBytes = 40 << 10
	o.Limits.MaxBatchBytes = 8 << 10
	o.FlushBytes = 4 << 10
	for i := int64(0); ; i++ {
		mem := vfs.NewMemFS()
		inj := vfs.OnIndex(i)
		efs := vfs.NewErrorFS(mem, vfs.ShortWrite(inj, uint64(i)))
		acked := newLedger()
		runWorkload(efs, o, acked, i)
		if !inj.Fired() {
			t.Logf("workload ran clean after %d injection points", i)
			break
		}
		snap := acked.snapshot()
		verifyLog(t, mem.CrashClone(vfs.CrashOptions{}), o, snap, fmt.Sprintf("op %d (%v), crash", i, firedOp(inj)))
		verifyLog(t, mem, o, snap, fmt.Sprintf("op %d (%v), as left", i, firedOp(inj)))
		if i > 100000 {
			t.Fatal("sweep does not terminate")
		}
	}
}

func firedOp(inj *vfs.IndexInjector) string {
	op, _ := inj.FiredOp()
	return op.String()
}

// runWorkload opens a log and drives it; errors are expected and only
// stop the part of the workload they hit.
func runWorkload(fs vfs.FS, o Options, acked *ledger, seed int64) {
	l, _, err := Open(fs, "/p", o)
	if err != nil {
		return
	}
	for i := range 60 {
		tag := fmt.Sprintf("w%d", i)
		b := padBatch(tag, 600+(i%7)*300, int64(i))
		if r, err := l.Append(b); err == nil {
			acked.add(r.BaseOffset, tag)
		}
		if i == 40 {
			l.EnforceRetention()
		}
		if i == 45 {
			// Drop the last two appends (never acknowledged to anyone in
			// this model: remove them from the ledger first).
			end := l.EndOffset()
			acked.mu.Lock()
			delete(acked.acked, end-1)
			delete(acked.acked, end-2)
			acked.mu.Unlock()
			l.TruncateAfter(end - 3)
		}
	}
	l.Close()
}

// TestCrashDuringConcurrentAppends takes crash clones of the file system at
// random moments while several goroutines append, with random amounts of
// unsynced data surviving, torn writes and reordered writeback. Recovery
// must keep everything acknowledged before the clone, keep offsets
// contiguous, and never hand out an acknowledged offset again.
func TestCrashDuringConcurrentAppends(t *testing.T) {
	iterations := 60
	if testing.Short() {
		iterations = 15
	}
	for it := range iterations {
		seed := uint64(it)
		rng := rand.New(rand.NewPCG(seed, 7))
		o := testOpts()
		o.SegmentBytes = 32 << 10
		mem := vfs.NewMemFS()
		l, _ := mustOpen(t, mem, "/p", o)
		acked := newLedger()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					tag := fmt.Sprintf("c%d.%d", w, i)
					r, err := l.Append(padBatch(tag, 200+i%900, int64(i)))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					acked.add(r.BaseOffset, tag)
				}
			}()
		}
		var clones []*vfs.MemFS
		var snaps []map[int64]string
		for range 3 {
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			snap := acked.snapshot() // acknowledged before the crash instant
			clones = append(clones, mem.CrashClone(vfs.CrashOptions{
				Rand:          rand.New(rand.NewPCG(seed, uint64(len(clones)))),
				TearLastWrite: rng.IntN(2) == 0,
				Reorder:       rng.IntN(2) == 0,
			}))
			snaps = append(snaps, snap)
		}
		close(stop)
		wg.Wait()
		l.Close()
		for i, c := range clones {
			verifyLog(t, c, o, snaps[i], fmt.Sprintf("iteration %d clone %d", it, i))
		}
	}
}
