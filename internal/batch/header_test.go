package batch

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// goldenBatch is a two-record uncompressed batch assembled field by field;
// its CRC was computed with an independent bitwise CRC-32C.
var goldenBatch = mustHex(`
	00 00 00 00 00 00 00 64  baseOffset 100
	00 00 00 45              batchLength 69
	00 00 00 07              partitionLeaderEpoch 7
	02                       magic
	71 bc 9f c0              crc
	00 00                    attributes
	00 00 00 01              lastOffsetDelta 1
	00 00 01 8b cf e5 68 00  baseTimestamp 1700000000000
	00 00 01 8b cf e5 68 05  maxTimestamp +5
	00 00 00 00 00 00 00 2a  producerId 42
	00 03                    producerEpoch 3
	00 00 00 09              baseSequence 9
	00 00 00 02              recordsCount 2
	12 00 00 00 02 6b 04 76 30 00        record 0: key "k", value "v0"
	12 00 0a 02 01 00 02 02 68 01        record 1: ts +5, null key, empty value, header "h"=null
`)

// mustHex decodes hex pairs, ignoring everything after the first two-space
// gap on each line (the field comments above).
func mustHex(s string) []byte {
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		var hexPart strings.Builder
		for _, f := range strings.Fields(line) {
			if len(f) != 2 {
				break
			}
			if _, err := hex.DecodeString(f); err != nil {
				break
			}
			hexPart.WriteString(f)
		}
		b, err := hex.DecodeString(hexPart.String())
		if err != nil {
			panic(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestReferenceCRC32C(t *testing.T) {
	// The standard CRC-32C check value.
	if got := refCRC32C([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("refCRC32C check value = %#x", got)
	}
	if got := CRC(append(make([]byte, 21), "123456789"...)); got != 0xE3069283 {
		t.Fatalf("CRC over b[21:] = %#x, want 0xe3069283", got)
	}
	if CRC(make([]byte, 21)) != 0 || CRC(nil) != 0 {
		t.Fatal("CRC of a header-less slice must be 0")
	}
}

func TestGoldenBatch(t *testing.T) {
	b := goldenBatch
	if len(b) != 81 {
		t.Fatalf("golden batch is %d bytes", len(b))
	}
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{
		BaseOffset: 100, Length: 69, PartitionLeaderEpoch: 7, Magic: 2, CRC: 0x71bc9fc0,
		Attributes: 0, LastOffsetDelta: 1, BaseTimestamp: 1700000000000, MaxTimestamp: 1700000000005,
		ProducerID: 42, ProducerEpoch: 3, BaseSequence: 9, NumRecords: 2,
	}
	if h != want {
		t.Fatalf("ParseHeader:\n got %+v\nwant %+v", h, want)
	}
	if CRC(b) != 0x71bc9fc0 || refCRC32C(b[21:]) != 0x71bc9fc0 {
		t.Fatalf("CRC = %#x", CRC(b))
	}
	if h.Size() != 81 || h.LastOffset() != 101 || h.Codec() != CodecNone {
		t.Fatalf("Size %d LastOffset %d Codec %v", h.Size(), h.LastOffset(), h.Codec())
	}
	vh, err := Validate(b, DefaultLimits())
	if err != nil || vh != want {
		t.Fatalf("Validate = %+v, %v", vh, err)
	}
	recs, err := Records(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantRecs := []Record{
		{Key: []byte("k"), Value: []byte("v0")},
		{TimestampDelta: 5, OffsetDelta: 1, Key: nil, Value: []byte{}, Headers: []RecordHeader{{Key: "h"}}},
	}
	assertRecords(t, recs, wantRecs)

	// Encoding the same fields and records reproduces the bytes exactly.
	enc, err := Encode(nil, Header{
		BaseOffset: 100, PartitionLeaderEpoch: 7, BaseTimestamp: 1700000000000,
		ProducerID: 42, ProducerEpoch: 3, BaseSequence: 9,
	}, wantRecs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("Encode:\n got %x\nwant %x", enc, b)
	}
}

func TestHeaderAttributes(t *testing.T) {
	h := Header{Attributes: int16(CodecZstd) | AttrLogAppendTime | AttrTransactional | AttrControl | AttrDeleteHorizon}
	if h.Codec() != CodecZstd || !h.HasLogAppendTime() || !h.IsTransactional() || !h.IsControl() || !h.HasDeleteHorizon() {
		t.Fatalf("attribute accessors wrong for %#x", h.Attributes)
	}
	h = Header{Attributes: int16(CodecSnappy)}
	if h.Codec() != CodecSnappy || h.HasLogAppendTime() || h.IsTransactional() || h.IsControl() || h.HasDeleteHorizon() {
		t.Fatalf("attribute accessors wrong for %#x", h.Attributes)
	}
	names := map[Codec]string{CodecNone: "none", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLZ4: "lz4", CodecZstd: "zstd", 7: "codec(7)", -1: "codec(-1)"}
	for c, n := range names {
		if c.String() != n {
			t.Errorf("Codec(%d).String() = %q, want %q", c, c.String(), n)
		}
	}
}

func TestParseHeaderShort(t *testing.T) {
	for _, n := range []int{0, 1, 60} {
		_, err := ParseHeader(make([]byte, n))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Check != "length" || !errors.Is(err, ErrInvalidBatch) {
			t.Fatalf("ParseHeader(%d bytes) = %v", n, err)
		}
	}
}

func TestSetFieldsKeepCRC(t *testing.T) {
	b := mustEncode(t, testHeader(CodecLZ4), sampleRecords())
	SetBaseOffset(b, 1<<40)
	SetPartitionLeaderEpoch(b, 99)
	h, err := Validate(b, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1<<40 || h.PartitionLeaderEpoch != 99 {
		t.Fatalf("got %+v", h)
	}
	if h.LastOffset() != 1<<40+4 {
		t.Fatalf("LastOffset = %d", h.LastOffset())
	}
	short := make([]byte, 20)
	SetBaseOffset(short, -1) // must not panic or write
	SetPartitionLeaderEpoch(short, -1)
	if !bytes.Equal(short, make([]byte, 20)) {
		t.Fatal("short slice modified")
	}
}

func TestNext(t *testing.T) {
	a := mustEncode(t, testHeader(CodecNone), sampleRecords()[:2])
	b := mustEncode(t, testHeader(CodecGzip), sampleRecords())
	stream := append(append([]byte{}, a...), b...)

	batch, rest, err := Next(stream)
	if err != nil || !bytes.Equal(batch, a) || len(rest) != len(b) {
		t.Fatalf("first Next: %d, %d, %v", len(batch), len(rest), err)
	}
	if cap(batch) != len(batch) {
		t.Fatal("batch is not capped; appending would overwrite rest")
	}
	batch, rest, err = Next(rest)
	if err != nil || !bytes.Equal(batch, b) || len(rest) != 0 {
		t.Fatalf("second Next: %d, %d, %v", len(batch), len(rest), err)
	}
	if _, _, err := Next(rest); err != io.EOF {
		t.Fatalf("Next(empty) = %v, want io.EOF", err)
	}

	// Truncated prefix and truncated body.
	for _, tc := range []struct {
		in   []byte
		need int64
	}{
		{stream[:5], 12},
		{stream[:12], int64(len(a))},
		{stream[:len(a)-1], int64(len(a))},
	} {
		_, rest, err := Next(tc.in)
		var ie *IncompleteError
		if !errors.As(err, &ie) || ie.Need != tc.need || ie.Have != len(tc.in) {
			t.Fatalf("Next(%d bytes) = %v, want need %d", len(tc.in), err, tc.need)
		}
		if !errors.Is(err, ErrIncomplete) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("IncompleteError does not match its sentinels: %v", err)
		}
		if len(rest) != len(tc.in) {
			t.Fatal("rest must be the input on error")
		}
	}

	// A length too small for a header, negative, or absurdly large.
	for _, l := range []uint32{0, 48, 0xffffffff, 0x80000000} {
		in := make([]byte, 100)
		in[8], in[9], in[10], in[11] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		_, _, err := Next(in)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Check != "batch-length" {
			t.Fatalf("Next(batchLength %#x) = %v", l, err)
		}
	}
	big := make([]byte, 100)
	big[8], big[9], big[10], big[11] = 0x7f, 0xff, 0xff, 0xff
	var ie *IncompleteError
	if _, _, err := Next(big); !errors.As(err, &ie) || ie.Need != 0x7fffffff+12 {
		t.Fatalf("Next(max length) = %v", err)
	}
}
