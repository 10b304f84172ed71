package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/spoolmq/spool/internal/batch"
)

// A replicated log (Options.Replicated) is a raft group's log: each batch
// is one raft entry, and raft indexes count batches. A data entry is a
// record batch whose partition leader epoch is the entry's term; any other
// entry is an internal batch that takes no offset (internal.go), which
// readers of records never see. Each segment starts with a segment header
// naming the raft index of its first entry and the term of the entry
// before it, so that it stands alone once retention deleted its
// predecessors. See docs/format/segment.md.
//
// The raft methods (FirstIndex, LastIndex, Term, ScanEntries) answer from
// what the writer has written (durable under the policy); NextIndex and
// NextOffset include what is queued.

// Entry is one raft entry of a replicated log.
type Entry struct {
	Index    uint64 // set by ScanEntries; ignored by SubmitEntries
	Term     uint64 // 1 … math.MaxInt32 (it is stored in a 32-bit field)
	Internal bool   // Data is an internal entry's payload; otherwise one record batch
	Data     []byte
}

var (
	// ErrIndexCompacted is returned for raft indexes below the log's first
	// index (retention deleted them).
	ErrIndexCompacted = errors.New("seglog: raft index compacted")
	// ErrIndexUnavailable is returned for raft indexes after the last
	// entry written.
	ErrIndexUnavailable = errors.New("seglog: raft index unavailable")
	// ErrBadEntry is matched by every refusal of SubmitEntries.
	ErrBadEntry = errors.New("seglog: bad raft entry")
)

// SubmitEntries queues ents as the entries with indexes first, first+1, …
// (first must be NextIndex: truncate a conflicting suffix with
// TruncateAfterIndex first). Data batches are validated and get their
// offsets and their term as epoch; terms must not decrease. It returns at
// once: the Pending completes when every entry is durable under the
// policy. ents is not retained.
func (l *Log) SubmitEntries(first uint64, ents []Entry) (*Pending, error) {
	if !l.opts.Replicated {
		return nil, ErrNotReplicated
	}
	if len(ents) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrBadEntry)
	}
	metas := make([]batchMeta, 0, len(ents))
	n := 0
	for k, e := range ents {
		if e.Term == 0 || e.Term > math.MaxInt32 || (k > 0 && e.Term < ents[k-1].Term) {
			return nil, fmt.Errorf("%w: entry %d has term %d", ErrBadEntry, first+uint64(k), e.Term)
		}
		m, err := l.entryMeta(e)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrBadEntry, first+uint64(k), err)
		}
		metas = append(metas, m)
		n += m.size
	}
	check := func() error {
		if first != l.nextIndex || ents[0].Term < l.lastTerm {
			return fmt.Errorf("%w: entries from %d (term %d) do not follow index %d (term %d)",
				ErrBadEntry, first, ents[0].Term, l.nextIndex-1, l.lastTerm)
		}
		return nil
	}
	return l.queueAndFlush(n, metas, false, check)
}

// entryMeta checks one entry and describes the batch that stores it.
func (l *Log) entryMeta(e Entry) (batchMeta, error) {
	if !e.Internal {
		h, err := batch.Validate(e.Data, l.opts.Limits)
		if err != nil {
			return batchMeta{}, err
		}
		if h.Attributes&AttrInternal != 0 {
			return batchMeta{}, errors.New("a record batch sets the internal attribute bit")
		}
		return batchMeta{last: int64(h.LastOffsetDelta), maxTS: h.MaxTimestamp, size: len(e.Data), src: e.Data, kind: kindData, term: e.Term}, nil
	}
	if len(e.Data) > l.opts.Limits.MaxBatchBytes-internalPrefix {
		return batchMeta{}, fmt.Errorf("internal entry of %d bytes exceeds the batch limit %d", len(e.Data), l.opts.Limits.MaxBatchBytes)
	}
	b := appendInternal(make([]byte, 0, internalPrefix+len(e.Data)), kindEntry, int32(e.Term), e.Data)
	return batchMeta{last: -1, maxTS: -1, size: len(b), src: b, kind: kindEntry, term: e.Term}, nil
}

// trackEntry records a written batch in the segment's raft index.
func (l *Log) trackEntry(s *segment, pos int64, m batchMeta) {
	if m.kind == kindHeader {
		s.hasHeader.Store(true)
		return
	}
	s.trackRaft(pos, m.term, m.size, l.opts.IndexInterval)
}

