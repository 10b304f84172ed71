package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
)

func assertRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestRoundTripEveryCodec(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			h := testHeader(c)
			recs := sampleRecords()
			b := mustEncode(t, h, recs)

			got, err := Validate(b, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if got.Codec() != c || got.BaseOffset != h.BaseOffset || got.PartitionLeaderEpoch != h.PartitionLeaderEpoch ||
				got.BaseTimestamp != h.BaseTimestamp || got.ProducerID != h.ProducerID ||
				got.ProducerEpoch != h.ProducerEpoch || got.BaseSequence != h.BaseSequence {
				t.Fatalf("header fields not preserved: %+v", got)
			}
			if got.NumRecords != 5 || got.LastOffsetDelta != 4 || got.Magic != 2 || got.Size() != len(b) {
				t.Fatalf("computed fields wrong: %+v", got)
			}
			if got.MaxTimestamp != h.BaseTimestamp+1<<40 {
				t.Fatalf("MaxTimestamp = %d", got.MaxTimestamp)
			}
			if c != CodecNone && len(b) >= HeaderSize+20_000 {
				t.Fatalf("%v did not compress: %d bytes", c, len(b))
			}

			decoded, err := Records(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			assertRecords(t, decoded, withOffsetDeltas(recs))

			bt, err := Parse(b)
			if err != nil || bt.Header != got || len(bt.Bytes) != len(b) {
				t.Fatalf("Parse: %+v, %v", bt.Header, err)
			}
			var n int
			for r, err := range bt.Records(0) {
				if err != nil {
					t.Fatalf("Batch.Records after %d records: %v", n, err)
				}
				want := withOffsetDeltas(recs)[n]
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("Batch.Records %d: got %+v", n, r)
				}
				if bt.RecordOffset(r) != h.BaseOffset+int64(n) || bt.RecordTimestamp(r) != h.BaseTimestamp+want.TimestampDelta {
					t.Fatalf("record %d: offset %d, timestamp %d", n, bt.RecordOffset(r), bt.RecordTimestamp(r))
				}
				n++
			}
			if n != len(recs) {
				t.Fatalf("Batch.Records: %d records", n)
			}
		})
	}
}

