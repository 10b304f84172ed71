package client

// The batch form of publishing (PublishRequest.batches), which a Producer
// uses when the server offers InitProducer: the producer builds one Kafka
// record batch per partition per request (package recordbatch), numbered
// per partition with its producer id, epoch and sequence numbers as
// Kafka's idempotent producers number theirs, and the server stores the
// bytes as sent. Retries resend the same bytes, so the server answers a
// repeat with the original offsets instead of storing it twice, and no
// message needs an ID.
//
// Partitions are chosen here, as the server would: an explicit partition,
// murmur2 of the key, or one partition for the keyless messages of a
// request, rotating between requests. The partition count comes from
// DescribeTopic when the producer connects and every metadataMaxAge.
//
// Order: a partition's batches are sent, and resent, in sequence order. A
// batch that fails with a retriable error (or out_of_order_sequence: an
// earlier one is missing) waits; nothing more of its partition is sent
// until the partition's batches in flight are answered, then the waiting
// ones are resent in order (franz-go's rule). A batch the server refused
// for good leaves a gap in the sequence: the producer then bumps its epoch
// (InitProducer with its id), once nothing is in flight and every batch
// whose fate a broken stream left unknown has been resent and answered, and
// numbers the unsent batches again from 0. Batches refused with
// message_too_large or invalid_argument are broken up and their messages
// sent one per batch, so that only the offending one fails.
//
// Messages with an ID or a Delay go by the message form (the
// de-duplication window and the broker's clock apply to them), one request
// at a time per partition and only when nothing else of the partition is
// in flight, so they keep their order with the batches around them.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/recordbatch"
)

// How the sender publishes.
const (
	modeUnknown  = iota // not yet connected: InitProducer decides
	modeMessages        // the server has no batch form: every message by the message form
	modeBatches         // the batch form (this file)
)

const (
	// maxPartInFlight bounds the unanswered batches of one partition, as
	// Kafka's idempotent producers bound theirs (the server remembers the
	// last five of each producer and partition).
	maxPartInFlight = 5
	// metadataMaxAge is how often the partition count is read again.
	metadataMaxAge = time.Minute
	// setupTimeout bounds InitProducer and DescribeTopic.
	setupTimeout = 10 * time.Second
)

// partQ is one partition's messages and batches.
type partQ struct {
	p         int32
	conn      *nodeStream // the node its batches go to (its leader, on a cluster)
	pending   recQueue    // not yet in a batch, in send order
	batches   []*pbatch   // built and unfinished, in sequence order
	nextSeq   int32       // the sequence of the next new batch
	built     int64       // batches built so far (the next one's idx)
	inflight  int         // batches in flight
	msgReq    bool        // a message-form request of the partition is in flight
	resending bool        // waiting batches are being resent in order
}

// pbatch is one record batch of a partition.
type pbatch struct {
	q          *partQ
	records    []*record
	data       []byte
	seq        int32
	idx        int64  // its place among the partition's batches
	req        uint64 // the request it is in flight in; 0: waiting
	unknown    bool   // in flight when its stream broke: it may be stored
	dissolve   bool   // refused as a whole: its messages go one by one at the next epoch
	notBefore  time.Time
	attempts   int
	redirects  int // sent to another leader at once after a refusal
	lastErr    error
	brokerTime bool
}

// waiting reports whether the batch is built and not in flight.
func (pb *pbatch) waiting() bool { return pb.req == 0 }

// enqueued is when the batch's oldest message was sent: the earliest
// deadline of its messages is this plus the delivery timeout.
func (pb *pbatch) enqueued() mono {
	e := pb.records[0].enqueued
	for _, r := range pb.records[1:] {
		e = min(e, r.enqueued)
	}
	return e
}

// recQueue is a queue of records: pushed at the back, taken from the
// front, put back in front after a failure. Taking from the front does not
// give up the slice's capacity (a slice re-sliced from the front would be
// copied to a new array every time its end is reached).
type recQueue struct {
	buf  []*record
	head int
}

// len returns the number of records queued.
func (q *recQueue) len() int { return len(q.buf) - q.head }

// items returns the queued records in order; valid until the next change.
func (q *recQueue) items() []*record { return q.buf[q.head:] }

// push appends r.
func (q *recQueue) push(r *record) {
	if len(q.buf) == cap(q.buf) && q.head > 0 && q.head >= len(q.buf)/2 {
		// At least half the array is taken: move the rest to the front
		// (each record is moved at most once per record taken).
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, r)
}

