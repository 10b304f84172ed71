package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/spoolmq/spool/internal/crashpoint"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
)

// queueState is the queue-mode part of a subscription: one queue core per
// partition, the side effects waiting to be made durable (the outbox), and
// the subscription-wide limits. Guarded by subscription.mu unless noted.
type queueState struct {
	cfg         queue.Config
	parts       []*queuePart
	maxInFlight int            // whole subscription
	inFlight    int            // leases across partitions
	leasesBy    map[string]int // leases held per member
	limiter     *rate.Limiter  // nil: unlimited; safe for concurrent use
	dlq         string         // dead-letter topic
	ledger      *ledger        // processed-key ledger (ledger.go); never nil

	// outbox holds effects that must be durable before a snapshot that
	// relies on them is written: dead-letter copies, parked messages, and
	// schedule entries to delete. Snapshots are not persisted while it is
	// non-empty.
	outbox    []outboxOp
	blocked   error // a dead-letter or park write failed: snapshots stay unpersisted until restart
	loadedDue int64 // parked entries due up to this time (ms) are loaded

	deadLettered atomic.Int64
	dropped      atomic.Int64

	pulls pullSignal // wakes consumers pulling leases (lease.go)

	ioMu sync.Mutex // serializes outbox processing and snapshot writes (taken without subscription.mu)
}

// queuePart is one partition's core and bookkeeping.
type queuePart struct {
	id       int32
	core     queue.Partition
	dirty    bool            // the snapshot changed since it was last persisted
	unparked map[int64]int64 // offset -> due (ms) of its schedule entry, still in the store
	parked   int64           // messages in the schedule store (approximate across restarts)
	// skipTo is where reading resumes when everything from the core's
	// cursor up to it was filtered out (never offered, so finished for the
	// core once a later message is offered).
	skipTo int64
	// ledKeys are the processed keys of leased messages, for their acks
	// (ledger.go); nil until the ledger is on.
	ledKeys map[int64]ledgerHash
}

type outboxKind int

const (
	opDeadLetter outboxKind = iota
	opPark
	opUnparkDone // delete a finished message's schedule entry
)

type outboxOp struct {
	kind   outboxKind
	part   int32
	dl     queue.DeadLetter
	park   queue.Parked
	oldDue int64 // opPark of an unparked message, opUnparkDone: the entry to delete; -1 none
}

// keyHash is the queue cores' key hash (FNV-1a, stable across restarts:
// parked messages carry it).
func keyHash(key []byte) uint64 {
	h := fnv.New64a()
	h.Write(key)
	return h.Sum64()
}

// newQueueState restores a queue subscription's cores from their snapshots
// (new partitions start at committed[p]).
func (s *subscription) newQueueState(committed []int64) (*queueState, error) {
	t := s.t
	cfg, err := s.meta.Config.Queue.CoreConfig()
	if err != nil {
		return nil, err
	}
	qc := s.meta.Config.Queue
	q := &queueState{cfg: cfg, dlq: qc.DeadLetterTopic, leasesBy: map[string]int{}}
	if q.ledger, err = s.newLedger(qc, t.b.clock.Now()); err != nil {
		return nil, fmt.Errorf("broker: load the processed-key ledger of %s/%s: %w", s.meta.Topic, s.meta.Name, err)
	}
	if q.dlq == "" {
		q.dlq = catalog.DeadLetterTopicName(s.meta.Topic, s.meta.Name)
	}
	q.maxInFlight = qc.MaxInFlight
	if q.maxInFlight == 0 {
		q.maxInFlight = cfg.MaxInFlight * len(t.logs())
	}
	if qc.RateLimit > 0 {
		burst := qc.RateBurst
		if burst == 0 {
			burst = max(1, int(qc.RateLimit))
		}
		q.limiter = rate.NewLimiter(rate.Limit(qc.RateLimit), burst)
	}
	st := t.b.cfg.State
	for p := range t.logs() {
		snap := queue.Snapshot{Floor: committed[p]}
		key := state.QueueKey(s.meta.Topic, s.meta.Name, int32(p))
		v, err := st.Get(key)
		if err == nil {
			if snap, err = decodeSnapshot(key, v); err != nil {
				return nil, fmt.Errorf("broker: %w", err)
			}
		} else if !errors.Is(err, state.ErrNotFound) {
			return nil, err
		}
		snap.Floor = max(snap.Floor, t.logs()[p].StartOffset())
		core, err := queue.New(cfg, snap, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(p))))
		if err != nil {
			return nil, err
		}
		core.Observe(s.stats)
		q.parts = append(q.parts, &queuePart{id: int32(p), core: core, unparked: map[int64]int64{}})
		committed[p] = snap.Floor
	}
	// Count what is parked, for describe output.
	err = st.Scan(state.ParkIndexPrefix(s.meta.Topic, s.meta.Name), func(k, _ []byte) error {
		if len(k) >= 12 {
			p := int32(binary.BigEndian.Uint32(k[len(k)-12:]))
			if p >= 0 && int(p) < len(q.parts) {
				q.parts[p].parked++
			}
		}
		return nil
	})
	return q, err
}

