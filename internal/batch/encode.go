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
