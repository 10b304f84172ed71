package seglog

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/spoolmq/spool/internal/batch"
)

// Internal batches (replicated logs only; docs/format/segment.md). They are
// record batch v2 headers with the Spool marker in the attributes, last
// offset delta −1 and no records, followed by a kind byte and a body:
//
//	0   baseOffset      int64  the offset the next data record gets
//	8   batchLength     int32
//	12  leaderEpoch     int32  the raft term (0 in a segment header)
//	16  magic           int8   2
//	17  crc             uint32 CRC-32C of bytes 21 … end
//	21  attributes      int16  AttrInternal, nothing else
//	23  lastOffsetDelta int32  −1
//	27  baseTimestamp   int64  −1
//	35  maxTimestamp    int64  −1
//	43  producerId      int64  −1
//	51  producerEpoch   int16  −1
//	53  baseSequence    int32  −1
//	57  recordsCount    int32  0
//	61  kind            uint8  kindHeader or kindEntry
//	62  body
//
// A segment header's body is firstIndex uint64 ‖ prevTerm uint64; an
// entry's body is opaque to the log (internal/partlog: entry type ‖ data).
const (
	// AttrInternal is the attributes bit (14) that marks a Spool internal
	// batch. Kafka defines bits 0–6; a data batch of a replicated log must
	// not set it.
	AttrInternal int16 = 0x4000

	kindData   byte = 0 // not stored: a record batch
	kindHeader byte = 1 // the segment header
	kindEntry  byte = 2 // a raft entry that takes no offset

	internalPrefix = batch.HeaderSize + 1
	segHeaderBody  = 16
	segHeaderSize  = internalPrefix + segHeaderBody
)

// appendInternal appends an internal batch of kind with body to dst. The
// base offset is left zero (enqueue assigns it).
func appendInternal(dst []byte, kind byte, term int32, body []byte) []byte {
	p := len(dst)
	dst = append(dst, make([]byte, internalPrefix)...)
	dst = append(dst, body...)
	b := dst[p:]
	be := binary.BigEndian
	be.PutUint32(b[8:], uint32(len(b)-batch.LengthPrefix))
	be.PutUint32(b[12:], uint32(term))
	b[16] = byte(batch.MagicV2)
	be.PutUint16(b[21:], uint16(AttrInternal))
	be.PutUint32(b[23:], math.MaxUint32) // −1
	be.PutUint64(b[27:], math.MaxUint64)
	be.PutUint64(b[35:], math.MaxUint64)
	be.PutUint64(b[43:], math.MaxUint64)
	be.PutUint16(b[51:], math.MaxUint16)
	be.PutUint32(b[53:], math.MaxUint32)
	b[61] = kind
	be.PutUint32(b[17:], batch.CRC(b))
	return dst
}

// segmentHeader returns the header batch of a segment whose first entry
// has index first, the entry before it term prevTerm.
func segmentHeader(first, prevTerm uint64) []byte {
	var body [segHeaderBody]byte
	binary.BigEndian.PutUint64(body[0:], first)
	binary.BigEndian.PutUint64(body[8:], prevTerm)
	return appendInternal(make([]byte, 0, segHeaderSize), kindHeader, 0, body[:])
}

// isInternal reports whether the whole batch b carries the internal marker.
func isInternal(b []byte) bool {
	return len(b) >= batch.HeaderSize && int16(binary.BigEndian.Uint16(b[21:]))&AttrInternal != 0
}

// checkInternal checks a whole internal batch and returns its kind.
func checkInternal(b []byte) (byte, error) {
	be := binary.BigEndian
	switch {
	case len(b) < internalPrefix:
		return 0, fmt.Errorf("internal batch of %d bytes is too short", len(b))
	case batchTotal(b) != len(b):
		return 0, fmt.Errorf("internal batch length %d does not match %d bytes", batchTotal(b), len(b))
	case int8(b[16]) != batch.MagicV2:
		return 0, fmt.Errorf("internal batch has magic %d", int8(b[16]))
	case batch.CRC(b) != be.Uint32(b[17:]):
		return 0, fmt.Errorf("internal batch CRC mismatch")
	case int16(be.Uint16(b[21:])) != AttrInternal || int32(be.Uint32(b[23:])) != -1 || int32(be.Uint32(b[57:])) != 0:
		return 0, fmt.Errorf("internal batch has bad attributes, last offset delta or record count")
	}
	switch kind := b[61]; kind {
	case kindHeader:
		if len(b) != segHeaderSize {
			return 0, fmt.Errorf("segment header of %d bytes", len(b))
		}
		return kind, nil
	case kindEntry:
		return kind, nil
	default:
		return 0, fmt.Errorf("internal batch of unknown kind %d", kind)
	}
}

// epochOf returns a batch's partition leader epoch: the raft term in a
// replicated log.
func epochOf(b []byte) uint64 { return uint64(binary.BigEndian.Uint32(b[12:])) }
