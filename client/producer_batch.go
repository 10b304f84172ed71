package client

import (
	"strconv"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/recordbatch"
	"go.opentelemetry.io/otel/trace"
)

// record is one message on its way through a Producer. It is allocated
// once per Send, with the Future it returns, and kept small (176 bytes):
// what only some messages need lives in x.
type record struct {
	future    Future // the Send's, allocated with the record
	key       []byte // the message's key and value
	value     []byte
	x         *recordX // nil unless the message has more than a key, a value, a timestamp and a partition, or needed the message form or a retry
	size      int64    // approximate bytes, for batch and buffer limits
	epoch     uint64   // flush epoch at Send
	enqueued  mono     // when Send accepted it (its deadline: enqueued + the delivery timeout)
	notBefore mono     // retry backoff: not sent before this (0: at once)
	ts        int64    // the Timestamp in Unix ms, unless brokerTime
	part      int32    // its ToPartition, if partSet
	partSet   bool
	alone     bool // send in a request of its own (isolating a rejected message)

	// The batch form (producer_fast.go).
	special    bool // has an ID or a Delay: goes by the message form
	brokerTime bool // no Timestamp: the broker's time of acceptance
}

// recordX is what few records need: the rest of the message, its message
// form, its stored headers, and its retries.
type recordX struct {
	m        *Message             // the message as sent, when it has more than a key, a value, a timestamp and a partition
	msg      *spoolv1.Message     // the message form, converted once when first needed; its ID never changes
	hdrs     []recordbatch.Header // stored headers, Spool's first (as the message form stores them)
	orderKey string               // the message form's: "" = no ordering constraint
	attempts int                  // failed attempts so far
	lastErr  error                // the last attempt's error
	span     trace.Span           // its publish span (WithTracerProvider), ended at its outcome
}

// ext returns r.x, making it if need be.
func (r *record) ext() *recordX {
	if r.x == nil {
		r.x = &recordX{}
	}
	return r.x
}

// pm returns the record's message form, nil if not converted.
func (r *record) pm() *spoolv1.Message {
	if r.x == nil {
		return nil
	}
	return r.x.msg
}

// hdrs returns the headers a batch stores for r.
func (r *record) hdrs() []recordbatch.Header {
	if r.x == nil {
		return nil
	}
	return r.x.hdrs
}

// lastErr returns the error of r's last failed attempt, if any.
func (r *record) lastErr() error {
	if r.x == nil {
		return nil
	}
	return r.x.lastErr
}

// failedWith counts a failed attempt of r and returns the attempts so far.
func (r *record) failedWith(err error) int {
	x := r.ext()
	x.attempts++
	x.lastErr = err
	return x.attempts
}

// setErr records the error of r's last attempt without counting one.
func (r *record) setErr(err error) { r.ext().lastErr = err }

// encSize estimates r's bytes in a record batch, which is what bounds a
// batch-form request (as Kafka clients bound a batch by its bytes): its
// key, value and stored headers, and up to 16 bytes of lengths, deltas
// and attributes (a record of a 256-byte value takes 262). The buffer
// counts r.size, which allows for the message form's overhead too.
func (r *record) encSize() int {
	n := len(r.key) + len(r.value) + 16
	if r.x != nil {
		for _, h := range r.x.hdrs {
			n += len(h.Key) + len(h.Value) + 6
		}
	}
	return n
}

// mono is a reading of the producer's monotonic clock: nanoseconds since
// clockBase. Reading it costs one clock read (time.Now costs two: wall and
// monotonic) and it takes 8 bytes of a record, not 24.
type mono int64

var clockBase = time.Now()

func monoNow() mono { return mono(time.Since(clockBase)) }

// monoOf converts t (a reading of time.Now, or derived from one).
func monoOf(t time.Time) mono { return mono(t.Sub(clockBase)) }

// time converts m back for timers and logs.
func (m mono) time() time.Time { return clockBase.Add(time.Duration(m)) }

// add returns m + d.
func (m mono) add(d time.Duration) mono { return m + mono(d) }

