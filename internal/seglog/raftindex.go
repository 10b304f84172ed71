package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spoolmq/spool/internal/batch"
)

// idxEntry is a sparse raft index entry: the entry with index
// segment.firstIndex+rel starts at byte pos.
type idxEntry struct {
	rel uint32
	pos uint32
}

// termRun says that the entries from index on have term term (until the
// next run).
type termRun struct {
	index, term uint64
}

// trackRaft records that the entry batch at pos (of size bytes) has the
// next index of the segment and term term. Writer-only (or Open and
// TruncateAfterIndex while the writer is idle).
func (s *segment) trackRaft(pos int64, term uint64, size, interval int) {
	i := s.nextIndex.Load()
	if s.lastRidx < 0 || pos-s.lastRidx >= int64(interval) {
		ridx := append(*s.ridx.Load(), idxEntry{rel: uint32(i - s.firstIndex), pos: uint32(pos)})
		s.ridx.Store(&ridx)
		s.lastRidx = pos
	}
	if runs := *s.runs.Load(); len(runs) == 0 || runs[len(runs)-1].term != term {
		runs = append(runs, termRun{index: i, term: term})
		s.runs.Store(&runs)
	}
	s.nextIndex.Store(i + 1)
}

// lastTerm returns the term of the segment's last entry, or of the entry
// before the segment if it holds none.
func (s *segment) lastTerm() uint64 {
	if runs := *s.runs.Load(); len(runs) > 0 {
		return runs[len(runs)-1].term
	}
	return s.prevTerm
}

// termOf returns the term of entry i, which the segment holds.
func (s *segment) termOf(i uint64) uint64 {
	runs := *s.runs.Load()
	k := sort.Search(len(runs), func(k int) bool { return runs[k].index > i }) - 1
	if k < 0 {
		return s.prevTerm
	}
	return runs[k].term
}

// floorIndex returns the position and index of the last indexed entry at or
// before entry i, or the segment's start.
func (s *segment) floorIndex(i uint64) (int64, uint64) {
	ridx := *s.ridx.Load()
	rel := i - s.firstIndex
	k := sort.Search(len(ridx), func(k int) bool { return uint64(ridx[k].rel) > rel })
	if k == 0 {
		return 0, s.firstIndex
	}
	return int64(ridx[k-1].pos), s.firstIndex + uint64(ridx[k-1].rel)
}

// The seal of a replicated segment is the version 2 index file: version 1's
// layout, then before the CRC
//
//	firstIndex uint64, prevTerm uint64, nextIndex uint64,
//	flags uint32 (bit 0: the segment header is written),
//	ridxCount uint32, runCount uint32,
//	ridx entries: relIndex uint32, position uint32 (8 bytes each),
//	term runs: index uint64, term uint64 (16 bytes each).
const (
	indexVersionReplicated = 2
	raftSectionHeader      = 36
	ridxEntrySize          = 8
	termRunSize            = 16
)

// raftSection is the replication part of a version 2 seal.
type raftSection struct {
	firstIndex, prevTerm, nextIndex uint64
	hasHeader                       bool
	ridx                            []idxEntry
	runs                            []termRun
}

func (s *segment) raftData() *raftSection {
	return &raftSection{firstIndex: s.firstIndex, prevTerm: s.prevTerm, nextIndex: s.nextIndex.Load(),
		hasHeader: s.hasHeader.Load(), ridx: *s.ridx.Load(), runs: *s.runs.Load()}
}

func (s *segment) loadRaft(r *raftSection) {
	s.firstIndex, s.prevTerm = r.firstIndex, r.prevTerm
	s.nextIndex.Store(r.nextIndex)
	s.hasHeader.Store(r.hasHeader)
	ridx, runs := r.ridx, r.runs
	s.ridx.Store(&ridx)
	s.runs.Store(&runs)
	s.lastRidx = -1
	if len(ridx) > 0 {
		s.lastRidx = int64(ridx[len(ridx)-1].pos)
	}
}

func appendRaftSection(b []byte, r *raftSection) []byte {
	be := binary.BigEndian
	b = be.AppendUint64(b, r.firstIndex)
	b = be.AppendUint64(b, r.prevTerm)
	b = be.AppendUint64(b, r.nextIndex)
	var flags uint32
	if r.hasHeader {
		flags = 1
	}
	b = be.AppendUint32(b, flags)
	b = be.AppendUint32(b, uint32(len(r.ridx)))
	b = be.AppendUint32(b, uint32(len(r.runs)))
	for _, e := range r.ridx {
		b = be.AppendUint32(b, e.rel)
		b = be.AppendUint32(b, e.pos)
	}
	for _, t := range r.runs {
		b = be.AppendUint64(b, t.index)
		b = be.AppendUint64(b, t.term)
	}
	return b
}

