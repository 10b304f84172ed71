package seglog

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/vfs"
)

const (
	logSuffix   = ".log"
	indexSuffix = ".index"
	tmpSuffix   = ".tmp"
)

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base offset of a "<20 digits>.log" or
// ".index" file name.
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// segment is one file of the log. The fields published with atomics are
// written only by the log's writer (or by Open/TruncateAfter while the
// writer is idle) and read by readers without locks.
type segment struct {
	base    int64
	logPath string
	idxPath string
	f       vfs.File

	size  atomic.Int64 // bytes of valid batches written to f
	next  atomic.Int64 // offset after the last batch written
	maxTS atomic.Int64 // largest batch max timestamp, -1 if none

	offs  atomic.Pointer[[]offEntry]  // sparse offset index; append-only, published by copy of the slice header
	times atomic.Pointer[[]timeEntry] // sparse time index, same discipline

	// Replicated logs only (raftindex.go). firstIndex and prevTerm are set
	// before the segment is published in the log's list and not changed
	// after; the rest is published like offs.
	firstIndex uint64                     // raft index of the segment's first entry
	prevTerm   uint64                     // term of the entry before it
	nextIndex  atomic.Uint64              // index after the last entry written
	hasHeader  atomic.Bool                // the segment header is written
	ridx       atomic.Pointer[[]idxEntry] // sparse raft index
	runs       atomic.Pointer[[]termRun]  // where each term starts in the segment
	lastRidx   int64                      // writer-only: position of the last ridx entry, -1 if none

	// Writer-only state.
	created     time.Time // when the segment became active, for SegmentAge
	lastIdxPos  int64     // position of the last offset entry, -1 if none
	lastIdxTS   int64     // timestamp of the last time entry
	hasIndexOld bool      // an index file exists on disk for this segment
}

func newSegment(dir string, base int64, f vfs.File) *segment {
	s := &segment{
		base:       base,
		logPath:    filepath.Join(dir, segmentName(base)+logSuffix),
		idxPath:    filepath.Join(dir, segmentName(base)+indexSuffix),
		f:          f,
		lastIdxPos: -1,
		lastIdxTS:  -1,
		lastRidx:   -1,
	}
	s.next.Store(base)
	s.maxTS.Store(-1)
	s.offs.Store(&[]offEntry{})
	s.times.Store(&[]timeEntry{})
	s.ridx.Store(&[]idxEntry{})
	s.runs.Store(&[]termRun{})
	return s
}

// track records a batch written at pos, adding index entries every interval
// bytes. Called by the single writer; readers see the entries through the
// atomic slice pointers.
func (s *segment) track(pos int64, base, last, maxTS int64, size int, interval int) {
	if last < base {
		// An internal batch of a replicated log: it takes no offset and
		// gets no index entry (entries point at data batches only).
		s.size.Store(pos + int64(size))
		return
	}
	if s.lastIdxPos < 0 || pos-s.lastIdxPos >= int64(interval) {
		offs := append(*s.offs.Load(), offEntry{rel: uint32(base - s.base), pos: uint32(pos)})
		s.offs.Store(&offs)
		s.lastIdxPos = pos
		if run := max(s.maxTS.Load(), maxTS); run > s.lastIdxTS {
			times := append(*s.times.Load(), timeEntry{ts: run, rel: uint32(base - s.base)})
			s.times.Store(&times)
			s.lastIdxTS = run
		}
	}
	if maxTS > s.maxTS.Load() {
		s.maxTS.Store(maxTS)
	}
	s.next.Store(last + 1)
	s.size.Store(pos + int64(size))
}

// loadIndex installs a decoded index file.
func (s *segment) loadIndex(d *indexData) {
	offs, times := d.offs, d.times
	s.offs.Store(&offs)
	s.times.Store(&times)
	if d.raft != nil {
		s.loadRaft(d.raft)
	}
	s.size.Store(d.dataSize)
	s.next.Store(d.next)
	s.maxTS.Store(d.maxTS)
	s.lastIdxPos = -1
	if len(offs) > 0 {
		s.lastIdxPos = int64(offs[len(offs)-1].pos)
	}
	s.lastIdxTS = -1
	if len(times) > 0 {
		s.lastIdxTS = times[len(times)-1].ts
	}
}

func (s *segment) indexData(replicated bool) *indexData {
	var r *raftSection
	if replicated {
		r = s.raftData()
	}
	return &indexData{
		raft:     r,
		base:     s.base,
		dataSize: s.size.Load(),
		next:     s.next.Load(),
		maxTS:    s.maxTS.Load(),
		offs:     *s.offs.Load(),
		times:    *s.times.Load(),
	}
}
