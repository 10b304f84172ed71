package broker

import (
	"errors"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/recordbatch"
)

// maxBatchBytes is the size at which a publish is split into several
// record batches per partition; it stays well below the log's
// MaxBatchBytes (see batchLimit).
const maxBatchBytes = 512 << 10

// batchLimit is the record-batch size publishes are split at: at most
// maxBatchBytes, and at most half the largest batch the log accepts (room
// for record overhead).
func (b *Broker) batchLimit() int {
	return min(maxBatchBytes, b.cfg.Log.Limits.MaxBatchBytes/2)
}

// Publish stores messages in a topic and returns where each landed, in
// order. It returns only after every stored message is durable under the
// topic's durability policy.
//
// Partitions: an explicit Partition wins; otherwise a keyed message goes to
// murmur2(key) like Kafka's default partitioner; keyless messages of one
// request all go to one partition, rotating between requests (Kafka's
// sticky partitioner), so that one request is one append.
//
// De-duplication: a message whose ID was published within the topic's
// window is not stored again; its result is the original's with
// Duplicate set. A second message with the same ID in the same request is a
// duplicate of the first. An ID that another request is publishing at this
// moment makes the request fail with the retriable duplicate_in_progress
// error (the retry then reports the duplicate).
//
// Messages for one partition are stored all-or-nothing; if a request spans
// partitions and fails, messages for the other partitions may be stored.
// On a cluster a node refuses a request with a partition it does not lead
// as a whole, before storing any of it (errs.NotLeader names the leader).
func (b *Broker) Publish(topicName string, msgs []Message) ([]Result, error) {
	return b.publishWait(topicName, msgs, false)
}

// publishWait is Publish; with own, for the broker's own writes
// (dead-letter copies, system events: publishOwn), which the free-space
// gate does not refuse — refusing a dead-letter copy would stop the
// consumers whose acknowledgements and rejections free the space.
func (b *Broker) publishWait(topicName string, msgs []Message, own bool) ([]Result, error) {
	pp, err := b.screened(topicName, msgs, true, own)
	if err != nil {
		return nil, err
	}
	return pp.Wait()
}

// PublishAsync does the part of Publish that must happen in order — checks,
// de-duplication, partitioning, and queueing in the partition logs (which
// assigns offsets) — and returns without waiting for durability. A
// pipelining caller calls it for each request in order and waits in
// parallel, so its messages keep their order while many requests share one
// fsync. Every successful call must be followed by Wait.
func (b *Broker) PublishAsync(topicName string, msgs []Message) (*PendingPublish, error) {
	return b.screened(topicName, msgs, false, false)
}

// PublishFlush is PublishAsync for a caller that will wait at once and has
// nothing else to do meanwhile: see publish.
func (b *Broker) PublishFlush(topicName string, msgs []Message) (*PendingPublish, error) {
	return b.screened(topicName, msgs, true, false)
}

// screened is publish, which validates the messages of a topic bound to
// a schema subject (schema.go), and in dead-letter mode the slow path of
// a publish with invalid messages: their copies are written to the
// dead-letter topic (outside the topic's lock), the others published, and
// Wait merges the results back in request order.
func (b *Broker) screened(topicName string, msgs []Message, flush, own bool) (*PendingPublish, error) {
	pp, err := b.publish(topicName, msgs, flush, true, own)
	var dl *deadLetterFirst
	if !errors.As(err, &dl) {
		return pp, err
	}
	keep, dead, err := b.deadLetterMessages(topicName, msgs, dl.bad)
	if err != nil {
		return nil, err
	}
	if pp, err = b.publish(topicName, keep, flush, false, own); err != nil { // validated above
		return nil, err
	}
	pp.dead, pp.total = dead, len(msgs)
	return pp, nil
}