// newRecord makes the record of a checked message, with what the batch
// form needs: whether it must go by the message form instead, its
// timestamp and the headers a batch stores for it — Spool's attributes
// first (subject, deliver-at, ttl), then the user's, as the server stores
// a message of the message form.
func newRecord(m *Message) *record {
	r := &record{key: m.Key, value: m.Value, part: m.Partition, partSet: m.partitionSet, size: m.size()}
	if m.ID == "" {
		r.size += 2 * 16 // the ID the message form gives it (newID)
	}
	r.special = m.ID != "" || m.Delay > 0
	if m.Timestamp.IsZero() {
		r.brokerTime = true
	} else {
		r.ts = m.Timestamp.UnixMilli()
	}
	if m.ID == "" && m.Subject == "" && len(m.Headers) == 0 && m.DeliverAt.IsZero() && m.Delay <= 0 && m.TTL <= 0 {
		return r
	}
	mm := *m
	x := &recordX{m: &mm} // the rest of it: kept only when there is one
	r.x = x
	if r.special {
		return r
	}
	n := len(m.Headers)
	if m.Subject != "" {
		n++
	}
	if !m.DeliverAt.IsZero() {
		n++
	}
	if m.TTL > 0 {
		n++
	}
	if n == 0 {
		return r
	}
	hs := make([]recordbatch.Header, 0, n)
	if m.Subject != "" {
		hs = append(hs, recordbatch.Header{Key: "spool.subject", Value: []byte(m.Subject)})
	}
	if !m.DeliverAt.IsZero() {
		hs = append(hs, recordbatch.Header{Key: "spool.deliver-at", Value: strconv.AppendInt(nil, m.DeliverAt.UnixMilli(), 10)})
	}
	if m.TTL > 0 {
		hs = append(hs, recordbatch.Header{Key: "spool.ttl", Value: strconv.AppendInt(nil, m.TTL.Milliseconds(), 10)})
	}
	for _, h := range m.Headers {
		hs = append(hs, recordbatch.Header{Key: h.Key, Value: h.Value})
	}
	x.hdrs = hs
	return r
}

// proto returns the record's message form, converting it once (assigning
// an ID if it has none), and sets the order key the message form's
// batcher goes by.
func (r *record) proto() *spoolv1.Message {
	x := r.ext()
	if x.msg == nil {
		m := x.m
		if m == nil {
			m = &Message{Key: r.key, Value: r.value, Partition: r.part, partitionSet: r.partSet}
			if !r.brokerTime {
				m.Timestamp = time.UnixMilli(r.ts)
			}
		}
		x.msg = m.proto()
		x.orderKey = m.orderKey()
	}
	return x.msg
}

// orderKey returns the message form's order key ("" before proto).
func (r *record) orderKey() string {
	if r.x == nil {
		return ""
	}
	return r.x.orderKey
}

// headers returns how many headers the message form sends for r.
func (r *record) headers() int {
	if r.x == nil || r.x.m == nil {
		return 0
	}
	return len(r.x.m.Headers)
}

// maxScan bounds how far into the pending queue one batch looks: behind a
// long run of messages blocked on one key, others wait their turn rather
// than making every batch scan the whole queue.
const maxScan = 1 << 16

// batcher turns the producer's pending queue into publish requests. It
// holds no lock and starts nothing: the sender goroutine owns it, and tests
// drive it with explicit times.
//
// A request holds at most maxMsgs messages, about maxBytes bytes (a larger
// message goes alone) and maxRequestHeaders headers (the server's limit).
//
// Ordering rule: at most one request per order key (partition key, or
// explicit partition) is in flight. A message whose key is blocked (its
// earlier messages are in flight or waiting to be retried) is skipped, and
// so is every later message with that key, so per-key send order survives
// retries and reconnects. Messages without a key have no constraint.
type batcher struct {
	maxMsgs  int           // messages per request
	maxBytes int64         // approximate bytes per request
	linger   time.Duration // how long a partial batch waits for more
	timeout  time.Duration // the delivery timeout: a record's deadline is enqueued + timeout
	pending  []*record     // not yet in flight, in send order (retries first)
	blocked  map[string]struct{}
}

