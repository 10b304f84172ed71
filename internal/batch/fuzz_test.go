package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/klauspost/compress/snappy/xerial"
)

var updateCorpus = flag.Bool("update", false, "rewrite the seed corpus under testdata/fuzz")

// fuzzLimits keeps fuzz iterations cheap while exercising every check.
var fuzzLimits = Limits{MaxBatchBytes: 1 << 20, MaxDecompressedBytes: 1 << 20, MaxRecords: 1 << 16, CheckRecords: true}

// validSeeds returns named valid batches: every codec, headers, nulls, a
// transactional control batch, LogAppendTime and xerial snappy.
func validSeeds() map[string][]byte {
	small := []Record{
		{Key: []byte("k"), Value: []byte("v")},
		{Key: nil, Value: nil, TimestampDelta: -3, Headers: []RecordHeader{{Key: "a", Value: nil}, {Key: "", Value: []byte("b")}}},
		{Key: []byte{}, Value: bytes.Repeat([]byte("spool"), 40), TimestampDelta: 7},
	}
	seeds := map[string][]byte{"golden": goldenBatch}
	for _, c := range allCodecs {
		b, _ := Encode(nil, testHeader(c), small)
		seeds["valid-"+c.String()] = b
	}
	h := testHeader(CodecNone)
	h.Attributes |= AttrTransactional | AttrControl
	seeds["valid-control"], _ = Encode(nil, h, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 5}}})
	h = testHeader(CodecLZ4)
	h.Attributes |= AttrLogAppendTime
	h.MaxTimestamp = 1
	seeds["valid-logappend"], _ = Encode(nil, h, small)

	raw := appendRecords(nil, small)
	xh := testHeader(CodecSnappy)
	xh.NumRecords, xh.LastOffsetDelta, xh.MaxTimestamp = 3, 2, xh.BaseTimestamp+7
	seeds["valid-xerial"] = assemble(xh, xerial.Encode(nil, raw))
	return seeds
}

// invalidSeeds returns a few near-miss batches.
func invalidSeeds() map[string][]byte {
	v := validSeeds()["valid-none"]
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, v...)) }
	return map[string][]byte{
		"bad-crc":      mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"bad-length":   mut(func(b []byte) []byte { b[11]++; return b }),
		"truncated":    v[:len(v)-3],
		"bad-varint":   assemble(rawHeader(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		"bad-offset":   assemble(rawHeader(2), section(okRecord(1), okRecord(0))),
		"header-count": assemble(rawHeader(1), section(func() rawRecord { r := okRecord(0); r.hdrCount = 1 << 28; return r }())),
	}
}

func FuzzValidate(f *testing.F) {
	for _, b := range validSeeds() {
		f.Add(b)
	}
	for _, b := range invalidSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkValidateProperties(t, data)
		// Most mutations break the CRC or length; repairing both lets the
		// fuzzer reach the record decoder.
		if len(data) >= HeaderSize {
			fixed := append([]byte{}, data...)
			binary.BigEndian.PutUint32(fixed[offBatchLength:], uint32(len(fixed)-LengthPrefix))
			binary.BigEndian.PutUint32(fixed[offCRC:], CRC(fixed))
			checkValidateProperties(t, fixed)
		}
	})
}

// checkValidateProperties: Validate and Records never panic and agree; a
// valid batch re-encodes (same header fields and codec) to a valid batch
// holding the same records.
func checkValidateProperties(t *testing.T, data []byte) {
	h, err := Validate(data, fuzzLimits)
	recs, rerr := Records(data, fuzzLimits.MaxDecompressedBytes)
	walked, werr := walkRecords(data, fuzzLimits.MaxDecompressedBytes)
	if _, herr := Validate(data, Limits{}); err == nil && herr != nil {
		t.Fatalf("header-only validation failed on a valid batch: %v", herr)
	}
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidBatch) || ve.Check == "" {
			t.Fatalf("Validate error %v is not a *ValidationError", err)
		}
		return
	}
	if rerr != nil {
		t.Fatalf("Records failed on a valid batch: %v", rerr)
	}
	if werr != nil || walked != len(recs) {
		t.Fatalf("Batch.Records walked %d of %d records: %v", walked, len(recs), werr)
	}
	if len(recs) != int(h.NumRecords) {
		t.Fatalf("Records returned %d of %d", len(recs), h.NumRecords)
	}
	again, err := Encode(nil, h, recs)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	h2, err := Validate(again, Limits{MaxBatchBytes: 4 << 20, MaxDecompressedBytes: fuzzLimits.MaxDecompressedBytes, MaxRecords: fuzzLimits.MaxRecords, CheckRecords: true})
	if err != nil {
		t.Fatalf("re-encoded batch is invalid: %v", err)
	}
	if h2.BaseOffset != h.BaseOffset || h2.PartitionLeaderEpoch != h.PartitionLeaderEpoch || h2.Attributes != h.Attributes ||
		h2.LastOffsetDelta != h.LastOffsetDelta || h2.BaseTimestamp != h.BaseTimestamp || h2.ProducerID != h.ProducerID ||
		h2.ProducerEpoch != h.ProducerEpoch || h2.BaseSequence != h.BaseSequence || h2.NumRecords != h.NumRecords {
		t.Fatalf("re-encoded header differs:\n got %+v\nwant %+v", h2, h)
	}
	if !h.HasLogAppendTime() && !h.HasDeleteHorizon() && h2.MaxTimestamp > h.MaxTimestamp {
		t.Fatalf("re-encoded maxTimestamp %d above %d", h2.MaxTimestamp, h.MaxTimestamp)
	}
	recs2, err := Records(again, fuzzLimits.MaxDecompressedBytes)
	if err != nil || !reflect.DeepEqual(recs, recs2) {
		t.Fatalf("re-encoded records differ: %v", err)
	}
}

