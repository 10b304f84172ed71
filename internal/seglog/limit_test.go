package seglog

import (
	"errors"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// TestReadLimit: records at or above the read limit are durable but not
// readable; moving the limit up makes them readable and wakes readers.
func TestReadLimit(t *testing.T) {
	l, _, err := Open(vfs.NewMemFS(), "p", testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 5 {
		if _, err := l.Append(mkBatch("r", 1, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if l.EndOffset() != 5 || l.DurableEnd() != 5 {
		t.Fatalf("end %d durable %d, want 5 and 5", l.EndOffset(), l.DurableEnd())
	}
	l.SetReadLimit(2)
	if l.EndOffset() != 2 || l.DurableEnd() != 5 {
		t.Fatalf("with limit 2: end %d durable %d", l.EndOffset(), l.DurableEnd())
	}
	data, err := l.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for bt, err := range batch.Batches(data) {
		if err != nil {
			t.Fatal(err)
		}
		if bt.Header.BaseOffset >= 2 {
			t.Fatalf("read a batch at offset %d beyond limit 2", bt.Header.BaseOffset)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("read %d batches below limit 2", n)
	}
	if _, err := l.Read(3, 1<<20); !errors.As(err, new(*OffsetOutOfRangeError)) {
		t.Fatalf("read at 3 beyond the limit: %v, want out of range", err)
	}
	if data, err := l.Read(2, 1<<20); err != nil || len(data) != 0 {
		t.Fatalf("read at the limit: %d bytes, %v", len(data), err)
	}
	ch := l.Changed()
	l.SetReadLimit(4)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("raising the limit did not wake readers")
	}
	if l.EndOffset() != 4 {
		t.Fatalf("end %d, want 4", l.EndOffset())
	}
	// A limit beyond the durable end reads to the end; appends become
	// readable as they become durable, up to the limit.
	l.SetReadLimit(7)
	if _, err := l.Append(mkBatch("r", 1, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(mkBatch("r", 1, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(mkBatch("r", 1, 1000)); err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != 7 || l.DurableEnd() != 8 {
		t.Fatalf("end %d durable %d, want 7 and 8", l.EndOffset(), l.DurableEnd())
	}
}
