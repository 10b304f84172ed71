package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// defaultAckTimeout is the server's lease length when the subscription's
// config does not say (per subscriptions.proto).
const defaultAckTimeout = 30 * time.Second

// Kinds of lease requests, for the log.
const (
	reqAck    = "ack"
	reqNack   = "nack"
	reqExtend = "extend"
	reqReject = "reject"
)

// leaseKey names one delivered message.
type leaseKey struct {
	part int32
	off  int64
}

// compareKeys orders leaseKeys by partition, then offset.
func compareKeys(a, b leaseKey) int {
	return cmp.Or(cmp.Compare(a.part, b.part), cmp.Compare(a.off, b.off))
}

// heldMsg is a delivered message the consumer has not finished: waiting
// for a worker, waiting behind its key, or being handled. The session
// reads only the fields copied here, never the Message, which belongs to
// the handler.
type heldMsg struct {
	m          *Message
	key        leaseKey
	order      string    // ConsumerKeyOrdered: the message's key; "" = unordered
	deliveries int32     // the delivery count when it arrived
	received   time.Time // when the first of its deliveries in hand arrived
	nextExtend time.Time // when to extend its lease; zero: no more extensions
}

type outcomeKind uint8

const (
	outAck    outcomeKind = iota // the handler returned nil
	outNack                      // the handler failed
	outReject                    // the handler returned a RejectError
	outExited                    // the worker returned
)

// queueEvent is a worker's report to the session loop.
type queueEvent struct {
	h     *heldMsg
	kind  outcomeKind
	delay time.Duration // outNack: redelivery delay; negative: the subscription's backoff
	err   error         // outNack, outReject: the handler's error
}

// carriedOp is a lease request: sent and not answered yet, or kept for the
// next stream (made while the stream was down, or sent on a stream that
// broke before answering it).
type carriedOp struct {
	req  *spoolv1.ConsumeRequest
	kind string
	id   *uint64 // the request's request_id field, set when sent
}

// leaseCarry is what a broken queue session leaves for the next one.
type leaseCarry struct {
	acks ackBatch
	ops  []carriedOp
}

// queueSession is a queue-mode session: the core, the messages in hand,
// the workers and the acknowledgements. The loop goroutine owns every
// field; the workers take messages from the work queue and report through
// the core's events.
//
// Every delivery is a lease the member must finish: the loop hands
// messages to the workers (through the key queues with ConsumerKeyOrdered),
// turns each handler's result into an ack (batched), a nack or a reject,
// extends the leases of every message it holds, and grants one credit back
// per delivery once it is finished.
type queueSession struct {
	sessionCore[queueEvent]
	hctx     context.Context // the handlers' context; cancelled to give up on them
	hcancel  context.CancelFunc
	leaseLen time.Duration // the subscription's ack timeout
	queue    *workQueue

	workers  int // workers that have not exited
	held     map[leaseKey]*heldMsg
	keys     map[string][]*heldMsg // ConsumerKeyOrdered: keys being handled → messages waiting behind
	acks     ackBatch
	ackTimer *time.Timer
	ackArmed bool
	extTimer *time.Timer
	extAt    time.Time // when extTimer fires; zero: stopped
	reqID    uint64
	pending  map[uint64]carriedOp // lease requests sent and not answered
}

func newQueueSession(ctx context.Context, k *Consumer, st *memberState, ackTimeout time.Duration) *queueSession {
	if ackTimeout <= 0 {
		ackTimeout = defaultAckTimeout
	}
	s := &queueSession{
		leaseLen: ackTimeout,
		queue:    newWorkQueue(),
		held:     map[leaseKey]*heldMsg{},
		keys:     map[string][]*heldMsg{},
		ackTimer: time.NewTimer(time.Hour),
		extTimer: time.NewTimer(time.Hour),
		pending:  map[uint64]carriedOp{},
	}
	s.ackTimer.Stop()
	s.extTimer.Stop()
	s.init(ctx, k, st, k.cfg.credit(true), s)
	s.maxInFlight = int32(k.cfg.maxInFlight)
	s.hctx, s.hcancel = context.WithCancel(s.work)
	return s
}

