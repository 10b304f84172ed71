package client

import (
	"math"
	"math/rand/v2"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// What a stream consumer does with a message whose handler keeps failing:
// it calls the handler up to the subscription's MaxDeliveries times (or
// ConsumerHandlerRetries + 1), waiting the subscription's Backoff between
// calls, then reports the message to the server, which applies the
// subscription's OnFailure action: a durable copy in the dead-letter topic
// (the consumer then commits past the message) or a halt of the partition
// (the consumer stops the partition without committing past the message).
// Nothing is skipped without a trace.

// failurePolicy is a stream subscription's failure policy as a member
// receives it.
type failurePolicy struct {
	action   FailureAction
	attempts int
	backoff  Backoff
}

// defaultFailurePolicy applies when the server sends none: the
// subscription defaults, with the partition stopped rather than anything
// skipped.
var defaultFailurePolicy = failurePolicy{action: FailureStop, attempts: 5,
	backoff: Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: JitterFull}}

func failurePolicyFromProto(fp *spoolv1.FailurePolicy) *failurePolicy {
	if fp == nil {
		p := defaultFailurePolicy
		return &p
	}
	p := &failurePolicy{action: FailureAction(fp.GetAction()), attempts: int(fp.GetMaxAttempts()), backoff: backoffFromProto(fp.GetBackoff())}
	if p.action != FailureDeadLetter && p.action != FailureStop {
		p.action = FailureStop
	}
	if p.attempts < 1 {
		p.attempts = defaultFailurePolicy.attempts
	}
	return p
}

// delay returns the wait before retry n (n = 1, 2, …), as the server
// computes redelivery delays: Delays[min(n, len)−1] when set, else
// min(Initial × Multiplier^(n−1), Max); randomized by Jitter, never below
// a tenth of Initial (at least 1 ms) under full jitter.
func (b Backoff) delay(n int) time.Duration {
	n = max(n, 1)
	initial, maxD, mult := b.Initial, b.Max, b.Multiplier
	if initial <= 0 {
		initial = time.Second
	}
	if maxD < initial {
		maxD = max(initial, 5*time.Minute)
	}
	if !(mult >= 1) || math.IsInf(mult, 0) {
		mult = 2
	}
	var d time.Duration
	if len(b.Delays) > 0 {
		d = b.Delays[min(n, len(b.Delays))-1]
	} else {
		f := float64(initial) * math.Pow(mult, float64(n-1))
		d = maxD
		if f < float64(maxD) {
			d = time.Duration(f)
		}
	}
	if d <= 0 {
		return 0
	}
	switch b.Jitter {
	case JitterNone:
		return d
	case JitterEqual:
		return d/2 + rand.N(d/2+1)
	}
	floor := min(d, max(initial/10, time.Millisecond))
	return floor + rand.N(d-floor+1)
}

// giveUp reports m, whose handler failed attempts times with err, to the
// server and waits for its answer. It returns true when the message was
// dead-lettered (it counts as processed); false when the partition halted,
// the report failed for good, or the partition is being stopped — then the
// message is not committed and the partition stops in this consumer.
func (s *session) giveUp(p *partition, m *Message, attempts int, err error, pol *failurePolicy) bool {
	errText := err.Error()
	for try := 1; ; try++ {
		id := s.failSeq.Add(1)
		ch := make(chan *spoolv1.FailedResult, 1)
		s.failMu.Lock()
		s.failWait[id] = ch
		s.failMu.Unlock()
		s.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Failed{Failed: &spoolv1.Failed{
			Partition: m.Partition, Offset: m.Offset, Attempts: int32(attempts), Error: errText, RequestId: id,
		}}})
		var r *spoolv1.FailedResult
		select {
		case r = <-ch:
		case <-p.stop:
		case <-s.done:
		}
		s.failMu.Lock()
		delete(s.failWait, id)
		s.failMu.Unlock()
		if r == nil {
			return false // stopping: not committed, so delivered again later
		}
		if info := r.GetError(); info != nil {
			e := errorFromInfo(info, r.GetErrorMessage())
			if e.Retriable {
				s.k.log.Warn("spool: reporting a failed message failed; retrying", "partition", m.Partition, "offset", m.Offset, "err", e)
				if !sleepOrStop(p.stop, pol.backoff.delay(try)) {
					return false
				}
				continue
			}
			s.k.log.Error("spool: a failed message could not be dead-lettered or halted; stopping the partition in this consumer (it is delivered again to the next owner)",
				"partition", m.Partition, "offset", m.Offset, "err", e)
			s.events <- workerEvent{part: p.id, kind: evHalted, offset: m.Offset, p: p}
			return false
		}
		action := FailureAction(r.GetAction())
		if s.cfg.onFailure != nil {
			s.cfg.onFailure(m, action, err)
		}
		if action == FailureDeadLetter {
			s.k.log.Warn("spool: message dead-lettered after its handler failed", "partition", m.Partition, "offset", m.Offset,
				"attempts", attempts, "dead_letter_topic", r.GetDeadLetterTopic(), "dead_letter_offset", r.GetDeadLetterOffset(), "err", err)
			return true
		}
		s.k.log.Error("spool: partition halted: its handler failed on a message; reset the partition to go on",
			"partition", m.Partition, "offset", m.Offset, "attempts", attempts, "err", err)
		s.events <- workerEvent{part: p.id, kind: evHalted, offset: m.Offset, p: p}
		return false
	}
}

// onFailedResult hands a FailedResult to the worker waiting for it.
func (s *session) onFailedResult(r *spoolv1.FailedResult) {
	s.failMu.Lock()
	ch := s.failWait[r.GetRequestId()]
	s.failMu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default:
		}
	}
}

// sleepOrStop waits d, reporting false if stop closed first.
func sleepOrStop(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