// walkRecords counts the records Batch.Records yields over the batches of
// data before the first error, and returns that error.
func walkRecords(data []byte, maxDecompressed int) (int, error) {
	n := 0
	for bt, err := range Batches(data) {
		if err != nil {
			return n, err
		}
		for _, err := range bt.Records(maxDecompressed) {
			if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func FuzzDecompress(f *testing.F) {
	for _, c := range allCodecs {
		for _, in := range [][]byte{nil, []byte("spool"), payload(3000, 9), make([]byte, 5000)} {
			b, _ := Compress(c, nil, in)
			f.Add(byte(c), b)
		}
	}
	f.Add(byte(CodecSnappy), xerial.Encode(nil, payload(40_000, 10)))
	f.Add(byte(CodecSnappy), rawSnappyBomb(200_000))
	f.Add(byte(CodecSnappy), xerialSnappyBomb(256<<10))
	f.Add(byte(7), []byte("unknown codec"))
	f.Fuzz(checkDecompressProperties)
}

// checkDecompressProperties: Decompress never panics, never returns more than
// its limit, reports typed errors, honours the limit to the byte, and what it
// decodes survives a Compress round trip.
func checkDecompressProperties(t *testing.T, codec byte, data []byte) {
	const limit = 1 << 16
	c := Codec(codec % 8)
	out, err := Decompress(c, data, limit)
	if len(out) > limit {
		t.Fatalf("output %d bytes, limit %d", len(out), limit)
	}
	if err != nil {
		var de *DecompressError
		if !errors.As(err, &de) {
			t.Fatalf("error %v is not a *DecompressError", err)
		}
		tooLarge, corrupt, unknown := errors.Is(err, ErrDecompressedTooLarge), errors.Is(err, ErrCorruptCompressed), errors.Is(err, ErrUnknownCodec)
		if unknown != (c > CodecZstd) || (!unknown && tooLarge == corrupt) || (unknown && (tooLarge || corrupt)) {
			t.Fatalf("error %v has the wrong kind for codec %v", err, c)
		}
		return
	}
	if c > CodecZstd {
		t.Fatalf("unknown codec %v decoded", c)
	}
	// The limit is exact: one byte less must fail as too large.
	if len(out) > 0 {
		if _, err := Decompress(c, data, len(out)-1); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("limit %d on %d bytes of output: %v", len(out)-1, len(out), err)
		}
	}
	again, err := Decompress(c, data, len(out))
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("exact limit: %v", err)
	}
	comp, err := Compress(c, nil, out)
	if err != nil {
		t.Fatalf("Compress: %v", err)
	}
	back, err := Decompress(c, comp, len(out))
	if err != nil || !bytes.Equal(back, out) {
		t.Fatalf("round trip: %v", err)
	}
}

func FuzzNext(f *testing.F) {
	seeds := validSeeds()
	f.Add(append(append([]byte{}, seeds["valid-none"]...), seeds["valid-zstd"]...))
	f.Add(seeds["golden"][:30])
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		rest := data
		consumed := 0
		for i := 0; ; i++ {
			batch, r, err := Next(rest)
			if err != nil {
				var ie *IncompleteError
				var ve *ValidationError
				switch {
				case errors.Is(err, io.EOF):
					if len(rest) != 0 {
						t.Fatalf("io.EOF with %d bytes left", len(rest))
					}
				case errors.As(err, &ie):
					if ie.Need <= int64(ie.Have) || ie.Have != len(rest) || !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("bad IncompleteError %+v for %d bytes", ie, len(rest))
					}
				case errors.As(err, &ve):
					if ve.Check != "batch-length" {
						t.Fatalf("unexpected check %q", ve.Check)
					}
				default:
					t.Fatalf("unexpected error %v", err)
				}
				if len(r) != len(rest) {
					t.Fatal("rest must be the input on error")
				}
				break
			}
			if len(batch) < HeaderSize || cap(batch) != len(batch) || len(batch)+len(r) != len(rest) {
				t.Fatalf("bad split: %d + %d of %d", len(batch), len(r), len(rest))
			}
			if !bytes.Equal(batch, data[consumed:consumed+len(batch)]) {
				t.Fatal("batch is not the next bytes of the input")
			}
			h, _ := ParseHeader(batch)
			if h.Size() != len(batch) {
				t.Fatalf("batch of %d bytes has Size %d", len(batch), h.Size())
			}
			_, _ = Validate(batch, fuzzLimits)
			consumed += len(batch)
			rest = r
		}
	})
}

// TestWriteCorpus rewrites testdata/fuzz/<Fuzz...>/ seed files from the
// generators above: go test -run TestWriteCorpus -update ./internal/batch
func TestWriteCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	write := func(target, name string, args ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&buf, "[]byte(%q)\n", v)
			case byte:
				fmt.Fprintf(&buf, "byte(%q)\n", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range validSeeds() {
		write("FuzzValidate", name, b)
	}
	for name, b := range invalidSeeds() {
		write("FuzzValidate", name, b)
	}
	for _, c := range allCodecs {
		b, _ := Compress(c, nil, payload(2000, 11))
		write("FuzzDecompress", c.String(), byte(c), b)
		write("FuzzDecompress", c.String()+"-truncated", byte(c), b[:len(b)/2])
	}
	write("FuzzDecompress", "xerial", byte(CodecSnappy), xerial.Encode(nil, payload(50_000, 12)))
	seeds := validSeeds()
	write("FuzzNext", "two-batches", append(append([]byte{}, seeds["valid-gzip"]...), seeds["valid-none"]...))
	write("FuzzNext", "short-length", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30})
}