// opened sends what the previous stream left unsent and starts the
// workers.
func (s *queueSession) opened() {
	carry := &s.st.queued
	for _, op := range carry.ops {
		s.sendLease(op)
	}
	carry.ops = nil
	s.acks.merge(&carry.acks)
	s.flushAcks()
	s.workers = s.cfg.concurrency
	for range s.workers {
		s.wg.Go(s.worker)
	}
}

func (s *queueSession) closing() {
	s.queue.close()
	s.hcancel()
	s.ackTimer.Stop()
	s.extTimer.Stop()
}

// timers: acks due, and leases due for an extension.
func (s *queueSession) timers(bool) (<-chan time.Time, <-chan time.Time) {
	return s.ackTimer.C, s.extTimer.C
}

func (s *queueSession) fired(i int) {
	if i == 0 {
		s.ackArmed = false
		s.flushAcks()
		return
	}
	s.extendDue(time.Now())
}

func (s *queueSession) exited() bool { return s.workers == 0 }

func (s *queueSession) flush() { s.flushAcks() }

func (s *queueSession) unanswered() int { return len(s.pending) }

func (s *queueSession) drop() {}

// keep sends the outcomes of a broken stream's handlers on the next stream
// (the member's leases outlive a short disconnection), with the acks, nacks
// and rejects the broken stream left unanswered: sent before the session
// learnt that the stream had ended, they may never have reached the server.
// One that did is answered as stale the second time (a nack could instead
// end a new lease of the same message to this member, if the server has
// already leased it again: one more redelivery, where a lost nack would cost
// the rest of the lease). Extensions are not sent again: every handler has
// finished.
func (s *queueSession) keep() {
	s.flushAcks()
	var unanswered []carriedOp
	for _, id := range slices.Sorted(maps.Keys(s.pending)) {
		if op := s.pending[id]; op.kind != reqExtend {
			unanswered = append(unanswered, op)
		}
	}
	clear(s.pending)
	s.st.queued.ops = append(unanswered, s.st.queued.ops...)
}

func (s *queueSession) onResponse(resp *spoolv1.ConsumeResponse) {
	switch kind := resp.GetKind().(type) {
	case *spoolv1.ConsumeResponse_Assignment:
		s.assigned(kind.Assignment)
		s.heartbeatFor(kind.Assignment)
	case *spoolv1.ConsumeResponse_Deliveries:
		now := time.Now()
		for _, m := range messagesFromDeliveries(s.k.topic, kind.Deliveries.GetMessages()) {
			s.onDelivery(m, now)
		}
	case *spoolv1.ConsumeResponse_LeaseResult:
		s.onLeaseResult(kind.LeaseResult)
	}
}

// onDelivery takes one leased message in hand.
func (s *queueSession) onDelivery(m *Message, now time.Time) {
	key := leaseKey{m.Partition, m.Offset}
	if h := s.held[key]; h != nil {
		// Delivered again while still in hand: the earlier lease ran out.
		// The copy in hand is finished under the new lease.
		s.k.log.Debug("spool: message redelivered while still held; its lease had expired",
			"partition", m.Partition, "offset", m.Offset, "deliveries", m.DeliveryCount)
		s.scheduleExtend(h, now, m.LeaseDeadline)
		s.owe(1)
		return
	}
	if s.stopping {
		s.nack(key, 0, "")
		s.owe(1)
		return
	}
	h := &heldMsg{m: m, key: key, deliveries: m.DeliveryCount, received: now}
	if s.cfg.keyOrdered {
		h.order = string(m.Key)
	}
	s.held[key] = h
	s.scheduleExtend(h, now, m.LeaseDeadline)
	s.dispatch(h)
}

// dispatch hands h to the workers, or, with ConsumerKeyOrdered, queues it
// behind a message with the same key being handled.
func (s *queueSession) dispatch(h *heldMsg) {
	if h.order != "" {
		if q, busy := s.keys[h.order]; busy {
			s.keys[h.order] = append(q, h)
			return
		}
		s.keys[h.order] = nil
	}
	s.queue.push(h)
}

