package seglog

import (
	"github.com/spoolmq/spool/internal/crashpoint"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

// Log is one partition's append-only log: a directory of segments, written
// by a single writer goroutine that batches concurrent appends into one write
// and one fsync (group commit).
//
// All methods are safe for concurrent use. Append blocks until the data is
// durable under the log's policy; readers never see data that is not.
type Log struct {
	dir  string
	fs   vfs.FS
	opts Options

	start atomic.Int64 // first readable offset
	end   atomic.Int64 // offsets below end are durable under the policy
	limit atomic.Int64 // and readable only below limit too (SetReadLimit; MaxInt64: none)

	// segMu guards segs. Readers hold it shared while they read a segment
	// file, so retention and truncation cannot close a file under them.
	segMu sync.RWMutex
	segs  []*segment // ordered by base; the last one is the active segment

	// mu guards the append queue and the writer's bookkeeping.
	mu           sync.Mutex
	cond         sync.Cond // signalled when queue space frees up or the writer goes idle
	queue        []*group  // groups waiting for the writer, oldest first
	open         *group    // the group accepting appends (last of queue), or nil
	next         int64     // next offset to assign
	pendingBytes int       // bytes in queue
	busy         bool      // someone holds the flush token (see "Group commit" in DESIGN.md)
	syncWanted   bool      // the interval ticker fired while the token was held
	segLogical   int64     // active segment size including queued bytes
	segCreated   time.Time // when the logical active segment started
	err          error     // sticky storage error; nil while healthy
	closed       bool      //
	truncating   bool      // TruncateAfter is waiting for the writer; appends wait
	freeBufs     [][]byte  // recycled group buffers
	segBase      int64     // base offset of the logical active segment

	// Replicated logs only, guarded by mu: the raft index after the last
	// queued entry, the term of that entry, and whether the next group
	// must start with a segment header.
	nextIndex  uint64
	lastTerm   uint64
	needHeader bool

	active *segment // writer-owned: the segment being appended to
	dirty  bool     // writer-owned: unsynced bytes in active (lazy policies)

	work       chan struct{} // wakes the writer; capacity 1
	quit       chan struct{} // closed by Close
	writerDone chan struct{} // closed when the writer exits

	notifyMu sync.Mutex
	notifyCh chan struct{} // closed and replaced whenever end advances

	retentionMu sync.Mutex // serializes retention passes

	retention atomic.Pointer[retentionLimits] // set by SetRetention; nil: opts

	// Replicated logs only: retention deletes no segment holding an entry
	// after floor (SetRetentionFloor; MaxUint64 until set), and snapshots
	// (snapshot.go) staged and finished, by transfer id, and the record
	// of the one installed last.
	floor    atomic.Uint64
	snapMu   sync.Mutex
	staged   map[uint64]SnapshotManifest
	snapMeta []byte
	strict   bool // a staged snapshot being checked: no torn tail is accepted
}

// group is one unit of group commit: batches with offsets already assigned,
// written with one Write and made durable with one Sync.
type group struct {
	buf        []byte
	metas      []batchMeta
	rollBefore bool          // start a new segment before writing this group
	done       chan struct{} // closed when the group is durable or failed
	err        error         // set before done is closed
}

type batchMeta struct {
	base, last, maxTS int64
	size              int
	src               []byte // the batch to copy (enqueue only)
	kind              byte   // replicated logs: kindData, kindHeader or kindEntry
	term              uint64 // replicated logs: the entry's term
}

// AppendResult describes where appended batches landed.
type AppendResult struct {
	BaseOffset int64 // offset of the first record appended
	LastOffset int64 // offset of the last record appended
}

// Append validates b, which must hold one or more whole record batches,
// assigns them consecutive offsets and returns once they are durable under
// the log's policy (for SyncAlways: fsynced). The batches' base offsets are
// rewritten; everything else is stored as given. b is not retained.
//
// If any batch fails validation Append returns the *batch.ValidationError
// and writes nothing. After a storage failure it returns the log's sticky
// *StorageError. It blocks while the writer's queue is full.
func (l *Log) Append(b []byte) (AppendResult, error) {
	p, err := l.submit(b, true)
	if err != nil {
		return AppendResult{}, err
	}
	return p.Wait()
}

// Pending is an append whose offsets are assigned and whose bytes are
// queued for the writer.
type Pending struct {
	g   *group
	res AppendResult
}

// Wait blocks until the append is durable under the log's policy (or
// failed) and returns its offsets.
func (p *Pending) Wait() (AppendResult, error) {
	<-p.g.done
	if p.g.err != nil {
		return AppendResult{}, p.g.err
	}
	return p.res, nil
}

// Done returns a channel closed when Wait would not block.
func (p *Pending) Done() <-chan struct{} { return p.g.done }

// Result returns the offsets assigned to the append (durable only once
// Wait returns nil).
func (p *Pending) Result() AppendResult { return p.res }

// Submit is Append without the wait: it validates b, assigns offsets and
// queues the bytes, then returns at once (the writer goroutine flushes
// them). Appends submitted one after another from one goroutine get
// increasing offsets, so a pipelining caller keeps its order while many
// appends share one fsync.
func (l *Log) Submit(b []byte) (*Pending, error) { return l.submit(b, false) }

// SubmitFlush is Submit for a caller that will wait at once: if no flush is
// in progress it writes (and syncs) the bytes itself before returning, so a
// lone appender pays no goroutine hand-off.
func (l *Log) SubmitFlush(b []byte) (*Pending, error) { return l.submit(b, true) }

func (l *Log) submit(b []byte, inline bool) (*Pending, error) {
	if l.opts.Replicated {
		return nil, ErrReplicated
	}
	var one [1]batchMeta
	metas := one[:0]
	for rest := b; len(rest) > 0; {
		var bb []byte
		var err error
		bb, rest, err = batch.Next(rest)
		if err != nil {
			return nil, err
		}
		h, err := batch.Validate(bb, l.opts.Limits)
		if err != nil {
			return nil, err
		}
		metas = append(metas, batchMeta{base: 0, last: int64(h.LastOffsetDelta), maxTS: h.MaxTimestamp, size: len(bb), src: bb})
	}
	if len(metas) == 0 {
		_, err := batch.Validate(nil, l.opts.Limits) // reports the empty input as a length failure
		return nil, err
	}
	return l.queueAndFlush(len(b), metas, inline, nil)
}

// queueAndFlush enqueues metas (total bytes n) and flushes or hands over
// the token if the caller took it. check, if set, runs under mu before
// anything is queued and may refuse the append.
func (l *Log) queueAndFlush(n int, metas []batchMeta, inline bool, check func() error) (*Pending, error) {
	g, res, leader, err := l.enqueue(n, metas, check)
	if err != nil {
		return nil, err
	}
	if leader {
		if inline {
			l.lead()
		} else {
			l.work <- struct{}{} // hand the token to the writer goroutine
		}
	}
	return &Pending{g: g, res: res}, nil
}

// enqueue copies validated batches (n bytes) into the open group,
// assigning offsets, and returns the last group that holds any of them,
// and whether the caller took the flush token (and must flush or hand it
// over).
func (l *Log) enqueue(n int, metas []batchMeta, check func() error) (*group, AppendResult, bool, error) {
	l.mu.Lock()
	for l.err == nil && !l.closed && (l.truncating || l.pendingBytes > 0 && l.pendingBytes+n > l.opts.MaxPendingBytes) {
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return nil, AppendResult{}, false, ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, AppendResult{}, false, err
	}
	if check != nil {
		if err := check(); err != nil {
			l.mu.Unlock()
			return nil, AppendResult{}, false, err
		}
	}
	res := AppendResult{BaseOffset: l.next}
	var now time.Time
	if l.opts.SegmentAge > 0 {
		now = l.opts.Clock.Now()
	}
	var g *group
	for _, m := range metas {
		roll := l.segLogical > 0 && (l.segLogical+int64(m.size) > l.opts.SegmentBytes ||
			(l.opts.SegmentAge > 0 && now.Sub(l.segCreated) >= l.opts.SegmentAge))
		if roll && l.opts.Replicated && l.next == l.segBase {
			roll = false // a segment without data would share its successor's name
		}
		header := l.opts.Replicated && (roll || l.needHeader)
		size := m.size
		if header {
			size += segHeaderSize
		}
		g = l.open
		if roll || g == nil || (len(g.buf) > 0 && len(g.buf)+size > l.opts.FlushBytes) {
			g = l.newGroupLocked(size)
			g.rollBefore = roll
			if roll {
				l.segLogical = 0
				l.segCreated = now
				l.segBase = l.next
			}
		}
		if header {
			// In the same group (so the same write) as the segment's first entry.
			h := segmentHeader(l.nextIndex, l.lastTerm)
			l.addLocked(g, batchMeta{last: -1, maxTS: -1, size: len(h), src: h, kind: kindHeader})
			l.needHeader = false
		}
		l.addLocked(g, m)
	}
	res.LastOffset = l.next - 1
	leader := !l.busy
	if leader {
		l.busy = true
	}
	l.mu.Unlock()
	return g, res, leader, nil
}

// addLocked copies one batch into g and assigns its offsets (and, in a
// replicated log, its raft index).
func (l *Log) addLocked(g *group, m batchMeta) {
	pos := len(g.buf)
	g.buf = append(g.buf, m.src...)
	m.src = nil
	batch.SetBaseOffset(g.buf[pos:], l.next)
	if m.kind == kindData && l.opts.Replicated {
		batch.SetPartitionLeaderEpoch(g.buf[pos:], int32(m.term))
	}
	if m.kind != kindHeader && l.opts.Replicated {
		l.nextIndex++
		l.lastTerm = m.term
	}
	m.base = l.next
	m.last += l.next
	g.metas = append(g.metas, m)
	l.next = m.last + 1
	l.segLogical += int64(m.size)
	l.pendingBytes += m.size
}

func (l *Log) newGroupLocked(size int) *group {
	var buf []byte
	if n := len(l.freeBufs); n > 0 {
		buf = l.freeBufs[n-1][:0]
		l.freeBufs = l.freeBufs[:n-1]
	} else {
		buf = make([]byte, 0, max(l.opts.FlushBytes, size))
	}
	g := &group{buf: buf, done: make(chan struct{})}
	l.queue = append(l.queue, g)
	l.open = g
	return g
}

// The flush token: exactly one goroutine at a time writes to the active
// segment. An appender that finds the token free takes it and flushes its own
// group itself (no goroutine hand-off on the latency path of a lone
// appender); if more groups queued up meanwhile it passes the token to the
// writer goroutine, which drains the queue and frees the token. While the
// token is held, whoever holds it flushes every queued group eventually.

// lead flushes the head group as the token holder, then frees the token or
// passes it to the writer goroutine.
func (l *Log) lead() {
	l.flushOne()
	l.mu.Lock()
	if len(l.queue) == 0 && !l.syncWanted {
		l.busy = false
		l.cond.Broadcast()
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.work <- struct{}{} // never blocks: at most one hand-off is outstanding
}

// run is the writer goroutine. It holds the token only between receiving a
// hand-off (or taking a free token for an interval sync) and draining the
// queue.
func (l *Log) run() {
	defer close(l.writerDone)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.work:
			l.drain()
		case <-tick:
			l.mu.Lock()
			if l.busy {
				l.syncWanted = true // the holder syncs before freeing the token
				l.mu.Unlock()
				continue
			}
			l.busy = true
			l.mu.Unlock()
			l.syncDirty()
			l.drain()
		case <-l.quit:
			return
		}
	}
}

