package broker

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

// Request/response access to queue subscriptions, for protocol front ends
// whose consumers pull leases with a request instead of holding a Session
// stream (Kafka share groups, KIP-932). A "member" here is any non-empty
// string the caller picks; the broker's consumer group does not know it, so
// the caller owns its liveness: it must call ShareRelease when the member
// leaves or is evicted (otherwise its leases end at their deadline, as any
// lease does). Leases, acks, nacks, extends and rejects are the queue cores'
// own, so backoff, max deliveries and dead-lettering apply unchanged, and
// share members and Session members of one subscription share its work.

// shareLeaseRound bounds the leases taken in one core call by ShareLease, so
// that the byte budget is checked every so often.
const shareLeaseRound = 128

// ShareSub describes a queue subscription for a share consumer.
type ShareSub struct {
	Topic, Name     string
	AckTimeout      time.Duration // lease length (Kafka's acquisition lock)
	MaxDeliveries   int
	DeadLetterTopic string
}

// EnsureQueueSubscription returns queue subscription name of a topic,
// creating it with cfg (its mode set to queue) if it does not exist. A
// stream subscription of that name is an error (FailedPrecondition).
func (b *Broker) EnsureQueueSubscription(topicName, name string, cfg catalog.SubConfig) (ShareSub, error) {
	sub, err := b.QueueSubscription(topicName, name)
	if !errs.Is(err, errs.SubNotFound) {
		return sub, err
	}
	cfg.Mode = catalog.ModeQueue
	_, err = b.CreateSubscription(topicName, name, cfg)
	if err != nil && !errs.Is(err, errs.SubExists) {
		return ShareSub{}, err
	}
	return b.QueueSubscription(topicName, name)
}

// QueueSubscription returns queue subscription name of a topic: SubNotFound
// if there is none, FailedPrecondition if it is a stream subscription.
func (b *Broker) QueueSubscription(topicName, name string) (ShareSub, error) {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return ShareSub{}, err
	}
	s.mu.Lock() // the queue settings change under mu (AlterSubscription)
	defer s.mu.Unlock()
	return ShareSub{Topic: topicName, Name: name, AckTimeout: s.q.cfg.AckTimeout, MaxDeliveries: s.q.cfg.MaxDeliveries, DeadLetterTopic: s.q.dlq}, nil
}

// AcquiredRange is a run of consecutive leased offsets [First, Last] with
// the same delivery count.
type AcquiredRange struct {
	First, Last   int64
	DeliveryCount int32 // this delivery included
}

// ShareLeased is what ShareLease leased in one partition.
type ShareLeased struct {
	// Batches are the stored record batches holding the leased offsets,
	// exactly as stored, each once, in offset order. They also hold
	// records that were not leased (finished, or leased to others):
	// consumers keep only the Acquired offsets.
	Batches  []byte
	Acquired []AcquiredRange // ascending, disjoint
	Leased   int             // offsets leased
	// AckTimeout is the lease length; Deadline the earliest deadline of
	// the leases taken.
	AckTimeout time.Duration
	Deadline   time.Time
}

// ShareLeaseOptions bound one ShareLease call.
type ShareLeaseOptions struct {
	MaxRecords int // leases to take (see WholeBatches)
	// MaxBytes stops leasing once the batches read reach it (at least one
	// round of leases is read whatever its size).
	MaxBytes int
	// Lock, if positive, is the lease length instead of the subscription's
	// ack timeout (a Kafka share group's share.record.lock.duration.ms).
	Lock time.Duration
	// WholeBatches rounds MaxRecords up so that the last batch read is
	// leased to its end where its records are ready (Kafka's
	// batch-optimized acquire mode): a consumer then does not receive, and
	// decode, the same stored batch again for its next few records.
	WholeBatches bool
}