// queueMsgs turns stored records into queue messages, skipping those the
// subscription's filter does not want (they count as finished).
func (s *subscription) queueMsg(h batch.Header, r batch.Record, ttl time.Duration) (queue.Msg, bool) {
	off := h.RecordOffset(r)
	m := queue.Msg{Offset: off, Timestamp: h.RecordTimestamp(r)}
	var subj string
	for _, hd := range r.Headers {
		switch hd.Key {
		case HeaderSubject:
			subj = string(hd.Value)
		case HeaderDeliverAt:
			if v, err := strconv.ParseInt(string(hd.Value), 10, 64); err == nil {
				m.DeliverAt = v
			}
		case HeaderTTL:
			if v, err := strconv.ParseInt(string(hd.Value), 10, 64); err == nil && v > 0 {
				m.ExpiresAt = m.Timestamp + v
			}
		}
	}
	if !s.filter.Load().Match(subj) || redrivenElsewhere(r.Headers, s.meta.Name) {
		return m, false
	}
	if m.ExpiresAt == 0 && ttl > 0 {
		m.ExpiresAt = m.Timestamp + ttl.Milliseconds()
	}
	if len(r.Key) > 0 {
		m.KeyHash, m.HasKey = keyHash(r.Key), true
	}
	return m, true
}

// feed reads the next chunk of partition qp's log and offers it to the
// core. It reports whether anything was offered or skipped.
func (s *subscription) feed(qp *queuePart) bool {
	t := s.t
	l := t.logs()[qp.id]
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return false
	}
	want, cursor := qp.core.Want()
	from := max(cursor, qp.skipTo)
	s.mu.Unlock()
	if want == 0 || from >= l.EndOffset() {
		return false
	}
	from = max(from, l.StartOffset())
	data, err := l.Read(from, sessionReadChunk)
	if err != nil || len(data) == 0 {
		if err != nil && !errors.Is(err, seglog.ErrOffsetOutOfRange) {
			t.b.logger.Error("read for queue subscription failed", "topic", t.meta.Name, "partition", qp.id, "offset", cursor, "err", err)
		}
		return false
	}
	var msgs []queue.Msg
	maxDec := t.b.maxDecompressed()
	ttl := t.messageTTL()
	next := from // offset after the last record looked at
walk:
	for bt, err := range batch.Batches(data) {
		if err != nil || len(msgs) >= want {
			break
		}
		for r, err := range bt.Records(maxDec) {
			if err != nil {
				break
			}
			off := bt.RecordOffset(r)
			if off < from {
				continue
			}
			if len(msgs) >= want {
				break walk
			}
			if m, ok := s.queueMsg(bt.Header, r, ttl); ok {
				msgs = append(msgs, m)
			}
			next = off + 1
		}
	}
	now := t.b.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, cur := qp.core.Want(); cur != cursor || s.deleted {
		return true // someone else fed it meanwhile
	}
	qp.skipTo = max(qp.skipTo, next) // what was read and filtered out is not read again (the filter may change)
	if len(msgs) == 0 {
		return next > from
	}
	s.applyQueueLocked(qp, qp.core.Offer(now, msgs))
	return true
}

