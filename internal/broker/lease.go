package broker

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

// Leases pulled by request, for front ends whose consumers ask for leases
// with a request instead of holding a Session stream (Kafka share groups,
// KIP-932). A holder is any non-empty string the caller picks for the
// consumer; the subscription's consumer group does not know it, so the
// caller owns its liveness: it must call ReleaseLeases when the consumer
// leaves or is gone (otherwise its leases end at their deadline, as any
// lease does). Leases, acks, nacks, extends and rejects are the queue
// cores' own, so backoff, max deliveries and dead-lettering apply
// unchanged, and these consumers and Session members of one subscription
// share its work.
//
// What is queue semantics is here: leasing within the in-flight and rate
// limits, delivery counts, the lease length, a byte budget, and rounding a
// lease up to the end of the last stored batch read (WholeBatch: the
// stored batches are what a lease returns). How many records one request
// may take (Kafka: at most half the in-flight limit, so that a client
// fetching ahead finds room) and what a client's acknowledgement types
// mean are the front end's.

// leaseRound bounds the leases taken in one core call by Lease, so that the
// byte budget is checked every so often.
const leaseRound = 128

// QueueSub describes a queue subscription for a consumer pulling leases.
type QueueSub struct {
	Topic, Name     string
	AckTimeout      time.Duration // lease length
	MaxDeliveries   int
	MaxInFlight     int // leases at once, across partitions and consumers
	DeadLetterTopic string
}

// EnsureQueueSubscription returns queue subscription name of a topic,
// creating it with cfg (its mode set to queue) if it does not exist. A
// stream subscription of that name is an error (FailedPrecondition).
func (b *Broker) EnsureQueueSubscription(topicName, name string, cfg catalog.SubConfig) (QueueSub, error) {
	sub, err := b.QueueSubscription(topicName, name)
	if !errs.Is(err, errs.SubNotFound) {
		return sub, err
	}
	cfg.Mode = catalog.ModeQueue
	_, err = b.CreateSubscription(topicName, name, cfg)
	if err != nil && !errs.Is(err, errs.SubExists) {
		return QueueSub{}, err
	}
	return b.QueueSubscription(topicName, name)
}

// QueueSubscription returns queue subscription name of a topic: SubNotFound
// if there is none, FailedPrecondition if it is a stream subscription.
func (b *Broker) QueueSubscription(topicName, name string) (QueueSub, error) {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return QueueSub{}, err
	}
	s.mu.Lock() // the queue settings change under mu (AlterSubscription)
	defer s.mu.Unlock()
	return QueueSub{Topic: topicName, Name: name, AckTimeout: s.q.cfg.AckTimeout, MaxDeliveries: s.q.cfg.MaxDeliveries,
		MaxInFlight: s.q.maxInFlight, DeadLetterTopic: s.q.dlq}, nil
}

// LeaseRun is a run of consecutive leased offsets [First, Last] with the
// same delivery count.
type LeaseRun struct {
	First, Last int64
	Deliveries  int32 // this delivery included
}

// Leased is what Lease leased in one partition.
type Leased struct {
	// Batches are the stored record batches holding the leased offsets,
	// exactly as stored, each once, in offset order. They also hold
	// records that were not leased (finished, or leased to others):
	// consumers keep only the offsets of Runs.
	Batches []byte
	Runs    []LeaseRun // ascending, disjoint
	Leased  int        // offsets leased
	// Lease is the lease length; Deadline the earliest deadline of the
	// leases taken.
	Lease    time.Duration
	Deadline time.Time
}

// LeaseOptions bound one Lease call.
type LeaseOptions struct {
	MaxRecords int // leases to take (see WholeBatch)
	// MaxBytes stops leasing once the batches read reach it (at least one
	// round of leases is read whatever its size).
	MaxBytes int
	// Lease, if positive, is the lease length instead of the
	// subscription's ack timeout.
	Lease time.Duration
	// WholeBatch rounds MaxRecords up so that the last batch read is
	// leased to its end where its records are ready: a consumer then does
	// not receive, and decode, the same stored batch again for its next
	// few records.
	WholeBatch bool
	// Cap, if positive, bounds the leases of the call, rounding included.
	Cap int
}

