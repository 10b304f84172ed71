package broker

import (
	"errors"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
)

// Raw access for protocol front ends that speak record batches themselves
// (Kafka): batches are appended exactly as produced (offsets assigned) and
// read back exactly as stored; offsets, times and segment boundaries of the
// partition logs.

// PendingAppend is a raw append queued in its partition log.
type PendingAppend struct {
	t     *topic
	p     int32
	pend  pendingAppend
	start time.Time // when the append began, for the publish latency
	n     int       // records, for metrics
	bytes int
	seen  bool // Wait counted it (Wait is called by one goroutine)
	// traces are the records' trace contexts (with a Tracer only).
	traces []TraceContext
}

// Wait blocks until the append is durable under the topic's policy and
// returns its first offset.
func (pa *PendingAppend) Wait() (int64, error) {
	res, err := pa.pend.Wait()
	if err != nil {
		pa.t.b.noteWriteError(err)
		err = appendError(pa.t.meta.Name, pa.p, err)
		if !pa.seen {
			pa.seen = true
			pa.t.stats.refused(err, pa.n)
			pa.traced(err)
		}
		return 0, err
	}
	if !pa.seen {
		pa.seen = true
		pa.t.stats.stored(pa.n, pa.bytes)
		pa.t.stats.latency.ObserveDuration(time.Since(pa.start))
		pa.traced(nil)
	}
	return res.BaseOffset, nil
}

func (pa *PendingAppend) traced(err error) {
	if len(pa.traces) > 0 {
		pa.t.b.cfg.Tracer.Published(pa.t.meta.Name, pa.traces, pa.n, pa.start, time.Now(), err)
	}
}

// BaseOffset returns the offset assigned to the append's first record
// (final once the append is durable).
func (pa *PendingAppend) BaseOffset() int64 { return pa.pend.Result().BaseOffset }

// Done returns a channel closed when the append is durable or failed.
func (pa *PendingAppend) Done() <-chan struct{} { return pa.pend.Done() }

// Failed reports, once Done is closed, whether the append failed (it is
// not in the log).
func (pa *PendingAppend) Failed() bool {
	_, err := pa.pend.Wait()
	return err != nil
}

// AppendRaw validates and queues record batches for partition p of a topic
// (offsets are assigned now, in call order). The topic's message size
// limit and discard=new bounds apply. Every successful call must be
// followed by Wait. Each batch's partition leader epoch is set to 0 in
// place (Spool partitions have one leader epoch).
//
// The topic's life lock is held only until the bytes are queued, not until
// Wait: a Kafka Produce queues several partitions of one topic before it
// waits, and a shared lock taken again by the goroutine that still holds it
// deadlocks as soon as a writer (delete, AddPartitions, UpdateTopicConfig)
// waits in between. Queued bytes are safe without it: closing a log waits
// for its queued appends.
func (b *Broker) AppendRaw(topicName string, p int32, batches []byte) (*PendingAppend, error) {
	return b.appendClientBatches(topicName, p, batches, false, func(t *topic) (int, error) {
		n := 0
		for bt, err := range batch.Batches(batches) {
			if err != nil {
				return 0, errs.Wrap(errs.InvalidArgument, err, "record batch")
			}
			h, one := bt.Header, bt.Bytes
			if h.IsControl() {
				return 0, errs.New(errs.InvalidArgument, "clients may not produce control batches")
			}
			// One leader epoch, 0, for the partition's life (as Metadata and
			// OffsetForLeaderEpoch say); the field is outside the CRC.
			batch.SetPartitionLeaderEpoch(one, 0)
			if len(one) > int(t.meta.Config.MaxMessageBytes)+batch.HeaderSize+1024 {
				return 0, errs.New(errs.MessageTooLarge, "record batch of %d bytes exceeds the topic's limit of %d", len(one), t.meta.Config.MaxMessageBytes)
			}
			n += int(h.NumRecords)
		}
		return n, nil
	})
}