// applyQueueLocked records a core call's effects: side effects go to the
// outbox, lease expiries release in-flight slots. Called with s.mu held.
func (s *subscription) applyQueueLocked(qp *queuePart, eff queue.Effects) {
	q := s.q
	qp.dirty = true
	for _, dl := range eff.DeadLetters {
		if dl.Reason == queue.ReasonExpired {
			s.stats.expired.Add(1)
		}
		q.outbox = append(q.outbox, outboxOp{kind: opDeadLetter, part: qp.id, dl: dl, oldDue: s.takeUnparkedLocked(qp, dl.Offset)})
	}
	for _, off := range eff.Dropped {
		q.dropped.Add(1)
		s.stats.expired.Add(1)
		if due := s.takeUnparkedLocked(qp, off); due >= 0 {
			q.outbox = append(q.outbox, outboxOp{kind: opUnparkDone, part: qp.id, park: queue.Parked{Offset: off}, oldDue: due})
		}
	}
	for _, pk := range eff.Parked {
		qp.parked++
		q.outbox = append(q.outbox, outboxOp{kind: opPark, part: qp.id, park: pk, oldDue: s.takeUnparkedLocked(qp, pk.Offset)})
	}
	s.stats.leaseExpired.Add(uint64(len(eff.Expired)))
	for _, l := range eff.Expired {
		s.releaseSlotLocked(l.Member, 1)
	}
	if len(q.outbox) > 0 {
		s.t.b.queueWake()
	}
}

// takeUnparkedLocked forgets that offset came from the schedule store and
// returns the due time of its entry there, or -1.
func (s *subscription) takeUnparkedLocked(qp *queuePart, offset int64) int64 {
	due, ok := qp.unparked[offset]
	if !ok {
		return -1
	}
	delete(qp.unparked, offset)
	qp.parked--
	return due
}

// finishedLocked notes that offsets were acked or rejected: entries of
// unparked ones leave the schedule store.
func (s *subscription) finishedLocked(qp *queuePart, offsets []int64) {
	if len(qp.unparked) == 0 {
		return
	}
	for _, off := range offsets {
		if due := s.takeUnparkedLocked(qp, off); due >= 0 {
			s.q.outbox = append(s.q.outbox, outboxOp{kind: opUnparkDone, part: qp.id, park: queue.Parked{Offset: off}, oldDue: due})
		}
	}
}

// releaseSlotLocked returns n in-flight slots of member.
func (s *subscription) releaseSlotLocked(member string, n int) {
	if n <= 0 {
		return
	}
	q := s.q
	n = min(n, q.leasesBy[member])
	q.inFlight = max(0, q.inFlight-n)
	if q.leasesBy[member] -= n; q.leasesBy[member] <= 0 {
		delete(q.leasesBy, member)
	}
	if sess := s.sessions[member]; sess != nil {
		sess.signal()
	}
	q.pulls.notify()
}

// queueTick runs one pass of the queue machinery of subscription s: lease
// expiries and due messages, parked messages coming due, the outbox, and
// the snapshot.
func (s *subscription) queueTick(now time.Time) {
	q := s.q
	q.ioMu.Lock()
	defer q.ioMu.Unlock()
	s.loadParked(now)
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return
	}
	woke := false
	for _, qp := range q.parts {
		if d, ok := qp.core.NextDeadline(); ok && !d.After(now) {
			s.applyQueueLocked(qp, qp.core.Tick(now))
			woke = true
		}
		qp.pruneLedKeysLocked()
	}
	q.ledger.fmu.Lock()
	q.ledger.filter.expire(now.UnixMilli())
	q.ledger.fmu.Unlock()
	s.mu.Unlock()
	s.processOutbox()
	s.persistSnapshots()
	s.purgeLedger(now)
	if woke {
		s.wakeSessions()
	}
}

// wakeSessions wakes every member (messages may have become ready).
func (s *subscription) wakeSessions() {
	s.mu.Lock()
	for _, sess := range s.sessions {
		sess.signal()
	}
	s.mu.Unlock()
	s.q.pulls.notify()
}