func TestEncodeAppends(t *testing.T) {
	prefix := []byte("existing")
	out, err := Encode(append([]byte{}, prefix...), testHeader(CodecZstd), sampleRecords())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatal("Encode clobbered dst")
	}
	if _, err := Validate(out[len(prefix):], DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	// Two batches appended back to back split cleanly.
	two, _ := Encode(out[len(prefix):], testHeader(CodecNone), sampleRecords()[:1])
	a, rest, err := Next(two)
	if err != nil || len(a) != len(out)-len(prefix) {
		t.Fatal(err)
	}
	if _, err := Validate(rest, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
}

func TestEncodeIgnoresOffsetDeltaAndKeepsLogAppendTime(t *testing.T) {
	h := testHeader(CodecNone)
	h.Attributes |= AttrLogAppendTime
	h.MaxTimestamp = 42 // broker append time, unrelated to the records
	recs := []Record{{OffsetDelta: 7, Value: []byte("a")}, {OffsetDelta: 7, Value: []byte("b"), TimestampDelta: 100}}
	b := mustEncode(t, h, recs)
	got, err := Validate(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxTimestamp != 42 || !got.HasLogAppendTime() {
		t.Fatalf("LogAppendTime batch lost its maxTimestamp: %+v", got)
	}
	dec, _ := Records(b, 0)
	if dec[0].OffsetDelta != 0 || dec[1].OffsetDelta != 1 {
		t.Fatalf("offset deltas %d %d", dec[0].OffsetDelta, dec[1].OffsetDelta)
	}
}

func TestEncodeErrors(t *testing.T) {
	h := testHeader(CodecNone)
	tests := []struct {
		name  string
		h     Header
		recs  []Record
		check string
	}{
		{"no records", h, nil, "record-count"},
		{"bad codec", Header{Attributes: 6}, []Record{{}}, "codec"},
		{"timestamp overflow", Header{BaseTimestamp: math.MaxInt64 - 1}, []Record{{TimestampDelta: 2}}, "timestamp"},
		{"timestamp underflow", Header{BaseTimestamp: math.MinInt64 + 1}, []Record{{TimestampDelta: -2}}, "timestamp"},
	}
	for _, tc := range tests {
		dst := []byte("keep")
		out, err := Encode(dst, tc.h, tc.recs)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Check != tc.check {
			t.Errorf("%s: err = %v, want check %q", tc.name, err, tc.check)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", tc.name, out)
		}
	}
}

func TestBatchRecordsBreak(t *testing.T) {
	bt, err := Parse(mustEncode(t, testHeader(CodecSnappy), sampleRecords()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r, err := range bt.Records(0) {
		if err != nil || r.OffsetDelta != int32(n) {
			t.Fatalf("record %d: %+v, %v", n, r, err)
		}
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("the loop ran %d times", n)
	}
}

// TestBatchRecordsErrors: damage is yielded once, as the last element, after
// the records before it; a records section with bytes after the last record
// yields every record, then the error.
func TestBatchRecordsErrors(t *testing.T) {
	walk := func(b []byte) (n int, errs []error) {
		bt, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range bt.Records(0) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if len(errs) > 0 {
				t.Fatal("a record after an error")
			}
			n++
		}
		return n, errs
	}
	var ve *ValidationError

	good := mustEncode(t, testHeader(CodecNone), sampleRecords())
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] = 0x7f // the last record's headers count: far more than its bytes hold
	if n, errs := walk(bad); n != 4 || len(errs) != 1 || !errors.As(errs[0], &ve) {
		t.Fatalf("damaged last record: %d records, errors %v", n, errs)
	}

	// One record too many counted in the header: every record decodes, the
	// count does not match the section.
	counted := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(counted[57:], uint32(len(sampleRecords())+1))
	if n, errs := walk(counted); n != 5 || len(errs) != 1 || !errors.As(errs[0], &ve) || ve.Check != checkRecordCount {
		t.Fatalf("recordsCount too large: %d records, errors %v", n, errs)
	}
	// One too few: the section has bytes left after the last counted record.
	binary.BigEndian.PutUint32(counted[57:], uint32(len(sampleRecords())-1))
	if n, errs := walk(counted); n != 4 || len(errs) != 1 || !errors.As(errs[0], &ve) || ve.Check != checkRecords {
		t.Fatalf("recordsCount too small: %d records, errors %v", n, errs)
	}

	// An unknown codec fails before any record.
	codec := append([]byte(nil), good...)
	codec[22] |= 0x07
	if n, errs := walk(codec); n != 0 || len(errs) != 1 || !errors.As(errs[0], &ve) || ve.Check != checkCodec {
		t.Fatalf("bad codec: %d records, errors %v", n, errs)
	}
}

func TestRecordsAliasAndNulls(t *testing.T) {
	recs := []Record{{Key: nil, Value: []byte{}}, {Key: []byte{}, Value: nil}}
	b := mustEncode(t, testHeader(CodecNone), recs)
	dec, err := Records(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if dec[0].Key != nil || dec[0].Value == nil || dec[1].Key == nil || dec[1].Value != nil {
		t.Fatalf("null/empty distinction lost: %+v", dec)
	}
	// Values are capped sub-slices, so appending cannot overwrite the batch.
	v := dec[0].Value
	if cap(v) != len(v) {
		t.Fatal("decoded value is not capped")
	}
}

func TestVarintCodec(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, -64, 64, 1 << 20, math.MaxInt32, math.MinInt32} {
		b := appendBytesVarint(v)
		if len(b) != varintSize(int64(v)) {
			t.Fatalf("varintSize(%d) = %d, encoded %d", v, varintSize(int64(v)), len(b))
		}
		got, n, ok := readVarint(b, 0)
		if !ok || got != v || n != len(b) {
			t.Fatalf("readVarint(%x) = %d, %d, %v", b, got, n, ok)
		}
	}
	for _, v := range []int64{0, -1, math.MaxInt64, math.MinInt64, 1 << 40} {
		b := appendVarlong(v)
		got, n, ok := readVarlong(b, 0)
		if !ok || got != v || n != len(b) {
			t.Fatalf("readVarlong(%x) = %d, %d, %v", b, got, n, ok)
		}
	}
	bad := [][]byte{{}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0x1f}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x00}}
	for _, b := range bad {
		if _, _, ok := readVarint(b, 0); ok {
			t.Errorf("readVarint accepted %x", b)
		}
	}
	tooLong := bytes.Repeat([]byte{0x80}, 10)
	if _, _, ok := readVarlong(append(tooLong, 0), 0); ok {
		t.Error("readVarlong accepted 11 bytes")
	}
	if _, _, ok := readVarlong([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 0); ok {
		t.Error("readVarlong accepted a value past 64 bits")
	}
}

// appendBytesVarint writes v as Kafka writes an int32 varint, via the
// 32-bit zigzag transform, independent of encoding/binary's 64-bit one.
func appendBytesVarint(v int32) []byte {
	u := uint32(v<<1) ^ uint32(v>>31)
	var out []byte
	for u >= 0x80 {
		out = append(out, byte(u)|0x80)
		u >>= 7
	}
	return append(out, byte(u))
}

func appendVarlong(v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	var out []byte
	for u >= 0x80 {
		out = append(out, byte(u)|0x80)
		u >>= 7
	}
	return append(out, byte(u))
}

func TestPadded(t *testing.T) {
	var sizes []int
	for size := 60; size < 300; size++ {
		sizes = append(sizes, size)
	}
	for size := 8180; size < 8300; size++ {
		sizes = append(sizes, size)
	}
	sizes = append(sizes, 16<<10, 1<<20)
	for _, size := range sizes {
		b, err := Padded(size, 1_700_000_000_000)
		if size < 68 || size == 126 || size == 8255 {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("size %d: %d bytes, %v", size, len(b), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		h, err := Validate(b, DefaultLimits())
		if err != nil || len(b) != size || h.NumRecords != 1 || h.BaseTimestamp != 1_700_000_000_000 {
			t.Fatalf("size %d: %d bytes, %+v, %v", size, len(b), h, err)
		}
	}
}
