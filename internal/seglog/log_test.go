package seglog

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAppendReadReopen(t *testing.T) {
	fs := vfs.NewMemFS()
	l, rep := mustOpen(t, fs, "/p", testOpts())
	if rep.EndOffset != 0 || rep.Segments != 1 {
		t.Fatalf("new log report %+v", rep)
	}
	var want []string
	next := int64(0)
	for i := range 200 {
		tag := fmt.Sprintf("b%d", i)
		n := 1 + i%5
		b := mkBatch(tag, n, int64(1000+i))
		if i%3 == 0 {
			b = padBatch(tag, 3000, int64(1000+i))
			n = 1
		}
		res, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != next || res.LastOffset != next+int64(n)-1 {
			t.Fatalf("append %d: got %+v, want base %d", i, res, next)
		}
		next += int64(n)
		want = append(want, tag)
	}
	if l.EndOffset() != next {
		t.Fatalf("end %d, want %d", l.EndOffset(), next)
	}
	if len(l.Segments()) < 2 {
		t.Fatalf("expected rolls with 64 KiB segments, have %v", l.Segments())
	}
	check := func(l *Log) {
		t.Helper()
		got := readAll(t, l)
		if len(got) != len(want) {
			t.Fatalf("read %d batches, want %d", len(got), len(want))
		}
		off := int64(0)
		for i, tag := range want {
			b, ok := got[off]
			if !ok {
				t.Fatalf("no batch at %d", off)
			}
			if g := tagOf(t, b); g != tag {
				t.Fatalf("batch %d at %d has tag %q, want %q", i, off, g, tag)
			}
			h, _ := batch.ParseHeader(b)
			off = h.LastOffset() + 1
		}
	}
	check(l)
	// Reading from the middle of a batch returns that batch.
	data, err := l.Read(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(data); h.BaseOffset > 3 || h.LastOffset() < 3 {
		t.Fatalf("read(3) returned batch %d..%d", h.BaseOffset, h.LastOffset())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, rep = mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	if len(rep.Scanned) != 0 || rep.Torn != nil || rep.EndOffset != next {
		t.Fatalf("clean reopen scanned %v torn %v end %d", rep.Scanned, rep.Torn, rep.EndOffset)
	}
	check(l)
	if _, err := l.Append(mkBatch("after", 1, 5000)); err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != next+1 {
		t.Fatalf("end after reopen+append %d", l.EndOffset())
	}
}

func TestReadBounds(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	defer l.Close()
	for i := range 10 {
		if _, err := l.Append(padBatch(fmt.Sprint(i), 1000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := l.Read(10, 100); b != nil || err != nil {
		t.Fatalf("read at end: %v %v", b, err)
	}
	if _, err := l.Read(11, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	if _, err := l.Read(-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read before start: %v", err)
	}
	// maxBytes smaller than one batch still returns one whole batch.
	b, err := l.Read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if one, rest, _ := batch.Next(b); len(rest) != 0 || len(one) != len(b) {
		t.Fatalf("small maxBytes returned %d bytes, not exactly one batch", len(b))
	}
	// maxBytes of 3.5 batches returns exactly 3.
	sz := len(b)
	b, err = l.Read(0, sz*7/2)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3*sz {
		t.Fatalf("read returned %d bytes, want %d", len(b), 3*sz)
	}
}

func TestValidationRejectsAndWritesNothing(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	good := mkBatch("g", 3, 1)
	bad := mkBatch("b", 3, 1)
	bad[len(bad)-1] ^= 0xff // CRC no longer matches
	_, err := l.Append(append(append([]byte{}, good...), bad...))
	var ve *batch.ValidationError
	if !errors.As(err, &ve) || ve.Check != "crc" {
		t.Fatalf("want crc validation error, got %v", err)
	}
	if l.EndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("rejected append wrote data: end %d size %d", l.EndOffset(), l.Size())
	}
	if _, err := l.Append(nil); err == nil {
		t.Fatal("empty append accepted")
	}
	if _, err := l.Append(good[:30]); err == nil {
		t.Fatal("truncated batch accepted")
	}
	if _, err := l.Append(good); err != nil {
		t.Fatalf("good batch after rejects: %v", err)
	}
}

func TestStickyErrorAfterFailedSync(t *testing.T) {
	mem := vfs.NewMemFS()
	efs := vfs.NewErrorFS(mem, nil)
	l, _ := mustOpen(t, efs, "/p", testOpts())
	if _, err := l.Append(mkBatch("a", 1, 1)); err != nil {
		t.Fatal(err)
	}
	efs.SetInjector(vfs.All(vfs.OnKinds(vfs.OpFileSync), vfs.OnIndex(0)))
	_, err := l.Append(mkBatch("b", 1, 1))
	var se *StorageError
	if !errors.As(err, &se) || se.Op != "sync" || !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("want sticky sync error, got %v", err)
	}
	efs.SetInjector(nil) // the disk "recovers": the log must still refuse
	_, err2 := l.Append(mkBatch("c", 1, 1))
	if !errors.Is(err2, se) {
		t.Fatalf("append after failed sync: %v, want the sticky %v", err2, se)
	}
	if l.EndOffset() != 1 {
		t.Fatalf("end advanced past the failed append: %d", l.EndOffset())
	}
	if err := l.Close(); !errors.Is(err, se) {
		t.Fatalf("close: %v", err)
	}
	l, _ = mustOpen(t, mem, "/p", testOpts())
	defer l.Close()
	got := readAll(t, l)
	if tagOf(t, got[0]) != "a" {
		t.Fatal("acknowledged batch lost")
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	const writers, per = 8, 100
	var wg sync.WaitGroup
	results := make([][]AppendResult, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r, err := l.Append(mkBatch(fmt.Sprintf("w%d.%d", w, i), 2, int64(i)))
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], r)
			}
		}()
	}
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			off := int64(0)
			for {
				select {
				case <-stop:
					return
				case <-l.Changed():
				case <-time.After(time.Millisecond):
				}
				for off < l.EndOffset() {
					b, err := l.Read(off, 4096)
					if err != nil {
						t.Error(err)
						return
					}
					for bt, err := range batch.Batches(b) {
						if err != nil || bt.BaseOffset != off {
							t.Errorf("reader expected %d got %d: %v", off, bt.BaseOffset, err)
							return
						}
						off = bt.LastOffset() + 1
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	seen := map[int64]bool{}
	for w := range writers {
		for i, r := range results[w] {
			if seen[r.BaseOffset] {
				t.Fatalf("offset %d assigned twice", r.BaseOffset)
			}
			seen[r.BaseOffset] = true
			if i > 0 && r.BaseOffset <= results[w][i-1].BaseOffset {
				t.Fatal("offsets not increasing for one writer")
			}
		}
	}
	got := readAll(t, l)
	if len(got) != writers*per {
		t.Fatalf("read %d batches, want %d", len(got), writers*per)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRollByAgeAndRetention(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_000_000))
	o := testOpts()
	o.Clock = clk
	o.SegmentAge = time.Minute
	o.RetentionAge = time.Hour
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", o)
	defer l.Close()
	// Three segments, one per "minute", each with timestamps of its time.
	for seg := range 3 {
		for range 3 {
			now := clk.Now().UnixMilli()
			if _, err := l.Append(mkBatch("x", 1, now)); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(61 * time.Second)
		_ = seg
	}
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("want 3 segments after age rolls, have %d", n)
	}
	if n, err := l.EnforceRetention(); err != nil || n != 0 {
		t.Fatalf("nothing is an hour old yet: deleted %d, %v", n, err)
	}
	clk.Advance(time.Hour - 2*61*time.Second)
	// Now the first segment's newest record is > 1 h old, the second's not.
	n, err := l.EnforceRetention()
	if err != nil || n != 1 {
		t.Fatalf("deleted %d (%v), want 1", n, err)
	}
	if l.StartOffset() != 3 {
		t.Fatalf("start %d, want 3", l.StartOffset())
	}
	if _, err := l.Read(0, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of deleted data: %v", err)
	}
	names, _ := fs.List("/p")
	for _, name := range names {
		if name == segmentName(0)+logSuffix || name == segmentName(0)+indexSuffix {
			t.Fatalf("file %s survived retention", name)
		}
	}
	clk.Advance(24 * time.Hour)
	if n, _ := l.EnforceRetention(); n != 1 {
		t.Fatalf("the active segment must never be deleted; deleted %d", n)
	}
	if got := l.Segments(); len(got) != 1 || got[0] != 6 {
		t.Fatalf("segments %v", got)
	}
}

func TestRetentionBytes(t *testing.T) {
	o := testOpts()
	o.RetentionBytes = 150 << 10
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", o)
	defer l.Close()
	for i := range 400 {
		if _, err := l.Append(padBatch(fmt.Sprint(i), 2000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Retention runs after every roll; the log keeps at least 150 KiB, plus
	// less than one deletable segment, plus the active segment.
	if size := l.Size(); size < o.RetentionBytes || size >= o.RetentionBytes+2*o.SegmentBytes {
		t.Fatalf("size %d not within [%d, %d)", size, o.RetentionBytes, o.RetentionBytes+2*o.SegmentBytes)
	}
	if l.StartOffset() == 0 {
		t.Fatal("nothing deleted")
	}
	got := readAll(t, l)
	if int64(len(got)) != l.EndOffset()-l.StartOffset() {
		t.Fatalf("read %d batches between %d and %d", len(got), l.StartOffset(), l.EndOffset())
	}
}

func TestTruncateAfter(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	for i := range 100 {
		r, err := l.Append(padBatch(fmt.Sprint(i), 2000, int64(i)))
		if err != nil || r.BaseOffset != int64(i) {
			t.Fatal(r, err)
		}
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("want >= 3 segments, have %v", segs)
	}
	if err := l.TruncateAfter(50); err != nil { // 1-record batches: every offset is a boundary
		t.Fatal(err)
	}
	if l.EndOffset() != 51 {
		t.Fatalf("end %d after TruncateAfter(50)", l.EndOffset())
	}
	// Cut exactly at a segment boundary.
	b := segs[1]
	if b > 50 {
		t.Fatalf("segment layout unexpected: %v", segs)
	}
	if err := l.TruncateAfter(b - 1); err != nil {
		t.Fatal(err)
	}
	if got := l.Segments(); got[len(got)-1] != segs[0] || l.EndOffset() != b {
		t.Fatalf("after cut at segment boundary %d: segments %v end %d", b, got, l.EndOffset())
	}
	r, err := l.Append(mkBatch("new", 3, 9))
	if err != nil || r.BaseOffset != b {
		t.Fatalf("append after truncate: %+v %v", r, err)
	}
	if err := l.TruncateAfter(b); !errors.Is(err, ErrNotBatchBoundary) {
		t.Fatalf("mid-batch truncation: %v", err)
	}
	if err := l.TruncateAfter(1000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("truncation past end: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, rep := mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	if rep.EndOffset != b+3 {
		t.Fatalf("reopen end %d, want %d", rep.EndOffset, b+3)
	}
	got := readAll(t, l)
	if tagOf(t, got[b]) != "new" {
		t.Fatal("batch appended after truncation lost")
	}
}

func TestOffsetForTime(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	defer l.Close()
	// Batches of 5 records, timestamps 10*i .. 10*i+4.
	for i := range 300 {
		if _, err := l.Append(mkBatch("t", 5, int64(10*i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ts   int64
		want int64
		ok   bool
	}{
		{-5, 0, true},
		{0, 0, true},
		{3, 3, true},
		{5, 5, true}, // between batches: first record of the next batch
		{1234, 619, true},
		{2994, 1499, true},
		{2995, 1500, false},
	} {
		got, ok, err := l.OffsetForTime(c.ts)
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("OffsetForTime(%d) = %d,%v,%v; want %d,%v", c.ts, got, ok, err, c.want, c.ok)
		}
	}
}

func TestLazyPolicies(t *testing.T) {
	for _, p := range []Policy{SyncInterval, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			fs := vfs.NewMemFS()
			o := testOpts()
			o.Sync = p
			o.SyncInterval = time.Millisecond
			l, _ := mustOpen(t, fs, "/p", o)
			for i := range 50 {
				if _, err := l.Append(mkBatch(fmt.Sprint(i), 1, 1)); err != nil {
					t.Fatal(err)
				}
			}
			if p == SyncInterval {
				// Within a few intervals the data is synced: a crash keeps it.
				deadline := time.Now().Add(5 * time.Second)
				for {
					c := fs.CrashClone(vfs.CrashOptions{})
					l2, _, err := Open(c, "/p", o)
					if err == nil {
						end := l2.EndOffset()
						l2.Close()
						if end == 50 {
							break
						}
					}
					if time.Now().After(deadline) {
						t.Fatal("interval policy never synced")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l, _ = mustOpen(t, fs.CrashClone(vfs.CrashOptions{}), "/p", o)
			defer l.Close()
			if l.EndOffset() != 50 {
				t.Fatalf("close did not sync: end %d", l.EndOffset())
			}
		})
	}
}

func TestAppendAfterClose(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(mkBatch("x", 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{SegmentBytes: 1},
		{SegmentBytes: MaxSegmentBytes + 1},
		{RetentionBytes: -1},
		{Sync: Policy(9)},
		{InitialOffset: -1},
	} {
		if _, _, err := Open(vfs.NewMemFS(), "/p", o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Error("bad policy name accepted")
	}
}

func TestDropOldestSegment(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	defer l.Close()
	for i := range 100 {
		if _, err := l.Append(padBatch(fmt.Sprint(i), 2000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("segments %v", segs)
	}
	ok, err := l.DropOldestSegment()
	if !ok || err != nil || l.StartOffset() != segs[1] {
		t.Fatalf("drop: %v %v start %d", ok, err, l.StartOffset())
	}
	for len(l.Segments()) > 1 {
		if ok, err := l.DropOldestSegment(); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if ok, _ := l.DropOldestSegment(); ok {
		t.Fatal("dropped the active segment")
	}
}

func TestSubmitPipelines(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	var ps []*Pending
	for i := range 500 {
		p, err := l.Submit(mkBatch(fmt.Sprint(i), 2, 1))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		r, err := p.Wait()
		if err != nil || r.BaseOffset != int64(2*i) {
			t.Fatalf("pending %d: %+v %v", i, r, err)
		}
	}
	st := fs.Stats()
	if st.FileSyncs >= 500 {
		t.Fatalf("%d syncs for 500 pipelined appends: no group commit", st.FileSyncs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDropSegmentsBefore(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", testOpts())
	defer l.Close()
	for i := range 100 {
		if _, err := l.Append(padBatch(fmt.Sprint(i), 2000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	if n, err := l.DropSegmentsBefore(segs[1] - 1); n != 0 || err != nil {
		t.Fatalf("dropped %d (%v) with the first segment not fully consumed", n, err)
	}
	if n, err := l.DropSegmentsBefore(segs[2]); n != 2 || err != nil || l.StartOffset() != segs[2] {
		t.Fatalf("dropped %d (%v), start %d", n, err, l.StartOffset())
	}
	if _, err := l.DropSegmentsBefore(1 << 40); err != nil || len(l.Segments()) != 1 {
		t.Fatalf("the active segment must stay: %v %v", l.Segments(), err)
	}
}
