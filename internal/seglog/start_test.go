package seglog

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/vfs"
)

func fillSegments(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(padBatch(fmt.Sprint(i), 2000, int64(1000+i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeleteRecordsBefore(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	fillSegments(t, l, 100)
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("segments %v", segs)
	}
	mid := segs[1] + 3 // inside the second segment
	start, err := l.DeleteRecordsBefore(mid)
	if err != nil || start != mid || l.StartOffset() != mid {
		t.Fatalf("delete: start %d (log %d), %v", start, l.StartOffset(), err)
	}
	if got := l.Segments(); got[0] != segs[1] {
		t.Fatalf("segments after delete %v, want the first dropped", got)
	}
	if _, err := l.Read(mid-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start: %v", err)
	}
	if data, err := l.Read(mid, 100); err != nil || len(data) == 0 || tagOf(t, data) != fmt.Sprint(mid) {
		t.Fatalf("read at the start: %d bytes, %v", len(data), err)
	}
	// Time lookups never answer below the start.
	if off, ok, err := l.OffsetForTime(0); err != nil || !ok || off != mid {
		t.Fatalf("offset for time 0: %d %v %v", off, ok, err)
	}
	// Lower or equal offsets change nothing; beyond the end is refused.
	if s, err := l.DeleteRecordsBefore(2); err != nil || s != mid {
		t.Fatalf("lower delete: %d %v", s, err)
	}
	if _, err := l.DeleteRecordsBefore(l.EndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete beyond the end: %v", err)
	}
	// Retention dropping a segment must not move the start back.
	if ok, err := l.DropOldestSegment(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got := l.StartOffset(); got != max(mid, l.Segments()[0]) {
		t.Fatalf("start %d after dropping a segment", got)
	}
	want := l.StartOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ = mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	if l.StartOffset() != want {
		t.Fatalf("start %d after reopen, want %d", l.StartOffset(), want)
	}
	// Deleting everything keeps the active segment and an empty readable range.
	end := l.EndOffset()
	if s, err := l.DeleteRecordsBefore(end); err != nil || s != end {
		t.Fatalf("delete all: %d %v", s, err)
	}
	if len(l.Segments()) != 1 {
		t.Fatalf("segments %v", l.Segments())
	}
	if data, err := l.Read(end, 100); err != nil || data != nil {
		t.Fatalf("read at end: %v %v", data, err)
	}
	if _, err := l.Append(mkBatch("after", 2, 5)); err != nil {
		t.Fatal(err)
	}
	if data, err := l.Read(end, 1000); err != nil || tagOf(t, data) != "after" {
		t.Fatalf("read after delete-all: %v", err)
	}
}

// The start is durable before DeleteRecordsBefore returns: a power loss
// right after it keeps it.
func TestDeleteRecordsSurvivesCrash(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	fillSegments(t, l, 60)
	if _, err := l.DeleteRecordsBefore(17); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashOptions{})
	l2, _ := mustOpen(t, crashed, "/p", testOpts())
	defer l2.Close()
	if l2.StartOffset() != 17 {
		t.Fatalf("start %d after crash, want 17", l2.StartOffset())
	}
}

// A damaged start file is ignored (the hidden records come back); a start
// beyond the recovered end is capped at it.
func TestStartFileDamageAndCap(t *testing.T) {
	fs := vfs.NewMemFS()
	l, _ := mustOpen(t, fs, "/p", testOpts())
	fillSegments(t, l, 10)
	if _, err := l.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path := filepath.Join("/p", startFileName)
	bad := encodeStart(5)
	bad[9] ^= 1
	if err := vfs.WriteFileAtomic(fs, "/p", path, bad); err != nil {
		t.Fatal(err)
	}
	l, _ = mustOpen(t, fs, "/p", testOpts())
	if l.StartOffset() != 0 {
		t.Fatalf("damaged start file applied: start %d", l.StartOffset())
	}
	l.Close()
	if err := vfs.WriteFileAtomic(fs, "/p", path, encodeStart(1000)); err != nil {
		t.Fatal(err)
	}
	l, _ = mustOpen(t, fs, "/p", testOpts())
	defer l.Close()
	if l.StartOffset() != l.EndOffset() || l.EndOffset() != 10 {
		t.Fatalf("start %d end %d, want both 10", l.StartOffset(), l.EndOffset())
	}
}

func TestDeleteRecordsFailureIsSticky(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMemFS(), nil)
	l, _ := mustOpen(t, efs, "/p", testOpts())
	defer l.Close()
	fillSegments(t, l, 5)
	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op) error {
		if strings.Contains(op.Path, startFileName) {
			return &vfs.InjectedError{Op: op}
		}
		return nil
	}))
	if _, err := l.DeleteRecordsBefore(3); err == nil {
		t.Fatal("delete succeeded with its start file failing")
	}
	if l.StartOffset() != 0 {
		t.Fatalf("start moved to %d without being recorded", l.StartOffset())
	}
	efs.SetInjector(nil)
	if _, err := l.Append(mkBatch("x", 1, 1)); err == nil {
		t.Fatal("append accepted after a storage failure")
	}
}

func TestSetRetention(t *testing.T) {
	clk := clock.NewFake(time.UnixMilli(1_000_000))
	o := testOpts()
	o.Clock = clk
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", o)
	defer l.Close()
	fillSegments(t, l, 100)
	if n, err := l.EnforceRetention(); n != 0 || err != nil {
		t.Fatalf("no retention configured, deleted %d (%v)", n, err)
	}
	if err := l.SetRetention(-1, 0); err == nil {
		t.Fatal("negative retention accepted")
	}
	if err := l.SetRetention(0, 100<<10); err != nil {
		t.Fatal(err)
	}
	if n, err := l.EnforceRetention(); n == 0 || err != nil {
		t.Fatalf("byte retention set at run time deleted %d (%v)", n, err)
	}
	if err := l.SetRetention(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour) // records carry timestamps around 1 s after the epoch
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if len(l.Segments()) != 1 {
		t.Fatalf("age retention set at run time left %v", l.Segments())
	}
}
