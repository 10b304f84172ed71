package broker

import (
	"context"
	"sort"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

// LeaseOutcome answers an Ack, Nack, Extend or Reject: the offsets it could
// not apply because the member holds no lease on them.
type LeaseOutcome struct {
	ID    uint64
	Stale []PartitionStart
	Err   error // the request was invalid; nothing was applied
}

// Refuse answers a lease request that was invalid with err (the stream
// stays open).
func (sess *Session) Refuse(id uint64, err error) {
	s := sess.sub
	s.mu.Lock()
	sess.leaseResults = append(sess.leaseResults, LeaseOutcome{ID: id, Err: err})
	s.mu.Unlock()
	sess.signal()
}

// OffsetRange is [From, To) in one partition.
type OffsetRange struct {
	Partition int32
	From, To  int64
}

// maxAckRange bounds one acknowledged range (a range is expanded into
// offsets).
const maxAckRange = 1 << 16

// nextQueue is Next for a queue-mode session: it leases ready messages as
// far as the member's credits, its in-flight limit, the subscription's
// in-flight limit and rate limit allow, feeding the cores from the log as
// needed.
func (sess *Session) nextQueue(ctx context.Context) (Event, error) {
	s := sess.sub
	t := s.t
	q := s.q
	var idle, wait *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		changed := t.changed()
		now := t.b.clock.Now()
		s.mu.Lock()
		if sess.closed {
			s.mu.Unlock()
			return Event{}, sess.err
		}
		if sess.assignPending {
			sess.assignPending = false
			a := &SessionAssignment{MemberID: sess.id, SessionTimeout: sess.timeout}
			s.mu.Unlock()
			return Event{Assignment: a}, nil
		}
		if len(sess.leaseResults) > 0 {
			r := sess.leaseResults[0]
			sess.leaseResults = sess.leaseResults[1:]
			s.mu.Unlock()
			return Event{Lease: &r}, nil
		}
		budget := min(sess.credits, maxEventMessages, q.maxInFlight-q.inFlight)
		if sess.maxInflight > 0 {
			budget = min(budget, sess.maxInflight-q.leasesBy[sess.id])
		}
		if q.ledgerFull() {
			budget = 0 // the processed keys of the last acks must be written first
		}
		var retryAt time.Duration
		if budget > 0 && q.limiter != nil {
			tokens := int(q.limiter.TokensAt(now))
			if tokens < 1 {
				retryAt = max(time.Millisecond, time.Duration(float64(time.Second)/float64(q.limiter.Limit())))
			}
			budget = min(budget, tokens)
		}
		var leases []leaseAt
		var hungry []*queuePart
		if budget > 0 {
			n := len(q.parts)
			for i := 0; i < n && len(leases) < budget; i++ {
				qp := q.parts[(sess.rr+i)%n]
				ls, eff := qp.core.Poll(now, sess.id, budget-len(leases))
				if len(ls) > 0 || len(eff.DeadLetters)+len(eff.Dropped)+len(eff.Parked)+len(eff.Expired) > 0 {
					s.applyQueueLocked(qp, eff) // Poll also reports leases that fell due
				}
				for _, l := range ls {
					leases = append(leases, leaseAt{qp.id, l})
				}
				if len(ls) < budget-len(leases)+len(ls) {
					if want, cur := qp.core.Want(); want > 0 && max(cur, qp.skipTo) < t.logs()[qp.id].EndOffset() {
						hungry = append(hungry, qp)
					}
				}
			}
			sess.rr++
			if len(leases) > 0 {
				if q.limiter != nil {
					q.limiter.AllowN(now, len(leases))
				}
				q.inFlight += len(leases)
				q.leasesBy[sess.id] += len(leases)
				sess.credits -= len(leases)
			}
		}
		s.mu.Unlock()
		if len(leases) > 0 {
			out, missed := t.leaseDeliveries(leases)
			if len(missed) > 0 {
				sess.undelivered(missed)
			}
			if out = sess.skipProcessed(out); len(out) > 0 {
				if t.b.cfg.Tracer != nil {
					s.traceDelivered(out)
				}
				return Event{Deliveries: out}, nil
			}
			continue
		}
		fed := false
		for _, qp := range hungry {
			if s.feed(qp) {
				fed = true
			}
		}
		if fed {
			continue
		}
		if idle == nil {
			idle = time.NewTimer(sess.timeout / 3)
		}
		var waitC <-chan time.Time
		if retryAt > 0 {
			if wait == nil {
				wait = time.NewTimer(retryAt)
			} else {
				wait.Reset(retryAt)
			}
			waitC = wait.C
		}
		select {
		case <-idle.C:
			return Event{Heartbeat: true}, nil
		case <-changed:
		case <-sess.wake:
		case <-waitC:
		case <-t.gone:
			return Event{}, sess.goneErr()
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

type leaseAt struct {
	part  int32
	lease queue.Lease
}

// leaseDeliveries reads the leased messages from the log (each batch once)
// and returns them as deliveries, and the leases of those it could not
// read (see undelivered).
func (t *topic) leaseDeliveries(leases []leaseAt) (out []Delivered, missed []leaseAt) {
	sort.Slice(leases, func(i, j int) bool {
		if leases[i].part != leases[j].part {
			return leases[i].part < leases[j].part
		}
		return leases[i].lease.Offset < leases[j].lease.Offset
	})
	out = make([]Delivered, 0, len(leases))
	var (
		curPart int32 = -1
		h       batch.Header
		recs    []batch.Record
		rest    []byte
	)
	maxDec := t.b.maxDecompressed()
	for _, la := range leases {
		off := la.lease.Offset
		if la.part != curPart || recs == nil || off > h.LastOffset() {
			// Move to the batch holding off: from what is already read, or
			// by reading again.
			recs = nil
			if la.part == curPart {
				for len(rest) > 0 && recs == nil {
					bt, err := batch.Parse(rest)
					if err != nil || bt.BaseOffset > off {
						rest = nil
						break
					}
					rest = rest[len(bt.Bytes):]
					if bt.LastOffset() >= off {
						h = bt.Header
						recs, _ = batch.Records(bt.Bytes, maxDec)
					}
				}
			}
			if recs == nil {
				data, err := t.logs()[la.part].Read(off, sessionReadChunk)
				if err != nil || len(data) == 0 {
					missed = append(missed, la)
					continue
				}
				bt, err := batch.Parse(data)
				if err != nil {
					missed = append(missed, la)
					continue
				}
				rest, h = data[len(bt.Bytes):], bt.Header
				if recs, err = batch.Records(bt.Bytes, maxDec); err != nil {
					recs = nil
					missed = append(missed, la)
					continue
				}
			}
			curPart = la.part
		}
		i := int(off - h.BaseOffset)
		if i < 0 || i >= len(recs) || h.RecordOffset(recs[i]) != off {
			missed = append(missed, la)
			continue
		}
		r := recs[i]
		id, subj := attrs(r.Headers)
		out = append(out, Delivered{
			Partition:        la.part,
			Offset:           off,
			Timestamp:        time.UnixMilli(h.RecordTimestamp(r)),
			Key:              r.Key,
			Value:            r.Value,
			Headers:          r.Headers,
			ID:               id,
			Subject:          subj,
			DeliveryCount:    int32(la.lease.DeliveryCount),
			FirstDeliveredAt: time.UnixMilli(la.lease.FirstDeliveredAt),
			LeaseDeadline:    time.UnixMilli(la.lease.Deadline),
		})
	}
	return out, missed
}

// undelivered ends the leases nextQueue took for messages leaseDeliveries
// could not read, and gives the member back the credits they took: it
// never saw them, so it would never return those credits, and a member
// whose every credit went so would receive nothing again, however many
// messages were ready. A message retention removed since the core read it
// is finished (Missing: offsets gone from the log are done); one still in
// the log but unreadable is nacked, redelivered after the backoff and
// dead-lettered past max deliveries like any message that fails.
func (sess *Session) undelivered(missed []leaseAt) {
	s := sess.sub
	t := s.t
	now := t.b.clock.Now()
	type span struct {
		n           int
		first, last int64
	}
	gone := map[int32]*span{}
	s.mu.Lock()
	ended := 0
	for _, la := range missed {
		if s.deleted || int(la.part) >= len(s.q.parts) {
			continue
		}
		qp := s.q.parts[la.part] // after a reset, a new core: the lease is not its own (stale)
		off := la.lease.Offset
		if off < t.logs()[la.part].StartOffset() {
			if qp.core.Missing(now, sess.id, off) {
				ended++
				qp.dirty = true
				s.finishedLocked(qp, []int64{off})
			}
			g := gone[la.part]
			if g == nil {
				g = &span{first: off}
				gone[la.part] = g
			}
			g.n, g.last = g.n+1, off
			continue
		}
		t.b.logger.Warn("leased message unreadable; nacked", "topic", t.meta.Name, "subscription", s.meta.Name, "partition", la.part, "offset", off)
		ok, eff := qp.core.Nack(now, sess.id, off, -1, "message unreadable")
		s.applyQueueLocked(qp, eff)
		if ok {
			ended++
			s.stats.nacked.Add(1)
		}
	}
	s.releaseSlotLocked(sess.id, ended)
	if !sess.closed {
		sess.credits = min(sess.credits+len(missed), maxCredits)
	}
	s.mu.Unlock()
	for p, g := range gone {
		t.b.logger.Warn("queue subscription fell behind retention: leased messages no longer in the log are skipped",
			"topic", t.meta.Name, "subscription", s.meta.Name, "partition", p, "count", g.n, "first", g.first, "last", g.last)
	}
}

// Ack finishes leased messages given as ranges; the outcome (stale offsets)
// is queued for Next.
func (sess *Session) Ack(id uint64, ranges []OffsetRange) error {
	s := sess.sub
	if s.q == nil {
		return errs.New(errs.FailedPrecondition, "ack on a stream subscription: commit offsets instead")
	}
	byPart := map[int32][]int64{}
	total := 0
	nparts := s.queueParts()
	for _, r := range ranges {
		if r.Partition < 0 || int(r.Partition) >= nparts || r.To <= r.From || r.To-r.From > maxAckRange {
			return errs.New(errs.InvalidArgument, "bad ack range %d:[%d,%d)", r.Partition, r.From, r.To)
		}
		if total += int(r.To - r.From); total > maxAckRange {
			return errs.New(errs.InvalidArgument, "an ack covers at most %d offsets", maxAckRange)
		}
		for o := r.From; o < r.To; o++ {
			byPart[r.Partition] = append(byPart[r.Partition], o)
		}
	}
	now := s.t.b.clock.Now()
	var stale []PartitionStart
	var traced []tracedSettle
	s.mu.Lock()
	sess.touchLocked(now)
	for p, offs := range byPart {
		qp := s.q.parts[p]
		st, eff := qp.core.Ack(now, sess.id, offs)
		s.applyQueueLocked(qp, eff)
		for _, o := range st {
			stale = append(stale, PartitionStart{Partition: p, Offset: o})
		}
		done := len(offs) - len(st)
		s.releaseSlotLocked(sess.id, done)
		if done > 0 {
			acked := ackedOnly(offs, st)
			s.finishedLocked(qp, acked)
			s.recordProcessedLocked(qp, acked, now)
			if s.tracedLeases != nil {
				for _, o := range acked {
					if tc, ok := s.settledTraceLocked(p, o); ok {
						traced = append(traced, tracedSettle{tc, p, o, "ack"})
					}
				}
			}
		}
	}
	sess.leaseResults = append(sess.leaseResults, LeaseOutcome{ID: id, Stale: stale})
	s.mu.Unlock()
	s.reportSettled(traced)
	sess.signal()
	return nil
}

// ackedOnly returns offs without the stale ones.
func ackedOnly(offs, stale []int64) []int64 {
	if len(stale) == 0 {
		return offs
	}
	bad := make(map[int64]bool, len(stale))
	for _, o := range stale {
		bad[o] = true
	}
	out := offs[:0:0]
	for _, o := range offs {
		if !bad[o] {
			out = append(out, o)
		}
	}
	return out
}

// leaseOp runs one lease operation (nack, extend, reject) on a partition.
func (sess *Session) leaseOp(id uint64, p int32, offsets []int64, name string, op func(qp *queuePart, now time.Time, off int64) (ok, finished bool, eff queue.Effects)) error {
	s := sess.sub
	if s.q == nil {
		return errs.New(errs.FailedPrecondition, "lease operations apply to queue subscriptions only")
	}
	if p < 0 || int(p) >= s.queueParts() {
		return errs.New(errs.InvalidArgument, "partition %d does not exist", p)
	}
	now := s.t.b.clock.Now()
	var stale []PartitionStart
	var traced []tracedSettle
	s.mu.Lock()
	sess.touchLocked(now)
	qp := s.q.parts[p]
	for _, off := range offsets {
		ok, finished, eff := op(qp, now, off)
		s.applyQueueLocked(qp, eff)
		if !ok {
			stale = append(stale, PartitionStart{Partition: p, Offset: off})
			continue
		}
		if finished {
			qp.forgetLeasedKeyLocked(off)
			s.releaseSlotLocked(sess.id, 1)
			if s.tracedLeases != nil {
				if tc, ok := s.settledTraceLocked(p, off); ok {
					traced = append(traced, tracedSettle{tc, p, off, name})
				}
			}
		}
	}
	sess.leaseResults = append(sess.leaseResults, LeaseOutcome{ID: id, Stale: stale})
	s.mu.Unlock()
	s.reportSettled(traced)
	sess.signal()
	return nil
}

// Nack gives a leased message back: redelivered after delay (negative: the
// subscription's backoff), or dead-lettered past max deliveries.
func (sess *Session) Nack(id uint64, p int32, offset int64, delay time.Duration, errText string) error {
	return sess.leaseOp(id, p, []int64{offset}, "nack", func(qp *queuePart, now time.Time, off int64) (bool, bool, queue.Effects) {
		ok, eff := qp.core.Nack(now, sess.id, off, delay, errText)
		if ok {
			sess.sub.stats.nacked.Add(1)
		}
		return ok, ok, eff
	})
}

// Extend moves leases' deadlines to now + d (d <= 0: the ack timeout).
func (sess *Session) Extend(id uint64, p int32, offsets []int64, d time.Duration) error {
	return sess.leaseOp(id, p, offsets, "", func(qp *queuePart, now time.Time, off int64) (bool, bool, queue.Effects) {
		_, ok := qp.core.Extend(now, sess.id, off, d)
		return ok, false, queue.Effects{}
	})
}

// Reject dead-letters a leased message now.
func (sess *Session) Reject(id uint64, p int32, offset int64, errText string) error {
	return sess.leaseOp(id, p, []int64{offset}, "reject", func(qp *queuePart, now time.Time, off int64) (bool, bool, queue.Effects) {
		ok, eff := qp.core.Reject(now, sess.id, off, errText)
		if ok {
			sess.sub.stats.rejected.Add(1)
		}
		return ok, ok, eff
	})
}

// touchLocked refreshes the member's session (any request counts as a
// heartbeat).
func (sess *Session) touchLocked(now time.Time) {
	s := sess.sub
	if sess.closed {
		return
	}
	eff, _ := s.coord.Heartbeat(now, sess.id, sess.gen)
	s.applyLocked(eff)
}

// releaseMemberLocked returns every lease of a member that left or was
// evicted.
func (s *subscription) releaseMemberLocked(member string) {
	now := s.t.b.clock.Now()
	for _, qp := range s.q.parts {
		s.applyQueueLocked(qp, qp.core.Release(now, member))
	}
	s.q.inFlight = max(0, s.q.inFlight-s.q.leasesBy[member])
	delete(s.q.leasesBy, member)
	for _, sess := range s.sessions {
		sess.signal()
	}
	s.q.pulls.notify()
}

// queueParts returns how many partitions the queue subscription has (they
// only grow, AddPartitions appending under mu).
func (s *subscription) queueParts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q.parts)
}