// release hands the next message waiting behind h's key to the workers.
func (s *queueSession) release(h *heldMsg) {
	if h.order == "" {
		return
	}
	k := h.order
	q, busy := s.keys[k]
	if !busy {
		return
	}
	if len(q) == 0 {
		delete(s.keys, k)
		return
	}
	next := q[0]
	q[0], s.keys[k] = nil, q[1:]
	s.queue.push(next)
}

func (s *queueSession) onWorker(ev queueEvent) {
	if ev.kind == outExited {
		s.workers--
		return
	}
	h := ev.h
	if s.held[h.key] != h {
		return // given up on at the shutdown timeout: already nacked
	}
	delete(s.held, h.key)
	s.release(h)
	s.owe(1)
	switch ev.kind {
	case outAck:
		s.acks.add(h.key.part, h.key.off)
		switch {
		case s.acks.n >= s.cfg.ackEvery || len(s.held) == 0 || s.cfg.ackInterval == 0:
			s.flushAcks()
		case !s.ackArmed:
			s.ackArmed = true
			s.ackTimer.Reset(s.cfg.ackInterval)
		}
	case outNack:
		s.nack(h.key, ev.delay, errorText(ev.err))
		if s.cfg.stopOnError && s.fatal == nil {
			s.fatal = fmt.Errorf("client: handler failed on %s partition %d offset %d: %w", s.k.topic, h.key.part, h.key.off, ev.err)
		}
	case outReject:
		rj := &spoolv1.Reject{Partition: h.key.part, Offset: h.key.off, Error: errorText(ev.err)}
		s.lease(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Reject{Reject: rj}}, reqReject, &rj.RequestId)
	}
}

// nack gives a message back: redelivered after delay, or after the
// subscription's backoff if delay is negative.
func (s *queueSession) nack(key leaseKey, delay time.Duration, text string) {
	n := &spoolv1.Nack{Partition: key.part, Offset: key.off, Error: text}
	if delay >= 0 {
		n.Delay = durationpb.New(min(delay, maxNackDelay))
	}
	s.lease(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Nack{Nack: n}}, reqNack, &n.RequestId)
}

// lease sends a lease request whose request_id field is id, or keeps it for
// the next stream if this one is gone.
func (s *queueSession) lease(req *spoolv1.ConsumeRequest, kind string, id *uint64) {
	if s.lost {
		s.st.queued.ops = append(s.st.queued.ops, carriedOp{req: req, kind: kind, id: id})
		return
	}
	s.sendLease(carriedOp{req: req, kind: kind, id: id})
}

// sendLease sends op with a new request id and records it as pending.
func (s *queueSession) sendLease(op carriedOp) {
	s.reqID++
	*op.id = s.reqID
	s.pending[s.reqID] = op
	s.send(op.req)
}

// flushAcks sends the acknowledgements collected so far (or keeps them for
// the next stream), then the credit owed.
func (s *queueSession) flushAcks() {
	if s.ackArmed {
		s.ackTimer.Stop()
		s.ackArmed = false
	}
	if s.acks.n == 0 {
		return
	}
	if s.lost {
		s.st.queued.acks.merge(&s.acks)
		return
	}
	for _, ranges := range s.acks.take(maxAckOffsets) {
		ack := &spoolv1.Ack{Ranges: ranges}
		s.sendLease(carriedOp{req: &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: ack}}, kind: reqAck, id: &ack.RequestId})
	}
	s.grant()
}

func (s *queueSession) onLeaseResult(r *spoolv1.LeaseResult) {
	op, ok := s.pending[r.GetRequestId()]
	if !ok {
		return
	}
	delete(s.pending, r.GetRequestId())
	kind := op.kind
	for _, st := range r.GetStale() {
		if kind == reqExtend {
			if h := s.held[leaseKey{st.GetPartition(), st.GetOffset()}]; h != nil {
				h.nextExtend = time.Time{}
			}
		}
		s.k.log.Debug("spool: lease no longer held (expired): the message will be or was redelivered",
			"request", kind, "partition", st.GetPartition(), "offset", st.GetOffset())
	}
}