// take removes and returns the first k records, in a new slice.
func (q *recQueue) take(k int) []*record {
	rs := slices.Clone(q.buf[q.head : q.head+k])
	clear(q.buf[q.head : q.head+k])
	q.head += k
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return rs
}

// pushFront puts rs in front of the queue, in order.
func (q *recQueue) pushFront(rs []*record) {
	if len(rs) == 0 {
		return
	}
	if len(rs) <= q.head {
		q.head -= len(rs)
		copy(q.buf[q.head:], rs)
		return
	}
	q.buf, q.head = append(rs[:len(rs):len(rs)], q.items()...), 0
}

// keep keeps the records for which f returns true, in order.
func (q *recQueue) keep(f func(*record) bool) {
	kept := q.buf[:q.head]
	for _, r := range q.buf[q.head:] {
		if f(r) {
			kept = append(kept, r)
		}
	}
	clear(q.buf[len(kept):])
	q.buf = kept
}

// reset empties the queue and returns what it held.
func (q *recQueue) reset() []*record {
	rs := q.items()
	q.buf, q.head = nil, 0
	return rs
}

// fast is the sender's state for the batch form.
type fast struct {
	mode       int
	pid        int64
	epoch      int16
	nparts     int32 // 0: unknown
	parts      []*partQ
	unassigned []*record // accepted before the partition count was known
	sticky     int32     // the partition of keyless messages
	metaAt     time.Time // when the partition count was read
	needBump   bool      // a gap in some partition's sequence: bump the epoch
	cluster    bool      // the topic is on a cluster: partitions have leaders
	rr         int       // the partition the next request starts with
	builder    recordbatch.Builder
	free       [][]byte // buffers of stored batches, for new ones
	freeBytes  int      // their capacity
}

// addRecords takes newly sent records in the batch form (or before the
// form is known).
func (s *sender) addRecords(rs []*record) {
	switch s.f.mode {
	case modeMessages:
		for _, r := range rs {
			r.proto()
		}
		s.b.add(rs)
	default:
		if s.f.nparts == 0 {
			s.f.unassigned = append(s.f.unassigned, rs...)
			return
		}
		for _, r := range rs {
			s.assign(r)
		}
	}
}

// assign queues r in its partition.
func (s *sender) assign(r *record) {
	n := s.f.nparts
	var p int32
	switch {
	case r.partSet:
		p = r.part
		if p >= n {
			s.p.finish([]*record{r}, nil, invalidArgument("message: partition %d does not exist (topic %q has %d)", p, s.p.topic, n))
			return
		}
	case len(r.key) > 0:
		p = recordbatch.KeyPartition(r.key, n)
	default:
		p = s.f.sticky
	}
	s.f.parts[p].pending.push(r)
}

// idle reports whether nothing is queued or in flight.
func (s *sender) idle() bool {
	if len(s.inflight) > 0 || len(s.b.pending) > 0 || len(s.f.unassigned) > 0 {
		return false
	}
	for _, q := range s.f.parts {
		if q.pending.len() > 0 || len(q.batches) > 0 {
			return false
		}
	}
	return true
}

// setup learns the form (InitProducer) and the partition count
// (DescribeTopic). It reports whether the batch form may proceed; on a
// failure it schedules a retry or fails the messages waiting for it.
func (s *sender) setup(now time.Time) bool {
	ctx, cancel := context.WithTimeout(s.p.baseCtx, setupTimeout)
	defer cancel()
	c := s.p.c
	if s.f.mode == modeUnknown {
		resp, err := c.initProducer(ctx, &spoolv1.InitProducerRequest{})
		if err != nil {
			if e, ok := err.(*Error); ok && e.Code == "unimplemented" {
				s.f.mode = modeMessages // a server without the batch form
				rs := s.f.unassigned
				s.f.unassigned = nil
				s.addRecords(rs)
				return false
			}
			s.setupFailed(now, err)
			return false
		}
		s.f.pid, s.f.epoch = resp.GetProducerId(), int16(resp.GetProducerEpoch())
		s.f.mode = modeBatches
	}
	tl, err := c.describeLeaders(ctx, s.p.topic)
	if err != nil {
		s.setupFailed(now, err)
		return false
	}
	n := tl.n
	s.f.metaAt = now
	if n > s.f.nparts {
		for p := s.f.nparts; p < n; p++ {
			s.f.parts = append(s.f.parts, &partQ{p: p, conn: s.conns[0]})
			s.conns[0].parts++
		}
		if s.f.nparts == 0 {
			s.f.sticky = rand.Int32N(n)
		}
		s.f.nparts = n
	}
	s.route(tl)
	rs := s.f.unassigned
	s.f.unassigned = nil
	for _, r := range rs {
		s.assign(r)
	}
	return true
}