// Lease leases ready messages of partition p to holder, feeding the core
// from the log as needed, and returns the stored batches holding them. It
// never waits: with nothing ready it returns nothing; see LeasesChanged.
// The subscription's in-flight limit and rate limit apply.
func (b *Broker) Lease(topicName, name, holder string, p int32, o LeaseOptions) (Leased, error) {
	if holder == "" {
		return Leased{}, errs.New(errs.InvalidArgument, "lease holder is empty")
	}
	if err := b.checkCoordinator(); err != nil {
		return Leased{}, err
	}
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return Leased{}, err
	}
	t, q := s.t, s.q
	s.mu.Lock() // partitions and queue settings change under mu
	parts, ackTimeout := q.parts, q.cfg.AckTimeout
	s.mu.Unlock()
	if p < 0 || int(p) >= len(parts) {
		return Leased{}, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	qp := parts[p]
	lock := o.Lease
	if lock <= 0 {
		lock = ackTimeout
	}
	out := Leased{Lease: lock}
	var leases []queue.Lease
	r := leaseReader{t: t, p: p}
	callCap := o.Cap
	if callCap <= 0 {
		callCap = math.MaxInt
	}
	bytes, limit, rounded := 0, min(o.MaxRecords, callCap), false
	maxOff := int64(-1)
	for {
		if len(leases) >= limit || (bytes >= o.MaxBytes && len(leases) > 0) {
			// Round up once to the end of the batch holding the highest
			// offset leased; more leases may still come from elsewhere (a
			// redelivery due first), bounded by that batch's size.
			if !o.WholeBatch || rounded || bytes >= o.MaxBytes || len(leases) == 0 {
				break
			}
			rounded = true
			end, ok := r.batchEnd(maxOff)
			if !ok || end <= maxOff {
				break
			}
			limit = min(len(leases)+int(end-maxOff), callCap)
			if limit <= len(leases) {
				break
			}
		}
		want := min(limit-len(leases), leaseRound)
		now := b.clock.Now()
		s.mu.Lock()
		if s.deleted {
			s.mu.Unlock()
			break
		}
		budget := min(want, q.maxInFlight-q.inFlight)
		if budget > 0 && q.limiter != nil {
			budget = min(budget, int(q.limiter.TokensAt(now)))
		}
		var ls []queue.Lease
		if budget > 0 {
			var eff queue.Effects
			ls, eff = qp.core.Poll(now, holder, budget)
			if lock != q.cfg.AckTimeout {
				for i := range ls {
					if l, ok := qp.core.Extend(now, holder, ls[i].Offset, lock); ok {
						ls[i] = l
					}
				}
			}
			if len(ls) > 0 || len(eff.DeadLetters)+len(eff.Dropped)+len(eff.Parked)+len(eff.Expired) > 0 {
				s.applyQueueLocked(qp, eff)
			}
			if len(ls) > 0 {
				if q.limiter != nil {
					q.limiter.AllowN(now, len(ls))
				}
				q.inFlight += len(ls)
				q.leasesBy[holder] += len(ls)
			}
		}
		hungry := false
		if budget > 0 && len(ls) < budget {
			want, cur := qp.core.Want()
			hungry = want > 0 && max(cur, qp.skipTo) < t.logs()[p].EndOffset()
		}
		s.mu.Unlock()
		if len(ls) > 0 {
			leases = append(leases, ls...)
			for _, l := range ls {
				maxOff = max(maxOff, l.Offset)
			}
			bytes += r.read(ls)
			continue
		}
		if !hungry || !s.feed(qp) {
			break
		}
	}
	if len(leases) == 0 {
		return out, nil
	}
	out.Batches = r.batches()
	out.Leased = len(leases)
	sort.Slice(leases, func(i, j int) bool { return leases[i].Offset < leases[j].Offset })
	out.Deadline = time.UnixMilli(leases[0].Deadline)
	for _, l := range leases {
		out.Deadline = minTime(out.Deadline, time.UnixMilli(l.Deadline))
		dc := int32(l.DeliveryCount)
		if n := len(out.Runs); n > 0 && out.Runs[n-1].Last+1 == l.Offset && out.Runs[n-1].Deliveries == dc {
			out.Runs[n-1].Last = l.Offset
			continue
		}
		out.Runs = append(out.Runs, LeaseRun{First: l.Offset, Last: l.Offset, Deliveries: dc})
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// leaseReader collects the stored batches holding leased offsets of one
// partition, each batch once.
type leaseReader struct {
	t    *topic
	p    int32
	list []rawBatch // sorted by base offset; batches never overlap
}

type rawBatch struct {
	base, last int64
	data       []byte
}

// read collects the batches holding offsets of ls (not yet collected) and
// returns the bytes added. Offsets no longer in the log are skipped: their
// consumer sees a leased offset without a record (Kafka clients acknowledge
// such gaps).
func (r *leaseReader) read(ls []queue.Lease) int {
	offs := make([]int64, 0, len(ls))
	for _, l := range ls {
		if _, ok := r.batchEnd(l.Offset); !ok { // not in a batch read already
			offs = append(offs, l.Offset)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	l := r.t.logs()[r.p]
	added := 0
	// The first read takes exactly the batch holding the lowest offset
	// (leases of one fetch are mostly consecutive, often in one batch);
	// later ones read ahead in chunks.
	chunk := 1
	for i := 0; i < len(offs); {
		data, err := l.Read(offs[i], chunk)
		chunk = sessionReadChunk
		if err != nil || len(data) == 0 {
			r.t.b.logger.Warn("leased message no longer readable", "topic", r.t.meta.Name, "partition", r.p, "offset", offs[i], "err", err)
			i++
			continue
		}
		start := i
		for bt, err := range batch.Batches(data) {
			if err != nil || i == len(offs) {
				break
			}
			h, one := bt.Header, bt.Bytes
			for i < len(offs) && offs[i] < h.BaseOffset {
				i++ // not in the log (any more)
			}
			if i == len(offs) || offs[i] > h.LastOffset() {
				continue
			}
			for i < len(offs) && offs[i] <= h.LastOffset() {
				i++
			}
			if _, ok := r.batchEnd(h.BaseOffset); !ok {
				at := sort.Search(len(r.list), func(k int) bool { return r.list[k].base > h.BaseOffset })
				r.list = slices.Insert(r.list, at, rawBatch{base: h.BaseOffset, last: h.LastOffset(), data: one})
				added += len(one)
			}
		}
		if i == start {
			i++ // the read did not cover offs[i]: skip it rather than loop
		}
	}
	return added
}

// batchEnd returns the last offset of the collected batch holding off.
func (r *leaseReader) batchEnd(off int64) (int64, bool) {
	i := sort.Search(len(r.list), func(k int) bool { return r.list[k].last >= off })
	if i < len(r.list) && r.list[i].base <= off {
		return r.list[i].last, true
	}
	return 0, false
}

// batches returns the collected batches in offset order, concatenated.
func (r *leaseReader) batches() []byte {
	n := 0
	for _, rb := range r.list {
		n += len(rb.data)
	}
	out := make([]byte, 0, n)
	for _, rb := range r.list {
		out = append(out, rb.data...)
	}
	return out
}

// LeaseAction is what SettleLeases does with leased offsets.
type LeaseAction uint8

const (
	LeaseAck    LeaseAction = iota + 1 // finished
	LeaseNack                          // given back: redelivered after LeaseOp.For (past max deliveries, dead-lettered)
	LeaseReject                        // unprocessable: dead-lettered now
	LeaseExtend                        // the lease runs for LeaseOp.For from now
)

// LeaseOp applies one action to offsets [First, Last] of a partition.
type LeaseOp struct {
	First, Last int64
	Action      LeaseAction
	// For is LeaseNack's delay before the redelivery (negative: the
	// subscription's backoff; 0: at once) and LeaseExtend's new lease
	// length (0 or less: the ack timeout).
	For time.Duration
	// Reason is the error recorded with a nacked or rejected message (a
	// dead letter's spool.dlq.error header).
	Reason string
}

// SettleLeases applies ops to leases holder holds in partition p. It
// returns how many offsets holder did not hold (unknown, expired, finished,
// leased to another holder): those changed nothing; the others are
// applied. The whole call is refused (InvalidArgument) if an op is
// malformed or the ops cover more than 65,536 offsets.
func (b *Broker) SettleLeases(topicName, name, holder string, p int32, ops []LeaseOp) (stale int, err error) {
	if err := b.checkCoordinator(); err != nil {
		return 0, err
	}
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return 0, err
	}
	q := s.q
	if p < 0 || int(p) >= s.queueParts() {
		return 0, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	total := int64(0)
	for _, op := range ops {
		if op.First < 0 || op.Last < op.First || op.Action < LeaseAck || op.Action > LeaseExtend {
			return 0, errs.New(errs.InvalidArgument, "bad lease operation %d on [%d, %d]", op.Action, op.First, op.Last)
		}
		if total += op.Last - op.First + 1; total > maxAckRange {
			return 0, errs.New(errs.InvalidArgument, "lease operations cover at most %d offsets", maxAckRange)
		}
	}
	now := b.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return 0, errs.New(errs.SubNotFound, "subscription %q was deleted", name)
	}
	qp := q.parts[p]
	for _, op := range ops {
		if op.Action == LeaseAck {
			offs := make([]int64, 0, op.Last-op.First+1)
			for o := op.First; o <= op.Last; o++ {
				offs = append(offs, o)
			}
			st, eff := qp.core.Ack(now, holder, offs)
			s.applyQueueLocked(qp, eff)
			stale += len(st)
			if done := len(offs) - len(st); done > 0 {
				s.releaseSlotLocked(holder, done)
				s.finishedLocked(qp, ackedOnly(offs, st))
			}
			continue
		}
		for o := op.First; o <= op.Last; o++ {
			var ok bool
			var eff queue.Effects
			switch op.Action {
			case LeaseNack:
				ok, eff = qp.core.Nack(now, holder, o, op.For, op.Reason)
			case LeaseReject:
				ok, eff = qp.core.Reject(now, holder, o, op.Reason)
			case LeaseExtend:
				_, ok = qp.core.Extend(now, holder, o, op.For)
			}
			if op.Action != LeaseExtend {
				s.applyQueueLocked(qp, eff)
			}
			switch {
			case !ok:
				stale++
			case op.Action != LeaseExtend:
				s.releaseSlotLocked(holder, 1)
				if op.Action == LeaseNack {
					s.stats.nacked.Add(1)
				} else {
					s.stats.rejected.Add(1)
				}
			}
		}
	}
	return stale, nil
}

// ReleaseLeases returns every lease holder holds in a queue subscription
// (the consumer left or is gone): each is nacked now, redelivered after
// the subscription's backoff (past max deliveries, dead-lettered), as
// when a Session member leaves.
func (b *Broker) ReleaseLeases(topicName, name, holder string) error {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.deleted {
		s.releaseMemberLocked(holder)
	}
	return nil
}

// LeasesChanged returns a channel closed when leases may have become
// available in a queue subscription other than by a publish (see
// TopicChanged): messages fell due, leases ended, in-flight slots were
// freed. It is nil if the subscription does not exist or is not a queue
// subscription.
func (b *Broker) LeasesChanged(topicName, name string) <-chan struct{} {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return nil
	}
	return s.q.pulls.wait()
}

// pullSignal wakes consumers waiting for leases (LeasesChanged). It
// allocates a channel only when someone waits, so notifying (on every ack)
// is cheap. Its mutex is a leaf: notify is called with subscription.mu
// held.
type pullSignal struct {
	mu sync.Mutex
	ch chan struct{} // nil: nobody waits
}

func (sg *pullSignal) wait() <-chan struct{} {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.ch == nil {
		sg.ch = make(chan struct{})
	}
	return sg.ch
}

func (sg *pullSignal) notify() {
	sg.mu.Lock()
	if sg.ch != nil {
		close(sg.ch)
		sg.ch = nil
	}
	sg.mu.Unlock()
}