// loadParked gives the cores back parked messages due within half the park
// horizon. Entries stay in the store until the message finishes or is
// parked again, so a crash never loses one. Called with ioMu held.
func (s *subscription) loadParked(now time.Time) {
	q := s.q
	st := s.t.b.cfg.State
	until := now.Add(q.cfg.ParkHorizon / 2).UnixMilli()
	if until <= q.loadedDue {
		return
	}
	type entry struct {
		part int32
		due  int64
		pk   queue.Parked
	}
	var due []entry
	plen := len(state.ParkPrefix(s.meta.Topic, s.meta.Name))
	err := st.ScanRange(state.ParkKey(s.meta.Topic, s.meta.Name, q.loadedDue+1, 0, 0), state.ParkKey(s.meta.Topic, s.meta.Name, until+1, 0, 0),
		func(k, v []byte) error {
			if len(k) != plen+20 {
				return nil
			}
			var e entry
			var err error
			if e.pk, err = decodeParked(k, v); err != nil {
				return fmt.Errorf("broker: %w", err)
			}
			e.due = int64(binary.BigEndian.Uint64(k[plen:]))
			e.part = int32(binary.BigEndian.Uint32(k[plen+8:]))
			due = append(due, e)
			return nil
		})
	if err != nil {
		s.t.b.logger.Error("loading parked messages failed", "topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q.loadedDue = until
	for _, e := range due {
		if e.part < 0 || int(e.part) >= len(q.parts) {
			continue
		}
		qp := q.parts[e.part]
		if _, ok := qp.unparked[e.pk.Offset]; ok {
			continue
		}
		qp.unparked[e.pk.Offset] = e.due
		s.applyQueueLocked(qp, qp.core.Unpark(now, e.pk))
	}
}

// processOutbox makes the outbox's effects durable: dead-letter copies are
// published (synced) to the dead-letter topic, parked messages written to
// the schedule store, finished ones removed from it. On failure the
// operations stay queued and snapshots stay unpersisted, so a restart
// delivers the affected messages again rather than losing them. Called
// with ioMu held.
func (s *subscription) processOutbox() {
	q := s.q
	s.mu.Lock()
	ops := q.outbox
	s.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	if err := s.writeOutbox(ops); err != nil {
		s.mu.Lock()
		if q.blocked == nil {
			q.blocked = err
		}
		s.mu.Unlock()
		s.t.b.logger.Error("queue subscription cannot make its effects durable; its progress is not saved until restart",
			"topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
		return
	}
	s.mu.Lock()
	q.outbox = q.outbox[len(ops):]
	s.mu.Unlock()
}

// writeOutbox performs ops: dead letters first, then one synced batch for
// the schedule store.
func (s *subscription) writeOutbox(ops []outboxOp) error {
	topic, sub := s.meta.Topic, s.meta.Name
	var dls []outboxOp
	w := s.newWrite()
	for _, op := range ops {
		if op.oldDue >= 0 {
			w.del(state.ParkKey(topic, sub, op.oldDue, op.part, offsetOf(op)))
			w.del(state.ParkIndexKey(topic, sub, op.part, offsetOf(op)))
		}
		switch op.kind {
		case opDeadLetter:
			dls = append(dls, op)
		case opPark:
			v, err := appendParked(nil, op.park)
			if err != nil {
				return err
			}
			w.set(state.ParkKey(topic, sub, op.park.Due, op.part, op.park.Offset), v)
			w.set(state.ParkIndexKey(topic, sub, op.part, op.park.Offset), encodeParkIndex(op.park.Due))
		}
	}
	if len(dls) > 0 {
		if err := s.publishDeadLetters(dls); err != nil {
			return err
		}
	}
	return s.t.b.writeSub(w)
}

func offsetOf(op outboxOp) int64 {
	if op.kind == opDeadLetter {
		return op.dl.Offset
	}
	return op.park.Offset
}

// persistSnapshots writes the snapshot of every changed partition in one
// synced batch, unless effects are still waiting in the outbox (a snapshot
// must never record as finished a message whose dead-letter copy, or as
// gone one whose schedule entry, is not durable yet). Called with ioMu held.
func (s *subscription) persistSnapshots() {
	q := s.q
	s.mu.Lock()
	if len(q.outbox) > 0 || q.blocked != nil || s.deleted {
		s.mu.Unlock()
		return
	}
	type item struct {
		p    int32
		snap queue.Snapshot
	}
	var items []item
	for _, qp := range q.parts {
		if qp.dirty {
			items = append(items, item{qp.id, qp.core.Snapshot()})
			qp.dirty = false
		}
	}
	// The keys acknowledged so far go in the same write as the snapshots
	// that record their acks: a crash keeps both or neither.
	keys := q.pendingLedgerLocked()
	s.mu.Unlock()
	if len(items) == 0 && len(keys) == 0 {
		return
	}
	w := s.newWrite()
	s.addLedger(w, keys)
	for _, it := range items {
		v, err := appendSnapshot(nil, it.snap)
		if err != nil {
			s.t.b.logger.Error("encode queue snapshot", "err", err)
			return
		}
		w.set(state.QueueKey(s.meta.Topic, s.meta.Name, it.p), v)
	}
	crashpoint.Hit(crashpoint.QueueSnapshot)
	if err := s.t.b.writeSub(w); err != nil {
		s.t.b.logger.Error("persist queue state failed", "topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
		s.mu.Lock()
		for _, it := range items {
			q.parts[it.p].dirty = true
		}
		s.mu.Unlock()
		return
	}
	s.ledgerWritten(keys)
}
