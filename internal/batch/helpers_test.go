package batch

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// testHeader returns producer fields for an idempotent, non-transactional batch.
func testHeader(c Codec) Header {
	return Header{
		BaseOffset:           1000,
		PartitionLeaderEpoch: 5,
		Attributes:           int16(c),
		BaseTimestamp:        1_700_000_000_000,
		ProducerID:           77,
		ProducerEpoch:        2,
		BaseSequence:         40,
	}
}

// sampleRecords covers null and empty keys and values, headers with null
// and empty values, negative timestamp deltas and a larger compressible value.
func sampleRecords() []Record {
	big := make([]byte, 20_000)
	for i := range big {
		big[i] = byte('a' + i%7)
	}
	return []Record{
		{Key: []byte("k0"), Value: []byte("v0")},
		{Key: nil, Value: []byte("no key"), TimestampDelta: 3, Headers: []RecordHeader{{Key: "x", Value: []byte("1")}}},
		{Key: []byte{}, Value: nil, TimestampDelta: -2},
		{Key: []byte("h"), Value: []byte{}, TimestampDelta: 9, Headers: []RecordHeader{
			{Key: "trace", Value: []byte("abc")},
			{Key: "", Value: nil},
			{Key: "empty", Value: []byte{}},
		}},
		{Attributes: 0, Key: []byte("big"), Value: big, TimestampDelta: 1 << 40},
	}
}

// withOffsetDeltas returns recs with OffsetDelta set to the index, as decoded.
func withOffsetDeltas(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.OffsetDelta = int32(i)
		out[i] = r
	}
	return out
}

func mustEncode(t testing.TB, h Header, recs []Record) []byte {
	t.Helper()
	b, err := Encode(nil, h, recs)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

// rawRecord hand-encodes one record body with its length prefix, allowing
// invalid field values.
type rawRecord struct {
	attr        byte
	tsDelta     int64
	offsetDelta int64
	keyLen      int64 // -1 null; written as given
	key         []byte
	valueLen    int64
	value       []byte
	hdrCount    int64
	hdrs        []byte // already encoded headers
	lengthAdj   int64  // added to the true body length
	raw         []byte // when set, the whole encoding, used verbatim
}

func (r rawRecord) bytes() []byte {
	if r.raw != nil {
		return r.raw
	}
	var body []byte
	body = append(body, r.attr)
	body = binary.AppendVarint(body, r.tsDelta)
	body = binary.AppendVarint(body, r.offsetDelta)
	body = binary.AppendVarint(body, r.keyLen)
	body = append(body, r.key...)
	body = binary.AppendVarint(body, r.valueLen)
	body = append(body, r.value...)
	body = binary.AppendVarint(body, r.hdrCount)
	body = append(body, r.hdrs...)
	out := binary.AppendVarint(nil, int64(len(body))+r.lengthAdj)
	return append(out, body...)
}

func okRecord(i int) rawRecord {
	return rawRecord{offsetDelta: int64(i), keyLen: 1, key: []byte("k"), valueLen: 5, value: []byte("value")}
}

// assemble builds a batch from a header and a records section, setting
// Length to match and Magic to 2 unless h.Magic is non-zero, then the CRC.
func assemble(h Header, section []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(section))
	b = append(b, section...)
	be := binary.BigEndian
	if h.Magic == 0 {
		h.Magic = MagicV2
	}
	be.PutUint64(b[0:], uint64(h.BaseOffset))
	be.PutUint32(b[8:], uint32(len(b)-12))
	be.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = byte(h.Magic)
	be.PutUint16(b[21:], uint16(h.Attributes))
	be.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[27:], uint64(h.BaseTimestamp))
	be.PutUint64(b[35:], uint64(h.MaxTimestamp))
	be.PutUint64(b[43:], uint64(h.ProducerID))
	be.PutUint16(b[51:], uint16(h.ProducerEpoch))
	be.PutUint32(b[53:], uint32(h.BaseSequence))
	be.PutUint32(b[57:], uint32(h.NumRecords))
	be.PutUint32(b[17:], CRC(b))
	return b
}

// rawHeader is a valid header for n uncompressed records with zero deltas.
func rawHeader(n int) Header {
	return Header{
		BaseOffset: 10, BaseTimestamp: 500, MaxTimestamp: 500, ProducerID: -1,
		ProducerEpoch: -1, BaseSequence: -1, LastOffsetDelta: int32(n - 1), NumRecords: int32(n),
	}
}

func section(recs ...rawRecord) []byte {
	var out []byte
	for _, r := range recs {
		out = append(out, r.bytes()...)
	}
	return out
}

// refCRC32C is a bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78),
// independent of hash/crc32, used to cross-check CRC.
func refCRC32C(b []byte) uint32 {
	crc := ^uint32(0)
	for _, x := range b {
		crc ^= uint32(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// payload returns n bytes that compress moderately well (like JSON-ish logs).
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := []string{"spool", "event", "broker", "partition", "offset", "\"key\":", "42", "true", "{", "}", ","}
	out := make([]byte, 0, n+16)
	for len(out) < n {
		if r.IntN(10) == 0 {
			out = fmt.Appendf(out, "%08x", r.Uint32())
		} else {
			out = append(out, words[r.IntN(len(words))]...)
		}
	}
	return out[:n]
}
