package batch

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"strconv"
)

// Field offsets in the batch header. Part of the wire format, do not change.
const (
	offBaseOffset           = 0
	offBatchLength          = 8
	offPartitionLeaderEpoch = 12
	offMagic                = 16
	offCRC                  = 17
	offAttributes           = 21
	offLastOffsetDelta      = 23
	offBaseTimestamp        = 27
	offMaxTimestamp         = 35
	offProducerID           = 43
	offProducerEpoch        = 51
	offBaseSequence         = 53
	offRecordsCount         = 57

	// HeaderSize is the size of the fixed batch header; records start here.
	HeaderSize = 61

	// LengthPrefix is the number of bytes (baseOffset and batchLength) that
	// batchLength does not count: a batch is batchLength+LengthPrefix bytes.
	LengthPrefix = 12

	// MagicV2 is the only magic value this package accepts.
	MagicV2 int8 = 2
)

// Attribute bits. Part of the wire format, do not change.
const (
	AttrCodecMask     int16 = 0x07 // compression codec, see Codec
	AttrLogAppendTime int16 = 0x08 // maxTimestamp is the broker's append time
	AttrTransactional int16 = 0x10 // batch belongs to a transaction
	AttrControl       int16 = 0x20 // batch holds control records (transaction markers)
	AttrDeleteHorizon int16 = 0x40 // baseTimestamp holds the compaction delete horizon
)

// Codec is the compression codec stored in attribute bits 0–2.
type Codec int8

// Codec numbers. Part of the wire format, do not change.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// String returns the codec's lower-case name, or "codec(N)" for an unknown N.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}

// Header is the decoded fixed header of a batch; field names follow the
// layout in the package documentation.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: batch size − 12
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// ParseHeader decodes the first HeaderSize bytes of b without checking
// anything else (not even magic or CRC); shorter input fails the "length" check.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, invalid(checkLength, "%d bytes, header needs %d", len(b), HeaderSize)
	}
	be := binary.BigEndian
	return Header{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		Length:               int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offPartitionLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[offRecordsCount:])),
	}, nil
}

// Codec returns the codec bits; values above CodecZstd are invalid.
func (h Header) Codec() Codec { return Codec(h.Attributes & AttrCodecMask) }

// IsTransactional reports attribute bit 4.
func (h Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// IsControl reports attribute bit 5 (a batch of transaction markers).
func (h Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// HasLogAppendTime reports attribute bit 3: timestamps are the broker's append time.
func (h Header) HasLogAppendTime() bool { return h.Attributes&AttrLogAppendTime != 0 }

// HasDeleteHorizon reports attribute bit 6: BaseTimestamp is a compaction delete horizon.
func (h Header) HasDeleteHorizon() bool { return h.Attributes&AttrDeleteHorizon != 0 }

// Size returns the batch size in bytes, int(Length)+12; it is meaningless
// (possibly negative) for a header that has not been validated.
func (h Header) Size() int { return int(h.Length) + LengthPrefix }

// LastOffset returns BaseOffset + LastOffsetDelta, the offset of the last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC-32C of b[21:], the checksum stored at offset 17; it
// returns 0 when len(b) <= 21.
func CRC(b []byte) uint32 {
	if len(b) <= offAttributes {
		return 0
	}
	return crc32.Checksum(b[offAttributes:], castagnoli)
}

// SetBaseOffset overwrites the baseOffset field in place (outside the CRC);
// it does nothing when len(b) < HeaderSize.
func SetBaseOffset(b []byte, off int64) {
	if len(b) < HeaderSize {
		return
	}
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch overwrites the partitionLeaderEpoch field in place
// (outside the CRC); it does nothing when len(b) < HeaderSize.
func SetPartitionLeaderEpoch(b []byte, e int32) {
	if len(b) < HeaderSize {
		return
	}
	binary.BigEndian.PutUint32(b[offPartitionLeaderEpoch:], uint32(e))
}

// Next splits the first batch off a concatenation of batches, reading only the
// 12-byte length prefix. An empty b returns io.EOF; a b that ends inside the
// batch returns an *IncompleteError; a batchLength too small to hold a header
// (including a negative one) fails the "batch-length" check; on error rest is
// b. batch is capped so appending to it cannot overwrite rest. Nothing beyond
// the length is checked: call Validate on batch.
func Next(b []byte) (batch, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, io.EOF
	}
	if len(b) < LengthPrefix {
		return nil, b, &IncompleteError{Have: len(b), Need: LengthPrefix}
	}
	length := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:])))
	if length < HeaderSize-LengthPrefix {
		return nil, b, invalid(checkBatchLength, "batchLength %d is below the minimum %d", length, HeaderSize-LengthPrefix)
	}
	size := length + LengthPrefix
	if size > int64(len(b)) {
		return nil, b, &IncompleteError{Have: len(b), Need: size}
	}
	n := int(size)
	return b[:n:n], b[n:], nil
}

// SetTimestamps overwrites the baseTimestamp and maxTimestamp fields in
// place and recomputes the CRC over the result; it does nothing when
// len(b) < HeaderSize. Check the batch's CRC first: afterwards it covers
// whatever the bytes hold.
func SetTimestamps(b []byte, base, maxTS int64) {
	if len(b) < HeaderSize {
		return
	}
	be := binary.BigEndian
	be.PutUint64(b[offBaseTimestamp:], uint64(base))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTS))
	be.PutUint32(b[offCRC:], CRC(b))
}
