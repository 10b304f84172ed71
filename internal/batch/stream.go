package batch

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Streaming validation of compressed batches. Validate decodes the records
// of a compressed batch while it decompresses them, through a window of
// streamWindow bytes that grows only to hold a record larger than it: a
// decompression bomb fails at its first bad record (a stream of zeros at
// the very first) having cost one window, not the decompression cap. The
// errors are those of decompressing first and decoding after: when a
// record is bad, the rest of the stream is still decompressed (into the
// window, discarded) so that a corrupt or oversized stream reports that.

// streamWindow is the initial size of the decompressed-records window.
const streamWindow = 64 << 10

var windowPool = sync.Pool{New: func() any { b := make([]byte, 0, streamWindow); return &b }}

// checkRecordsStream decodes every record of the header-checked compressed
// batch b (codec not none) while decompressing at most limit bytes.
func checkRecordsStream(h Header, b []byte, limit int) error {
	if int64(h.Length) != int64(len(b))-LengthPrefix {
		return invalid(checkBatchLength, "batchLength %d, but %d bytes follow the length prefix", h.Length, len(b)-LengthPrefix)
	}
	c := h.Codec()
	if int64(h.NumRecords) > int64(limit/minRecordSize) {
		return invalid(checkRecordCount, "recordsCount %d cannot fit in %d decompressed bytes", h.NumRecords, limit)
	}
	r, done, err := openDecompressor(c, b[HeaderSize:], limit)
	if err != nil {
		return decompressFailed(err)
	}
	defer done()
	wp := windowPool.Get().(*[]byte)
	s := recordStream{r: r, c: c, limit: limit, win: (*wp)[:0]}
	defer func() {
		if cap(s.win) <= maxPooledScratch {
			*wp = s.win[:0]
		}
		windowPool.Put(wp)
	}()

	d := newRecordDecoder(h, nil)
	d.discard = true
	var rec Record
	var recErr error
	for d.more() {
		// The next record's bytes: its length varint, then its body.
		if err := s.fill(&d, 5); err != nil {
			return decompressFailed(err)
		}
		if length, next, ok := readVarint(s.win, d.off); ok && length > 0 {
			if err := s.fill(&d, next-d.off+int(length)); err != nil {
				return decompressFailed(err)
			}
		}
		d.data = s.win
		if _, recErr = d.next(&rec, nil, false); recErr != nil {
			break
		}
	}
	if recErr == nil {
		if err := s.fill(&d, 1); err != nil {
			return decompressFailed(err)
		}
		if len(s.win) == d.off {
			return nil // the records end where the stream does
		}
	}
	// A bad record, or bytes after the last: finish decompressing, so that
	// a corrupt or oversized stream is reported as such, and count what is
	// left for the messages.
	left := len(s.win) - d.off
	rest, err := s.drain()
	if err != nil {
		return decompressFailed(err)
	}
	if total := s.total; int64(h.NumRecords) > int64(total/minRecordSize) {
		return invalid(checkRecordCount, "recordsCount %d cannot fit in %d bytes of records", h.NumRecords, total)
	}
	if recErr != nil {
		return recErr
	}
	return invalid(checkRecords, "%d bytes trail the last of %d records", left+rest, d.n)
}

// decompressFailed wraps a decompression error as Validate reports it.
func decompressFailed(err error) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return err
	}
	return &ValidationError{Check: checkDecompress, Detail: trimPrefix(err.Error()), Err: err}
}

// recordStream is a decompressed-records window over a decompressor.
type recordStream struct {
	r     io.Reader
	c     Codec
	limit int
	win   []byte // decompressed bytes not yet consumed start at the decoder's offset
	total int    // bytes decompressed so far
	eof   bool
	idle  int
}

// fill makes at least need bytes available from d.off in the window, or
// all the stream has; the window is compacted to d.off first.
func (s *recordStream) fill(d *recordDecoder, need int) error {
	for !s.eof && len(s.win)-d.off < need {
		if d.off > 0 {
			n := copy(s.win, s.win[d.off:])
			s.win = s.win[:n]
			d.off = 0
		}
		if cap(s.win) < need {
			// A record larger than the window: grow to hold it. need is
			// bounded by what the stream may still produce.
			grown := make([]byte, len(s.win), min(max(need, 2*cap(s.win)), s.limit-s.total+len(s.win)+1))
			copy(grown, s.win)
			s.win = grown
		}
		if err := s.read(); err != nil {
			return err
		}
	}
	return nil
}

// read reads once into the window's free space.
func (s *recordStream) read() error {
	n, err := s.r.Read(s.win[len(s.win):cap(s.win)])
	s.win = s.win[:len(s.win)+n]
	return s.account(n, err)
}

// account counts n bytes read with err and checks the cap.
func (s *recordStream) account(n int, err error) error {
	s.total += n
	if s.total > s.limit {
		return tooLarge(s.c, s.limit)
	}
	switch {
	case err == io.EOF:
		s.eof = true
	case err != nil:
		return corrupt(s.c, s.limit, err)
	case n == 0:
		if s.idle++; s.idle > 100 {
			return corrupt(s.c, s.limit, io.ErrNoProgress)
		}
	default:
		s.idle = 0
	}
	return nil
}