// ShareLease leases ready messages of partition p to member, feeding the
// core from the log as needed, and returns the stored batches holding them.
// It never waits: with nothing ready it returns nothing; see ShareChanged.
// The subscription's in-flight limit and rate limit apply.
func (b *Broker) ShareLease(topicName, name, member string, p int32, o ShareLeaseOptions) (ShareLeased, error) {
	if member == "" {
		return ShareLeased{}, errs.New(errs.InvalidArgument, "member is empty")
	}
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return ShareLeased{}, err
	}
	t, q := s.t, s.q
	s.mu.Lock() // partitions and queue settings change under mu
	parts, ackTimeout, callCap := q.parts, q.cfg.AckTimeout, q.maxInFlight
	s.mu.Unlock()
	if p < 0 || int(p) >= len(parts) {
		return ShareLeased{}, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	qp := parts[p]
	lock := o.Lock
	if lock <= 0 {
		lock = ackTimeout
	}
	out := ShareLeased{AckTimeout: lock}
	var leases []queue.Lease
	r := leaseReader{t: t, p: p}
	// One call takes at most half the subscription's in-flight limit, so
	// that a consumer that fetches ahead while it works (as Kafka clients
	// do) finds room for its next fetch before its acks arrive, instead
	// of waiting for them in a long poll they cannot reach. A small limit
	// (below two rounds) is a deliberate throttle and is used whole.
	if callCap >= 2*shareLeaseRound {
		callCap /= 2
	}
	bytes, limit, rounded := 0, min(o.MaxRecords, callCap), false
	maxOff := int64(-1)
	for {
		if len(leases) >= limit || (bytes >= o.MaxBytes && len(leases) > 0) {
			// Round up once to the end of the batch holding the highest
			// offset leased; more leases may still come from elsewhere (a
			// redelivery due first), bounded by that batch's size.
			if !o.WholeBatches || rounded || bytes >= o.MaxBytes || len(leases) == 0 {
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
		want := min(limit-len(leases), shareLeaseRound)
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
			ls, eff = qp.core.Poll(now, member, budget)
			if lock != q.cfg.AckTimeout {
				for i := range ls {
					if l, ok := qp.core.Extend(now, member, ls[i].Offset, lock); ok {
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
				q.leasesBy[member] += len(ls)
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
		if n := len(out.Acquired); n > 0 && out.Acquired[n-1].Last+1 == l.Offset && out.Acquired[n-1].DeliveryCount == dc {
			out.Acquired[n-1].Last = l.Offset
			continue
		}
		out.Acquired = append(out.Acquired, AcquiredRange{First: l.Offset, Last: l.Offset, DeliveryCount: dc})
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

// ShareAckType says what to do with leased offsets; the values are Kafka's
// acknowledge types.
type ShareAckType int8

const (
	ShareGap     ShareAckType = 0 // no record at the offset (or not wanted): finished, like an ack
	ShareAccept  ShareAckType = 1 // processed: ack
	ShareRelease ShareAckType = 2 // give back: redelivered after the backoff (a nack)
	ShareReject  ShareAckType = 3 // unprocessable: dead-lettered now
	ShareRenew   ShareAckType = 4 // extend the lease by the ack timeout
)

// ShareAckBatch applies one type to offsets [First, Last] of a partition.
type ShareAckBatch struct {
	First, Last int64
	Type        ShareAckType
}

// Error texts kept for the dead-letter headers of messages a share
// consumer released or rejected.
const (
	shareReleasedText = "released by a share consumer"
	shareRejectedText = "rejected by a share consumer"
)

// ShareAck applies acknowledgements of leases member holds in partition p.
// It returns how many offsets member did not hold (unknown, expired,
// finished, leased to another member): those changed nothing; the others
// are applied. The whole call is refused (InvalidArgument) if a batch is
// malformed or the batches cover more than 65,536 offsets. lock, if
// positive, is the length a ShareRenew extends a lease to instead of the
// subscription's ack timeout.
func (b *Broker) ShareAck(topicName, name, member string, p int32, acks []ShareAckBatch, lock time.Duration) (stale int, err error) {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return 0, err
	}
	q := s.q
	if p < 0 || int(p) >= s.queueParts() {
		return 0, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	total := int64(0)
	for _, a := range acks {
		if a.First < 0 || a.Last < a.First || a.Type < ShareGap || a.Type > ShareRenew {
			return 0, errs.New(errs.InvalidArgument, "bad acknowledgement [%d, %d] of type %d", a.First, a.Last, a.Type)
		}
		if total += a.Last - a.First + 1; total > maxAckRange {
			return 0, errs.New(errs.InvalidArgument, "acknowledgements cover at most %d offsets", maxAckRange)
		}
	}
	now := b.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return 0, errs.New(errs.SubNotFound, "subscription %q was deleted", name)
	}
	qp := q.parts[p]
	for _, a := range acks {
		switch a.Type {
		case ShareGap, ShareAccept:
			offs := make([]int64, 0, a.Last-a.First+1)
			for o := a.First; o <= a.Last; o++ {
				offs = append(offs, o)
			}
			st, eff := qp.core.Ack(now, member, offs)
			s.applyQueueLocked(qp, eff)
			stale += len(st)
			if done := len(offs) - len(st); done > 0 {
				s.releaseSlotLocked(member, done)
				s.finishedLocked(qp, ackedOnly(offs, st))
			}
		default:
			for o := a.First; o <= a.Last; o++ {
				var ok bool
				var eff queue.Effects
				switch a.Type {
				case ShareRelease:
					ok, eff = qp.core.Nack(now, member, o, -1, shareReleasedText)
				case ShareReject:
					ok, eff = qp.core.Reject(now, member, o, shareRejectedText)
				case ShareRenew:
					_, ok = qp.core.Extend(now, member, o, lock)
				}
				if a.Type != ShareRenew {
					s.applyQueueLocked(qp, eff)
				}
				switch {
				case !ok:
					stale++
				case a.Type != ShareRenew:
					s.releaseSlotLocked(member, 1)
				}
			}
		}
	}
	return stale, nil
}

// ShareRelease returns every lease member holds in a queue subscription
// (it left or was evicted): each is redelivered as if nacked now without
// a delay (past max deliveries, dead-lettered).
func (b *Broker) ShareRelease(topicName, name, member string) error {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.deleted {
		s.releaseMemberLocked(member)
	}
	return nil
}

// ShareChanged returns a channel closed when leases may have become
// available in a queue subscription other than by a publish (see
// TopicChanged): messages fell due, leases ended, in-flight slots were
// freed. It is nil if the subscription does not exist or is not a queue
// subscription.
func (b *Broker) ShareChanged(topicName, name string) <-chan struct{} {
	s, err := b.queueSub(topicName, name)
	if err != nil {
		return nil
	}
	return s.q.share.wait()
}

// shareSignal wakes share consumers waiting for leases. It allocates a
// channel only when someone waits, so notifying (on every ack) is cheap.
// Its mutex is a leaf: notify is called with subscription.mu held.
type shareSignal struct {
	mu sync.Mutex
	ch chan struct{} // nil: nobody waits
}

func (sg *shareSignal) wait() <-chan struct{} {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if sg.ch == nil {
		sg.ch = make(chan struct{})
	}
	return sg.ch
}

func (sg *shareSignal) notify() {
	sg.mu.Lock()
	if sg.ch != nil {
		close(sg.ch)
		sg.ch = nil
	}
	sg.mu.Unlock()
}