// decodeRaftSection parses exactly b as a replication section of a seal
// describing dataSize bytes of segment; counts are checked against the
// bytes present before anything is allocated.
func decodeRaftSection(b []byte, dataSize int64) (*raftSection, error) {
	if len(b) < raftSectionHeader {
		return nil, fmt.Errorf("%w: replication section too short", errBadIndex)
	}
	be := binary.BigEndian
	r := &raftSection{firstIndex: be.Uint64(b), prevTerm: be.Uint64(b[8:]), nextIndex: be.Uint64(b[16:]),
		hasHeader: be.Uint32(b[24:])&1 != 0}
	if be.Uint32(b[24:])&^1 != 0 {
		return nil, fmt.Errorf("%w: unknown replication section flags %#x", errBadIndex, be.Uint32(b[24:]))
	}
	nRidx, nRuns := int64(be.Uint32(b[28:])), int64(be.Uint32(b[32:]))
	if raftSectionHeader+nRidx*ridxEntrySize+nRuns*termRunSize != int64(len(b)) || r.nextIndex < r.firstIndex {
		return nil, fmt.Errorf("%w: replication section counts do not match its size", errBadIndex)
	}
	p := raftSectionHeader
	r.ridx = make([]idxEntry, nRidx)
	for k := range r.ridx {
		r.ridx[k] = idxEntry{rel: be.Uint32(b[p:]), pos: be.Uint32(b[p+4:])}
		p += ridxEntrySize
		if int64(r.ridx[k].pos) >= dataSize || uint64(r.ridx[k].rel) >= r.nextIndex-r.firstIndex ||
			(k > 0 && (r.ridx[k].rel <= r.ridx[k-1].rel || r.ridx[k].pos <= r.ridx[k-1].pos)) {
			return nil, fmt.Errorf("%w: raft index entry %d out of order", errBadIndex, k)
		}
	}
	r.runs = make([]termRun, nRuns)
	for k := range r.runs {
		r.runs[k] = termRun{index: be.Uint64(b[p:]), term: be.Uint64(b[p+8:])}
		p += termRunSize
		if r.runs[k].index < r.firstIndex || r.runs[k].index >= r.nextIndex ||
			(k > 0 && (r.runs[k].index <= r.runs[k-1].index || r.runs[k].term <= r.runs[k-1].term)) {
			return nil, fmt.Errorf("%w: term run %d out of order", errBadIndex, k)
		}
	}
	if (r.nextIndex > r.firstIndex) != (len(r.runs) > 0) || (len(r.runs) > 0 && r.runs[0].index != r.firstIndex) {
		return nil, fmt.Errorf("%w: term runs do not cover the segment", errBadIndex)
	}
	return r, nil
}

// segReader reads a segment's batches in order from a position, in chunks.
type segReader struct {
	l       *Log
	s       *segment
	pos     int64 // position of the next batch
	size    int64 // bytes of the segment to read
	buf     []byte
	bufPos  int64
	maxSize int
}

const segReadChunk = 64 << 10

func (l *Log) newSegReader(s *segment, pos int64) *segReader {
	return &segReader{l: l, s: s, pos: pos, size: s.size.Load(), maxSize: l.opts.Limits.MaxBatchBytes}
}

// next returns the next whole batch (checked: length and CRC), aliasing
// the reader's buffer until the following call, or io.EOF at the end.
func (r *segReader) next() ([]byte, error) {
	if r.pos >= r.size {
		return nil, io.EOF
	}
	if err := r.fill(batch.LengthPrefix); err != nil {
		return nil, err
	}
	total := batchTotal(r.buf[r.pos-r.bufPos:])
	if total < batch.HeaderSize || total > r.maxSize || r.pos+int64(total) > r.size {
		return nil, r.corrupt("bad batch length")
	}
	if err := r.fill(total); err != nil {
		return nil, err
	}
	b := r.buf[r.pos-r.bufPos : r.pos-r.bufPos+int64(total)]
	if batch.CRC(b) != binary.BigEndian.Uint32(b[17:21]) {
		return nil, r.corrupt("CRC mismatch")
	}
	r.pos += int64(total)
	return b, nil
}

// fill makes the buffer hold n bytes from r.pos (n is within the segment).
func (r *segReader) fill(n int) error {
	if r.buf != nil && r.pos >= r.bufPos && r.pos+int64(n) <= r.bufPos+int64(len(r.buf)) {
		return nil
	}
	want := int(min(int64(max(n, segReadChunk)), r.size-r.pos))
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	if _, err := r.s.f.ReadAt(r.buf, r.pos); err != nil && !errors.Is(err, io.EOF) {
		return r.l.readErr(r.s, r.pos, err)
	}
	r.bufPos = r.pos
	return nil
}

func (r *segReader) corrupt(reason string) error {
	return &CorruptionError{Segment: r.s.base, Path: r.s.logPath, Position: r.pos, Reason: reason}
}