// appendClientBatches is what appending batches a client built always
// does, around check (the caller's rules, returning how many records the
// batches hold): the topic and partition looked up under the topic's life
// lock, the free-space gate (disk_full), the topic's capacity bounds, and the queueing in the partition's
// log (written by the caller when flush and no flush is in progress).
func (b *Broker) appendClientBatches(topicName string, p int32, batches []byte, flush bool, check func(t *topic) (int, error)) (_ *PendingAppend, err error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	n := 0 // records, once check counted them
	defer func() { t.stats.refused(err, n) }()
	if subject, mode := t.schemaBinding(); subject != "" && mode == catalog.SchemaDeadLetter {
		// Created before the life lock is taken: on a cluster creating a
		// topic waits for the metadata group, which may be applying a
		// change of this topic that needs the lock.
		if err := b.ensureDeadLetterTopic(catalog.TopicDeadLetterName(topicName)); err != nil {
			return nil, err
		}
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if p < 0 || int(p) >= len(t.logs()) {
		return nil, errs.New(errs.InvalidArgument, "partition %d does not exist (topic %q has %d)", p, topicName, len(t.logs()))
	}
	if n, err = check(t); err != nil {
		return nil, err
	}
	// After check, which counts the records refused; before
	// screenBatches, which may write dead-letter copies.
	if err := b.disk.admit(); err != nil {
		return nil, err
	}
	if batches, n, err = b.screenBatches(t, batches, n); err != nil {
		return nil, err
	}
	if err := t.checkCapacity(n, len(batches)); err != nil {
		return nil, err
	}
	pend, err := t.submit(p, batches, flush, false)
	if err != nil {
		return nil, err
	}
	pa := &PendingAppend{t: t, p: p, pend: pend, start: start, n: n, bytes: len(batches)}
	if b.cfg.Tracer != nil {
		pa.traces = batchTraces(b.cfg.Tracer, batches, b.maxDecompressed())
	}
	return pa, nil
}

// RawRead is what ReadRaw returns.
type RawRead struct {
	Data       []byte // whole record batches as stored; may start before the offset asked for
	Start, End int64  // log start offset and high watermark
	OutOfRange bool   // the offset is outside [Start, End]
}

// ReadRaw reads stored record batches of partition p from offset, up to
// maxBytes (at least one batch if any).
func (b *Broker) ReadRaw(topicName string, p int32, offset int64, maxBytes int) (RawRead, error) {
	r, err := b.ReadRawInto(nil, topicName, p, offset, maxBytes)
	r.Data = r.Data[:len(r.Data):len(r.Data)]
	return r, err
}

// ReadRawInto is ReadRaw reading into buf's memory when it is large enough
// (seglog.Log.ReadInto): Data then aliases buf, with the whole buffer's
// capacity.
func (b *Broker) ReadRawInto(buf []byte, topicName string, p int32, offset int64, maxBytes int) (RawRead, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return RawRead{}, err
	}
	t.life.RLock() // t.logs() grows under life (AddPartitions)
	defer t.life.RUnlock()
	if p < 0 || int(p) >= len(t.logs()) {
		return RawRead{}, errs.New(errs.InvalidArgument, "partition %d of topic %q does not exist", p, topicName)
	}
	l := t.logs()[p]
	r := RawRead{Start: l.StartOffset(), End: l.EndOffset()}
	if offset < r.Start || offset > r.End {
		r.OutOfRange = true
		return r, nil
	}
	data, err := l.ReadInto(buf, offset, maxBytes)
	if errors.Is(err, seglog.ErrOffsetOutOfRange) {
		r.OutOfRange = true
		return r, nil
	}
	if err != nil {
		return r, errs.Wrap(errs.CorruptData, err, "read %s/%d at %d", topicName, p, offset)
	}
	r.Data = data
	return r, nil
}

// Offsets returns a partition's log start offset and high watermark.
func (b *Broker) Offsets(topicName string, p int32) (start, end int64, err error) {
	t, err := b.topic(topicName)
	if err != nil {
		return 0, 0, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if p < 0 || int(p) >= len(t.logs()) {
		return 0, 0, errs.New(errs.InvalidArgument, "partition %d of topic %q does not exist", p, topicName)
	}
	return t.logs()[p].StartOffset(), t.logs()[p].EndOffset(), nil
}

// RecentSegmentsStart returns where the newest n segments of partition p
// begin (never below the log start): how far back a scan of a partition's
// recent history reaches, bounded in bytes by the segment size.
func (b *Broker) RecentSegmentsStart(topicName string, p int32, n int) (int64, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return 0, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if p < 0 || int(p) >= len(t.logs()) {
		return 0, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	l := t.logs()[p]
	segs := l.Segments()
	if len(segs) == 0 {
		return l.StartOffset(), nil
	}
	return max(segs[max(0, len(segs)-n)], l.StartOffset()), nil
}

// OffsetForTime returns the first offset of partition p whose timestamp is
// at or after ts (ms), and false if there is none.
func (b *Broker) OffsetForTime(topicName string, p int32, ts int64) (int64, bool, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return 0, false, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if p < 0 || int(p) >= len(t.logs()) {
		return 0, false, errs.New(errs.InvalidArgument, "partition %d of topic %q does not exist", p, topicName)
	}
	return t.logs()[p].OffsetForTime(ts)
}

// OffsetOfMaxTimestamp returns the largest record timestamp of partition p
// and the offset of the first record carrying it; false if the partition
// holds no record.
func (b *Broker) OffsetOfMaxTimestamp(topicName string, p int32) (offset, ts int64, ok bool, err error) {
	t, err := b.topic(topicName)
	if err != nil {
		return 0, 0, false, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if p < 0 || int(p) >= len(t.logs()) {
		return 0, 0, false, errs.New(errs.InvalidArgument, "partition %d of topic %q does not exist", p, topicName)
	}
	return t.logs()[p].OffsetOfMaxTimestamp()
}

// TopicChanged returns a channel closed at the topic's next publish (for
// long polls), or nil if the topic does not exist.
func (b *Broker) TopicChanged(topicName string) <-chan struct{} {
	t, err := b.topic(topicName)
	if err != nil {
		return nil
	}
	return t.changed()
}

// TopicByID returns the topic with the given id.
func (b *Broker) TopicByID(id string) (catalog.Topic, bool) {
	for _, t := range b.Topics() {
		if t.ID == id {
			return t, true
		}
	}
	return catalog.Topic{}, false
}

// Topic returns a topic's definition.
func (b *Broker) Topic(name string) (catalog.Topic, bool) {
	t, err := b.topic(name)
	if err != nil {
		return catalog.Topic{}, false
	}
	t.life.RLock() // partitions and configs change under life
	meta := t.meta
	t.life.RUnlock()
	meta.Assignment = b.assignment(meta.Name, meta.ID)
	return meta, true
}
