package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/spoolmq/spool/internal/batch"
)

// Read returns whole batches starting with the one that contains offset,
// up to maxBytes in total but always at least one batch (so a reader makes
// progress past a batch larger than maxBytes). It reads from one segment
// only; callers loop. Every returned batch's CRC is checked: damage is a
// *CorruptionError, never silently served.
//
// Reading at EndOffset returns (nil, nil). An offset below StartOffset or
// above EndOffset is an *OffsetOutOfRangeError. The returned slice belongs
// to the caller.
func (l *Log) Read(offset int64, maxBytes int) ([]byte, error) {
	data, err := l.ReadInto(nil, offset, maxBytes)
	return data[:len(data):len(data)], err
}

// ReadInto is Read into buf's memory when it is large enough (else into a
// new buffer): the result aliases buf then, and its capacity is the whole
// buffer's, so that a caller recycling buffers can keep the larger one.
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int) ([]byte, error) {
	end := l.readable()
	if offset == end && offset >= l.start.Load() {
		return nil, nil
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	start := l.start.Load()
	if offset < start || offset > end {
		return nil, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	if i < 0 {
		return nil, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	s := l.segs[i]
	if offset >= s.next.Load() {
		// offset is the end of this segment: it starts the next one.
		if i+1 >= len(l.segs) {
			return nil, nil
		}
		s = l.segs[i+1]
	}
	pos, err := l.seek(s, offset, end)
	if err != nil || pos < 0 {
		return nil, err
	}
	return l.collect(s, pos, end, maxBytes, buf)
}

// seekChunk is how much of a segment seek reads at once: the index has an
// entry every IndexInterval (4 KiB by default) bytes, so one read usually
// holds every batch header between the entry and the batch sought.
const seekChunk = 8 << 10

var seekBufs = sync.Pool{New: func() any { b := make([]byte, seekChunk); return &b }}

// seek returns the position of the batch containing offset in s, starting
// from the sparse index and stepping over batch headers, or -1 if no batch
// below end contains it. It reads the segment in chunks, not header by
// header: a reader following the tail of a log of small batches would
// otherwise make a system call for each batch it steps over.
func (l *Log) seek(s *segment, offset, end int64) (int64, error) {
	pos := floorOff(*s.offs.Load(), uint32(offset-s.base))
	size := s.size.Load()
	bp := seekBufs.Get().(*[]byte)
	defer seekBufs.Put(bp)
	var chunk []byte // the segment's bytes from chunkPos
	chunkPos := int64(-1)
	for pos < size {
		if chunkPos < 0 || pos+27 > chunkPos+int64(len(chunk)) {
			n := min(int64(len(*bp)), size-pos)
			if n < 27 {
				return -1, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos, Offset: offset, Reason: "bad batch length"}
			}
			chunk, chunkPos = (*bp)[:n], pos
			if _, err := s.f.ReadAt(chunk, pos); err != nil {
				return -1, l.readErr(s, pos, err)
			}
		}
		hdr := chunk[pos-chunkPos:]
		base := int64(binary.BigEndian.Uint64(hdr[0:]))
		total := batchTotal(hdr)
		last := base + int64(int32(binary.BigEndian.Uint32(hdr[23:])))
		if base >= end {
			return -1, nil
		}
		if total < batch.HeaderSize || pos+int64(total) > size {
			return -1, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos, Offset: offset, Reason: "bad batch length"}
		}
		if last >= offset {
			return pos, nil
		}
		pos += int64(total)
	}
	return -1, nil
}

// collect reads batches from pos while they are below end and fit in
// maxBytes (the first always counts).
func (l *Log) collect(s *segment, pos, end int64, maxBytes int, buf []byte) ([]byte, error) {
	size := s.size.Load()
	n := min(int64(max(maxBytes, batch.HeaderSize)), size-pos)
	buf = sized(buf, int(n))
	if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
		return nil, l.readErr(s, pos, err)
	}
	if total := batchTotal(buf); total > len(buf) && pos+int64(total) <= size {
		// The first batch is larger than maxBytes: return it whole.
		buf = sized(buf, total)
		if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, l.readErr(s, pos, err)
		}
	}
	p := 0
	for p+batch.HeaderSize <= len(buf) {
		b := buf[p:]
		total := batchTotal(b)
		if total < batch.HeaderSize || total > len(b) {
			if total < batch.HeaderSize || pos+int64(p+total) > size {
				return nil, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos + int64(p), Offset: int64(binary.BigEndian.Uint64(b)), Reason: "bad batch length"}
			}
			break // the rest does not fit in maxBytes
		}
		if int64(binary.BigEndian.Uint64(b)) >= end {
			break
		}
		if batch.CRC(b[:total]) != binary.BigEndian.Uint32(b[17:21]) {
			return nil, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos + int64(p), Offset: int64(binary.BigEndian.Uint64(b)), Reason: "CRC mismatch"}
		}
		if l.opts.Replicated && isInternal(b[:total]) {
			// Readers see data batches only: move the rest over it.
			buf = buf[:p+copy(b, b[total:])]
			pos += int64(total)
			continue
		}
		p += total
	}
	if p == 0 {
		return nil, nil
	}
	return buf[:p], nil
}