// drain flushes queued groups as the token holder until the queue is empty,
// then frees the token.
func (l *Log) drain() {
	flushed := false
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			if l.syncWanted {
				l.syncWanted = false
				l.mu.Unlock()
				l.syncDirty()
				continue
			}
			l.busy = false
			l.cond.Broadcast()
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		if flushed {
			// The group just completed woke its waiters onto this
			// goroutine's processor. The next flush blocks this thread
			// in write and fdatasync with the processor still held, and
			// the runtime takes it back only after 20 µs or more (its
			// monitor's tick), so the waiters would sit behind the
			// fsync: let them run first.
			runtime.Gosched()
		}
		l.flushOne()
		flushed = true
	}
}

// flushOne writes the oldest queued group and completes it. The caller
// holds the token and the queue is not empty.
func (l *Log) flushOne() {
	l.mu.Lock()
	g := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	if l.open == g {
		l.open = nil
	}
	err := l.err
	l.mu.Unlock()

	if err == nil {
		err = l.flush(g)
	}
	g.err = err
	close(g.done)

	l.mu.Lock()
	l.pendingBytes -= len(g.buf)
	if len(l.freeBufs) < 4 && cap(g.buf) <= 4*l.opts.FlushBytes {
		l.freeBufs = append(l.freeBufs, g.buf)
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// flush writes one group to the active segment.
func (l *Log) flush(g *group) error {
	if g.rollBefore {
		if err := l.roll(); err != nil {
			return l.fail("roll", err)
		}
	}
	seg := l.active
	pos := seg.size.Load()
	t0 := time.Now()
	crashpoint.Hit(crashpoint.SeglogBeforeAppend)
	if _, err := seg.f.WriteAt(g.buf, pos); err != nil {
		l.opts.Hooks.OnFlush(len(g.buf), len(g.metas), time.Since(t0), 0, err)
		return l.fail("write", err)
	}
	t1 := time.Now()
	crashpoint.Hit(crashpoint.SeglogAfterAppend)
	if l.opts.Sync == SyncAlways {
		crashpoint.Hit(crashpoint.SeglogBeforeFsync)
		if err := seg.f.Sync(); err != nil {
			l.opts.Hooks.OnFlush(len(g.buf), len(g.metas), t1.Sub(t0), time.Since(t1), err)
			return l.fail("sync", err)
		}
		crashpoint.Hit(crashpoint.SeglogAfterFsync)
	} else {
		l.dirty = true
	}
	t2 := time.Now()
	for _, m := range g.metas {
		seg.track(pos, m.base, m.last, m.maxTS, m.size, l.opts.IndexInterval)
		if l.opts.Replicated {
			l.trackEntry(seg, pos, m)
		}
		pos += int64(m.size)
	}
	l.advance(g.metas[len(g.metas)-1].last + 1)
	l.opts.Hooks.OnFlush(len(g.buf), len(g.metas), t1.Sub(t0), t2.Sub(t1), nil)
	return nil
}

// fail records a sticky storage error and returns the log's sticky error
// (the first one recorded).
func (l *Log) fail(op string, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(op, err)
}

// syncDirty fsyncs the active segment under the lazy policies.
func (l *Log) syncDirty() {
	if !l.dirty {
		return
	}
	if l.Err() != nil {
		return
	}
	t0 := time.Now()
	err := l.active.f.Sync()
	l.opts.Hooks.OnFlush(0, 0, 0, time.Since(t0), err)
	if err != nil {
		l.fail("sync", err)
		return
	}
	l.dirty = false
}

// advance publishes a new end offset and wakes readers waiting for data.
func (l *Log) advance(end int64) {
	l.end.Store(end)
	l.notify()
}

// notify wakes readers waiting for data.
func (l *Log) notify() {
	l.notifyMu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.notifyMu.Unlock()
	if l.opts.OnAdvance != nil {
		l.opts.OnAdvance()
	}
}

// SetReadLimit makes only offsets below limit readable, however far the
// log's durable end is: a replicated partition's readers see what a quorum
// holds (the commit index), never a leader's uncommitted tail. A log
// without a limit (the default, math.MaxInt64) reads to its end. Moving the
// limit wakes waiting readers when it makes more readable.
func (l *Log) SetReadLimit(limit int64) {
	old := l.limit.Swap(limit)
	if end := l.end.Load(); min(limit, end) > min(old, end) {
		l.notify()
	}
}

// readable returns the offset below which records may be read: the
// durable end, or the read limit if lower.
func (l *Log) readable() int64 { return min(l.end.Load(), l.limit.Load()) }

// Changed returns a channel that is closed the next time the end offset
// moves (new data, or truncation). Long-polling readers select on it.
func (l *Log) Changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notifyCh
}

// StartOffset returns the first offset still stored.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// EndOffset returns the offset the next appended record will be readable
// at: every offset below it is durable under the policy and readable
// (below the read limit, if one is set: then EndOffset is at most it).
func (l *Log) EndOffset() int64 { return l.readable() }

// DurableEnd returns the offset after the last durable record, whatever
// the read limit.
func (l *Log) DurableEnd() int64 { return l.end.Load() }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Err returns the sticky storage error, or nil while the log is healthy.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Size returns the total bytes of all segments.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// Segments returns the base offsets of the log's segments, oldest first.
func (l *Log) Segments() []int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	out := make([]int64, len(l.segs))
	for i, s := range l.segs {
		out[i] = s.base
	}
	return out
}