// scheduleExtend plans the first extension of h's lease, which began at
// now and ends at deadline (zero: unknown), at two thirds of it.
func (s *queueSession) scheduleExtend(h *heldMsg, now, deadline time.Time) {
	if s.cfg.maxExtension == 0 {
		return
	}
	l := s.leaseLen
	if d := deadline.Sub(now); !deadline.IsZero() && d > 0 && d < l {
		l = d // the server's clock runs ahead, or the lease is shorter
	}
	h.nextExtend = now.Add(l * 2 / 3)
	s.armExtend(h.nextExtend)
}

// armExtend makes the extension timer fire by t.
func (s *queueSession) armExtend(t time.Time) {
	if s.extAt.IsZero() || t.Before(s.extAt) {
		s.extAt = t
		s.extTimer.Reset(time.Until(t))
	}
}

// extendDue extends the leases due for it (up to a twelfth of a lease
// early, so that extensions travel together), one request per partition,
// and re-arms the timer.
func (s *queueSession) extendDue(now time.Time) {
	s.extAt = time.Time{}
	if s.lost {
		return
	}
	soon := now.Add(s.leaseLen / 12)
	due := map[int32][]int64{}
	var next time.Time
	for key, h := range s.held {
		switch {
		case h.nextExtend.IsZero():
			continue
		case h.nextExtend.After(soon):
		case now.Sub(h.received) >= s.cfg.maxExtension:
			h.nextExtend = time.Time{}
			s.k.log.Warn("spool: message held longer than the extension limit; its lease will expire and it will be redelivered",
				"partition", key.part, "offset", key.off, "held", now.Sub(h.received).Round(time.Second))
			continue
		default:
			due[key.part] = append(due[key.part], key.off)
			h.nextExtend = now.Add(s.leaseLen * 2 / 3)
		}
		next = earliest(next, h.nextExtend)
	}
	for _, p := range slices.Sorted(maps.Keys(due)) {
		offs := due[p]
		slices.Sort(offs)
		for chunk := range slices.Chunk(offs, maxAckOffsets) {
			ext := &spoolv1.Extend{Partition: p, Offsets: chunk}
			s.lease(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Extend{Extend: ext}}, reqExtend, &ext.RequestId)
		}
	}
	if !next.IsZero() {
		s.armExtend(next)
	}
}

// worker runs the handler on messages from the work queue until it closes.
func (s *queueSession) worker() {
	defer s.report(queueEvent{kind: outExited})
	for {
		h, ok := s.queue.pop()
		if !ok || !s.report(s.handle(h)) {
			return
		}
	}
}

// report hands ev to the session loop; false at teardown.
func (s *queueSession) report(ev queueEvent) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

// handle runs the handler on h's message and says what to do with it.
func (s *queueSession) handle(h *heldMsg) queueEvent {
	ctx, span := s.k.startProcess(s.k.c.tr.handlerContext(s.hctx, h.m), h.m, 1)
	err := s.k.handler(ctx, h.m)
	ev := queueEvent{h: h, kind: outAck}
	if err == nil {
		endProcess(span, nil, outcomeAck)
		return ev
	}
	ev.kind, ev.delay, ev.err = outNack, -1, err
	log := s.k.log.With("partition", h.key.part, "offset", h.key.off, "deliveries", h.deliveries)
	if s.hctx.Err() != nil {
		// Given up on at the shutdown timeout: the session nacked it.
		endProcess(span, err, outcomeAbandoned)
		log.Debug("spool: handler abandoned", "err", err)
		return ev
	}
	var rej *RejectError
	var retry *RetryError
	switch {
	case errors.As(err, &rej):
		ev.kind = outReject
		endProcess(span, err, outcomeReject)
		log.Warn("spool: handler rejected the message; it is dead-lettered", "err", err)
	case errors.As(err, &retry):
		ev.delay = min(max(retry.After, 0), maxNackDelay)
		endProcess(span, err, outcomeNack)
		log.Warn("spool: handler failed; message nacked", "retry_in", ev.delay, "err", err)
	default:
		endProcess(span, err, outcomeNack)
		log.Warn("spool: handler failed; message nacked", "err", err)
	}
	if s.cfg.onError != nil {
		s.cfg.onError(h.m, err)
	}
	return ev
}

