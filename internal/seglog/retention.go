package seglog

import (
	"fmt"
	"github.com/spoolmq/spool/internal/crashpoint"
	"sort"
	"time"

	"github.com/spoolmq/spool/internal/vfs"
)

// EnforceRetention deletes whole sealed segments that are older than
// RetentionAge (judged by their newest timestamp) or that the log can do
// without and still hold RetentionBytes. The active segment is never
// deleted. It returns the number of segments deleted. The log's start
// offset moves before any file is removed, so readers never see a hole.
func (l *Log) EnforceRetention() (int, error) {
	retAge, retBytes := l.retentionSettings()
	if retAge <= 0 && retBytes <= 0 {
		return 0, nil
	}
	l.retentionMu.Lock()
	defer l.retentionMu.Unlock()
	if err := l.Err(); err != nil {
		return 0, err
	}
	now := l.opts.Clock.Now()

	l.segMu.Lock()
	var total int64
	for _, s := range l.segs {
		total += s.size.Load()
	}
	var victims []*segment
	for len(l.segs) > 1 && l.canDropFirst() {
		s := l.segs[0]
		size := s.size.Load()
		byAge := retAge > 0 && now.Sub(time.UnixMilli(s.maxTS.Load())) > retAge
		bySize := retBytes > 0 && total-size >= retBytes
		if !byAge && !bySize {
			break
		}
		victims = append(victims, s)
		l.segs[0] = nil
		l.segs = l.segs[1:]
		total -= size
	}
	if len(victims) > 0 {
		l.raiseStart(l.segs[0].base)
	}
	l.segMu.Unlock()
	if len(victims) == 0 {
		return 0, nil
	}
	return len(victims), l.removeSegments(victims)
}

// removeSegments deletes segments' files, oldest first, index before log
// (so that a crash in between leaves a segment that is scanned rather than a
// dangling index), syncing the directory after each segment so that what is
// gone is always a prefix of the log. A failure is sticky: the files left
// behind reappear at the next Open, and until then the log refuses writes
// and further deletions.
func (l *Log) removeSegments(victims []*segment) error {
	for i, s := range victims {
		s.f.Close()
		err := func() error {
			if s.hasIndexOld {
				if err := l.fs.Remove(s.idxPath); err != nil {
					return err
				}
			}
			crashpoint.Hit(crashpoint.SeglogRetentionDelete)
			if err := l.fs.Remove(s.logPath); err != nil {
				return err
			}
			return vfs.SyncDir(l.fs, l.dir)
		}()
		if err != nil {
			for _, rest := range victims[i+1:] {
				rest.f.Close()
			}
			// The files on disk no longer match the in-memory log; deleting
			// newer segments later would leave a hole. Fail-stop.
			return l.fail("retention", fmt.Errorf("delete segment %d: %w", s.base, err))
		}
		l.opts.Hooks.OnDelete(s.base, s.size.Load())
	}
	return nil
}

// TruncateAfter removes every record after offset, so that EndOffset
// becomes offset+1. offset+1 must be the first offset of a batch (or the
// current end, which makes the call a no-op); otherwise it returns
// ErrNotBatchBoundary and changes nothing. It waits for queued appends to
// finish and holds new ones back while it works. Used by replication to
// drop an uncommitted suffix.
func (l *Log) TruncateAfter(offset int64) error {
	if l.opts.Replicated {
		return ErrReplicated
	}
	newEnd := offset + 1
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
	if newEnd == l.next {
		return nil
	}
	if newEnd > l.next || newEnd < l.start.Load() {
		return &OffsetOutOfRangeError{Offset: offset, Start: l.start.Load() - 1, End: l.next - 1}
	}

	l.segMu.Lock()
	defer l.segMu.Unlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > newEnd }) - 1
	if i > 0 && l.segs[i].base == newEnd {
		i-- // the cut is exactly at a segment boundary: keep the previous one whole
	}
	s := l.segs[i]
	var pos int64
	if newEnd == s.next.Load() {
		pos = s.size.Load()
	} else {
		p, err := l.seek(s, newEnd, l.next)
		if err != nil {
			return err
		}
		if p < 0 || !l.startsBatchAt(s, p, newEnd) {
			return ErrNotBatchBoundary
		}
		pos = p
	}
	return l.cutLocked(i, pos, newEnd)
}

