package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// zstdMaxWindow is the largest zstd window accepted. The streaming decoder
// allocates the whole window up front, so a frame declaring a larger one is
// refused instead. 8 MiB is what zstd levels up to 19 use and the minimum
// every zstd decoder is expected to support.
const zstdMaxWindow = 8 << 20

// Compress appends src compressed with codec c to dst and returns the
// extended slice. CodecNone appends src as is; snappy writes one raw block;
// lz4 writes a frame of 64 KiB independent blocks without a content checksum.
// An unknown codec returns ErrUnknownCodec and dst unchanged.
func Compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		e := gzipWriters.Get().(*gzipWriter)
		defer gzipWriters.Put(e)
		e.out.b = dst
		e.w.Reset(&e.out)
		_, err := e.w.Write(src)
		if cerr := e.w.Close(); err == nil {
			err = cerr
		}
		out := e.out.b
		e.out.b = nil
		if err != nil {
			return dst, err
		}
		return out, nil
	case CodecSnappy:
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, errors.New("batch: snappy: input too large for one block")
		}
		dst = slices.Grow(dst, n)
		enc := s2.EncodeSnappy(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(enc)], nil
	case CodecLZ4:
		e := lz4Writers.Get().(*lz4Writer)
		defer lz4Writers.Put(e)
		e.out.b = dst
		e.w.Reset(&e.out)
		_, err := e.w.Write(src)
		if cerr := e.w.Close(); err == nil {
			err = cerr
		}
		out := e.out.b
		e.out.b = nil
		if err != nil {
			return dst, err
		}
		return out, nil
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return dst, ErrUnknownCodec
}

// Decompress decompresses src under codec c, failing with a *DecompressError
// matching ErrDecompressedTooLarge as soon as the output would exceed limit
// bytes (a negative limit counts as 0), without allocating more than limit+1
// bytes of output; malformed input fails with one matching
// ErrCorruptCompressed. CodecNone returns src itself. snappy input may be a
// raw block or xerial-framed.
func Decompress(c Codec, src []byte, limit int) ([]byte, error) {
	return decompress(c, nil, src, limit)
}

// decompress is Decompress writing into buf's storage when it is large enough.
func decompress(c Codec, buf, src []byte, limit int) ([]byte, error) {
	limit = max(0, min(limit, math.MaxInt-1))
	switch c {
	case CodecNone:
		if len(src) > limit {
			return nil, tooLarge(c, limit)
		}
		return src, nil
	case CodecGzip:
		return gunzip(buf, src, limit)
	case CodecSnappy:
		if isXerial(src) {
			return unxerial(buf, src, limit)
		}
		return unsnappy(buf, src, limit)
	case CodecLZ4:
		return unlz4(buf, src, limit)
	case CodecZstd:
		return unzstd(buf, src, limit)
	}
	return nil, &DecompressError{Codec: c, Limit: limit, Kind: ErrUnknownCodec}
}

func tooLarge(c Codec, limit int) error {
	return &DecompressError{Codec: c, Limit: limit, Kind: ErrDecompressedTooLarge}
}

func corrupt(c Codec, limit int, cause error) error {
	return &DecompressError{Codec: c, Limit: limit, Kind: ErrCorruptCompressed, Cause: cause}
}

// appendWriter is an io.Writer appending to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type gzipWriter struct {
	w   *gzip.Writer
	out appendWriter
}

var gzipWriters = sync.Pool{New: func() any {
	e := &gzipWriter{}
	e.w = gzip.NewWriter(&e.out)
	return e
}}

type lz4Writer struct {
	w   *lz4.Writer
	out appendWriter
}

var lz4Writers = sync.Pool{New: func() any {
	e := &lz4Writer{}
	e.w = lz4.NewWriter(&e.out)
	// Options of a fresh writer are always accepted.
	_ = e.w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false))
	return e
}}

// zstdEncoder is shared: EncodeAll is safe for concurrent use.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	// The options are constants that NewWriter always accepts.
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithZeroFrames(true))
	return e
})

// gunzip decompresses gzip members with a pooled reader.
func gunzip(buf, src []byte, limit int) ([]byte, error) {
	hint := 4 * len(src)
	if len(src) >= 18 { // the trailer's ISIZE is the size mod 2^32 of the last member
		hint = declaredHint(uint64(binary.LittleEndian.Uint32(src[len(src)-4:])), len(src))
	}
	return readAll(CodecGzip, src, buf, limit, hint)
}

