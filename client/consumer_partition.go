package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// partition is one owned partition: a queue of delivered messages and the
// worker that handles them in order. The queue is shared with the worker
// (under mu); the progress fields belong to the session loop.
type partition struct {
	id     int32
	ctx    context.Context // the handlers' context; cancelled to give up on them
	cancel context.CancelFunc
	notify chan struct{} // cap 1: the queue grew
	stop   chan struct{} // closed: finish the running handler and exit

	mu    sync.Mutex
	queue []*Message

	// Session-loop state.
	stopped   bool   // stop was closed
	exited    bool   // the worker's evExited was seen
	processed int64  // commit offset: last processed + 1; -1 = nothing yet
	sent      int64  // offset of the last commit sent; -1 = none (or to resend)
	acked     int64  // offset of the last commit confirmed; -1 = none
	skipBelow int64  // drop deliveries below this (processed before a reconnect)
	epoch     uint64 // bumped by a reset: completions of older messages are ignored
	pending   int    // messages of this epoch pushed and not yet processed
	cursor    int64  // the server's next offset (Deliveries.next); -1 = unknown
	halted    bool   // stopped at a failed message (until a reset)
	restart   bool   // reset while halted: start afresh once the worker exited
}

func newPartition(base context.Context, id int32) *partition {
	ctx, cancel := context.WithCancel(base)
	return &partition{
		id:        id,
		ctx:       ctx,
		cancel:    cancel,
		notify:    make(chan struct{}, 1),
		stop:      make(chan struct{}),
		processed: -1,
		sent:      -1,
		acked:     -1,
		cursor:    -1,
	}
}

func (p *partition) push(m *Message) {
	p.mu.Lock()
	p.queue = append(p.queue, m)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// next returns the next queued message, or false once stop is closed.
func (p *partition) next() (*Message, bool) {
	for {
		select {
		case <-p.stop:
			return nil, false
		default:
		}
		p.mu.Lock()
		if len(p.queue) > 0 {
			m := p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
			p.mu.Unlock()
			return m, true
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.stop:
			return nil, false
		}
	}
}

// drain empties the queue and returns how many messages it held.
func (p *partition) drain() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	p.queue = nil
	return n
}

// worker handles p's messages one at a time until p is stopped. It reports
// progress to the session loop in runs (one event for up to
// maxReportRun consecutive messages of one epoch, sent when the queue runs
// dry or a commit interval after the run's first message), so a fast
// handler does not cost a channel operation per message and a slow one's
// progress is still committed every commit interval.
func (s *session) worker(p *partition) {
	var run workerEvent // pending evProcessed report; n == 0: none
	var due time.Time   // when the pending run is reported at the latest
	report := func() {
		if run.n > 0 {
			s.events <- run
			run = workerEvent{}
		}
	}
	defer func() {
		report()
		s.events <- workerEvent{part: p.id, kind: evExited, p: p}
	}()
	for {
		m, ok := p.tryNext()
		if !ok {
			report() // about to block: tell the session what is done
			if m, ok = p.next(); !ok {
				return
			}
		}
		if run.n > 0 && run.epoch != m.epoch {
			report()
		}
		if !s.handle(p, m) {
			return
		}
		run = workerEvent{part: p.id, kind: evProcessed, offset: m.Offset, epoch: m.epoch, n: run.n + 1}
		now := time.Now()
		if run.n == 1 {
			due = now.Add(s.cfg.commitInterval)
		}
		if run.n >= maxReportRun || !now.Before(due) {
			report()
		}
	}
}

// maxReportRun bounds how many processed messages one progress event covers.
const maxReportRun = 256

// tryNext returns the next queued message without blocking.
func (p *partition) tryNext() (*Message, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil, false
	}
	select {
	case <-p.stop:
		return nil, false
	default:
	}
	m := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return m, true
}

// handle runs the handler on m, retrying failures as the subscription's
// failure policy says, and reports whether m counts as processed (false:
// stopped, halted or fatal; not committed).
func (s *session) handle(p *partition, m *Message) bool {
	pol := s.policy.Load()
	if pol == nil {
		pol = &defaultFailurePolicy
	}
	attempts := pol.attempts
	if s.cfg.handlerRetriesSet {
		attempts = s.cfg.handlerRetries + 1
	}
	base := s.k.c.tr.handlerContext(p.ctx, m)
	for attempt := 1; ; attempt++ {
		select {
		case s.sem <- struct{}{}:
		case <-p.stop:
			return false
		}
		ctx, span := s.k.startProcess(base, m, attempt)
		err := s.k.handler(ctx, m)
		<-s.sem
		if err == nil {
			endProcess(span, nil, outcomeCommit)
			return true
		}
		if p.ctx.Err() != nil {
			// Abandoned by the consumer (shutdown or revocation timed out):
			// not processed, so not committed.
			endProcess(span, err, outcomeAbandoned)
			s.k.log.Debug("spool: handler abandoned", "partition", m.Partition, "offset", m.Offset, "err", err)
			return false
		}
		s.k.log.Warn("spool: handler failed", "partition", m.Partition, "offset", m.Offset, "attempt", attempt, "of", attempts, "err", err)
		if s.cfg.onError != nil {
			s.cfg.onError(m, err)
		}
		if attempt < attempts {
			endProcess(span, err, outcomeRetry)
			if !sleepOrStop(p.stop, pol.backoff.delay(attempt)) {
				return false
			}
			continue
		}
		if s.cfg.stopOnError {
			endProcess(span, err, outcomeStop)
			err = fmt.Errorf("client: handler failed on %s partition %d offset %d: %w", m.Topic, m.Partition, m.Offset, err)
			s.events <- workerEvent{part: p.id, kind: evFatal, err: err}
			return false
		}
		processed := s.giveUp(p, m, attempt, err, pol)
		if processed {
			endProcess(span, err, outcomeDeadLetter)
		} else {
			endProcess(span, err, outcomeHalt)
		}
		return processed
	}
}