// stopTaking stops handing out messages: the ones no worker has started
// are nacked for immediate redelivery (to another member, perhaps).
func (s *queueSession) stopTaking(bool) {
	unstarted := s.queue.close()
	for _, q := range s.keys {
		unstarted = append(unstarted, q...)
	}
	clear(s.keys)
	slices.SortFunc(unstarted, func(a, b *heldMsg) int { return compareKeys(a.key, b.key) })
	for _, h := range unstarted {
		delete(s.held, h.key)
		s.nack(h.key, 0, "")
		s.owe(1)
	}
}

// abandon gives up on the running handlers: cancels their context and
// nacks their messages (redelivered after the subscription's backoff).
func (s *queueSession) abandon() {
	s.hcancel()
	for _, key := range slices.SortedFunc(maps.Keys(s.held), compareKeys) {
		delete(s.held, key)
		s.k.log.Warn("spool: handler still running at the shutdown timeout; message nacked", "partition", key.part, "offset", key.off)
		s.nack(key, -1, "handler abandoned at consumer shutdown")
		s.owe(1)
	}
}

// workQueue hands messages to the workers in arrival order.
type workQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	items  []*heldMsg
	closed bool
}

func newWorkQueue() *workQueue {
	q := &workQueue{}
	q.cond.L = &q.mu
	return q
}

// push queues h for a worker; it is dropped once the queue is closed.
func (q *workQueue) push(h *heldMsg) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.items = append(q.items, h)
	q.cond.Signal()
}

// pop waits for the next message; false once the queue is closed.
func (q *workQueue) pop() (*heldMsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	h := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return h, true
}

// close closes the queue and returns the messages no worker took.
func (q *workQueue) close() []*heldMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items, q.closed = nil, true
	q.cond.Broadcast()
	return out
}

// ackBatch collects acknowledged offsets per partition until they are
// sent.
type ackBatch struct {
	offs map[int32][]int64
	n    int // offsets added (duplicates included)
}

func (b *ackBatch) add(p int32, o int64) {
	if b.offs == nil {
		b.offs = map[int32][]int64{}
	}
	b.offs[p] = append(b.offs[p], o)
	b.n++
}

// merge moves the offsets of o into b.
func (b *ackBatch) merge(o *ackBatch) {
	for p, offs := range o.offs {
		for _, off := range offs {
			b.add(p, off)
		}
	}
	*o = ackBatch{}
}

// take empties b and returns its offsets as ranges of contiguous offsets,
// in partition and offset order, in groups of at most limit offsets (one
// request each).
func (b *ackBatch) take(limit int) [][]*spoolv1.OffsetRange {
	var (
		out  [][]*spoolv1.OffsetRange
		cur  []*spoolv1.OffsetRange
		size int64
	)
	emit := func(p int32, from, to int64) {
		for from < to {
			n := min(to-from, int64(limit)-size)
			cur = append(cur, &spoolv1.OffsetRange{Partition: p, From: from, To: from + n})
			from += n
			if size += n; size == int64(limit) {
				out, cur, size = append(out, cur), nil, 0
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(b.offs)) {
		offs := b.offs[p]
		slices.Sort(offs)
		offs = slices.Compact(offs)
		from := offs[0]
		for i := 1; i <= len(offs); i++ {
			if i == len(offs) || offs[i] != offs[i-1]+1 {
				emit(p, from, offs[i-1]+1)
				if i < len(offs) {
					from = offs[i]
				}
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	*b = ackBatch{}
	return out
}