// cutLocked truncates segment i of the log to pos bytes and deletes every
// later segment; newEnd is the offset after what remains. mu and segMu are
// held and the writer is idle. Failures are sticky.
func (l *Log) cutLocked(i int, pos, newEnd int64) error {
	s := l.segs[i]
	victims := append([]*segment(nil), l.segs[i+1:]...)
	for j := len(victims) - 1; j >= 0; j-- {
		v := victims[j]
		v.f.Close()
		if v.hasIndexOld {
			if err := l.fs.Remove(v.idxPath); err != nil {
				return l.failLocked("truncate", err)
			}
		}
		if err := l.fs.Remove(v.logPath); err != nil {
			return l.failLocked("truncate", err)
		}
		// Newest first, each removal durable before the next change: a
		// crash leaves a prefix of the log, never a segment after a hole
		// or after a segment cut short.
		if err := vfs.SyncDir(l.fs, l.dir); err != nil {
			return l.failLocked("truncate", err)
		}
	}
	l.segs = l.segs[:i+1]
	if s.hasIndexOld {
		if err := l.fs.Remove(s.idxPath); err != nil {
			return l.failLocked("truncate", err)
		}
		s.hasIndexOld = false
	}
	if s != l.active {
		// A sealed segment becomes active again: reopen it for writing.
		f, err := l.fs.OpenReadWrite(s.logPath)
		if err != nil {
			return l.failLocked("truncate", err)
		}
		s.f.Close()
		s.f = f
	}
	if err := s.f.Truncate(pos); err != nil {
		return l.failLocked("truncate", err)
	}
	if err := s.f.Sync(); err != nil {
		return l.failLocked("truncate", err)
	}
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		return l.failLocked("truncate", err)
	}
	// Rebuild the segment's in-memory index from what remains.
	fresh := newSegment(l.dir, s.base, s.f)
	fresh.firstIndex, fresh.prevTerm = s.firstIndex, s.prevTerm
	fresh.nextIndex.Store(s.firstIndex)
	if _, err := l.scan(fresh, pos, false, &RecoveryReport{}); err != nil {
		return l.failLocked("truncate", err)
	}
	if l.opts.Replicated {
		s.loadRaft(fresh.raftData())
		l.nextIndex, l.lastTerm = s.nextIndex.Load(), s.lastTerm()
		l.needHeader = !s.hasHeader.Load()
	}
	s.offs.Store(fresh.offs.Load())
	s.times.Store(fresh.times.Load())
	s.lastIdxPos, s.lastIdxTS = fresh.lastIdxPos, fresh.lastIdxTS
	s.maxTS.Store(fresh.maxTS.Load())
	s.size.Store(pos)
	s.next.Store(newEnd)
	l.active = s
	l.dirty = false
	l.next = newEnd
	l.segLogical = pos
	l.segBase = s.base
	l.advance(newEnd)
	return nil
}

// startsBatchAt reports whether the batch at pos in s has base offset off.
func (l *Log) startsBatchAt(s *segment, pos, off int64) bool {
	var prefix [8]byte
	if _, err := s.f.ReadAt(prefix[:], pos); err != nil {
		return false
	}
	return int64(be64(prefix[:])) == off
}

// canDropFirst reports whether retention may delete the first segment:
// in a replicated log only once the next one's header is written, since a
// segment without a header learns its first raft index from its
// predecessor, and only if every entry it holds is at or below the
// retention floor (SetRetentionFloor). segMu is held.
func (l *Log) canDropFirst() bool {
	return !l.opts.Replicated || (l.segs[1].hasHeader.Load() && l.segs[0].nextIndex.Load()-1 <= l.floor.Load())
}

// failLocked records a sticky error with mu held.
func (l *Log) failLocked(op string, err error) error {
	if l.err != nil {
		return l.err
	}
	l.err = &StorageError{Op: op, Err: err}
	l.opts.Logger.Error("partition log failed; refusing writes", "dir", l.dir, "op", op, "err", err)
	return l.err
}

// DropOldestSegment deletes the oldest sealed segment regardless of
// retention settings (for topics bounded by message count or bytes with
// discard policy "old"). It reports false when only the active segment is
// left.
func (l *Log) DropOldestSegment() (bool, error) {
	l.retentionMu.Lock()
	defer l.retentionMu.Unlock()
	if err := l.Err(); err != nil {
		return false, err
	}
	l.segMu.Lock()
	if len(l.segs) < 2 || !l.canDropFirst() {
		l.segMu.Unlock()
		return false, nil
	}
	victim := l.segs[0]
	l.segs[0] = nil
	l.segs = l.segs[1:]
	l.raiseStart(l.segs[0].base)
	l.segMu.Unlock()
	return true, l.removeSegments([]*segment{victim})
}

// DropSegmentsBefore deletes sealed segments all of whose records are below
// offset (work-queue retention: everything below offset is consumed). It
// returns the number deleted; the active segment is never deleted.
func (l *Log) DropSegmentsBefore(offset int64) (int, error) {
	n := 0
	for {
		l.segMu.RLock()
		ok := len(l.segs) > 1 && l.segs[0].next.Load() <= offset
		l.segMu.RUnlock()
		if !ok {
			return n, nil
		}
		dropped, err := l.DropOldestSegment()
		if err != nil || !dropped {
			return n, err
		}
		n++
	}
}