// setupFailed retries a failed setup after a backoff, or fails the
// messages waiting for it when retrying cannot help (topic_not_found).
func (s *sender) setupFailed(now time.Time, err error) {
	if !streamRetriable(err) {
		rs := s.f.unassigned
		s.f.unassigned = nil
		s.p.finish(rs, nil, err)
		return
	}
	cn := s.conns[0]
	cn.failures++
	wait := s.p.c.cfg.backoff.delay(cn.failures, retryAfterOf(err))
	cn.reconnectAt = now.Add(wait)
	s.p.log.Warn("spool: producer setup failed", "err", err, "retry_in", wait)
}

// pumpBatches is pump for the batch form.
func (s *sender) pumpBatches(now time.Time, force bool) time.Time {
	def := s.conns[0]
	for len(s.inflight) < s.p.cfg.maxInFlight {
		if now.Before(def.reconnectAt) && (s.f.nparts == 0 || (def.stream == nil && len(s.conns) == 1)) {
			return def.reconnectAt
		}
		if def.stream != nil && def.stream.sendErr != nil && len(s.conns) == 1 {
			return time.Time{} // the receiver will report why
		}
		stale := s.f.nparts > 0 && now.Sub(s.f.metaAt) > metadataMaxAge
		if s.f.mode == modeUnknown || s.f.nparts == 0 || stale {
			if s.f.nparts == 0 && len(s.f.unassigned) == 0 {
				return time.Time{}
			}
			if stale {
				s.f.metaAt = now // once per max age, whatever the outcome
			}
			ok := s.setup(now)
			if s.f.mode == modeMessages {
				return s.pump(now, force)
			}
			if !ok && s.f.nparts == 0 {
				return def.reconnectAt
			}
		}
		if s.f.needBump && !s.bump(now) {
			if len(s.inflight) > 0 || s.unresolved() {
				// Batches of unknown fate are resent below; the bump waits
				// for their answers.
			} else {
				return def.reconnectAt
			}
		}
		req, wake := s.nextRequest(now, force)
		if req == nil {
			return wake
		}
		if req.conn.stream == nil {
			s.open(req.conn)
		}
		s.sendRequest(req)
	}
	return time.Time{}
}

// unresolved reports whether a batch's fate is unknown (its stream broke).
func (s *sender) unresolved() bool {
	for _, q := range s.f.parts {
		for _, pb := range q.batches {
			if pb.unknown {
				return true
			}
		}
	}
	return false
}

// bump gives the producer its next epoch once nothing is in flight and no
// batch's fate is unknown, and numbers every unsent message again: the
// batches built so far are broken up, their messages put back in front of
// their partitions' queues in order. It reports whether it bumped.
func (s *sender) bump(now time.Time) bool {
	def := s.conns[0]
	if len(s.inflight) > 0 || s.unresolved() || now.Before(def.reconnectAt) {
		return false
	}
	ctx, cancel := context.WithTimeout(s.p.baseCtx, setupTimeout)
	defer cancel()
	pid := s.f.pid
	resp, err := s.p.c.initProducer(ctx, &spoolv1.InitProducerRequest{ProducerId: &pid, ProducerEpoch: int32(s.f.epoch)})
	if err != nil {
		def.failures++
		def.reconnectAt = now.Add(s.p.c.cfg.backoff.delay(def.failures, retryAfterOf(err)))
		s.p.log.Warn("spool: producer epoch bump failed", "err", err)
		return false
	}
	s.f.pid, s.f.epoch = resp.GetProducerId(), int16(resp.GetProducerEpoch())
	for _, q := range s.f.parts {
		var back []*record
		for _, pb := range q.batches {
			back = append(back, pb.records...)
		}
		q.pending.pushFront(back)
		clear(q.batches)
		q.batches = q.batches[:0]
		q.nextSeq, q.resending = 0, false
	}
	s.f.needBump = false
	return true
}