// publish is PublishAsync; with flush, a request that goes to one partition
// is written by the calling goroutine when no flush is in progress (the
// caller waits right away, so a hand-off would only add latency). With
// validate, the messages of a topic bound to a schema subject are
// validated first. Without own (the broker's own writes), the free-space
// gate refuses the request first (disk_full).
func (b *Broker) publish(topicName string, msgs []Message, flush, validate, own bool) (_ *PendingPublish, err error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	defer func() { t.stats.refused(err, len(msgs)) }()
	if !own {
		if err := b.disk.admit(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	t.life.RLock()
	release := true // until Wait takes over the read lock
	defer func() {
		if release {
			t.life.RUnlock()
		}
	}()
	if t.deleted {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if len(msgs) == 0 {
		release = false
		return &PendingPublish{t: t}, nil
	}
	cfg := t.meta.Config
	if validate {
		if err := b.validateMessages(topicName, t.stats, cfg, msgs); err != nil {
			return nil, err
		}
	}
	now := b.clock.Now()
	nparts := int32(len(t.logs()))
	total := 0
	for i := range msgs {
		m := &msgs[i]
		if sz := m.size(); sz > int(cfg.MaxMessageBytes) {
			return nil, errs.New(errs.MessageTooLarge, "message %d is %d bytes; topic %q accepts at most %d", i, sz, topicName, cfg.MaxMessageBytes)
		} else {
			total += sz
		}
		if len(m.ID) > MaxIDLen || len(m.Subject) > MaxIDLen {
			return nil, errs.New(errs.InvalidArgument, "message %d: id and subject are limited to %d bytes", i, MaxIDLen)
		}
		if m.Partition >= nparts || m.Partition < -1 {
			return nil, errs.New(errs.InvalidArgument, "message %d: partition %d does not exist (topic %q has %d)", i, m.Partition, topicName, nparts)
		}
		if m.Delay < 0 || m.TTL < 0 {
			return nil, errs.New(errs.InvalidArgument, "message %d: delay and ttl must not be negative", i)
		}
		if m.Delay > 0 {
			if !m.DeliverAt.IsZero() {
				return nil, errs.New(errs.InvalidArgument, "message %d: set deliver_at or delay, not both", i)
			}
			m.DeliverAt = now.Add(m.Delay)
		}
	}
	if err := t.checkCapacity(len(msgs), total); err != nil {
		return nil, err
	}

	sticky := int32(-1)
	partOf := func(m *Message) int32 {
		switch {
		case m.Partition >= 0:
			return m.Partition
		case len(m.Key) > 0:
			return recordbatch.KeyPartition(m.Key, nparts)
		case sticky < 0:
			sticky = int32(t.rr.Add(1) % uint32(nparts))
		}
		return sticky
	}
	if rs := t.replicas(); rs != nil && hasIDs(msgs) {
		if err := t.catchUpIDs(rs, msgs, partOf); err != nil {
			return nil, err
		}
	}

	results := make([]Result, len(msgs))
	store := make([]bool, len(msgs)) // false: answered without storing
	for i := range store {
		store[i] = true
	}
	ids, err := t.dedup.reserve(msgs, now, results, store)
	if err != nil {
		return nil, err
	}

	// Group the messages to store by partition.
	byPart := map[int32][]int{}
	for i := range msgs {
		if store[i] {
			p := partOf(&msgs[i])
			byPart[p] = append(byPart[p], i)
		}
	}

	if rs := t.replicas(); rs != nil {
		if err := t.checkLeads(rs, byPart); err != nil {
			ids.settle(results, now) // nothing stored: every id released
			return nil, err
		}
	}

	pp := &PendingPublish{t: t, results: results, ids: ids, now: now, start: start}
	if tr := b.cfg.Tracer; tr != nil {
		for i := range msgs {
			if tc, ok := traceOf(tr, msgs[i].Headers); ok {
				pp.traces = addTrace(pp.traces, tc)
			}
		}
	}
	flush = flush && len(byPart) == 1
	for p, idx := range byPart {
		pend, err := t.submitPartition(p, idx, msgs, now, flush)
		if err != nil {
			if len(pp.parts) > 0 && errs.NotLeaderOf(err) != nil {
				// The leadership moved since checkLeads: the refusal no
				// longer means that nothing of the request is stored.
				err = errs.New(errs.Unavailable, "%v (messages of other partitions may be stored: retry)", err)
			}
			pp.err = err
			break
		}
		bytes := 0
		for _, i := range idx {
			bytes += msgs[i].size()
		}
		pp.parts = append(pp.parts, partPending{p: p, idx: idx, pend: pend, bytes: bytes})
	}
	release = false
	return pp, nil
}

// checkLeads refuses a cluster's publish as a whole, before anything of it
// is stored, when this node does not lead (or is not ready to lead) every
// partition it goes to: a client told NotLeader then knows that none of
// its messages were stored, and sends each partition's messages to its
// leader.
func (t *topic) checkLeads(rs []*replica, byPart map[int32][]int) error {
	for p := range byPart {
		r := rs[p]
		lead, term, self := r.g.Leader()
		if !self {
			return errNotLeader(t.meta.Name, p, lead, r.g.NodeAddr(lead))
		}
		if !r.ready(term) {
			return errNotReady(t.meta.Name, p)
		}
	}
	return nil
}

// PendingPublish is a publish whose messages are queued in their partition
// logs in request order; Wait reports when they are durable.
type PendingPublish struct {
	t       *topic
	results []Result
	ids     *reservation // the de-duplication reservation; nil without ids
	now     time.Time
	start   time.Time      // when the request began (monotonic), for the publish latency
	traces  []TraceContext // the messages' trace contexts (with a Tracer only)
	parts   []partPending
	err     error // a submit failure; parts submitted before it still complete
	// dead: the results of the request's messages that were dead-lettered
	// by schema validation, by request index; total: the request's
	// length (results holds the others', in order).
	dead  map[int]Result
	total int
}

type partPending struct {
	p     int32
	idx   []int
	pend  pendingAppend
	bytes int // the messages' sizes, for metrics
}

// Wait blocks until every message of the publish is durable (or failed)
// and returns the results in request order.
func (pp *PendingPublish) Wait() ([]Result, error) {
	t := pp.t
	defer t.life.RUnlock()
	err := pp.err
	if err != nil {
		t.stats.refused(err, 1)
	}
	storedAny := false
	for _, pt := range pp.parts {
		res, werr := pt.pend.Wait()
		if werr != nil {
			t.b.noteWriteError(werr)
			werr = appendError(t.meta.Name, pt.p, werr)
			t.stats.refused(werr, len(pt.idx))
			if err == nil {
				err = werr
			}
			continue
		}
		t.stats.stored(len(pt.idx), pt.bytes)
		storedAny = true
		for k, i := range pt.idx {
			pp.results[i] = Result{Partition: pt.p, Offset: res.BaseOffset + int64(k), stored: true}
		}
	}
	if storedAny {
		t.stats.latency.ObserveDuration(time.Since(pp.start))
	}
	if len(pp.traces) > 0 {
		stored := 0
		for _, pt := range pp.parts {
			stored += len(pt.idx)
		}
		t.b.cfg.Tracer.Published(t.meta.Name, pp.traces, stored, pp.start, time.Now(), err)
	}
	pp.ids.settle(pp.results, pp.now)
	if err != nil {
		return nil, err
	}
	for i, j := range pp.ids.duplicates() {
		pp.results[i] = Result{Partition: pp.results[j].Partition, Offset: pp.results[j].Offset, Duplicate: true}
	}
	for i := range pp.results {
		pp.results[i].stored = false
	}
	if pp.dead != nil {
		all := make([]Result, 0, pp.total)
		k := 0
		for i := range pp.total {
			if r, ok := pp.dead[i]; ok {
				all = append(all, r)
			} else {
				all = append(all, pp.results[k])
				k++
			}
		}
		return all, nil
	}
	return pp.results, nil
}

// submitPartition encodes the messages at idx into record batches (split
// at maxBatchBytes) and submits them to partition p as one append.
func (t *topic) submitPartition(p int32, idx []int, msgs []Message, now time.Time, flush bool) (pendingAppend, error) {
	var (
		buf  []byte
		recs = make([]batch.Record, 0, len(idx))
		base int64
		size int
		err  error
	)
	encode := func() error {
		buf, err = batch.Encode(buf, batch.Header{BaseTimestamp: base, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
		if err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "encode messages")
		}
		recs, size = recs[:0], 0
		return nil
	}
	nowMs := now.UnixMilli()
	limit := t.b.batchLimit()
	ids := false
	// Size the buffer for every batch at once: growing it batch by batch
	// would allocate several times the data.
	est := 0
	for _, i := range idx {
		est += encodedEstimate(&msgs[i])
		ids = ids || msgs[i].ID != ""
	}
	buf = make([]byte, 0, est+(est/limit+1)*batch.HeaderSize)
	for _, i := range idx {
		m := &msgs[i]
		ts := nowMs
		if !m.Timestamp.IsZero() {
			ts = m.Timestamp.UnixMilli()
		}
		sz := m.size() + 32
		if len(recs) > 0 && size+sz > limit {
			if err := encode(); err != nil {
				return nil, err
			}
		}
		if len(recs) == 0 {
			base = ts
		}
		r := m.record(now)
		r.TimestampDelta = ts - base
		r.OffsetDelta = int32(len(recs))
		recs = append(recs, r)
		size += sz
	}
	if err := encode(); err != nil {
		return nil, err
	}
	return t.submit(p, buf, flush, ids)
}

// encodedEstimate is about the size of m's record in a batch: its bytes,
// Spool's header names, and the record's varints (generously).
func encodedEstimate(m *Message) int {
	n := m.size() + 40 + 16*len(m.Headers)
	if m.ID != "" {
		n += 16
	}
	if m.Subject != "" {
		n += 16
	}
	if !m.DeliverAt.IsZero() || m.TTL > 0 {
		n += 64
	}
	return n
}

// appendError maps a log error to an API error.
func appendError(topic string, p int32, err error) error {
	var ve *batch.ValidationError
	var ee *errs.Error
	switch {
	case errors.As(err, &ee):
		return err // the broker's own (a replicated partition's)
	case errors.As(err, &ve):
		return errs.Wrap(errs.InvalidArgument, err, "invalid batch for %s/%d", topic, p)
	case errors.Is(err, seglog.ErrClosed):
		return errs.New(errs.Unavailable, "partition %s/%d is closed", topic, p)
	}
	var se *seglog.StorageError
	if errors.As(err, &se) {
		return errs.Wrap(errs.StorageFailed, err, "partition %s/%d cannot accept writes", topic, p)
	}
	return errs.Wrap(errs.Internal, err, "append to %s/%d", topic, p)
}
