package broker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// Halt is a stream partition stopped at a message its consumer gave up on
// (failure action stop). Nothing more is delivered from the partition, and
// no commit may pass the message, until the partition is reset.
type Halt struct {
	Offset   int64
	Error    string
	Attempts int
	Time     time.Time
	Member   string
}

// maxFailureErrorLen bounds the error text kept with a halt or a dead
// letter, as the queue cores bound nack errors.
const maxFailureErrorLen = 1024

// loadHalts reads a stream subscription's halts.
func (b *Broker) loadHalts(topic, sub string, nparts int) (map[int32]Halt, error) {
	out := map[int32]Halt{}
	plen := len(state.HaltPrefix(topic, sub))
	err := b.cfg.State.Scan(state.HaltPrefix(topic, sub), func(k, v []byte) error {
		if len(k) != plen+4 {
			return nil
		}
		p := state.PartitionOfOffsetKey(k)
		h, err := decodeHalt(k, v)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		if p >= 0 && int(p) < nparts {
			out[p] = h
		}
		return nil
	})
	return out, err
}

// FailedOutcome answers a Failed request.
type FailedOutcome struct {
	ID               uint64
	Action           catalog.FailureAction
	DeadLetterTopic  string
	DeadLetterOffset int64
	Err              error // nothing was done; the member must not commit past the message
}

// Failed applies the subscription's failure action to a message the member
// gave up on after attempts handler calls: a synced copy in the dead-letter
// topic (reason max-deliveries), or a halt of the partition (synced). The
// outcome is queued for Next. Stream mode only; the member must own the
// partition.
func (sess *Session) Failed(id uint64, p int32, offset int64, attempts int, errText string) {
	out := sess.failed(p, offset, attempts, errText)
	out.ID = id
	s := sess.sub
	s.mu.Lock()
	sess.failedResults = append(sess.failedResults, out)
	s.mu.Unlock()
	sess.signal()
}

func (sess *Session) failed(p int32, offset int64, attempts int, errText string) FailedOutcome {
	s := sess.sub
	t := s.t
	fail := func(err error) FailedOutcome { return FailedOutcome{Err: err} }
	if s.q != nil {
		return fail(errs.New(errs.FailedPrecondition, "a queue subscription's messages are nacked or rejected, not reported failed"))
	}
	if attempts < 1 {
		return fail(errs.New(errs.InvalidArgument, "attempts must be at least 1"))
	}
	if len(errText) > maxFailureErrorLen {
		errText = errText[:maxFailureErrorLen]
	}
	// deadLetterMu (first of the broker's locks) keeps a failed
	// CreateSubscription from removing the dead-letter topic between its
	// creation here and the copy's publish.
	t.b.deadLetterMu.Lock()
	defer t.b.deadLetterMu.Unlock()
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return fail(errs.New(errs.TopicNotFound, "topic %q was deleted", t.meta.Name))
	}
	if p < 0 || int(p) >= len(t.logs()) {
		return fail(errs.New(errs.InvalidArgument, "partition %d does not exist", p))
	}
	if l := t.logs()[p]; offset < l.StartOffset() || offset >= l.EndOffset() {
		return fail(errs.New(errs.OffsetOutOfRange, "offset %d is outside partition %d's range [%d, %d)", offset, p, l.StartOffset(), l.EndOffset()))
	}
	// commitMu orders the halt against resets and commits.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	policy := s.meta.StreamFailure()
	err := sess.checkOwnerLocked(p)
	h, halted := s.halts[p]
	s.mu.Unlock()
	switch {
	case err != nil:
		return fail(err)
	case halted && h.Offset == offset:
		return FailedOutcome{Action: catalog.FailStop} // reported again (a retry)
	case halted:
		return fail(errs.New(errs.FailedPrecondition, "partition %d is halted at offset %d", p, h.Offset))
	}
	now := t.b.clock.Now()
	if policy.Action == catalog.FailStop {
		h := Halt{Offset: offset, Error: errText, Attempts: attempts, Time: now.UTC(), Member: sess.id}
		v, err := encodeHalt(h)
		if err != nil {
			return fail(errs.Wrap(errs.Internal, err, "encode halt"))
		}
		w := s.newWrite()
		w.set(state.HaltKey(s.meta.Topic, s.meta.Name, p), v)
		if err := t.b.writeSub(w); err != nil {
			return fail(err)
		}
		t.b.logger.Error("partition halted by a failed message; reset the partition to go on",
			"topic", s.meta.Topic, "subscription", s.meta.Name, "partition", p, "offset", offset, "attempts", attempts, "error", errText)
		return FailedOutcome{Action: catalog.FailStop}
	}
	dlq := policy.DeadLetter
	if dlq == s.meta.Topic {
		return fail(errs.New(errs.FailedPrecondition, "a subscription cannot dead-letter into its own topic"))
	}
	if err := t.b.ensureDeadLetterTopic(dlq); err != nil {
		return fail(err)
	}
	m := s.deadLetterCopy(p, offset, attempts, string(queue.ReasonMaxDeliveries), errText, now)
	res, err := t.b.publishOwn(dlq, []Message{m})
	if err != nil {
		return fail(fmt.Errorf("write to dead-letter topic %q: %w", dlq, err))
	}
	s.deadLettered.Add(1)
	s.stats.deadLettered[deadLetterIndex(queue.ReasonMaxDeliveries)].Add(1)
	part := p
	t.b.emit(SystemEvent{Kind: EventDeadLettered, Topic: s.meta.Topic, Subscription: s.meta.Name, Partition: &part, Count: 1,
		Reason: string(queue.ReasonMaxDeliveries), Offsets: []int64{offset}, Detail: "dead-letter topic " + dlq,
		TraceIDs: traceIDs(headerValue(m.Headers, HeaderTraceparent))},
		"", slog.LevelInfo, "messages dead-lettered", "count", 1, "reasons", map[string]int{string(queue.ReasonMaxDeliveries): 1},
		"partition", p, "offsets", []int64{offset}, "deliveries", attempts, "dlq", dlq)
	return FailedOutcome{Action: catalog.FailDeadLetter, DeadLetterTopic: dlq, DeadLetterOffset: res[0].Offset}
}

// checkOwnerLocked reports whether the member owns partition p now (a
// partition being revoked still counts: it may finish its work).
func (sess *Session) checkOwnerLocked(p int32) error {
	s := sess.sub
	if sess.closed {
		return sess.err
	}
	s.applyLocked(s.coord.Tick(s.t.b.clock.Now()))
	if err := s.coord.CheckCommit(sess.id, sess.gen-s.resetEpoch, p); err != nil {
		return groupError(err)
	}
	return nil
}

// haltsLocked returns a copy of the subscription's halts.
func (s *subscription) haltsLocked() map[int32]Halt {
	if len(s.halts) == 0 {
		return nil
	}
	out := make(map[int32]Halt, len(s.halts))
	for p, h := range s.halts {
		out[p] = h
	}
	return out
}
