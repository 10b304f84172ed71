// Package recordbatch builds Kafka record batches (RecordBatch v2: magic 2,
// CRC-32C, uncompressed) as Spool stores them, for clients that publish in
// the native API's batch form (PublishRequest.batches) — the Go SDK's
// Producer among them — and chooses partitions for keys as Spool and
// Kafka's default partitioner do. It depends on nothing of Spool's; the
// server validates what it builds exactly as it validates a Kafka
// producer's batches.
package recordbatch

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// Header is one record header. A nil or empty Value is stored as null.
type Header struct {
	Key   string
	Value []byte
}

// HeaderSize is the size of a batch's fixed header.
const HeaderSize = 61

// Field offsets in the batch header.
const (
	offBatchLength     = 8
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordsCount    = 57
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Builder builds one batch record by record. The zero Builder is ready for
// Reset. A Builder is not safe for concurrent use.
type Builder struct {
	buf    []byte
	n      int32
	baseTS int64
	maxTS  int64
}

// Reset starts a new batch whose records' timestamps are relative to
// baseTimestamp (Unix ms), keeping the builder's buffer unless Finish
// handed it out.
func (b *Builder) Reset(baseTimestamp int64) {
	if cap(b.buf) < HeaderSize {
		b.buf = make([]byte, HeaderSize, 4096)
	}
	b.buf = b.buf[:HeaderSize]
	clear(b.buf)
	b.n, b.baseTS, b.maxTS = 0, baseTimestamp, math.MinInt64
}

// ResetBuffer is Reset building the batch in buf's memory (its contents
// are overwritten): a caller done with an earlier batch's bytes can give
// them back.
func (b *Builder) ResetBuffer(buf []byte, baseTimestamp int64) {
	b.buf = buf[:0]
	b.Reset(baseTimestamp)
}

// Grow makes room for n more bytes of records.
func (b *Builder) Grow(n int) {
	if cap(b.buf)-len(b.buf) < n {
		nb := make([]byte, len(b.buf), len(b.buf)+n)
		copy(nb, b.buf)
		b.buf = nb
	}
}

// Len returns the size the batch has so far, header included.
func (b *Builder) Len() int { return len(b.buf) }

// Count returns the records added since Reset.
func (b *Builder) Count() int { return int(b.n) }

// RecordSize returns the encoded size of a record with a timestamp delta
// of delta and the given key, value and headers, at offset delta
// offsetDelta.
func RecordSize(delta int64, offsetDelta int32, key, value []byte, headers []Header) int {
	body := recordBody(delta, offsetDelta, key, value, headers)
	return varintSize(int64(body)) + body
}

func recordBody(delta int64, offsetDelta int32, key, value []byte, headers []Header) int {
	n := 1 + varintSize(delta) + varintSize(int64(offsetDelta)) + bytesSize(key) + bytesSize(value) + varintSize(int64(len(headers)))
	for i := range headers {
		n += varintSize(int64(len(headers[i].Key))) + len(headers[i].Key) + bytesSize(headers[i].Value)
	}
	return n
}

// Add appends a record with the given timestamp (Unix ms), key, value and
// headers. Empty keys, values and header values are stored as null, as the
// per-message form stores them.
func (b *Builder) Add(timestamp int64, key, value []byte, headers []Header) {
	delta := timestamp - b.baseTS
	body := recordBody(delta, b.n, key, value, headers)
	b.Grow(varintSize(int64(body)) + body)
	d := b.buf
	d = binary.AppendVarint(d, int64(body))
	d = append(d, 0) // attributes
	d = binary.AppendVarint(d, delta)
	d = binary.AppendVarint(d, int64(b.n))
	d = appendBytes(d, key)
	d = appendBytes(d, value)
	d = binary.AppendVarint(d, int64(len(headers)))
	for i := range headers {
		d = binary.AppendVarint(d, int64(len(headers[i].Key)))
		d = append(d, headers[i].Key...)
		d = appendBytes(d, headers[i].Value)
	}
	b.buf = d
	b.n++
	b.maxTS = max(b.maxTS, timestamp)
}

// Finish completes the batch (an idempotent producer's when producerID is
// not −1; −1, −1, −1 otherwise) and returns it; the builder lets go of
// the bytes, which are the caller's. The batch must hold a record.
func (b *Builder) Finish(producerID int64, producerEpoch int16, baseSequence int32) []byte {
	out := b.buf
	b.buf = nil
	be := binary.BigEndian
	be.PutUint64(out[0:], 0)
	be.PutUint32(out[offBatchLength:], uint32(len(out)-12))
	be.PutUint32(out[12:], 0) // partition leader epoch
	out[offMagic] = 2
	be.PutUint16(out[offAttributes:], 0)
	be.PutUint32(out[offLastOffsetDelta:], uint32(b.n-1))
	be.PutUint64(out[offBaseTimestamp:], uint64(b.baseTS))
	maxTS := b.maxTS
	if b.n == 0 {
		maxTS = b.baseTS
	}
	be.PutUint64(out[offMaxTimestamp:], uint64(maxTS))
	be.PutUint64(out[offProducerID:], uint64(producerID))
	be.PutUint16(out[offProducerEpoch:], uint16(producerEpoch))
	be.PutUint32(out[offBaseSequence:], uint32(baseSequence))
	be.PutUint32(out[offRecordsCount:], uint32(b.n))
	be.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
	return out
}

// appendBytes appends a varint length (−1 for empty) and b.
func appendBytes(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, 1) // zigzag(−1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesSize(b []byte) int {
	if len(b) == 0 {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// varintSize is the size of v as a zigzag varint.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// KeyPartition returns the partition of a non-empty key among n partitions
// (n > 0): murmur2 of the key, made positive, modulo n, as Spool's
// per-message form and Kafka's default partitioner choose.
func KeyPartition(key []byte, n int32) int32 {
	return (murmur2(key) & 0x7fffffff) % n
}

// murmur2 is the 32-bit murmur2 hash with Kafka's seed.
func murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(data))
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}