// Close stops accepting appends, waits for queued appends to finish,
// syncs, writes the active segment's index (so the next Open need not scan
// it) and closes all files. It returns the sticky error if the log failed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.cond.Broadcast()
	l.waitIdleLocked()
	l.mu.Unlock()
	close(l.quit)
	<-l.writerDone

	err := l.Err()
	if err == nil && l.active != nil {
		if err = l.sealActive(); err != nil {
			err = l.fail("close", err)
		}
	}
	l.segMu.Lock()
	for _, s := range l.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	l.segs = nil
	l.segMu.Unlock()
	return err
}

// sealActive syncs the active segment and writes its index file.
func (l *Log) sealActive() error {
	s := l.active
	if l.opts.Sync != SyncAlways || l.dirty {
		if err := s.f.Sync(); err != nil {
			return err
		}
		l.dirty = false
	}
	crashpoint.Hit(crashpoint.SeglogIndexWrite)
	if err := vfs.WriteFileAtomic(l.fs, l.dir, s.idxPath, encodeIndex(s.indexData(l.opts.Replicated))); err != nil {
		return err
	}
	s.hasIndexOld = true
	return nil
}

// roll seals the active segment and starts a new one at the next offset.
// Writer-only.
func (l *Log) roll() error {
	old := l.active
	if err := l.sealActive(); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.SeglogRoll)
	base := old.next.Load()
	s, err := l.createSegment(base)
	if err != nil {
		return err
	}
	if l.opts.Replicated {
		s.firstIndex, s.prevTerm = old.nextIndex.Load(), old.lastTerm()
		s.nextIndex.Store(s.firstIndex)
	}
	s.created = l.opts.Clock.Now()
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	l.active = s
	l.opts.Hooks.OnRoll(base)
	if age, bytes := l.retentionSettings(); age > 0 || bytes > 0 {
		if _, err := l.EnforceRetention(); err != nil {
			l.opts.Logger.Warn("retention failed", "dir", l.dir, "err", err)
		}
	}
	return nil
}

// createSegment creates an empty segment file and makes its directory entry
// durable.
func (l *Log) createSegment(base int64) (*segment, error) {
	s := newSegment(l.dir, base, nil)
	f, err := l.fs.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.f = f
	if err := vfs.SyncDir(l.fs, l.dir); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// waitIdleLocked waits until the writer has nothing queued or in progress.
// Called with mu held; new appends are excluded while the caller holds mu.
func (l *Log) waitIdleLocked() {
	for len(l.queue) > 0 || l.busy {
		l.cond.Wait()
	}
}