// scanEntry checks one batch of a replicated segment at recovery and
// tracks it; it returns why the batch is bad, or "".
func (l *Log) scanEntry(s *segment, b []byte, pos, expect int64, lim batch.Limits) (string, error) {
	if base := int64(be64(b)); base != expect {
		return fmt.Sprintf("batch has offset %d", base), nil
	}
	term := epochOf(b)
	if !isInternal(b) {
		h, err := batch.Validate(b, lim)
		if err != nil {
			return "invalid batch", err
		}
		if bad := checkEntryTerm(s, term); bad != "" {
			return bad, nil
		}
		s.track(pos, h.BaseOffset, h.LastOffset(), h.MaxTimestamp, len(b), l.opts.IndexInterval)
		s.trackRaft(pos, term, len(b), l.opts.IndexInterval)
		return "", nil
	}
	kind, err := checkInternal(b)
	if err != nil {
		return "invalid internal batch", err
	}
	if kind == kindHeader {
		if pos != 0 {
			return "segment header inside a segment", nil
		}
		s.firstIndex, s.prevTerm = be64(b[internalPrefix:]), be64(b[internalPrefix+8:])
		s.nextIndex.Store(s.firstIndex)
		s.hasHeader.Store(true)
	} else if bad := checkEntryTerm(s, term); bad != "" {
		return bad, nil
	}
	s.track(pos, expect, expect-1, -1, len(b), l.opts.IndexInterval)
	if kind == kindEntry {
		s.trackRaft(pos, term, len(b), l.opts.IndexInterval)
	}
	return "", nil
}

// checkEntryTerm says why an entry of term term cannot come next in s.
func checkEntryTerm(s *segment, term uint64) string {
	if !s.hasHeader.Load() {
		return "entry before the segment header"
	}
	if term == 0 || term < s.lastTerm() {
		return fmt.Sprintf("entry of term %d after term %d", term, s.lastTerm())
	}
	return ""
}

// checkFollows checks that segment s starts where prev ends in raft terms.
func checkFollows(prev, s *segment) error {
	if prev.nextIndex.Load() == s.firstIndex && prev.lastTerm() == s.prevTerm {
		return nil
	}
	return &CorruptionError{Segment: s.base, Path: s.logPath, Offset: prev.next.Load(),
		Reason: fmt.Sprintf("segment starts at raft index %d (previous term %d) but the previous segment ends at %d (term %d)",
			s.firstIndex, s.prevTerm, prev.nextIndex.Load(), prev.lastTerm())}
}

// NextIndex returns the raft index the next submitted entry gets.
func (l *Log) NextIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nextIndex
}

// NextOffset returns the offset the next data record gets, counting every
// queued entry: a leader assigns a proposal's offsets from it (plus what it
// proposed since its last submission).
func (l *Log) NextOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// FirstIndex returns the index of the log's first entry (which may not be
// written yet: then LastIndex is FirstIndex−1).
func (l *Log) FirstIndex() uint64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0
	}
	return l.segs[0].firstIndex
}

// LastIndex returns the index of the last entry written.
func (l *Log) LastIndex() uint64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0
	}
	return l.segs[len(l.segs)-1].nextIndex.Load() - 1
}

// Term returns the term of entry i, for i from FirstIndex−1 to LastIndex.
func (l *Log) Term(i uint64) (uint64, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0, ErrClosed
	}
	first := l.segs[0]
	switch {
	case i+1 < first.firstIndex:
		return 0, ErrIndexCompacted
	case i+1 == first.firstIndex:
		return first.prevTerm, nil
	case i >= l.segs[len(l.segs)-1].nextIndex.Load():
		return 0, ErrIndexUnavailable
	}
	return l.segs[l.segOfIndex(i)].termOf(i), nil
}

// segOfIndex returns the position in segs of the segment holding entry i
// (which the log holds). segMu is held.
func (l *Log) segOfIndex(i uint64) int {
	k := sort.Search(len(l.segs), func(k int) bool { return l.segs[k].firstIndex > i }) - 1
	for k > 0 && l.segs[k].nextIndex.Load() <= i {
		k-- // an empty segment shares its first index with its successor's start
	}
	return max(k, 0)
}