// sized returns buf resized to n bytes, reallocated if too small.
func sized(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

func (l *Log) readErr(s *segment, pos int64, err error) error {
	return fmt.Errorf("seglog: read segment %d at %d: %w", s.base, pos, err)
}

// OffsetForTime returns the offset of the first record whose timestamp is
// at or after ts (milliseconds since the epoch), and true; or EndOffset and
// false if there is none.
func (l *Log) OffsetForTime(ts int64) (int64, bool, error) {
	end := l.readable()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.segs {
		if s.maxTS.Load() < ts || s.base >= end {
			continue
		}
		rel := floorTime(*s.times.Load(), ts)
		pos := floorOff(*s.offs.Load(), rel)
		size := s.size.Load()
		var hdr [batch.HeaderSize]byte
		for pos < size {
			if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
				return 0, false, l.readErr(s, pos, err)
			}
			h, err := batch.ParseHeader(hdr[:])
			if err != nil {
				return 0, false, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos, Reason: "bad batch header", Err: err}
			}
			if h.BaseOffset >= end {
				break
			}
			if h.MaxTimestamp >= ts && !(l.opts.Replicated && h.Attributes&AttrInternal != 0) {
				return max(l.offsetInBatch(s, pos, h, ts), l.start.Load()), true, nil
			}
			if h.Size() < batch.HeaderSize {
				return 0, false, &CorruptionError{Segment: s.base, Path: s.logPath, Position: pos, Reason: "bad batch length"}
			}
			pos += int64(h.Size())
		}
	}
	return end, false, nil
}

// OffsetOfMaxTimestamp returns the largest record timestamp below the end
// offset and the offset of the first record carrying it, and true; false
// if the log holds no readable record.
func (l *Log) OffsetOfMaxTimestamp() (offset, ts int64, ok bool, err error) {
	end := l.readable()
	ts = -1
	l.segMu.RLock()
	for _, s := range l.segs {
		if s.base < end && s.maxTS.Load() > ts {
			ts = s.maxTS.Load()
		}
	}
	l.segMu.RUnlock()
	if ts < 0 {
		return -1, -1, false, nil
	}
	off, ok, err := l.OffsetForTime(ts)
	if err != nil || !ok {
		return -1, -1, false, err
	}
	return off, ts, true, nil
}

// offsetInBatch finds the first record with timestamp >= ts inside a batch
// whose max timestamp is >= ts; if the records cannot be decoded it answers
// with the batch's base offset.
func (l *Log) offsetInBatch(s *segment, pos int64, h batch.Header, ts int64) int64 {
	if h.HasLogAppendTime() || h.NumRecords <= 1 {
		return h.BaseOffset
	}
	buf := make([]byte, h.Size())
	if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
		return h.BaseOffset
	}
	found, ok := h.BaseOffset, false
	for r, err := range (batch.Batch{Header: h, Bytes: buf}).Records(l.opts.Limits.MaxDecompressedBytes) {
		if err != nil {
			return h.BaseOffset // the whole batch must decode, not only the records up to ts
		}
		if !ok && h.RecordTimestamp(r) >= ts {
			found, ok = h.RecordOffset(r), true
		}
	}
	return found
}
