package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func TestCompressRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"empty":  {},
		"one":    {'x'},
		"text":   payload(1000, 1),
		"large":  payload(300_000, 2),
		"zeros":  make([]byte, 200_000),
		"random": randomBytes(70_000),
	}
	for _, c := range allCodecs {
		for name, in := range inputs {
			comp, err := Compress(c, []byte("pre"), in)
			if err != nil {
				t.Fatalf("%v/%s: Compress: %v", c, name, err)
			}
			if !bytes.HasPrefix(comp, []byte("pre")) {
				t.Fatalf("%v/%s: Compress did not append", c, name)
			}
			out, err := Decompress(c, comp[3:], len(in))
			if err != nil {
				t.Fatalf("%v/%s: Decompress: %v", c, name, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("%v/%s: round trip mismatch (%d vs %d bytes)", c, name, len(out), len(in))
			}
			if len(in) > 0 {
				_, err := Decompress(c, comp[3:], len(in)-1)
				assertTooLarge(t, err, c)
			}
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	var x uint64 = 0x243f6a8885a308d3
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func assertTooLarge(t *testing.T, err error, c Codec) {
	t.Helper()
	var de *DecompressError
	if !errors.As(err, &de) || !errors.Is(err, ErrDecompressedTooLarge) || errors.Is(err, ErrCorruptCompressed) {
		t.Fatalf("%v: err = %v, want a too-large *DecompressError", c, err)
	}
	if de.Codec != c {
		t.Fatalf("DecompressError.Codec = %v, want %v", de.Codec, c)
	}
}

func assertCorrupt(t *testing.T, err error, c Codec, what string) {
	t.Helper()
	var de *DecompressError
	if !errors.As(err, &de) || !errors.Is(err, ErrCorruptCompressed) || errors.Is(err, ErrDecompressedTooLarge) {
		t.Fatalf("%v %s: err = %v, want a corrupt-data *DecompressError", c, what, err)
	}
}

func TestDecompressCorrupt(t *testing.T) {
	in := payload(50_000, 3)
	for _, c := range allCodecs[1:] {
		comp, err := Compress(c, nil, in)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decompress(c, []byte("definitely not compressed data, no magic here"), 1<<20)
		assertCorrupt(t, err, c, "garbage")
		_, err = Decompress(c, comp[:len(comp)/2], 1<<20)
		assertCorrupt(t, err, c, "truncated")
		flipped := append([]byte{}, comp...)
		flipped[len(flipped)/2] ^= 0x55
		flipped[len(flipped)/2+1] ^= 0xaa
		if out, err := Decompress(c, flipped, 1<<20); err == nil && bytes.Equal(out, in) {
			t.Fatalf("%v: corrupted input decoded to the original", c)
		} else if err != nil && errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%v: corruption reported as too large: %v", c, err)
		}
	}
	// gzip with trailing garbage after the member.
	comp, _ := Compress(CodecGzip, nil, in)
	_, err := Decompress(CodecGzip, append(comp, "junk"...), 1<<20)
	assertCorrupt(t, err, CodecGzip, "trailing junk")
	_, err = Decompress(CodecGzip, nil, 1<<20)
	assertCorrupt(t, err, CodecGzip, "empty")
}

func TestDecompressUnknownCodec(t *testing.T) {
	for _, c := range []Codec{5, 7, -1} {
		_, err := Decompress(c, []byte("x"), 10)
		if !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("Decompress(%v) = %v", c, err)
		}
		if _, err := Compress(c, nil, []byte("x")); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("Compress(%v) = %v", c, err)
		}
	}
}

func TestDecompressNone(t *testing.T) {
	in := []byte("abc")
	out, err := Decompress(CodecNone, in, 3)
	if err != nil || &out[0] != &in[0] {
		t.Fatalf("CodecNone should return src: %v", err)
	}
	_, err = Decompress(CodecNone, in, 2)
	assertTooLarge(t, err, CodecNone)
	_, err = Decompress(CodecNone, in, -5)
	assertTooLarge(t, err, CodecNone)
}

