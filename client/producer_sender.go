package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// streamEvent is what a stream's receiver goroutine reports to the sender.
type streamEvent struct {
	gen  uint64 // the stream it came from
	resp *spoolv1.PublishResponse
	err  error // the stream ended (io.EOF: cleanly)
}

// request is one PublishRequest in flight: messages (the message form) or
// batches (the batch form, producer_fast.go).
type request struct {
	id      uint64
	conn    *nodeStream // the stream it was sent on
	records []*record   // the message form
	q       *partQ      // the batch form's producer: the partition of a message-form request
	batches []*pbatch   // the batch form
}

// pubStream is one PublishStream and its receiver goroutine.
type pubStream struct {
	gen     uint64
	stream  *connect.BidiStreamForClient[spoolv1.PublishRequest, spoolv1.PublishResponse]
	cancel  context.CancelFunc
	stopped chan struct{} // closed to stop the receiver
	exited  chan struct{} // closed when the receiver has returned
	sendErr error         // Send failed: wait for the receiver's error
}

// closeWait bounds how long Close waits for the server to end the stream
// after the last answer.
const closeWait = 5 * time.Second

// errStalled breaks a stream on which a request went unanswered past its
// messages' delivery deadline.
var errStalled = &Error{Code: CodeUnavailable, Message: "publish request unanswered within the delivery timeout", Retriable: true}

// sender is the producer's one goroutine with state: it owns the batcher,
// the requests in flight and the stream. Everything here runs on it.
type sender struct {
	p           *Producer
	b           *batcher
	inflight    map[uint64]*request
	conns       []*nodeStream // the streams, by node: conns[0] is the home node's (and the only one on a single node)
	gen         uint64        // last stream generation
	nextID      uint64        // last request id
	expiryEvery time.Duration
	nextExpiry  time.Time
	timer       *time.Timer
	buf         []*record
	f           fast // the batch form
}

func newSender(p *Producer) *sender {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &sender{
		p:           p,
		b:           newBatcher(&p.cfg),
		inflight:    map[uint64]*request{},
		conns:       []*nodeStream{{}},
		expiryEvery: min(max(p.cfg.deliveryTimeout/20, 5*time.Millisecond), time.Second),
		timer:       t,
	}
}

func (s *sender) run() {
	defer close(s.p.done)
	for {
		var force, closing bool
		s.buf, force, closing = s.p.take(s.buf[:0])
		s.addRecords(s.buf)
		clear(s.buf)
		now := time.Now()
		busy := !s.idle()
		if busy && !now.Before(s.nextExpiry) {
			s.expire(now)
			s.nextExpiry = now.Add(s.expiryEvery)
		}
		if closing && s.idle() {
			s.closeStreams()
			return
		}
		wake := s.pump(now, force)
		if busy {
			wake = earliest(wake, s.nextExpiry)
		}
		s.setTimer(wake, now)
		select {
		case <-s.p.wake:
		case ev := <-s.p.events:
			s.handle(ev)
		case <-s.timer.C:
		case <-s.p.abort:
			s.abort()
			return
		}
	}
}

func (s *sender) setTimer(wake, now time.Time) {
	if wake.IsZero() {
		s.timer.Stop()
		return
	}
	s.timer.Reset(max(wake.Sub(now), 0))
}

// pump sends ready batches while request slots are free and returns when
// it next needs to run (zero: on some event).
func (s *sender) pump(now time.Time, force bool) time.Time {
	if s.f.mode != modeMessages {
		return s.pumpBatches(now, force)
	}
	// The message form: a server without the batch form, not a cluster
	// node; everything goes to the client's address.
	cn := s.conns[0]
	for len(s.inflight) < s.p.cfg.maxInFlight {
		if ok, wake := cn.usable(now); !ok {
			return wake // zero: the receiver will report why
		}
		batch, wake := s.b.next(now, force)
		if batch == nil {
			return wake
		}
		if cn.stream == nil {
			s.open(cn)
		}
		s.send(cn, batch)
	}
	return time.Time{}
}