func newBatcher(cfg *producerConfig) *batcher {
	return &batcher{
		maxMsgs:  cfg.maxBatchMsgs,
		maxBytes: cfg.maxBatchBytes,
		linger:   cfg.linger,
		timeout:  cfg.deliveryTimeout,
		blocked:  map[string]struct{}{},
	}
}

// add appends newly sent records.
func (b *batcher) add(rs []*record) { b.pending = append(b.pending, rs...) }

// requeue puts records that were in flight back at the head of the queue,
// in the given order.
func (b *batcher) requeue(rs []*record) {
	if len(rs) == 0 {
		return
	}
	b.pending = append(rs[:len(rs):len(rs)], b.pending...)
}

// block marks the order keys of a request that went in flight.
func (b *batcher) block(rs []*record) {
	for _, r := range rs {
		if k := r.orderKey(); k != "" {
			b.blocked[k] = struct{}{}
		}
	}
}

// unblock releases the order keys of a request that is no longer in flight.
func (b *batcher) unblock(rs []*record) {
	for _, r := range rs {
		delete(b.blocked, r.orderKey())
	}
}

// next removes and returns the records of the next request, or returns nil
// and the time at which one may become ready (zero: not before some other
// event). A partial batch is ready when its oldest record has lingered long
// enough, or at once when force is set (Flush, Close).
func (b *batcher) next(now time.Time, force bool) ([]*record, time.Time) {
	var (
		take    []int
		bytes   int64
		oldest  mono
		wake    time.Time
		skipped map[string]struct{}
		full    bool
	)
	skip := func(k string) {
		if k == "" {
			return
		}
		if skipped == nil {
			skipped = map[string]struct{}{}
		}
		skipped[k] = struct{}{}
	}
	headers := 0
	mnow := monoOf(now)
	for i, r := range b.pending {
		if i >= maxScan {
			break
		}
		key := r.orderKey()
		if key != "" {
			if _, blocked := b.blocked[key]; blocked {
				continue
			}
			if _, later := skipped[key]; later {
				continue
			}
		}
		if r.notBefore > mnow {
			wake = earliest(wake, r.notBefore.time())
			skip(key)
			continue
		}
		if r.alone && len(take) > 0 {
			skip(key)
			continue
		}
		nh := len(r.pm().GetHeaders())
		if len(take) > 0 && (bytes+r.size > b.maxBytes || headers+nh > maxRequestHeaders) {
			full = true
			break
		}
		take = append(take, i)
		bytes += r.size
		headers += nh
		if len(take) == 1 || r.enqueued < oldest {
			oldest = r.enqueued
		}
		if r.alone || len(take) >= b.maxMsgs || bytes >= b.maxBytes {
			full = true
			break
		}
	}
	if len(take) == 0 {
		return nil, wake
	}
	if !full && !force {
		if ready := oldest.add(b.linger); ready > mnow {
			return nil, earliest(wake, ready.time())
		}
	}
	batch := make([]*record, 0, len(take))
	kept := b.pending[:0]
	t := 0
	for i, r := range b.pending {
		if t < len(take) && take[t] == i {
			batch = append(batch, r)
			t++
			continue
		}
		kept = append(kept, r)
	}
	clear(b.pending[len(kept):])
	b.pending = kept
	return batch, time.Time{}
}

// expire removes and returns the pending records whose deadline is not
// after now.
func (b *batcher) expire(now time.Time) []*record {
	var out []*record
	kept := b.pending[:0]
	dead := monoOf(now).add(-b.timeout) // enqueued at or before: past the deadline
	for _, r := range b.pending {
		if r.enqueued <= dead {
			out = append(out, r)
			continue
		}
		kept = append(kept, r)
	}
	clear(b.pending[len(kept):])
	b.pending = kept
	return out
}

// earliest returns the earlier of two times, treating zero as "never".
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