// batchRequest is what nextRequest plans for one partition.
type planned struct {
	q      *partQ
	resend *pbatch // a waiting batch to send again
	n      int     // or the first n pending messages as a new batch
	est    int     // of about est bytes of records
}

// nextRequest builds the next request: waiting batches resent in order and
// new batches, at most one per partition, or a message-form request of one
// partition. It returns nil and when to look again when nothing is ready
// (a partial request lingers).
func (s *sender) nextRequest(now time.Time, force bool) (*request, time.Time) {
	var (
		plan    []planned
		msgs    int
		bytes   int64
		oldest  mono
		wake    time.Time
		resends bool
		full    bool
		special *partQ
		via     *nodeStream // the request's node: its partitions' leader
	)
	maxMsgs, maxBytes := s.p.cfg.maxBatchMsgs, s.p.cfg.maxBatchBytes
	mnow := monoOf(now)
	oldest = math.MaxInt64 // the earliest enqueued of the new batches' messages
	n := len(s.f.parts)
	for i := 0; i < n && !full; i++ {
		q := s.f.parts[(s.f.rr+i)%n]
		if q.msgReq {
			continue
		}
		if via == nil {
			if ok, w := q.conn.usable(now); !ok {
				wake = earliest(wake, w)
				continue
			}
		} else if q.conn != via {
			continue // another node's partition: in a later request
		}
		if s.f.needBump {
			// Before the next epoch only batches of unknown fate are sent
			// again, in any order: a repeat is answered with its offsets, a
			// batch never stored with out_of_order_sequence (an earlier one
			// is missing); either settles it. The rest is renumbered.
			if pb := firstUnknown(q); pb != nil {
				if len(plan) > 0 && (msgs+len(pb.records) > maxMsgs || bytes+int64(len(pb.data)) > maxBytes) {
					full = true
					break
				}
				plan = append(plan, planned{q: q, resend: pb})
				via = q.conn
				msgs += len(pb.records)
				bytes += int64(len(pb.data))
				resends = true
			}
			continue
		}
		if pb := firstWaiting(q); pb != nil {
			if q.inflight > 0 && !q.resending {
				continue // resend in order once the partition's batches are answered
			}
			if pb.notBefore.After(now) {
				wake = earliest(wake, pb.notBefore)
				continue
			}
			if len(plan) > 0 && (msgs+len(pb.records) > maxMsgs || bytes+int64(len(pb.data)) > maxBytes) {
				full = true
				break
			}
			plan = append(plan, planned{q: q, resend: pb})
			via = q.conn
			msgs += len(pb.records)
			bytes += int64(len(pb.data))
			resends = true
			continue
		}
		pending := q.pending.items()
		if len(pending) == 0 || (len(q.batches) > 0 && q.built-q.batches[0].idx >= maxPartInFlight) {
			// A new batch at most four after the oldest unanswered one:
			// answers come in any order, so later batches may be answered
			// (and followed by more) while an earlier one is not, and the
			// server recognises a repeat only among the partition's last
			// five batches.
			continue
		}
		head := pending[0]
		if head.notBefore > mnow {
			wake = earliest(wake, head.notBefore.time())
			continue
		}
		if head.special {
			if len(q.batches) == 0 && special == nil {
				special = q
			}
			continue
		}
		k, est := 0, 0
		for _, r := range pending {
			if r.special || r.brokerTime != head.brokerTime || r.notBefore > mnow || (r.alone && k > 0) {
				break
			}
			n := r.encSize()
			if (len(plan) > 0 || k > 0) && (msgs+1 > maxMsgs || bytes+int64(n) > maxBytes) {
				full = true
				break
			}
			k++
			msgs++
			bytes += int64(n)
			est += n
			oldest = min(oldest, r.enqueued)
			if r.alone {
				break
			}
			if msgs >= maxMsgs || bytes >= maxBytes {
				full = true
				break
			}
		}
		if k > 0 {
			plan = append(plan, planned{q: q, n: k, est: est})
			via = q.conn
		}
	}
	if len(plan) == 0 {
		if special != nil {
			return s.messageRequest(special, now, force)
		}
		return nil, wake
	}
	if !resends && !full && !force {
		if ready := oldest.add(s.p.cfg.linger); ready > mnow {
			return nil, earliest(wake, ready.time())
		}
	}
	s.nextID++
	req := &request{id: s.nextID, conn: via}
	for _, pl := range plan {
		pb := pl.resend
		if pb == nil {
			pb = s.build(pl.q, pl.n, pl.est)
		} else if pl.q.inflight == 0 && !s.f.needBump {
			pl.q.resending = true
		}
		req.batches = append(req.batches, pb)
	}
	s.f.rr = (s.f.rr + 1) % n
	if s.f.nparts > 0 {
		s.f.sticky = (s.f.sticky + 1) % s.f.nparts
	}
	return req, time.Time{}
}

