package seglog

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// testOpts returns small-segment options for tests.
func testOpts() Options {
	return Options{
		SegmentBytes:  64 << 10,
		IndexInterval: 512,
		FlushBytes:    16 << 10,
		Limits:        batch.Limits{MaxBatchBytes: 32 << 10, MaxDecompressedBytes: 1 << 20, MaxRecords: 1 << 16, CheckRecords: true},
		Logger:        quietLogger,
	}
}

// mkBatch builds an uncompressed batch of n records whose values carry tag
// (so reads can be checked against what was appended), with timestamps
// starting at ts, 1 ms apart.
func mkBatch(tag string, n int, ts int64) []byte {
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{
			TimestampDelta: int64(i),
			OffsetDelta:    int32(i),
			Key:            []byte(fmt.Sprintf("k%d", i)),
			Value:          []byte(fmt.Sprintf("%s/%d", tag, i)),
		}
	}
	b, err := batch.Encode(nil, batch.Header{BaseTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		panic(err)
	}
	return b
}

// padBatch builds a one-record batch of roughly size bytes.
func padBatch(tag string, size int, ts int64) []byte {
	val := bytes.Repeat([]byte{'x'}, max(0, size-80-len(tag)))
	val = append([]byte(tag+"|"), val...)
	b, err := batch.Encode(nil, batch.Header{BaseTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Value: val}})
	if err != nil {
		panic(err)
	}
	return b
}

// tagOf returns the tag of the first record of a stored batch.
func tagOf(t testing.TB, b []byte) string {
	t.Helper()
	recs, err := batch.Records(b, 1<<20)
	if err != nil {
		t.Fatalf("decode stored batch: %v", err)
	}
	v := string(recs[0].Value)
	if i := bytes.IndexAny(recs[0].Value, "/|"); i >= 0 {
		v = v[:i]
	}
	return v
}

// readAll reads every batch from start to end, returning base offset ->
// batch bytes.
func readAll(t testing.TB, l *Log) map[int64][]byte {
	t.Helper()
	out := map[int64][]byte{}
	off := l.StartOffset()
	for off < l.EndOffset() {
		data, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("read at %d (end %d) returned nothing", off, l.EndOffset())
		}
		for bt, err := range batch.Batches(data) {
			if err != nil {
				t.Fatalf("split read data: %v", err)
			}
			out[bt.BaseOffset] = bt.Bytes
			off = bt.LastOffset() + 1
		}
	}
	return out
}

func mustOpen(t testing.TB, fs vfs.FS, dir string, o Options) (*Log, *RecoveryReport) {
	t.Helper()
	l, rep, err := Open(fs, dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l, rep
}
