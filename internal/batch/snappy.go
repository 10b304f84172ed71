package batch

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/klauspost/compress/snappy"
)

// Snappy data in a batch is either one raw snappy block or the xerial
// framing that Java producers write. Blocks are decoded with the strict
// standard-snappy decoder, so input using extensions that Kafka's own
// consumers could not read is rejected as corrupt.

// xerialMagic starts the xerial snappy framing; part of the wire format.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// xerialHeaderSize is the magic plus the version and compatible-version words.
const xerialHeaderSize = 16

func isXerial(src []byte) bool { return bytes.HasPrefix(src, xerialMagic) }

// maxSnappyExpansion bounds what one byte of a standard snappy block can
// decode to: the densest element is a copy of 64 bytes in 3 bytes (a tag and
// a 2-byte offset). A block declaring more than this times its own size is
// corrupt, and is refused before its declared size is allocated: otherwise a
// few bytes declaring 32 MiB cost 32 MiB.
const maxSnappyExpansion = 22

// snappyHolds reports whether a raw snappy block of src could decode to
// the n bytes it declares; checked after the limit, so that a declared size
// over the limit is reported as too large.
func snappyHolds(src []byte, n int) error {
	if n/maxSnappyExpansion > len(src) {
		return errors.New("declared size beyond what the block can hold")
	}
	return nil
}

// unsnappy decodes one raw snappy block, checking its declared size first.
func unsnappy(buf, src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, corrupt(CodecSnappy, limit, err)
	}
	if n > limit {
		return nil, tooLarge(CodecSnappy, limit)
	}
	if err := snappyHolds(src, n); err != nil {
		return nil, corrupt(CodecSnappy, limit, err)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	out, err := snappy.DecodeStrict(buf[:n], src)
	if err != nil {
		return nil, corrupt(CodecSnappy, limit, err)
	}
	return out, nil
}

// unxerial decodes the xerial framing: it sums the chunks' declared sizes
// against limit before allocating, then decodes each chunk in place.
func unxerial(buf, src []byte, limit int) ([]byte, error) {
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
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	out := buf[:total]
	pos := 0
	for rest := src[xerialHeaderSize:]; len(rest) > 0; {
		chunk, tail, _ := xerialChunk(rest)
		n, _ := snappy.DecodedLen(chunk)
		if _, err := snappy.DecodeStrict(out[pos:pos+n:pos+n], chunk); err != nil {
			return nil, corrupt(CodecSnappy, limit, err)
		}
		pos += n
		rest = tail
	}
	return out, nil
}

// xerialChunk splits one length-prefixed chunk off b.
func xerialChunk(b []byte) (chunk, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("truncated xerial chunk length")
	}
	n := int64(binary.BigEndian.Uint32(b))
	if n > int64(len(b)-4) {
		return nil, nil, errors.New("xerial chunk longer than the input")
	}
	end := 4 + int(n)
	return b[4:end], b[end:], nil
}
