package batch

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
)

// Encode appends one batch holding records to dst and returns the extended
// slice. From h it takes BaseOffset, PartitionLeaderEpoch, Attributes (the
// codec bits select the compression), BaseTimestamp, ProducerID,
// ProducerEpoch and BaseSequence. It computes Length, Magic, CRC,
// LastOffsetDelta, NumRecords and MaxTimestamp (the largest record timestamp;
// with LogAppendTime set, h.MaxTimestamp is kept). Record i is written with
// offsetDelta i whatever its OffsetDelta field says. It fails with a
// *ValidationError for no records, an unknown codec, a timestamp that
// overflows int64, a field longer than an int32 length allows or a batch
// larger than 2 GiB; dst is then returned unchanged.
func Encode(dst []byte, h Header, records []Record) ([]byte, error) {
	n := len(records)
	if n == 0 || n > math.MaxInt32 {
		return dst, invalid(checkRecordCount, "cannot encode %d records", n)
	}
	c := h.Codec()
	if c > CodecZstd {
		return dst, invalid(checkCodec, "codec %d is not one of 0–4", c)
	}
	maxTS, err := maxTimestamp(h, records)
	if err != nil {
		return dst, err
	}
	size, err := recordsSize(records)
	if err != nil {
		return dst, err
	}

	start := len(dst)
	grow := HeaderSize
	if c == CodecNone {
		grow += size
	}
	out := slices.Grow(dst, grow)[:start+HeaderSize]
	if c == CodecNone {
		out = appendRecords(out, records)
	} else {
		sp := encodePool.Get().(*[]byte)
		raw := appendRecords((*sp)[:0], records)
		out, err = Compress(c, out, raw)
		if cap(raw) <= maxPooledScratch {
			*sp = raw[:0]
			encodePool.Put(sp)
		}
		if err != nil {
			return dst, err
		}
	}
	total := len(out) - start
	if total-LengthPrefix > math.MaxInt32 {
		return dst, invalid(checkBatchLength, "batch of %d bytes is too large", total)
	}

	b := out[start:]
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(b[offBatchLength:], uint32(total-LengthPrefix))
	be.PutUint32(b[offPartitionLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = byte(MagicV2)
	be.PutUint16(b[offAttributes:], uint16(h.Attributes))
	be.PutUint32(b[offLastOffsetDelta:], uint32(n-1))
	be.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTS))
	be.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(b[offRecordsCount:], uint32(n))
	be.PutUint32(b[offCRC:], CRC(b))
	return out, nil
}

// encodePool holds scratch buffers for the uncompressed records section.
var encodePool = sync.Pool{New: func() any { return new([]byte) }}

// maxTimestamp returns the batch maxTimestamp for records under h.
func maxTimestamp(h Header, records []Record) (int64, error) {
	maxTS := int64(math.MinInt64)
	for i := range records {
		ts, ok := addTimestamp(h.BaseTimestamp, records[i].TimestampDelta)
		if !ok {
			return 0, invalid(checkTimestamp, "record %d: baseTimestamp %d + delta %d overflows", i, h.BaseTimestamp, records[i].TimestampDelta)
		}
		maxTS = max(maxTS, ts)
	}
	if h.HasLogAppendTime() {
		return h.MaxTimestamp, nil
	}
	return maxTS, nil
}

// recordsSize returns the encoded size of records, checking every length fits.
func recordsSize(records []Record) (int, error) {
	total := 0
	for i := range records {
		body, err := recordBodySize(&records[i], int32(i))
		if err != nil {
			return 0, err
		}
		total += varintSize(int64(body)) + body
		if total > math.MaxInt32 {
			return 0, invalid(checkBatchLength, "records section exceeds %d bytes", math.MaxInt32)
		}
	}
	return total, nil
}

// recordBodySize returns the size of record r after its length varint.
func recordBodySize(r *Record, offsetDelta int32) (int, error) {
	n := 1 + varintSize(r.TimestampDelta) + varintSize(int64(offsetDelta))
	n += bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
	if len(r.Key) > math.MaxInt32 || len(r.Value) > math.MaxInt32 || len(r.Headers) > math.MaxInt32 {
		return 0, invalid(checkRecords, "record %d: field longer than %d bytes", offsetDelta, math.MaxInt32)
	}
	for j := range r.Headers {
		hd := &r.Headers[j]
		if len(hd.Key) > math.MaxInt32 || len(hd.Value) > math.MaxInt32 {
			return 0, invalid(checkRecords, "record %d: header %d longer than %d bytes", offsetDelta, j, math.MaxInt32)
		}
		n += varintSize(int64(len(hd.Key))) + len(hd.Key) + bytesSize(hd.Value)
		if n > math.MaxInt32 {
			break
		}
	}
	if n > math.MaxInt32 {
		return 0, invalid(checkRecords, "record %d is larger than %d bytes", offsetDelta, math.MaxInt32)
	}
	return n, nil
}

// appendRecords appends the encoded records (sizes already checked) to dst.
func appendRecords(dst []byte, records []Record) []byte {
	for i := range records {
		r := &records[i]
		body, _ := recordBodySize(r, int32(i))
		dst = binary.AppendVarint(dst, int64(body))
		dst = append(dst, byte(r.Attributes))
		dst = binary.AppendVarint(dst, r.TimestampDelta)
		dst = binary.AppendVarint(dst, int64(i))
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for _, hd := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(hd.Key)))
			dst = append(dst, hd.Key...)
			dst = appendBytes(dst, hd.Value)
		}
	}
	return dst
}

// appendBytes appends a varint length (−1 for nil) and b.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(−1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// bytesSize is the encoded size of a nullable byte field.
func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// varintSize is the size of v as a zigzag varint or varlong; for values
// within int32 the two encodings are identical.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// Padded returns an uncompressed batch of one record, its value zero bytes,
// that is exactly size bytes, for measuring appends of a given size. The
// record's key is null, or one byte where a null key cannot reach size (a
// value whose length varint grows by a byte skips a size). It fails for a
// size below that of a batch with an empty record (68 bytes) and for the
// sizes no single record makes, where the record's own length varint grows
// (126 and 8,255 bytes; then above 1 MiB).
func Padded(size int, baseTimestamp int64) ([]byte, error) {
	h := Header{BaseTimestamp: baseTimestamp, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	encode := func(key []byte, n int) ([]byte, error) {
		return Encode(nil, h, []Record{{Key: key, Value: make([]byte, n)}})
	}
	empty, err := encode(nil, 0)
	if err != nil {
		return nil, err
	}
	// Every byte of value adds at least one to the batch, and its length
	// varints at most a few more: the value is a few bytes short of size
	// minus the empty batch.
	top := size - len(empty)
	for n := top; n >= max(0, top-8); n-- {
		for _, key := range [][]byte{nil, {0}} {
			b, err := encode(key, n)
			if err != nil {
				return nil, err
			}
			if len(b) == size {
				return b, nil
			}
		}
	}
	return nil, invalid(checkBatchLength, "no batch of one record is %d bytes", size)
}
