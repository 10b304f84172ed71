package batch

import (
	"math"
	"sync"
)

// minRecordSize is the smallest possible encoded record: a one-byte length
// varint followed by attributes, timestampDelta, offsetDelta, keyLength,
// valueLength and headersCount, one byte each. It bounds how many records a
// records section of a given size can hold.
const minRecordSize = 7

// Limits bounds the resources Validate may spend on one batch. A zero or
// negative field takes its DefaultLimits value; use math.MaxInt to lift a cap.
type Limits struct {
	MaxBatchBytes        int  // largest whole batch (batchLength+12) accepted
	MaxDecompressedBytes int  // cap on the decompressed records section
	MaxRecords           int  // largest recordsCount accepted
	CheckRecords         bool // also decode and check every record
}

// DefaultMaxBatchBytes is the default of Limits.MaxBatchBytes: the largest
// record batch a partition log stores unless the server is configured
// otherwise (storage.max-batch-bytes), and so the ceiling of every topic's
// max message bytes. Kafka's own default (message.max.bytes) is about
// 1 MiB, but Kafka topics may raise their max.message.bytes well above it.
const DefaultMaxBatchBytes = 16 << 20

// Default limit values; see DefaultLimits.
const (
	defaultMaxDecompressedBytes = 32 << 20
	defaultMaxRecords           = 1 << 20
)

// DefaultLimits returns MaxBatchBytes DefaultMaxBatchBytes (16 MiB),
// MaxDecompressedBytes 32 MiB, MaxRecords 1<<20 and CheckRecords true.
func DefaultLimits() Limits {
	return Limits{
		MaxBatchBytes:        DefaultMaxBatchBytes,
		MaxDecompressedBytes: defaultMaxDecompressedBytes,
		MaxRecords:           defaultMaxRecords,
		CheckRecords:         true,
	}
}

// WithDefaults returns l with each zero or negative cap set to its
// DefaultLimits value; CheckRecords is left as it is.
func (l Limits) WithDefaults() Limits {
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if l.MaxDecompressedBytes <= 0 {
		l.MaxDecompressedBytes = defaultMaxDecompressedBytes
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = defaultMaxRecords
	}
	return l
}

// Validate checks that b is exactly one well-formed batch and returns its
// header; on failure it returns the zero Header and a *ValidationError naming
// the first failed check. Header checks come first, in this order: length,
// batch-length, batch-size, magic, crc, codec, record-count,
// last-offset-delta, producer-id. With lim.CheckRecords the records are then
// decompressed (at most lim.MaxDecompressedBytes) and decoded, checking
// varints, lengths, header counts, offset deltas 0..n−1, timestamps (no
// overflow and none above maxTimestamp, unless LogAppendTime or a delete
// horizon is set), the record count and that no bytes trail the last record.
// Validate allocates nothing proportional to a count or length read from b
// before checking it against the bytes present or a limit.
func Validate(b []byte, lim Limits) (Header, error) {
	lim = lim.WithDefaults()
	h, err := checkHeader(b, lim)
	if err != nil {
		return Header{}, err
	}
	if !lim.CheckRecords {
		return h, nil
	}
	if err := checkRecordsOf(h, b, lim.MaxDecompressedBytes); err != nil {
		return Header{}, err
	}
	return h, nil
}

// checkHeader runs every header-level check of Validate.
func checkHeader(b []byte, lim Limits) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Header{}, err
	}
	if int64(h.Length) != int64(len(b))-LengthPrefix {
		return Header{}, invalid(checkBatchLength, "batchLength %d, but %d bytes follow the length prefix", h.Length, len(b)-LengthPrefix)
	}
	if len(b) > lim.MaxBatchBytes {
		return Header{}, invalid(checkBatchSize, "batch is %d bytes, limit %d", len(b), lim.MaxBatchBytes)
	}
	if h.Magic != MagicV2 {
		return Header{}, invalid(checkMagic, "magic %d, want %d", h.Magic, MagicV2)
	}
	if got := CRC(b); got != h.CRC {
		return Header{}, invalid(checkCRC, "stored %#08x, computed %#08x", h.CRC, got)
	}
	if err := checkCount(h, len(b)-HeaderSize, lim); err != nil {
		return Header{}, err
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return Header{}, invalid(checkLastOffsetDelta, "lastOffsetDelta %d with %d records", h.LastOffsetDelta, h.NumRecords)
	}
	if h.IsTransactional() && h.ProducerID < 0 {
		return Header{}, invalid(checkProducerID, "transactional batch with producerId %d", h.ProducerID)
	}
	return h, nil
}

