package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
)

// The index file of a sealed segment (NNNNNNNNNNNNNNNNNNNN.index). It is part
// of the on-disk format (docs/format/segment.md); do not change it without
// bumping indexVersion.
//
//	0  magic        [4]byte "SPIX"
//	4  version      uint8 (1)
//	5  reserved     [3]byte zero
//	8  base         int64  segment base offset
//	16 dataSize     int64  bytes of the .log file the index describes
//	24 nextOffset   int64  offset after the last batch of the segment
//	32 maxTimestamp int64  largest batch max timestamp (-1 if empty)
//	40 offCount     uint32 number of offset entries
//	44 timeCount    uint32 number of time entries
//	48 offset entries: relOffset uint32, position uint32   (8 bytes each)
//	.. time entries:   timestamp int64, relOffset uint32   (12 bytes each)
//	.. crc          uint32 CRC-32C of every preceding byte
//
// All integers are big-endian.
const (
	indexMagic      = "SPIX"
	indexVersion    = 1
	indexHeaderSize = 48
	offEntrySize    = 8
	timeEntrySize   = 12
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// offEntry maps a batch's offset (relative to the segment base) to the byte
// position of the batch in the segment file.
type offEntry struct {
	rel uint32
	pos uint32
}

// timeEntry records that the running maximum timestamp of the segment first
// reached ts in the batch at relative offset rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

// indexData is the decoded content of an index file.
type indexData struct {
	base, dataSize, next, maxTS int64
	offs                        []offEntry
	times                       []timeEntry
	raft                        *raftSection // replicated logs (version 2); nil in version 1
}

var errBadIndex = errors.New("seglog: bad index file")

func encodeIndex(d *indexData) []byte {
	n := indexHeaderSize + len(d.offs)*offEntrySize + len(d.times)*timeEntrySize + 4
	b := make([]byte, n)
	copy(b, indexMagic)
	b[4] = indexVersion
	if d.raft != nil {
		b[4] = indexVersionReplicated
	}
	binary.BigEndian.PutUint64(b[8:], uint64(d.base))
	binary.BigEndian.PutUint64(b[16:], uint64(d.dataSize))
	binary.BigEndian.PutUint64(b[24:], uint64(d.next))
	binary.BigEndian.PutUint64(b[32:], uint64(d.maxTS))
	binary.BigEndian.PutUint32(b[40:], uint32(len(d.offs)))
	binary.BigEndian.PutUint32(b[44:], uint32(len(d.times)))
	p := indexHeaderSize
	for _, e := range d.offs {
		binary.BigEndian.PutUint32(b[p:], e.rel)
		binary.BigEndian.PutUint32(b[p+4:], e.pos)
		p += offEntrySize
	}
	for _, e := range d.times {
		binary.BigEndian.PutUint64(b[p:], uint64(e.ts))
		binary.BigEndian.PutUint32(b[p+8:], e.rel)
		p += timeEntrySize
	}
	if d.raft != nil {
		b = appendRaftSection(b[:p], d.raft)
		p = len(b)
		b = append(b, 0, 0, 0, 0)
	}
	binary.BigEndian.PutUint32(b[p:], crc32.Checksum(b[:p], crcTable))
	return b
}

// decodeIndex parses and checks an index file. Counts are checked against
// the bytes present before anything is allocated.
func decodeIndex(b []byte) (*indexData, error) {
	if len(b) < indexHeaderSize+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", errBadIndex, len(b))
	}
	if string(b[:4]) != indexMagic || (b[4] != indexVersion && b[4] != indexVersionReplicated) || b[5]|b[6]|b[7] != 0 {
		return nil, fmt.Errorf("%w: bad magic, version or reserved bytes", errBadIndex)
	}
	body := len(b) - 4
	if crc32.Checksum(b[:body], crcTable) != binary.BigEndian.Uint32(b[body:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	d := &indexData{
		base:     int64(binary.BigEndian.Uint64(b[8:])),
		dataSize: int64(binary.BigEndian.Uint64(b[16:])),
		next:     int64(binary.BigEndian.Uint64(b[24:])),
		maxTS:    int64(binary.BigEndian.Uint64(b[32:])),
	}
	nOff := int64(binary.BigEndian.Uint32(b[40:]))
	nTime := int64(binary.BigEndian.Uint32(b[44:]))
	raftAt := int64(indexHeaderSize) + nOff*offEntrySize + nTime*timeEntrySize
	if raftAt > int64(body) || (b[4] == indexVersion && raftAt != int64(body)) {
		return nil, fmt.Errorf("%w: entry counts do not match size", errBadIndex)
	}
	if d.base < 0 || d.next < d.base || d.dataSize < 0 || d.dataSize > MaxSegmentBytes {
		return nil, fmt.Errorf("%w: implausible header", errBadIndex)
	}
	d.offs = make([]offEntry, nOff)
	p := indexHeaderSize
	for i := range d.offs {
		d.offs[i] = offEntry{rel: binary.BigEndian.Uint32(b[p:]), pos: binary.BigEndian.Uint32(b[p+4:])}
		p += offEntrySize
	}
	d.times = make([]timeEntry, nTime)
	for i := range d.times {
		d.times[i] = timeEntry{ts: int64(binary.BigEndian.Uint64(b[p:])), rel: binary.BigEndian.Uint32(b[p+8:])}
		p += timeEntrySize
	}
	if b[4] == indexVersionReplicated {
		r, err := decodeRaftSection(b[raftAt:body], d.dataSize)
		if err != nil {
			return nil, err
		}
		d.raft = r
	}
	// Entries must be strictly increasing and inside the segment.
	for i, e := range d.offs {
		if int64(e.pos) >= d.dataSize || d.base+int64(e.rel) >= d.next ||
			(i > 0 && (e.rel <= d.offs[i-1].rel || e.pos <= d.offs[i-1].pos)) {
			return nil, fmt.Errorf("%w: offset entry %d out of order", errBadIndex, i)
		}
	}
	for i, e := range d.times {
		if d.base+int64(e.rel) >= d.next || (i > 0 && (e.ts <= d.times[i-1].ts || e.rel < d.times[i-1].rel)) {
			return nil, fmt.Errorf("%w: time entry %d out of order", errBadIndex, i)
		}
	}
	return d, nil
}

// floorOff returns the position of the last indexed batch whose relative
// offset is <= rel, or 0.
func floorOff(offs []offEntry, rel uint32) int64 {
	i := sort.Search(len(offs), func(i int) bool { return offs[i].rel > rel })
	if i == 0 {
		return 0
	}
	return int64(offs[i-1].pos)
}

// floorTime returns the relative offset from which a scan for the first
// batch with max timestamp >= ts may start: the last entry whose timestamp
// is < ts (every batch up to it has max timestamp < ts), or 0.
func floorTime(times []timeEntry, ts int64) uint32 {
	i := sort.Search(len(times), func(i int) bool { return times[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return times[i-1].rel
}

func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