// drain decompresses the rest of the stream into the window's memory,
// discarding it, and returns how many bytes it read.
func (s *recordStream) drain() (int, error) {
	buf := s.win[:cap(s.win)]
	rest := 0
	for !s.eof {
		n, err := s.r.Read(buf)
		rest += n
		if err := s.account(n, err); err != nil {
			return rest, err
		}
	}
	return rest, nil
}

// openDecompressor returns a reader of src decompressed under codec c and
// a function releasing it. Sizes the formats declare are checked against
// limit first. Snappy blocks (raw, or each xerial chunk) declare their size
// and are decoded whole, at most limit bytes in all.
func openDecompressor(c Codec, src []byte, limit int) (io.Reader, func(), error) {
	switch c {
	case CodecGzip:
		g, _ := gzipReaders.Get().(*gzipReader)
		if g == nil {
			g = new(gzipReader)
		}
		g.src.Reset(src)
		var err error
		if g.zr == nil {
			g.zr, err = gzip.NewReader(&g.src)
		} else {
			err = g.zr.Reset(&g.src)
		}
		done := func() {
			g.src.Reset(nil)
			gzipReaders.Put(g)
		}
		if err != nil {
			done()
			return nil, nil, corrupt(CodecGzip, limit, err)
		}
		return g.zr, done, nil
	case CodecLZ4:
		l, _ := lz4Readers.Get().(*lz4Reader)
		if l == nil {
			l = new(lz4Reader)
			l.zr = lz4.NewReader(nil)
		}
		l.src.Reset(src)
		l.zr.Reset(&l.src)
		return l.zr, func() {
			l.zr.Reset(nil)
			l.src.Reset(nil)
			lz4Readers.Put(l)
		}, nil
	case CodecZstd:
		var fh zstd.Header
		if fh.Decode(src) == nil && fh.HasFCS && fh.FrameContentSize > uint64(limit) {
			return nil, nil, tooLarge(CodecZstd, limit)
		}
		z, err := getZstdReader(limit)
		if err != nil {
			return nil, nil, err
		}
		z.src.Reset(src)
		done := func() {
			_ = z.zr.Reset(nil)
			z.src.Reset(nil)
			zstdReaders.Put(z)
		}
		if err := z.zr.Reset(&z.src); err != nil {
			done()
			return nil, nil, corrupt(CodecZstd, limit, err)
		}
		return z.zr, done, nil
	case CodecSnappy:
		if isXerial(src) {
			x, err := newXerialReader(src, limit)
			if err != nil {
				return nil, nil, err
			}
			return x, func() {}, nil
		}
		bufp, _ := scratchPool.Get().(*[]byte)
		if bufp == nil {
			bufp = new([]byte)
		}
		out, err := unsnappy(*bufp, src, limit)
		done := func() {
			if cap(out) <= maxPooledScratch && cap(out) >= cap(*bufp) {
				*bufp = out[:0]
			}
			scratchPool.Put(bufp)
		}
		if err != nil {
			done()
			return nil, nil, err
		}
		return bytes.NewReader(out), done, nil
	}
	return nil, nil, &DecompressError{Codec: c, Limit: limit, Kind: ErrUnknownCodec}
}

// xerialReader decodes xerial-framed snappy chunk by chunk.
type xerialReader struct {
	rest  []byte // chunks not yet decoded
	out   []byte // the current chunk, decoded
	pos   int
	limit int
}

// newXerialReader checks the framing and the declared sizes (at most limit
// in all) before anything is decoded.
func newXerialReader(src []byte, limit int) (*xerialReader, error) {
	if len(src) < xerialHeaderSize {
		return nil, corrupt(CodecSnappy, limit, errors.New("truncated xerial header"))
	}
	total := 0
	for rest := src[xerialHeaderSize:]; len(rest) > 0; {
		chunk, tail, err := xerialChunk(rest)
		if err != nil {
			return nil, corrupt(CodecSnappy, limit, err)
		}
		n, err := snappy.DecodedLen(chunk)
		if err != nil {
			return nil, corrupt(CodecSnappy, limit, err)
		}
		if n > limit-total {
			return nil, tooLarge(CodecSnappy, limit)
		}
		if err := snappyHolds(chunk, n); err != nil {
			return nil, corrupt(CodecSnappy, limit, err)
		}
		total += n
		rest = tail
	}
	return &xerialReader{rest: src[xerialHeaderSize:], limit: limit}, nil
}

func (x *xerialReader) Read(p []byte) (int, error) {
	for x.pos == len(x.out) {
		if len(x.rest) == 0 {
			return 0, io.EOF
		}
		chunk, tail, _ := xerialChunk(x.rest) // checked by newXerialReader
		n, _ := snappy.DecodedLen(chunk)
		if cap(x.out) < n {
			x.out = make([]byte, n)
		}
		out, err := snappy.DecodeStrict(x.out[:n], chunk)
		if err != nil {
			return 0, corrupt(CodecSnappy, x.limit, err)
		}
		x.out, x.pos, x.rest = out, 0, tail
	}
	n := copy(p, x.out[x.pos:])
	x.pos += n
	return n, nil
}