// checkCount checks the codec and bounds recordsCount by lim.MaxRecords and
// by what recordsBytes of records (decompressed to at most
// lim.MaxDecompressedBytes) can hold.
func checkCount(h Header, recordsBytes int, lim Limits) error {
	c := h.Codec()
	if c > CodecZstd {
		return invalid(checkCodec, "codec %d is not one of 0–4", c)
	}
	n := int64(h.NumRecords)
	if n < 1 {
		return invalid(checkRecordCount, "recordsCount %d, want at least 1", n)
	}
	if n > int64(lim.MaxRecords) {
		return invalid(checkRecordCount, "recordsCount %d exceeds the limit %d", n, lim.MaxRecords)
	}
	room := recordsBytes
	if c != CodecNone {
		room = lim.MaxDecompressedBytes
	}
	if n > int64(room/minRecordSize) {
		return invalid(checkRecordCount, "recordsCount %d cannot fit in %d bytes of records", n, room)
	}
	return nil
}

// scratchPool holds decompression buffers for Validate, whose records do not
// outlive the call. Buffers above maxPooledScratch are dropped.
var scratchPool sync.Pool

const maxPooledScratch = 4 << 20

// checkRecordsOf decodes every record of the header-checked batch b.
func checkRecordsOf(h Header, b []byte, maxDecompressed int) error {
	if c := h.Codec(); c != CodecNone && c <= CodecZstd && h.Magic == MagicV2 && h.NumRecords >= 0 {
		return checkRecordsStream(h, b, normLimit(maxDecompressed))
	}
	return checkRecordsWhole(h, b, maxDecompressed)
}

// checkRecordsWhole is checkRecordsOf decompressing the whole records
// section first (uncompressed batches; compressed ones in tests, which
// compare it with the streaming check).
func checkRecordsWhole(h Header, b []byte, maxDecompressed int) error {
	var bufp *[]byte
	var buf []byte
	if h.Codec() != CodecNone {
		if p, ok := scratchPool.Get().(*[]byte); ok {
			bufp, buf = p, *p
		}
	}
	data, err := recordsSection(h, b, buf, maxDecompressed)
	if err == nil {
		d := newRecordDecoder(h, data)
		d.discard = true
		var r Record
		for err == nil && d.more() {
			_, err = d.next(&r, nil, false)
		}
		if err == nil {
			err = d.finish()
		}
	}
	if h.Codec() != CodecNone && cap(data) <= maxPooledScratch && cap(data) > 0 {
		data = data[:0]
		if bufp == nil {
			bufp = new([]byte)
		}
		*bufp = data
		scratchPool.Put(bufp)
	}
	return err
}

// recordsSection returns the (decompressed) records section of b, whose
// header h was parsed from b. buf is reused for decompression when possible.
// It checks only what decoding needs: size, magic, codec and a record count
// the section can hold.
func recordsSection(h Header, b, buf []byte, maxDecompressed int) ([]byte, error) {
	if int64(h.Length) != int64(len(b))-LengthPrefix {
		return nil, invalid(checkBatchLength, "batchLength %d, but %d bytes follow the length prefix", h.Length, len(b)-LengthPrefix)
	}
	if h.Magic != MagicV2 {
		return nil, invalid(checkMagic, "magic %d, want %d", h.Magic, MagicV2)
	}
	c := h.Codec()
	if c > CodecZstd {
		return nil, invalid(checkCodec, "codec %d is not one of 0–4", c)
	}
	if h.NumRecords < 0 {
		return nil, invalid(checkRecordCount, "recordsCount %d is negative", h.NumRecords)
	}
	raw := b[HeaderSize:]
	data := raw
	if c != CodecNone {
		if int64(h.NumRecords) > int64(maxDecompressed/minRecordSize) {
			return nil, invalid(checkRecordCount, "recordsCount %d cannot fit in %d decompressed bytes", h.NumRecords, maxDecompressed)
		}
		out, err := decompress(c, buf, raw, maxDecompressed)
		if err != nil {
			return out, &ValidationError{Check: checkDecompress, Detail: trimPrefix(err.Error()), Err: err}
		}
		data = out
	}
	if int64(h.NumRecords) > int64(len(data)/minRecordSize) {
		return data, invalid(checkRecordCount, "recordsCount %d cannot fit in %d bytes of records", h.NumRecords, len(data))
	}
	return data, nil
}

// normLimit maps a non-positive decompression cap to the default one.
func normLimit(maxDecompressed int) int {
	if maxDecompressed <= 0 {
		return defaultMaxDecompressedBytes
	}
	return min(maxDecompressed, math.MaxInt-1)
}
