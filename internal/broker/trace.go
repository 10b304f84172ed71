package broker

import (
	"time"

	"github.com/spoolmq/spool/internal/batch"
)

// Tracing. Messages carry W3C trace context in their traceparent and
// tracestate headers, stored and delivered unchanged whatever the
// protocol. When a Tracer is configured the broker reports, for messages
// that carry a traceparent, their publish (request accepted to durable,
// the fsync included), each delivery to a consumer of a native session,
// each ack, nack and reject, and each dead-lettering; telemetry turns the
// reports into OpenTelemetry spans of the producer's trace. Messages
// without a traceparent cost nothing; without a Tracer nothing is looked
// at.

// HeaderTracestate is W3C trace context's vendor state, carried beside
// HeaderTraceparent.
const HeaderTracestate = "tracestate"

// TraceContext is a message's trace context (copied out of the record).
type TraceContext struct{ Parent, State string }

// Tracer hears what broker spans are made of; telemetry implements it.
// Calls must not block.
type Tracer interface {
	// Wants reports whether a message with this traceparent would be
	// recorded (false, say, for a producer that did not sample it while
	// the sampler follows the parent): the others are skipped before
	// anything is copied.
	Wants(traceparent []byte) bool
	// Published: a request's messages that carried trace contexts (at
	// most maxTraceLinks of them, each context once) were made durable,
	// or failed with err; messages counts the request's messages.
	Published(topic string, parents []TraceContext, messages int, start, end time.Time, err error)
	// Delivered: traced messages were handed to a consumer of sub in one
	// event (one span for the event, linked to each message's).
	Delivered(topic, sub string, msgs []TracedMessage, at time.Time)
	// Settled: traced leased messages were acked, nacked or rejected (op)
	// by one request.
	Settled(topic, sub, op string, msgs []TracedMessage, at time.Time)
	// DeadLettered: a message was written to a dead-letter topic.
	DeadLettered(topic, sub string, tc TraceContext, reason, dlq string, at time.Time)
}

// TracedMessage is a delivered or settled message that carries a trace
// context.
type TracedMessage struct {
	TraceContext
	Partition int32
	Offset    int64
	Delivery  int // its delivery count (Delivered only)
}

// maxTraceLinks bounds the trace contexts one publish reports (the links
// of its span).
const maxTraceLinks = 128

// maxTracedLeases bounds the trace contexts a subscription keeps for its
// leases (to report their ack); beyond it they are forgotten (those
// acks are not traced).
const maxTracedLeases = 65536

// traceOf returns the trace context in headers, if tr wants it.
func traceOf(tr Tracer, hs []batch.RecordHeader) (TraceContext, bool) {
	var parent, state []byte
	for _, h := range hs {
		switch h.Key {
		case HeaderTraceparent:
			parent = h.Value
		case HeaderTracestate:
			state = h.Value
		}
	}
	if len(parent) == 0 || !tr.Wants(parent) {
		return TraceContext{}, false
	}
	return TraceContext{Parent: string(parent), State: string(state)}, true
}

// addTrace adds tc to a publish's contexts, once, within maxTraceLinks.
func addTrace(tcs []TraceContext, tc TraceContext) []TraceContext {
	if len(tcs) >= maxTraceLinks {
		return tcs
	}
	for _, x := range tcs {
		if x.Parent == tc.Parent {
			return tcs
		}
	}
	return append(tcs, tc)
}

// batchTraces returns the trace contexts of record batches' records.
func batchTraces(tr Tracer, batches []byte, maxDecompressed int) []TraceContext {
	var out []TraceContext
	for bt, err := range batch.Batches(batches) {
		if err != nil {
			return out
		}
		for r, err := range bt.Records(maxDecompressed) {
			if err != nil {
				break
			}
			if tc, ok := traceOf(tr, r.Headers); ok {
				out = addTrace(out, tc)
			}
		}
	}
	return out
}

// leaseKey names a lease in a subscription's traced leases.
type leaseKey struct {
	p   int32
	off int64
}

// traceDelivered reports deliveries of a session and, for a queue,
// remembers their contexts until they are settled.
func (s *subscription) traceDelivered(out []Delivered) {
	tr := s.t.b.cfg.Tracer
	var traced []TracedMessage
	for i := range out {
		d := &out[i]
		if tc, ok := traceOf(tr, d.Headers); ok {
			traced = append(traced, TracedMessage{TraceContext: tc, Partition: d.Partition, Offset: d.Offset, Delivery: int(d.DeliveryCount)})
		}
	}
	if len(traced) == 0 {
		return
	}
	tr.Delivered(s.meta.Topic, s.meta.Name, traced, s.t.b.clock.Now())
	if s.q == nil {
		return
	}
	s.mu.Lock()
	if s.tracedLeases == nil || len(s.tracedLeases)+len(traced) > maxTracedLeases {
		s.tracedLeases = make(map[leaseKey]TraceContext, len(traced))
	}
	for _, m := range traced {
		s.tracedLeases[leaseKey{m.Partition, m.Offset}] = m.TraceContext
	}
	s.mu.Unlock()
}

// settledTrace takes a settled lease's context, if it was traced. Called
// with s.mu held.
func (s *subscription) settledTraceLocked(p int32, off int64) (TraceContext, bool) {
	tc, ok := s.tracedLeases[leaseKey{p, off}]
	if ok {
		delete(s.tracedLeases, leaseKey{p, off})
	}
	return tc, ok
}

// tracedSettle is a settled lease to report once s.mu is released.
type tracedSettle struct {
	tc  TraceContext
	p   int32
	off int64
	op  string
}

// reportSettled reports one request's settled leases (all of one op).
func (s *subscription) reportSettled(ts []tracedSettle) {
	if len(ts) == 0 {
		return
	}
	msgs := make([]TracedMessage, len(ts))
	for i, x := range ts {
		msgs[i] = TracedMessage{TraceContext: x.tc, Partition: x.p, Offset: x.off}
	}
	s.t.b.cfg.Tracer.Settled(s.meta.Topic, s.meta.Name, ts[0].op, msgs, s.t.b.clock.Now())
}
