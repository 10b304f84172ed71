package batch

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestValidateInvalid(t *testing.T) {
	valid := func() []byte { return assemble(rawHeader(2), section(okRecord(0), okRecord(1))) }
	// withHeader assembles two ok records under a modified header.
	withHeader := func(mod func(*Header)) []byte {
		h := rawHeader(2)
		mod(&h)
		return assemble(h, section(okRecord(0), okRecord(1)))
	}
	one := func(r rawRecord) []byte { return assemble(rawHeader(1), section(r)) }
	gzipped := func(n int, sec []byte) []byte {
		h := rawHeader(n)
		h.Attributes = int16(CodecGzip)
		c, err := Compress(CodecGzip, nil, sec)
		if err != nil {
			t.Fatal(err)
		}
		return assemble(h, c)
	}
	header := func(key string, valueLen int64, value string) []byte {
		b := binary.AppendVarint(nil, int64(len(key)))
		if key == "\x00null" {
			b = binary.AppendVarint(nil, -1)
		} else {
			b = append(b, key...)
		}
		b = binary.AppendVarint(b, valueLen)
		return append(b, value...)
	}
	checkAll := DefaultLimits()

	tests := []struct {
		name  string
		b     []byte
		lim   Limits
		check string
		is    error // extra sentinel the error must match
	}{
		{name: "short", b: make([]byte, 60), check: "length"},
		{name: "empty", b: nil, check: "length"},
		{name: "batchLength too big", b: func() []byte {
			b := valid()
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-11))
			return b
		}(), check: "batch-length"},
		{name: "batchLength negative", b: func() []byte {
			b := valid()
			binary.BigEndian.PutUint32(b[8:], 0x80000000)
			return b
		}(), check: "batch-length"},
		{name: "trailing garbage", b: append(valid(), 0), check: "batch-length"},
		{name: "over MaxBatchBytes", b: valid(), lim: Limits{MaxBatchBytes: 80}, check: "batch-size"},
		{name: "magic 1", b: withHeader(func(h *Header) { h.Magic = 1 }), check: "magic"},
		{name: "magic 3", b: withHeader(func(h *Header) { h.Magic = 3 }), check: "magic"},
		{name: "crc", b: func() []byte {
			b := valid()
			b[len(b)-1] ^= 1
			return b
		}(), check: "crc"},
		{name: "crc field", b: func() []byte {
			b := valid()
			b[17] ^= 0x80
			return b
		}(), check: "crc"},
		{name: "codec 5", b: withHeader(func(h *Header) { h.Attributes = 5 }), check: "codec"},
		{name: "codec 7", b: withHeader(func(h *Header) { h.Attributes = 7 | AttrTransactional }), check: "codec"},
		{name: "zero records", b: withHeader(func(h *Header) { h.NumRecords, h.LastOffsetDelta = 0, -1 }), check: "record-count"},
		{name: "negative records", b: withHeader(func(h *Header) { h.NumRecords, h.LastOffsetDelta = -5, -6 }), check: "record-count"},
		{name: "over MaxRecords", b: valid(), lim: Limits{MaxRecords: 1}, check: "record-count"},
		{name: "count implausible for bytes", b: withHeader(func(h *Header) { h.NumRecords, h.LastOffsetDelta = 1000, 999 }), check: "record-count"},
		{name: "count max int32", b: withHeader(func(h *Header) { h.NumRecords, h.LastOffsetDelta = math.MaxInt32, math.MaxInt32-1 }), lim: Limits{MaxRecords: math.MaxInt}, check: "record-count"},
		{name: "compressed count over decompressed cap", b: func() []byte {
			b := gzipped(2, section(okRecord(0), okRecord(1)))
			return b
		}(), lim: Limits{MaxDecompressedBytes: 13, CheckRecords: true}, check: "record-count"},
		{name: "fewer records than declared", b: func() []byte {
			h := rawHeader(3)
			big := okRecord(0)
			big.value, big.valueLen = make([]byte, 30), 30
			big2 := big
			big2.offsetDelta = 1
			return assemble(h, section(big, big2))
		}(), lim: checkAll, check: "record-count"},
		{name: "lastOffsetDelta", b: withHeader(func(h *Header) { h.LastOffsetDelta = 2 }), check: "last-offset-delta"},
		{name: "lastOffsetDelta negative", b: withHeader(func(h *Header) { h.LastOffsetDelta = -1 }), check: "last-offset-delta"},
		{name: "transactional without producer", b: withHeader(func(h *Header) { h.Attributes = AttrTransactional }), check: "producer-id"},
		{name: "corrupt gzip", b: func() []byte {
			h := rawHeader(2)
			h.Attributes = int16(CodecGzip)
			return assemble(h, []byte("this is not gzip at all"))
		}(), lim: checkAll, check: "decompress", is: ErrCorruptCompressed},
		{name: "decompressed too large", b: gzipped(2, append(section(okRecord(0), okRecord(1)), make([]byte, 5000)...)),
			lim: Limits{MaxDecompressedBytes: 1000, CheckRecords: true}, check: "decompress", is: ErrDecompressedTooLarge},
		{name: "varint too long", b: one(rawRecord{}.verbatim([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0})), lim: checkAll, check: "varint"},
		{name: "varint fifth byte overflow", b: one(rawRecord{}.verbatim([]byte{0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0})), lim: checkAll, check: "varint"},
		{name: "varint truncated at record end", b: func() []byte {
			// Length 6; the headers count continues past the record (into a byte
			// that would complete it), which must not be read.
			return one(rawRecord{}.verbatim([]byte{0x0c, 0, 0, 0, 1, 1, 0x80, 0}))
		}(), lim: checkAll, check: "varint"},
		{name: "record length past end", b: one(okRecord(0).adj(5)), lim: checkAll, check: "records"},
		{name: "record length short", b: one(okRecord(0).adj(-1)), lim: checkAll, check: "varint"},
		{name: "record length negative", b: one(rawRecord{}.verbatim([]byte{0x03, 0, 0, 0, 0, 0, 0, 0})), lim: checkAll, check: "records"},
		{name: "key length past record", b: one(func() rawRecord { r := okRecord(0); r.keyLen = 40; return r }()), lim: checkAll, check: "records"},
		{name: "key length -2", b: one(func() rawRecord { r := okRecord(0); r.keyLen = -2; r.key = nil; return r }()), lim: checkAll, check: "records"},
		{name: "value length past record", b: one(func() rawRecord { r := okRecord(0); r.valueLen = 7; return r }()), lim: checkAll, check: "records"},
		{name: "negative header count", b: one(func() rawRecord { r := okRecord(0); r.hdrCount = -1; return r }()), lim: checkAll, check: "records"},
		{name: "header count past bytes", b: one(func() rawRecord { r := okRecord(0); r.hdrCount = 1 << 30; return r }()), lim: checkAll, check: "records"},
		{name: "null header key", b: one(func() rawRecord {
			r := okRecord(0)
			r.hdrCount, r.hdrs = 1, header("\x00null", 1, "x")
			return r
		}()), lim: checkAll, check: "records"},
		{name: "header value past record", b: one(func() rawRecord {
			r := okRecord(0)
			r.hdrCount, r.hdrs = 1, header("a", 9, "x")
			return r
		}()), lim: checkAll, check: "records"},
		{name: "bytes left inside record", b: one(func() rawRecord {
			r := okRecord(0)
			r.hdrs = []byte{0, 0}
			return r
		}()), lim: checkAll, check: "records"},
		{name: "trailing bytes after records", b: assemble(rawHeader(1), append(section(okRecord(0)), make([]byte, 7)...)), lim: checkAll, check: "records"},
		{name: "offsetDelta out of order", b: assemble(rawHeader(2), section(okRecord(1), okRecord(0))), lim: checkAll, check: "offset-delta"},
		{name: "offsetDelta gap", b: assemble(rawHeader(2), section(okRecord(0), okRecord(2))), lim: checkAll, check: "offset-delta"},
		{name: "timestamp above max", b: one(func() rawRecord { r := okRecord(0); r.tsDelta = 1; return r }()), lim: checkAll, check: "timestamp"},
		{name: "timestamp overflow", b: func() []byte {
			h := rawHeader(1)
			h.BaseTimestamp, h.MaxTimestamp = math.MaxInt64-1, math.MaxInt64
			r := okRecord(0)
			r.tsDelta = 10
			return assemble(h, section(r))
		}(), lim: checkAll, check: "timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Validate(tc.b, tc.lim)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %+v, %v; want a *ValidationError", h, err)
			}
			if ve.Check != tc.check {
				t.Fatalf("Check = %q (%v), want %q", ve.Check, err, tc.check)
			}
			if !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("error %v does not match ErrInvalidBatch", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v does not match %v", err, tc.is)
			}
			if h != (Header{}) {
				t.Fatalf("Validate returned a header with an error: %+v", h)
			}
			// Records must not panic and, for record-level failures, agrees.
			if _, rerr := Records(tc.b, tc.lim.MaxDecompressedBytes); rerr == nil && tc.lim.CheckRecords {
				t.Fatalf("Records accepted a batch Validate rejected for %q", tc.check)
			}
		})
	}
}