// readAll decompresses src (gzip, lz4 or zstd) with a pooled streaming
// reader into buf's storage (see readCapped).
func readAll(c Codec, src, buf []byte, limit, hint int) ([]byte, error) {
	r, done, err := openDecompressor(c, src, limit)
	if err != nil {
		return nil, err
	}
	defer done()
	return readCapped(c, r, buf, limit, hint)
}

// gzipReader is a pooled gzip reader with its source.
type gzipReader struct {
	zr  *gzip.Reader
	src bytes.Reader
}

var gzipReaders sync.Pool

var lz4Readers sync.Pool

// lz4Reader is a pooled lz4 frame reader with its source.
type lz4Reader struct {
	zr  *lz4.Reader
	src bytes.Reader
}

// unlz4 decompresses LZ4 frames with a pooled streaming reader.
func unlz4(buf, src []byte, limit int) ([]byte, error) {
	return readAll(CodecLZ4, src, buf, limit, 4*len(src))
}

var zstdReaders sync.Pool

// unzstd decompresses zstd frames with a pooled synchronous streaming
// decoder, which never sizes its output from the frame header (a declared
// size above limit is refused at once, by openDecompressor).
func unzstd(buf, src []byte, limit int) ([]byte, error) {
	hint := 4 * len(src)
	var fh zstd.Header
	if fh.Decode(src) == nil && fh.HasFCS {
		hint = declaredHint(min(fh.FrameContentSize, uint64(limit)), len(src))
	}
	return readAll(CodecZstd, src, buf, limit, hint)
}

// getZstdReader returns a pooled zstd decoder, or a new one.
func getZstdReader(limit int) (*zstdReader, error) {
	if z, _ := zstdReaders.Get().(*zstdReader); z != nil {
		return z, nil
	}
	zr, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecodeBuffersBelow(0))
	if err != nil {
		return nil, corrupt(CodecZstd, limit, err)
	}
	return &zstdReader{zr: zr}, nil
}

// zstdReader is a pooled synchronous zstd decoder with its source.
type zstdReader struct {
	zr  *zstd.Decoder
	src bytes.Reader
}

// declaredHint turns a size declared by compressed input of srcLen bytes into
// an initial buffer size. It is trusted only up to a 16:1 ratio (or 64 KiB) so
// that a few bytes cannot make every call allocate the whole limit; output
// beyond it still fits, by doubling.
func declaredHint(declared uint64, srcLen int) int {
	return int(min(declared, uint64(max(16*srcLen, 64<<10))))
}

// readCapped reads r to EOF into buf's storage (or a new buffer), failing
// once more than limit bytes arrive. The buffer starts at hint+1 (bounded to
// [512, limit+1]), so an exact hint sees EOF without growing, and doubles,
// never past limit+1; when it is exactly full a one-byte probe read decides
// between EOF and growth.
func readCapped(c Codec, r io.Reader, buf []byte, limit, hint int) ([]byte, error) {
	capTo := limit + 1
	out := buf[:0]
	if cap(out) > capTo {
		out = out[:0:capTo]
	}
	if want := min(max(hint+1, 512), capTo); cap(out) < want {
		out = make([]byte, 0, want)
	}
	idle := 0
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, tooLarge(c, limit)
			}
			var probe [1]byte
			n, err := r.Read(probe[:])
			if n == 0 {
				if err == io.EOF {
					return out, nil
				}
				if err != nil {
					return nil, corrupt(c, limit, err)
				}
				if idle++; idle > 100 {
					return nil, corrupt(c, limit, io.ErrNoProgress)
				}
				continue
			}
			grown := make([]byte, len(out), min(max(2*cap(out), 512), capTo))
			copy(grown, out)
			out = append(grown, probe[0])
			if err == io.EOF {
				if len(out) > limit {
					return nil, tooLarge(c, limit)
				}
				return out, nil
			}
			if err != nil {
				return nil, corrupt(c, limit, err)
			}
			continue
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return nil, tooLarge(c, limit)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, corrupt(c, limit, err)
		}
		if n == 0 {
			if idle++; idle > 100 {
				return nil, corrupt(c, limit, io.ErrNoProgress)
			}
		} else {
			idle = 0
		}
	}
}