// open starts a PublishStream to cn's node and its receiver.
func (s *sender) open(cn *nodeStream) {
	ctx, cancel := context.WithCancel(s.p.baseCtx)
	s.gen++
	st := &pubStream{
		gen:     s.gen,
		stream:  s.p.c.node(cn.route).publish.PublishStream(ctx),
		cancel:  cancel,
		stopped: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	cn.stream = st
	s.p.wg.Go(func() { s.receive(st) })
}

// receive forwards st's responses to the sender until the stream ends.
func (s *sender) receive(st *pubStream) {
	defer close(st.exited)
	for {
		resp, err := st.stream.Receive()
		ev := streamEvent{gen: st.gen, resp: resp, err: convertError(err)}
		select {
		case s.p.events <- ev:
		case <-st.stopped:
			return
		}
		if err != nil {
			return
		}
	}
}

// send puts batch in flight as one request on cn.
func (s *sender) send(cn *nodeStream, batch []*record) {
	s.nextID++
	req := &request{id: s.nextID, conn: cn, records: batch}
	msgs := make([]*spoolv1.Message, len(batch))
	for i, r := range batch {
		msgs[i] = r.pm()
	}
	s.inflight[req.id] = req
	s.b.block(batch)
	err := cn.stream.stream.Send(&spoolv1.PublishRequest{Topic: s.p.topic, Messages: msgs, RequestId: req.id})
	if err != nil {
		cn.stream.sendErr = err
	}
}

// handle processes one event from a receiver.
func (s *sender) handle(ev streamEvent) {
	cn := s.connOf(ev.gen)
	if cn == nil {
		return // from a stream already torn down
	}
	if ev.err != nil {
		s.breakStream(cn, ev.err)
		return
	}
	resp := ev.resp
	req, ok := s.inflight[resp.GetRequestId()]
	if !ok || req.conn != cn {
		s.p.log.Warn("spool: publish response for an unknown request", "request_id", resp.GetRequestId())
		return
	}
	if s.f.mode == modeBatches {
		s.handleBatches(req, resp)
		if cn.parts == 0 {
			s.dropIfIdle(cn)
		}
		return
	}
	delete(s.inflight, req.id)
	s.b.unblock(req.records)
	if info := resp.GetError(); info != nil {
		s.failed(req, errorFromInfo(info, resp.GetErrorMessage()))
		return
	}
	cn.failures = 0
	results, e := messageResults(req, resp)
	if e != nil {
		s.failed(req, e)
		return
	}
	s.p.finish(req.records, results, nil)
}

// messageResults checks that a message-form answer has a result for
// every message of the request, and converts them.
func messageResults(req *request, resp *spoolv1.PublishResponse) ([]PublishResult, *Error) {
	if n := len(resp.GetResults()); n != len(req.records) {
		return nil, &Error{Code: "internal", Message: fmt.Sprintf("server returned %d results for %d messages", n, len(req.records))}
	}
	results := make([]PublishResult, len(req.records))
	for i, r := range resp.GetResults() {
		results[i] = resultFromProto(r)
	}
	return results, nil
}

// retryAt counts a retriable failure against records and returns when
// they may be sent again: the backoff of the most tried, or the server's
// retry-after.
func (s *sender) retryAt(records []*record, e *Error) mono {
	attempts := 0
	for _, r := range records {
		attempts = max(attempts, r.failedWith(e))
	}
	return monoNow().add(s.p.c.cfg.backoff.delay(attempts, e.RetryAfter))
}

// isolate marks the records of a request refused as a whole for one
// message's size or content to be sent one by one (which message it was
// is not said); false if the request had one message.
func isolate(req *request, e *Error) bool {
	if len(req.records) < 2 || (e.Code != CodeMessageTooLarge && e.Code != CodeInvalidArgument) {
		return false
	}
	for _, r := range req.records {
		r.alone = true
	}
	return true
}

// failed handles a request the server answered with an error.
func (s *sender) failed(req *request, e *Error) {
	req.conn.failures = 0 // the stream works
	if e.Retriable {
		at := s.retryAt(req.records, e)
		var back, expired []*record
		for _, r := range req.records {
			if at > r.enqueued.add(s.p.cfg.deliveryTimeout) {
				expired = append(expired, r)
				continue
			}
			r.notBefore = at
			back = append(back, r)
		}
		s.p.finish(expired, nil, deliveryTimeout(e))
		s.b.requeue(back)
		return
	}
	if isolate(req, e) {
		s.b.requeue(req.records)
		return
	}
	s.p.finish(req.records, nil, e)
}

// breakStream tears cn's stream down after err and puts its unanswered
// requests back in front of the queue (in the order they were sent), or
// fails them if err says retrying cannot help.
func (s *sender) breakStream(cn *nodeStream, err error) {
	s.teardown(cn)
	ids := s.inflightOn(cn)
	if len(ids) == 0 && errors.Is(err, io.EOF) {
		return // the server closed an idle stream: reopen when needed
	}
	if s.f.mode == modeBatches {
		n := s.breakBatches(ids, err, streamRetriable(err))
		cn.failures++
		wait := s.p.c.cfg.backoff.delay(cn.failures, retryAfterOf(err))
		cn.reconnectAt = time.Now().Add(wait)
		s.relearn(cn)
		s.p.log.Warn("spool: publish stream broken", "err", err, "node", cn.name(), "requeued", n, "retry_in", wait)
		return
	}
	retriable := streamRetriable(err)
	var back []*record
	for _, id := range ids {
		req := s.inflight[id]
		delete(s.inflight, id)
		s.b.unblock(req.records)
		if !retriable {
			s.p.finish(req.records, nil, err)
			continue
		}
		for _, r := range req.records {
			r.failedWith(err)
		}
		back = append(back, req.records...)
	}
	s.b.requeue(back)
	cn.failures++
	wait := s.p.c.cfg.backoff.delay(cn.failures, retryAfterOf(err))
	cn.reconnectAt = time.Now().Add(wait)
	s.p.log.Warn("spool: publish stream broken", "err", err, "requeued", len(back), "retry_in", wait)
}

// teardown stops cn's stream and waits for its receiver. Closing the
// request side matters: HTTP/2's client abandons a stream on its
// context's end only once it is not blocked reading the request body, and
// a Receive blocked meanwhile would wait for ever.
func (s *sender) teardown(cn *nodeStream) {
	st := cn.stream
	if st == nil {
		return
	}
	cn.stream = nil
	st.cancel()
	_ = st.stream.CloseRequest()
	close(st.stopped)
	<-st.exited
	_ = st.stream.CloseResponse()
}

// expire fails queued messages past their delivery deadline, and breaks
// the stream if a request in flight holds such a message.
func (s *sender) expire(now time.Time) {
	dead := monoOf(now).add(-s.p.cfg.deliveryTimeout) // enqueued at or before: past the deadline
	expired := func(r *record) bool { return r.enqueued <= dead }
	for _, req := range s.inflight {
		stalled := slices.ContainsFunc(req.records, expired)
		for _, pb := range req.batches {
			stalled = stalled || slices.ContainsFunc(pb.records, expired)
		}
		if stalled {
			s.breakStream(req.conn, errStalled)
			break
		}
	}
	s.expireBatches(now)
	for _, r := range s.b.expire(now) {
		s.p.finish([]*record{r}, nil, deliveryTimeout(r.lastErr()))
	}
}

// closeStreams ends the streams gracefully: half-close, then wait briefly
// for the servers to finish.
func (s *sender) closeStreams() {
	open := map[uint64]bool{}
	for _, cn := range s.conns {
		if st := cn.stream; st != nil && st.sendErr == nil {
			_ = st.stream.CloseRequest()
			open[st.gen] = true
		}
	}
	if len(open) > 0 {
		t := time.NewTimer(closeWait)
		defer t.Stop()
	wait:
		for len(open) > 0 {
			select {
			case ev := <-s.p.events:
				if ev.err != nil {
					delete(open, ev.gen)
				}
			case <-t.C:
				break wait
			case <-s.p.abort:
				break wait
			}
		}
	}
	for _, cn := range s.conns {
		s.teardown(cn)
	}
}

// abort fails everything unfinished with ErrProducerClosed.
func (s *sender) abort() {
	for _, cn := range s.conns {
		s.teardown(cn)
	}
	for _, req := range s.inflight {
		s.p.finish(req.records, nil, ErrProducerClosed) // batches: below
	}
	s.abortBatches()
	clear(s.inflight)
	s.p.finish(s.b.pending, nil, ErrProducerClosed)
	s.b.pending = nil
	rs, _, _ := s.p.take(nil)
	s.p.finish(rs, nil, ErrProducerClosed)
}

// deliveryTimeout is the error of a message that ran out of time.
func deliveryTimeout(last error) error {
	if last == nil {
		return ErrDeliveryTimeout
	}
	return fmt.Errorf("%w: %w", ErrDeliveryTimeout, last)
}