// verbatim returns a record whose encoding is exactly raw (for malformed varints).
func (rawRecord) verbatim(raw []byte) rawRecord { return rawRecord{raw: raw} }

// adj returns r with its length prefix off by d.
func (r rawRecord) adj(d int64) rawRecord { r.lengthAdj = d; return r }

func TestValidateAcceptsEdgeCases(t *testing.T) {
	lim := DefaultLimits()
	// LogAppendTime and delete-horizon batches may carry record timestamps above maxTimestamp.
	for _, attr := range []int16{AttrLogAppendTime, AttrDeleteHorizon} {
		r := okRecord(0)
		r.tsDelta = 1 << 20
		h := rawHeader(1)
		h.Attributes = attr
		if _, err := Validate(assemble(h, section(r)), lim); err != nil {
			t.Errorf("attributes %#x: %v", attr, err)
		}
	}
	// Transactional and control batches with a producer.
	h := rawHeader(1)
	h.Attributes = AttrTransactional | AttrControl
	h.ProducerID = 9
	if _, err := Validate(assemble(h, section(okRecord(0))), lim); err != nil {
		t.Error(err)
	}
	// Non-canonical (over-long but in range) varints are accepted as Kafka does.
	// Length 7 as 0x8e 0x00, offsetDelta 0 as 0x80 0x00, null key and value.
	sec := []byte{0x8e, 0x00, 0, 0, 0x80, 0x00, 1, 1, 0}
	if _, err := Validate(assemble(rawHeader(1), sec), lim); err != nil {
		t.Errorf("over-long varints: %v", err)
	}
	// Without CheckRecords, a malformed records section passes the header checks.
	junk := assemble(rawHeader(1), make([]byte, 7))
	if _, err := Validate(junk, Limits{}); err != nil {
		t.Errorf("header-only validation: %v", err)
	}
	if _, err := Validate(junk, lim); err == nil {
		t.Error("record validation accepted junk records")
	}
}

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if l.MaxBatchBytes != 16<<20 || l.MaxDecompressedBytes != 32<<20 || l.MaxRecords != 1<<20 || !l.CheckRecords {
		t.Fatalf("DefaultLimits = %+v", l)
	}
	if got := (Limits{}).WithDefaults(); got.MaxBatchBytes != l.MaxBatchBytes || got.MaxDecompressedBytes != l.MaxDecompressedBytes || got.MaxRecords != l.MaxRecords || got.CheckRecords {
		t.Fatalf("zero Limits defaults to %+v", got)
	}
}