func firstUnknown(q *partQ) *pbatch {
	for _, pb := range q.batches {
		if pb.waiting() && pb.unknown {
			return pb
		}
	}
	return nil
}

func firstWaiting(q *partQ) *pbatch {
	for _, pb := range q.batches {
		if pb.waiting() {
			return pb
		}
	}
	return nil
}

// build encodes the first k pending messages of q, about est bytes of
// records, as its next batch.
func (s *sender) build(q *partQ, k, est int) *pbatch {
	rs := q.pending.take(k)
	pb := &pbatch{q: q, records: rs, seq: q.nextSeq, idx: q.built, brokerTime: rs[0].brokerTime}
	q.built++
	b := &s.f.builder
	base := int64(0)
	if !pb.brokerTime {
		base = rs[0].ts
	}
	est += recordbatch.HeaderSize
	if n := len(s.f.free); n > 0 && cap(s.f.free[n-1]) >= est {
		b.ResetBuffer(s.f.free[n-1], base)
		s.f.freeBytes -= cap(s.f.free[n-1])
		s.f.free[n-1] = nil
		s.f.free = s.f.free[:n-1]
	} else {
		b.Reset(base)
	}
	b.Grow(est)
	for _, r := range rs {
		ts := r.ts
		if pb.brokerTime {
			ts = 0
		}
		b.Add(ts, r.key, r.value, r.hdrs())
	}
	pb.data = b.Finish(s.f.pid, s.f.epoch, pb.seq)
	q.nextSeq = incSeq(q.nextSeq, int32(len(rs)))
	q.batches = append(q.batches, pb)
	return pb
}

