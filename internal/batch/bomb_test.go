package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

const (
	bombSize  = 1 << 30 // every bomb expands to 1 GiB of zeros
	bombLimit = 1 << 20
	// bombAllocBudget is the most one capped decompression may allocate with
	// warm decoder pools: the doubling output buffer tops out near
	// 2×(limit+1), plus small decoder state.
	bombAllocBudget = 4 << 20
	// coldAllocBudget adds the decoder state allocated when the pools are
	// empty; it is bounded by the formats (lz4 blocks of at most 4 MiB, two
	// buffers; zstd windows of at most zstdMaxWindow), not by the input.
	coldAllocBudget = bombAllocBudget + 2*zstdMaxWindow + 2<<20
)

// warmBudget is bombAllocBudget, or coldAllocBudget under the race detector,
// where sync.Pool drops items at random.
func warmBudget() uint64 {
	if raceEnabled {
		return coldAllocBudget
	}
	return bombAllocBudget
}

// zeroReader yields zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// bombFrame is the amount of zeros streamed through the compressor for one
// frame (gzip member); a bomb is bombSize/bombFrame such frames back to back,
// which every codec here must accept as one stream. Compressing 1 GiB once
// per codec would dominate the test's run time, under -race most of all.
const bombFrame = 16 << 20

// streamBomb streams bombFrame zeros through the compressor newW makes and
// returns the compressed frame repeated up to bombSize of output.
func streamBomb(newW func(io.Writer) io.WriteCloser) []byte {
	var frame bytes.Buffer
	w := newW(&frame)
	if _, err := io.CopyBuffer(w, io.LimitReader(zeroReader{}, bombFrame), make([]byte, 1<<20)); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return bytes.Repeat(frame.Bytes(), bombSize/bombFrame)
}

var bombs = sync.OnceValue(func() map[Codec][][]byte {
	return map[Codec][][]byte{
		CodecGzip: {streamBomb(func(w io.Writer) io.WriteCloser {
			zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
			return zw
		})},
		CodecZstd: {streamBomb(func(w io.Writer) io.WriteCloser {
			zw, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			return zw
		})},
		CodecLZ4: {streamBomb(func(w io.Writer) io.WriteCloser {
			return lz4.NewWriter(w)
		})},
		CodecSnappy: {rawSnappyBomb(bombSize), xerialSnappyBomb(bombSize)},
	}
})

// rawSnappyBomb hand-assembles one raw snappy block that truly decodes to
// size zeros: a one-byte literal, then copies of 64 bytes at offset 1.
func rawSnappyBomb(size int) []byte {
	copies := (size - 1) / 64
	tail := (size - 1) % 64
	b := binary.AppendUvarint(make([]byte, 0, 3*copies+16), uint64(size))
	b = append(b, 0, 0) // tag 0 (literal, length 1), then a zero byte
	for range copies {
		b = append(b, 63<<2|2, 1, 0) // copy, 2-byte offset: length 64, offset 1
	}
	if tail > 0 {
		b = append(b, byte(tail-1)<<2|2, 1, 0)
	}
	return b
}

// xerialSnappyBomb frames the same 64 KiB block of zeros until it declares size.
func xerialSnappyBomb(size int) []byte {
	chunk := s2.EncodeSnappy(nil, make([]byte, 64<<10))
	b := append([]byte{}, xerialMagic...)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 1)
	for range size / (64 << 10) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(chunk)))
		b = append(b, chunk...)
	}
	return b
}

// TestBombsAreReal decodes a bomb's first frame (or a small bomb built the
// same way) in full, so the limit tests below test real bombs.
func TestBombsAreReal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1 GiB bombs")
	}
	check := func(c Codec, in []byte, want int) {
		t.Helper()
		out, err := Decompress(c, in, want)
		if err != nil || len(out) != want || bytes.ContainsFunc(out, func(r rune) bool { return r != 0 }) {
			t.Fatalf("%v: decoded %d bytes, want %d zeros: %v", c, len(out), want, err)
		}
	}
	for _, c := range []Codec{CodecGzip, CodecZstd, CodecLZ4} {
		bomb := bombs()[c][0]
		frame := bomb[:len(bomb)/(bombSize/bombFrame)]
		check(c, frame, bombFrame)
		if !bytes.Equal(bytes.Repeat(frame, bombSize/bombFrame), bomb) {
			t.Fatalf("%v bomb is not %d copies of one frame", c, bombSize/bombFrame)
		}
		check(c, append(append([]byte{}, frame...), frame...), 2*bombFrame)
	}
	check(CodecSnappy, rawSnappyBomb(1<<20+5), 1<<20+5)
	check(CodecSnappy, xerialSnappyBomb(1<<20), 1<<20)
}

func TestDecompressionBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1 GiB bombs")
	}
	for c, list := range bombs() {
		for i, bomb := range list {
			t.Logf("%v bomb %d: %d compressed bytes expand to %d", c, i, len(bomb), bombSize)

			// Cold: two collections empty every pool, so decoder state is
			// allocated afresh. That state is bounded by the format (lz4
			// blocks of at most 4 MiB, zstd windows of at most 8 MiB), not
			// by the bomb.
			runtime.GC()
			runtime.GC()
			var err error
			cold := measureAlloc(func() { _, err = Decompress(c, bomb, bombLimit) })
			assertTooLarge(t, err, c)
			if cold > coldAllocBudget {
				t.Errorf("%v bomb %d: cold call allocated %d bytes, budget %d", c, i, cold, coldAllocBudget)
			}

			// Warm, as in a running broker: a collection first so that no
			// other one empties the pools between the warm-up and the call.
			runtime.GC()
			_, err = Decompress(c, bomb, bombLimit)
			assertTooLarge(t, err, c)
			warm := measureAlloc(func() { _, err = Decompress(c, bomb, bombLimit) })
			assertTooLarge(t, err, c)
			t.Logf("%v bomb %d: allocated %d bytes cold, %d warm", c, i, cold, warm)
			if warm > warmBudget() {
				t.Errorf("%v bomb %d: allocated %d bytes, budget %d", c, i, warm, warmBudget())
			}
		}
	}
}

// TestBombInBatch checks the cap also holds through Validate and Records.
func TestBombInBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1 GiB bombs")
	}
	for c, list := range bombs() {
		bomb := list[0]
		h := rawHeader(1)
		h.Attributes = int16(c)
		b := assemble(h, bomb)
		lim := Limits{MaxBatchBytes: len(b), MaxDecompressedBytes: bombLimit, CheckRecords: true}
		runtime.GC()
		_, _ = Validate(b, lim)
		var err error
		alloc := measureAlloc(func() { _, err = Validate(b, lim) })
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Check != "decompress" || !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%v: Validate = %v", c, err)
		}
		if alloc > warmBudget() {
			t.Errorf("%v: Validate allocated %d bytes", c, alloc)
		}
		if _, err := Records(b, bombLimit); !errors.Is(err, ErrDecompressedTooLarge) {
			t.Fatalf("%v: Records = %v", c, err)
		}
	}
}

// measureAlloc returns the bytes allocated process-wide while f runs.
func measureAlloc(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestSnappyDeclaredSizeBounded: a snappy block declares its decoded size
// up front; one that declares more than its bytes could ever decode to (a
// few bytes claiming 32 MiB) is corrupt before that size is allocated, raw
// or in the xerial framing, whole or streamed.
func TestSnappyDeclaredSizeBounded(t *testing.T) {
	liar := binary.AppendUvarint(nil, 32<<20-1)
	liar = append(liar, 0, 0, 63<<2|2, 1, 0)
	xerial := append([]byte{}, xerialMagic...)
	xerial = append(xerial, 0, 0, 0, 1, 0, 0, 0, 1)
	xerial = binary.BigEndian.AppendUint32(xerial, uint32(len(liar)))
	xerial = append(xerial, liar...)
	for name, in := range map[string][]byte{"raw": liar, "xerial": xerial} {
		var err error
		grew := allocated(func() { _, err = Decompress(CodecSnappy, in, 32<<20) })
		if !errors.Is(err, ErrCorruptCompressed) {
			t.Fatalf("%s: %v, want corrupt", name, err)
		}
		if grew > 1<<20 {
			t.Fatalf("%s: %d bytes allocated for a %d-byte block", name, grew, len(in))
		}
		r, done, err := openDecompressor(CodecSnappy, in, 32<<20)
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			done()
		}
		if !errors.Is(err, ErrCorruptCompressed) {
			t.Fatalf("%s streamed: %v, want corrupt", name, err)
		}
	}
	// The densest real block still decodes.
	if out, err := Decompress(CodecSnappy, rawSnappyBomb(1<<20), 1<<20); err != nil || len(out) != 1<<20 {
		t.Fatalf("densest block: %d bytes, %v", len(out), err)
	}
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}