// restart replaces p, halted and reset, with a fresh partition and worker.
func (s *session) restart(old *partition) {
	old.cancel()
	p := newPartition(s.work, old.id)
	s.parts[p.id] = p
	s.wg.Go(func() { s.worker(p) })
}

// revocation is a set of partitions being given up.
type revocation struct {
	parts    []int32
	lost     bool // dropped by the server without a revoke: no commit, no Revoked
	deadline time.Time
}

// stopPartition makes p's worker exit after its running handler; queued
// messages are dropped and their credit returned.
func (s *session) stopPartition(p *partition) {
	if p.stopped {
		return
	}
	p.stopped = true
	s.owe(p.drain())
	close(p.stop)
}

// revoke starts giving up ids; checkRevocations finishes once their workers
// have exited.
func (s *session) revoke(ids []int32, lost bool) {
	for _, id := range ids {
		if p := s.parts[id]; p != nil {
			s.stopPartition(p)
		}
	}
	s.revocations = append(s.revocations, &revocation{parts: ids, lost: lost, deadline: time.Now().Add(s.cfg.shutdownTimeout)})
	s.revTimer.Reset(s.cfg.shutdownTimeout)
	s.checkRevocations()
}

// checkRevocations completes every revocation whose workers have exited:
// commit, OnRevoked, then Revoked to the server.
func (s *session) checkRevocations() {
	kept := s.revocations[:0]
	for _, rv := range s.revocations {
		if slices.ContainsFunc(rv.parts, func(id int32) bool { p := s.parts[id]; return p != nil && !p.exited }) {
			kept = append(kept, rv)
			continue
		}
		if !rv.lost {
			s.commit(rv.parts)
		}
		var owned []int32
		for _, id := range rv.parts {
			if p := s.parts[id]; p != nil {
				owned = append(owned, id)
				p.cancel()
				delete(s.parts, id)
			}
		}
		if len(owned) > 0 && s.cfg.onRevoked != nil {
			s.cfg.onRevoked(s.work, owned)
		}
		if !rv.lost {
			s.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Revoked{Revoked: &spoolv1.Revoked{Partitions: rv.parts}}})
		}
	}
	clear(s.revocations[len(kept):])
	s.revocations = kept
}

// forceRevocations cancels the handlers of revocations past their
// deadline and re-arms the timer for the others.
func (s *session) forceRevocations(now time.Time) {
	var next time.Time
	for _, rv := range s.revocations {
		if now.Before(rv.deadline) {
			next = earliest(next, rv.deadline)
			continue
		}
		for _, id := range rv.parts {
			if p := s.parts[id]; p != nil {
				p.cancel()
			}
		}
	}
	if !next.IsZero() {
		s.revTimer.Reset(next.Sub(now))
	}
}

// stopTaking stops every worker: queued messages are dropped and their
// credit returned.
func (s *session) stopTaking(bool) {
	for _, p := range s.parts {
		s.stopPartition(p)
	}
}

// abandon cancels the handlers' contexts.
func (s *session) abandon() {
	for _, p := range s.parts {
		p.cancel()
	}
}

func (s *session) flush() { s.commit(nil) }

func (s *session) unanswered() int { return len(s.commits) }

// keep carries the progress of a broken stream's partitions that the server
// has not confirmed to the next session, which commits it if the partition
// comes back (and skips what was processed), then forgets them.
func (s *session) keep() {
	for id, p := range s.parts {
		if p.processed >= 0 && p.processed != p.acked {
			s.st.carry[id] = p.processed
		}
	}
	s.drop()
}

// drop forgets every partition, telling OnRevoked.
func (s *session) drop() {
	ids := make([]int32, 0, len(s.parts))
	for id, p := range s.parts {
		ids = append(ids, id)
		p.cancel()
	}
	clear(s.parts)
	s.revocations = nil
	if len(ids) > 0 && s.cfg.onRevoked != nil {
		slices.Sort(ids)
		s.cfg.onRevoked(s.work, ids)
	}
}

// exited reports whether every partition's worker has exited.
func (s *session) exited() bool {
	for _, p := range s.parts {
		if !p.exited {
			return false
		}
	}
	return true
}

// catchUp moves p's commit offset to the server's cursor when everything
// delivered has been processed: the messages in between were skipped by the
// subscription's filter.
func (p *partition) catchUp() {
	if p.pending == 0 && p.cursor > p.processed {
		p.processed = p.cursor
	}
}

// reset drops p's queued messages and progress after a ResetSubscription;
// it returns how many queued messages were dropped.
func (p *partition) reset() int {
	p.epoch++
	p.pending = 0
	p.processed, p.sent, p.skipBelow, p.cursor = -1, -1, 0, -1
	return p.drain()
}