// incSeq adds n to a sequence number, wrapping from MaxInt32 to 0 as the
// server counts.
func incSeq(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// messageRequest builds a message-form request of q's leading messages
// with an ID or a Delay, sent to q's partition.
func (s *sender) messageRequest(q *partQ, now time.Time, force bool) (*request, time.Time) {
	var (
		take    int
		bytes   int64
		headers int
		oldest  mono
		full    bool
	)
	mnow := monoOf(now)
	for _, r := range q.pending.items() {
		if !r.special || r.notBefore > mnow || (r.alone && take > 0) {
			break
		}
		if take > 0 && (take+1 > s.p.cfg.maxBatchMsgs || bytes+r.size > s.p.cfg.maxBatchBytes || headers+r.headers() > maxRequestHeaders) {
			full = true
			break
		}
		if take == 0 || r.enqueued < oldest {
			oldest = r.enqueued
		}
		take++
		bytes += r.size
		headers += r.headers()
		if r.alone || take >= s.p.cfg.maxBatchMsgs || bytes >= s.p.cfg.maxBatchBytes {
			full = true
			break
		}
	}
	if !full && !force {
		if ready := oldest.add(s.p.cfg.linger); ready > mnow {
			return nil, ready.time()
		}
	}
	rs := q.pending.take(take)
	for _, r := range rs {
		pm := r.proto()
		p := q.p
		pm.Partition = &p
	}
	s.nextID++
	return &request{id: s.nextID, conn: q.conn, records: rs, q: q}, time.Time{}
}

// sendRequest puts a batch-form or message-form request in flight.
func (s *sender) sendRequest(req *request) {
	s.inflight[req.id] = req
	preq := &spoolv1.PublishRequest{Topic: s.p.topic, RequestId: req.id}
	if req.q != nil {
		req.q.msgReq = true
		preq.Messages = make([]*spoolv1.Message, len(req.records))
		for i, r := range req.records {
			preq.Messages[i] = r.pm()
		}
	} else {
		preq.Batches = make([]*spoolv1.PartitionBatch, len(req.batches))
		for i, pb := range req.batches {
			pb.req = req.id
			pb.q.inflight++
			preq.Batches[i] = &spoolv1.PartitionBatch{Partition: pb.q.p, Records: pb.data, BrokerTime: pb.brokerTime}
		}
	}
	if st := req.conn.stream; st != nil {
		if err := st.stream.Send(preq); err != nil {
			st.sendErr = err
		}
	}
}

// handleBatches processes the answer to a request of the batch form's
// producer (either form).
func (s *sender) handleBatches(req *request, resp *spoolv1.PublishResponse) {
	delete(s.inflight, req.id)
	req.conn.failures = 0
	if req.q != nil {
		s.handleMessages(req, resp)
		return
	}
	var reqErr *Error
	if info := resp.GetError(); info != nil {
		reqErr = errorFromInfo(info, resp.GetErrorMessage())
	} else if len(resp.GetBatchResults()) != len(req.batches) {
		reqErr = &Error{Code: "internal", Message: fmt.Sprintf("server returned %d results for %d batches", len(resp.GetBatchResults()), len(req.batches))}
	}
	for i, pb := range req.batches {
		pb.req = 0
		pb.q.inflight--
		if reqErr != nil {
			s.batchFailed(pb, reqErr, req.conn)
			continue
		}
		res := resp.GetBatchResults()[i]
		if info := res.GetError(); info != nil {
			s.batchFailed(pb, errorFromInfo(info, res.GetErrorMessage()), req.conn)
			continue
		}
		if int(res.GetCount()) != len(pb.records) {
			s.batchFailed(pb, &Error{Code: "internal", Message: fmt.Sprintf("server counted %d messages in a batch of %d", res.GetCount(), len(pb.records))}, req.conn)
			continue
		}
		s.removeBatch(pb)
		s.p.finishStored(pb.records, pb.q.p, res.GetBaseOffset(), res.GetDuplicate())
		s.recycle(pb)
	}
}

// maxFree and maxFreeBytes bound the batch buffers kept for reuse.
const (
	maxFree      = 8
	maxFreeBytes = 8 << 20
)

// recycle keeps a stored batch's buffer for a later batch: its bytes were
// sent (the request marshalled) and will not be sent again.
func (s *sender) recycle(pb *pbatch) {
	if c := cap(pb.data); len(s.f.free) < maxFree && s.f.freeBytes+c <= maxFreeBytes {
		s.f.free = append(s.f.free, pb.data)
		s.f.freeBytes += c
	}
	pb.data = nil
}

// removeBatch takes a finished batch out of its partition's list.
func (s *sender) removeBatch(pb *pbatch) {
	q := pb.q
	if i := slices.Index(q.batches, pb); i >= 0 {
		q.batches = slices.Delete(q.batches, i, i+1)
	}
	if q.inflight == 0 && firstWaiting(q) == nil {
		q.resending = false
	}
}

// batchFailed handles a batch the server did not store (sent on sentOn).
func (s *sender) batchFailed(pb *pbatch, e *Error, sentOn *nodeStream) {
	pb.unknown = false
	pb.lastErr = e
	pb.q.resending = false
	for _, r := range pb.records {
		r.setErr(e)
	}
	if e.Retriable || e.Code == CodeOutOfOrderSequence {
		pb.attempts++
		switch {
		case e.Code == CodeOutOfOrderSequence:
			pb.notBefore = time.Time{} // an earlier batch is resent first
		case s.follow(pb.q, e.leader, sentOn) && pb.redirects < maxRedirects:
			pb.redirects++
			pb.notBefore = time.Time{} // to the leader at once
		default:
			pb.notBefore = time.Now().Add(s.p.c.cfg.backoff.delay(pb.attempts, e.RetryAfter))
		}
		return
	}
	if len(pb.records) > 1 && (e.Code == CodeMessageTooLarge || e.Code == CodeInvalidArgument) {
		// Which message was refused is not said: send them one by one.
		for _, r := range pb.records {
			r.alone = true
		}
		s.drop(pb, nil)
		return
	}
	s.drop(pb, e)
}

// drop ends a batch that was not stored: its messages fail with err, or
// (nil) go back to be sent again one by one. Later batches of the
// partition then follow a gap in the sequence, which the next epoch closes.
func (s *sender) drop(pb *pbatch, err error) {
	q := pb.q
	i := slices.Index(q.batches, pb)
	if i < 0 {
		return // not the partition's any more (never the case)
	}
	if i == len(q.batches)-1 {
		// The last one: the partition's next sequence is this batch's.
		q.batches = q.batches[:i]
		q.nextSeq = pb.seq
		if err != nil {
			s.p.finish(pb.records, nil, err)
		} else {
			q.pending.pushFront(pb.records)
		}
		return
	}
	s.f.needBump = true
	if err != nil {
		q.batches = slices.Delete(q.batches, i, i+1)
		s.p.finish(pb.records, nil, err)
		return
	}
	pb.dissolve = true
}

// handleMessages processes the answer to a message-form request of one
// partition.
func (s *sender) handleMessages(req *request, resp *spoolv1.PublishResponse) {
	q := req.q
	q.msgReq = false
	if info := resp.GetError(); info != nil {
		s.messagesFailed(req, errorFromInfo(info, resp.GetErrorMessage()))
		return
	}
	results, e := messageResults(req, resp)
	if e != nil {
		s.messagesFailed(req, e)
		return
	}
	s.p.finish(req.records, results, nil)
}

// messagesFailed handles a message-form request of the batch form's
// producer that the server answered with an error.
func (s *sender) messagesFailed(req *request, e *Error) {
	q := req.q
	if e.Retriable {
		at := s.retryAt(req.records, e)
		if s.follow(q, e.leader, req.conn) {
			at = 0 // to the leader at once
		}
		for _, r := range req.records {
			r.notBefore = at
		}
		q.pending.pushFront(req.records)
		return
	}
	if isolate(req, e) {
		q.pending.pushFront(req.records)
		return
	}
	s.p.finish(req.records, nil, e)
}

// breakBatches is breakStream for the batch form: batches in flight become
// of unknown fate (resent first when a stream opens; a repeat is answered
// with its offsets), message-form requests go back to their partitions.
func (s *sender) breakBatches(ids []uint64, err error, retriable bool) int {
	n := 0
	for _, id := range ids {
		req := s.inflight[id]
		delete(s.inflight, id)
		n += len(req.records) + len(req.batches)
		if req.q != nil {
			req.q.msgReq = false
			if !retriable {
				s.p.finish(req.records, nil, err)
				continue
			}
			for _, r := range req.records {
				r.failedWith(err)
			}
			req.q.pending.pushFront(req.records)
			continue
		}
		for _, pb := range req.batches {
			pb.req = 0
			pb.q.inflight--
			pb.q.resending = false
			pb.lastErr = err
			pb.unknown = retriable
			if !retriable {
				s.drop(pb, err)
			}
		}
	}
	return n
}

// expireBatches fails messages past their deadline: waiting batches (a
// batch whose fate a broken stream left unknown only while no stream can
// resolve it: its messages may then have been stored) and queued messages.
func (s *sender) expireBatches(now time.Time) {
	dead := monoOf(now).add(-s.p.cfg.deliveryTimeout) // enqueued at or before: past the deadline
	for _, q := range s.f.parts {
		for _, pb := range slices.Clone(q.batches) {
			if !pb.waiting() || pb.dissolve || pb.enqueued() > dead {
				continue
			}
			if pb.unknown {
				if q.conn.stream != nil {
					continue
				}
				pb.unknown = false
				s.f.needBump = true
			}
			s.drop(pb, deliveryTimeout(pb.lastErr))
		}
		q.pending.keep(func(r *record) bool {
			if r.enqueued <= dead {
				s.p.finish([]*record{r}, nil, deliveryTimeout(r.lastErr()))
				return false
			}
			return true
		})
	}
	kept := s.f.unassigned[:0]
	for _, r := range s.f.unassigned {
		if r.enqueued <= dead {
			s.p.finish([]*record{r}, nil, deliveryTimeout(r.lastErr()))
			continue
		}
		kept = append(kept, r)
	}
	clear(s.f.unassigned[len(kept):])
	s.f.unassigned = kept
}

// abortBatches fails everything of the batch form with ErrProducerClosed.
func (s *sender) abortBatches() {
	for _, q := range s.f.parts {
		for _, pb := range q.batches {
			s.p.finish(pb.records, nil, ErrProducerClosed)
		}
		q.batches = nil
		s.p.finish(q.pending.reset(), nil, ErrProducerClosed)
	}
	s.p.finish(s.f.unassigned, nil, ErrProducerClosed)
	s.f.unassigned = nil
}