// ScanEntries calls fn with the entries from index lo (at least FirstIndex)
// to hi (exclusive; at most LastIndex+1) in order, until fn returns false.
// An entry's Data is the caller's. Damage is a *CorruptionError.
func (l *Log) ScanEntries(lo, hi uint64, fn func(Entry) bool) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return ErrClosed
	}
	if lo < l.segs[0].firstIndex {
		return ErrIndexCompacted
	}
	if hi > l.segs[len(l.segs)-1].nextIndex.Load() {
		return ErrIndexUnavailable
	}
	for k := l.segOfIndex(lo); lo < hi && k < len(l.segs); k++ {
		more, err := l.scanSegment(l.segs[k], &lo, hi, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// scanSegment is ScanEntries over one segment; it advances *lo.
func (l *Log) scanSegment(s *segment, lo *uint64, hi uint64, fn func(Entry) bool) (bool, error) {
	end := s.nextIndex.Load()
	pos, at := s.floorIndex(*lo)
	r := l.newSegReader(s, pos)
	for *lo < hi && at < end {
		b, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, err
		}
		if isInternal(b) && b[batch.HeaderSize] == kindHeader {
			continue
		}
		if at == *lo {
			if !fn(entryOf(at, b)) {
				return false, nil
			}
			*lo++
		}
		at++
	}
	return true, nil
}

// entryOf copies a stored batch into an Entry.
func entryOf(i uint64, b []byte) Entry {
	e := Entry{Index: i, Term: epochOf(b)}
	if isInternal(b) {
		e.Internal = true
		e.Data = append([]byte(nil), b[internalPrefix:]...)
	} else {
		e.Data = append([]byte(nil), b...)
	}
	return e
}

// locateIndex returns the position of entry i in s and the base offset its
// batch carries (the offset the next data record after the cut gets).
func (l *Log) locateIndex(s *segment, i uint64) (int64, int64, error) {
	pos, at := s.floorIndex(i)
	r := l.newSegReader(s, pos)
	for {
		p := r.pos
		b, err := r.next()
		if errors.Is(err, io.EOF) {
			return 0, 0, fmt.Errorf("seglog: entry %d not found in segment %d", i, s.base)
		}
		if err != nil {
			return 0, 0, err
		}
		if isInternal(b) && b[batch.HeaderSize] == kindHeader {
			continue
		}
		if at == i {
			return p, int64(binary.BigEndian.Uint64(b)), nil
		}
		at++
	}
}

// TruncateAfterIndex removes every entry after index i, so that the next
// entry submitted gets index i+1 (raft overwriting a conflicting suffix).
// i must be at least FirstIndex−1. It waits for queued entries to be
// written first and holds new ones back while it works; a failure on the
// way is sticky.
func (l *Log) TruncateAfterIndex(i uint64) error {
	if !l.opts.Replicated {
		return ErrNotReplicated
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.truncating = true
	l.waitIdleLocked()
	defer func() {
		l.truncating = false
		l.cond.Broadcast()
	}()
	if l.err != nil {
		return l.err
	}
	if i+1 == l.nextIndex {
		return nil
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if i+1 > l.nextIndex || i+1 < l.segs[0].firstIndex {
		return fmt.Errorf("seglog: truncation after index %d outside [%d, %d]: %w", i, l.segs[0].firstIndex-1, l.nextIndex-1, ErrIndexCompacted)
	}
	k := l.segOfIndex(i + 1)
	s := l.segs[k]
	pos, newEnd, err := l.locateIndex(s, i+1)
	if err != nil {
		return err
	}
	return l.cutLocked(k, pos, newEnd)
}

// SetRetentionFloor makes retention (by age or bytes, DropOldestSegment,
// DropSegmentsBefore, DeleteRecordsBefore) keep every segment that holds
// an entry after index: a raft group sets it to the index its state
// machine has applied and recorded as its snapshot, so that nothing it
// would need at its next start is deleted. Until it is set, retention is
// not held back.
func (l *Log) SetRetentionFloor(index uint64) { l.floor.Store(index) }

// LastSealedIndex returns the last entry of the log's sealed segments (the
// active segment's first index − 1): retention can delete nothing more
// until the floor reaches it.
func (l *Log) LastSealedIndex() uint64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0
	}
	return l.segs[len(l.segs)-1].firstIndex - 1
}

// OffsetAfterIndex returns the offset of the first data record after entry
// i: the read limit of a partition whose entries up to i are committed.
// For i at or after the last entry written it is the offset after every
// written record; i must be at least FirstIndex−1.
func (l *Log) OffsetAfterIndex(i uint64) (int64, error) {
	if !l.opts.Replicated {
		return 0, ErrNotReplicated
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0, ErrClosed
	}
	if i+1 < l.segs[0].firstIndex {
		return 0, ErrIndexCompacted
	}
	last := l.segs[len(l.segs)-1]
	if i+1 >= last.nextIndex.Load() {
		return last.next.Load(), nil
	}
	s := l.segs[l.segOfIndex(i+1)]
	_, off, err := l.locateIndex(s, i+1)
	return off, err
}

// Replicated reports whether the log is a raft log (Options.Replicated).
func (l *Log) Replicated() bool { return l.opts.Replicated }