func TestSnappyXerial(t *testing.T) {
	in := payload(200_000, 4) // several 32 KiB xerial chunks
	framed := xerial.Encode(nil, in)
	if !bytes.HasPrefix(framed, []byte("\x82SNAPPY\x00")) {
		t.Fatal("xerial.Encode did not frame")
	}
	out, err := Decompress(CodecSnappy, framed, len(in))
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("xerial decode: %v", err)
	}
	_, err = Decompress(CodecSnappy, framed, len(in)-1)
	assertTooLarge(t, err, CodecSnappy)

	// A batch whose records section is xerial-framed, as Java producers write it.
	raw := appendRecords(nil, sampleRecords())
	h := testHeader(CodecSnappy)
	h.LastOffsetDelta, h.NumRecords, h.MaxTimestamp = 4, 5, h.BaseTimestamp+1<<40
	b := assemble(h, xerial.Encode(nil, raw))
	if _, err := Validate(b, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	recs, err := Records(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	assertRecords(t, recs, withOffsetDeltas(sampleRecords()))

	// Header only: empty output. Malformed framings are corrupt.
	if out, err := Decompress(CodecSnappy, framed[:16], 10); err != nil || len(out) != 0 {
		t.Fatalf("empty xerial stream: %q, %v", out, err)
	}
	bad := map[string][]byte{
		"short header":     framed[:12],
		"short length":     framed[:18],
		"chunk past end":   framed[:40],
		"corrupt chunk":    append(append([]byte{}, framed[:16]...), 0, 0, 0, 3, 0xff, 0xff, 0xff),
		"zero-size chunk":  append(append([]byte{}, framed[:16]...), 0, 0, 0, 0),
		"huge chunk count": append(append([]byte{}, framed[:16]...), 0xff, 0xff, 0xff, 0xff, 1),
	}
	for name, in := range bad {
		_, err := Decompress(CodecSnappy, in, 1<<20)
		assertCorrupt(t, err, CodecSnappy, name)
	}
}

func TestSnappyRawDeclaredLength(t *testing.T) {
	// A raw block declaring 1 GiB is refused from its header alone.
	blk := binary.AppendUvarint(nil, 1<<30)
	blk = append(blk, 0, 0)
	_, err := Decompress(CodecSnappy, blk, 1<<20)
	assertTooLarge(t, err, CodecSnappy)
	// A declared length that disagrees with the data is corrupt.
	comp, _ := Compress(CodecSnappy, nil, []byte("hello hello hello"))
	comp[0]++
	_, err = Decompress(CodecSnappy, comp, 1<<20)
	assertCorrupt(t, err, CodecSnappy, "wrong length")
}

func TestZstdLimits(t *testing.T) {
	in := payload(100_000, 5)
	// A frame declaring its content size larger than the limit is refused up front.
	comp, _ := Compress(CodecZstd, nil, in)
	var fh zstd.Header
	if err := fh.Decode(comp); err != nil || !fh.HasFCS {
		t.Fatalf("EncodeAll frame has no content size: %v", err)
	}
	_, err := Decompress(CodecZstd, comp, 1000)
	assertTooLarge(t, err, CodecZstd)

	// Streamed frames (no content size) with an oversize window are refused.
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf, zstd.WithWindowSize(32<<20))
	_, _ = w.Write(in)
	_ = w.Flush()
	_, _ = w.Write(in)
	_ = w.Close()
	if err := fh.Decode(buf.Bytes()); err != nil || fh.WindowSize != 32<<20 {
		t.Fatalf("streamed frame window %d, %v", fh.WindowSize, err)
	}
	_, err = Decompress(CodecZstd, buf.Bytes(), 1<<20)
	assertCorrupt(t, err, CodecZstd, "32 MiB window")

	// An 8 MiB window, as the default encoder streams, is accepted.
	buf.Reset()
	w, _ = zstd.NewWriter(&buf)
	_, _ = w.Write(in)
	_ = w.Flush()
	_ = w.Close()
	if err := fh.Decode(buf.Bytes()); err != nil || fh.WindowSize != zstdMaxWindow || fh.HasFCS {
		t.Fatalf("streamed frame window %d fcs %v, %v", fh.WindowSize, fh.HasFCS, err)
	}
	if out, err := Decompress(CodecZstd, buf.Bytes(), len(in)); err != nil || !bytes.Equal(out, in) {
		t.Fatalf("streamed zstd: %v", err)
	}
}

func TestLZ4FrameVariants(t *testing.T) {
	in := payload(300_000, 6)
	for _, opts := range [][]lz4.Option{
		nil, // library defaults: 4 MiB blocks with content checksum
		{lz4.BlockSizeOption(lz4.Block64Kb), lz4.BlockChecksumOption(true)},
		{lz4.SizeOption(uint64(len(in)))},
	} {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(opts...); err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(in)
		_ = w.Close()
		out, err := Decompress(CodecLZ4, buf.Bytes(), len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("lz4 %v: %v", opts, err)
		}
	}
}

func TestGzipMultiMember(t *testing.T) {
	a, _ := Compress(CodecGzip, nil, []byte("first,"))
	b, _ := Compress(CodecGzip, a, []byte("second"))
	out, err := Decompress(CodecGzip, b, 100)
	if err != nil || string(out) != "first,second" {
		t.Fatalf("%q, %v", out, err)
	}
	// A lying ISIZE trailer only changes the first allocation.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(payload(10_000, 7))
	_ = zw.Close()
	lie := buf.Bytes()
	binary.LittleEndian.PutUint32(lie[len(lie)-4:], 0xffffffff)
	_, err = Decompress(CodecGzip, lie, 1<<20)
	assertCorrupt(t, err, CodecGzip, "wrong ISIZE")
}

// TestReadCappedGrowth checks the buffer never grows past limit+1 and that an
// exact-size hint needs only one allocation.
func TestReadCappedGrowth(t *testing.T) {
	data := payload(10_000, 8)
	for _, limit := range []int{0, 1, 511, 512, 9_999, 10_000, 10_001, 1 << 20} {
		for _, hint := range []int{0, 100, 10_000, 1 << 30} {
			out, err := readCapped(CodecGzip, iotestOneByte(data), nil, limit, hint)
			if limit < len(data) {
				assertTooLarge(t, err, CodecGzip)
				continue
			}
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("limit %d hint %d: %v", limit, hint, err)
			}
			if cap(out) > limit+1 {
				t.Fatalf("limit %d hint %d: cap %d", limit, hint, cap(out))
			}
		}
	}
	allocs := testing.AllocsPerRun(10, func() {
		_, _ = readCapped(CodecGzip, bytes.NewReader(data), nil, 1<<20, len(data))
	})
	if allocs > 2 { // the bytes.Reader and the buffer
		t.Fatalf("exact hint: %v allocations", allocs)
	}
	// buf with spare capacity beyond the limit is not written past limit+1.
	big := make([]byte, 0, 100_000)
	_, err := readCapped(CodecGzip, bytes.NewReader(data), big, 5000, 0)
	assertTooLarge(t, err, CodecGzip)
	if got := big[:100_000]; bytes.Count(got[5001:], []byte{0}) != len(got)-5001 {
		t.Fatal("readCapped wrote past limit+1 into buf's spare capacity")
	}
}

// iotestOneByte returns a reader yielding one byte per Read.
func iotestOneByte(b []byte) io.Reader { return &oneByteReader{b: b} }

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}
