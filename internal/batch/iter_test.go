package batch

import (
	"bytes"
	"errors"
	"testing"
)

func TestBatches(t *testing.T) {
	a := mustEncode(t, testHeader(CodecNone), sampleRecords()[:2])
	hb := testHeader(CodecGzip)
	hb.BaseOffset = 2000
	b := mustEncode(t, hb, sampleRecords())
	stream := append(append([]byte{}, a...), b...)

	var got []Batch
	for bt, err := range Batches(stream) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bt)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Bytes, a) || !bytes.Equal(got[1].Bytes, b) {
		t.Fatalf("got %d batches", len(got))
	}
	if got[0].BaseOffset != 1000 || got[0].LastOffset() != 1001 || got[1].BaseOffset != 2000 || got[1].NumRecords != 5 {
		t.Fatalf("headers: %+v, %+v", got[0].Header, got[1].Header)
	}
	if cap(got[0].Bytes) != len(a) {
		t.Fatal("a batch's bytes are not capped; appending would overwrite the next")
	}

	// An incomplete last batch: the complete ones, then its error, once.
	var n int
	var errs []error
	for _, err := range Batches(stream[:len(stream)-1]) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n != 1 || len(errs) != 1 || !errors.Is(errs[0], ErrIncomplete) {
		t.Fatalf("truncated: %d batches, errors %v", n, errs)
	}

	// Breaking out stops the walk; nothing is yielded for an empty run.
	n = 0
	for range Batches(stream) {
		n++
		break
	}
	for range Batches(nil) {
		n++
	}
	if n != 1 {
		t.Fatalf("the loops ran %d times", n)
	}

	if bt, err := Parse(stream); err != nil || !bytes.Equal(bt.Bytes, a) || bt.BaseOffset != 1000 {
		t.Fatalf("Parse: %d bytes, %v", len(bt.Bytes), err)
	}
	if _, err := Parse(stream[:20]); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Parse of 20 bytes: %v", err)
	}
}

// TestWalkAllocations: walking a batch whose records carry the same header
// keys costs two allocations whatever the number of records (the reused
// headers slice and the first record's key); the loop bodies stay on the
// stack.
func TestWalkAllocations(t *testing.T) {
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Key: []byte("k"), Value: []byte("v"), TimestampDelta: int64(i),
			Headers: []RecordHeader{{Key: "spool.id", Value: []byte{byte(i)}}}})
	}
	run := mustEncode(t, testHeader(CodecNone), recs)
	var n int64
	walk := func() {
		for bt, err := range Batches(run) {
			if err != nil {
				t.Fatal(err)
			}
			for r, err := range bt.Records(0) {
				if err != nil {
					t.Fatal(err)
				}
				n += bt.RecordOffset(r) + int64(len(r.Headers[0].Key))
			}
		}
	}
	if a := testing.AllocsPerRun(20, walk); a > 2 {
		t.Fatalf("%v allocations per walk of 100 records", a)
	}
}
