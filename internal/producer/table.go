// Package producer is the idempotent-producer core shared by the front ends
// (Kafka's Produce and InitProducerId, the native API's batch publishing and
// InitProducer): producer ids, and the sequence rules checked before a
// batch is appended, with their state rebuilt from the log and kept in
// snapshots. The server owns one Table and gives it to both front ends, so
// a producer id is never handed out twice whichever front end asks, and
// every batch of a partition is checked against one state. It starts no
// goroutines: its owner calls Sweep every SnapshotInterval and when Kick
// fires, and Prune once at start; time is the injected clock's. Errors are
// Spool's (internal/errs); each front end maps them to its wire's codes.
package producer

// Idempotent producers (KIP-98 without transactions, KIP-360, KAFKA-15591).
//
// Every batch with a producer id >= 0 passes the sequence rules before it
// is appended. Per (producer id, topic, partition) the table keeps the
// producer epoch, the next expected sequence and the last five batches
// (first and last sequence, base offset):
//
//   - an exact repeat of one of the last five batches is answered with the
//     original base offset and not appended again (if the original is still
//     being written, the answer waits for it);
//   - a lower epoch than the partition has seen is producer_fenced (Kafka:
//     INVALID_PRODUCER_EPOCH);
//   - a higher epoch resets the producer; its first sequence must be 0;
//   - otherwise the first sequence must be the next expected one, else
//     out_of_order_sequence (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER);
//   - a producer the partition does not know may start at any sequence
//     (KIP-360: its state may have expired), except on a partition that has
//     never held a record, where it must start at 0 (KAFKA-15591);
//   - sequences wrap from MaxInt32 to 0, as Kafka's clients count.
//
// Idempotent produce requests carry exactly one batch per partition (as
// Kafka requires); transactional batches are refused with ErrTransactional
// (Kafka: INVALID_TXN_STATE; Spool has no transactions).
//
// Atomicity. A partition's check and its append (the front end's append
// function: broker.AppendRaw or broker.AppendBatch, which assign the offset
// and queue the bytes) run under the partition's lock,
// so two producers' batches never interleave between check and append. The
// new state is recorded at once, before the append is durable, so a
// pipelining client's next batch is checked against it; the append is
// remembered as in flight. A failed append fails every later one in its log
// too (seglog's sticky error), so when any in-flight append of the
// partition is found failed the partition's state is thrown away and
// rebuilt from the log, which holds exactly the batches that made it.
//
// Durability: the log is the truth. Each batch stores its producer id,
// epoch and base sequence, so the state is rebuilt from the log on a
// partition's first idempotent produce after a start: from the partition's
// snapshot (kept in the state store, see record.go) on, or,
// without a usable snapshot, from the start of the newest two segments (at
// most 256 MiB with the default segment size). Snapshots are written every
// snapshotInterval (10 s) for partitions that changed, and at shutdown;
// they hold only batches below the log's end (durable) and record that
// end, where the scan resumes. A snapshot is not used if its end is beyond
// the log's end (a lazy durability policy lost the tail) or before the
// newest two segments (too long a scan, or the start moved past it). So
// after a crash the state is the snapshot's plus every batch written since:
// duplicates sent after a restart are still found. Without a usable
// snapshot, producers whose last batch is older than the scanned segments
// are unknown (their next batch is accepted whatever its sequence).
//
// Memory: at most maxProducers producer states over all partitions
// (default 100,000; about 250 bytes each). Producers idle for longer than
// producerExpiry (24 h, Kafka's producer.id.expiration.ms) are forgotten;
// beyond the bound the least recently used are forgotten first. A forgotten
// producer is unknown: its next batch is accepted whatever its sequence, so
// a retry of a batch older than that can be stored twice, as in Kafka after
// expiry.
//
// Producer ids come from NewProducerID (called by Kafka's InitProducerId,
// internal/kafka/22_init_producer_id.go, and the native InitProducer,
// internal/api/producer.go), reserved in durable blocks under "pid/next"
// of the space (record.go) so that no id is handed out twice, across
// restarts and crashes (a crash wastes the rest of a block).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
)

const (
	seqWindow             = 5 // batches remembered per producer and partition
	defaultMaxProducers   = 100_000
	defaultProducerExpiry = 24 * time.Hour
	producerIDBlock       = 1000
	scanReadBytes         = 1 << 20
	scanSegments          = 2 // without a snapshot, how many newest segments are scanned
)

// SnapshotInterval is how often the owner calls Sweep.
const SnapshotInterval = 10 * time.Second

// Table holds idempotent producers' state (producer id, epoch, sequence
// numbers per partition). See the comment at the top of this file.
type Table struct {
	b      *broker.Broker
	sp     *broker.Space
	logger *slog.Logger
	clock  clock.Clock
	max    int
	expiry time.Duration

	mu    sync.Mutex
	parts map[partKey]*producerPart // guarded by mu
	count atomic.Int64              // producer states over all partitions

	idMu            sync.Mutex
	nextID, idLimit int64 // ids [nextID, idLimit) are reserved and unused; guarded by idMu
	idBase          int64 // added to the ids counted here (a cluster node's, SetNode)

	kick chan struct{} // capacity 1: over the bound, sweep now
}

type partKey struct {
	topicID   string
	partition int32
}

// producerPart is one partition's producer states.
type producerPart struct {
	key   partKey
	topic string

	mu        sync.Mutex
	loaded    bool
	producers map[int64]*producerState
	inflight  []*inflight // appends made through the table, oldest first, maybe not durable
	dirty     bool        // changed since the last snapshot
	snapEnd   int64       // log end recorded by the last snapshot; -1: none
	term      uint64      // the leader term the state was loaded in (a cluster; 0 on a single node)
}

// producerState is one producer's state in one partition.
type producerState struct {
	epoch    int16
	nextSeq  int32
	batches  [seqWindow]seqBatch // ring; the oldest at head
	n, head  int
	lastSeen int64 // unix ms of its last batch
}

type seqBatch struct {
	first, last int32
	base        int64
	fl          *inflight // nil if read from the log or a snapshot
}

// inflight is an append made through the table. Its pending append is
// dropped once it is known durable (it pins the log's write buffer).
type inflight struct {
	pa *broker.PendingAppend // nil: durable
}

// busy reports whether the append may still be in flight.
func (fl *inflight) busy() bool {
	if fl == nil || fl.pa == nil {
		return false
	}
	select {
	case <-fl.pa.Done():
		return false
	default:
		return true
	}
}

// New returns a table of the producers appending through b, keeping ids
// and snapshots in the space sp.
func New(b *broker.Broker, sp *broker.Space, logger *slog.Logger, clk clock.Clock) *Table {
	return &Table{
		b: b, sp: sp, logger: logger, clock: clk, max: defaultMaxProducers, expiry: defaultProducerExpiry,
		parts: map[partKey]*producerPart{},
		kick:  make(chan struct{}, 1),
	}
}

// Kick returns a channel that receives when the table is over its bound:
// Sweep should run now.
func (pt *Table) Kick() <-chan struct{} { return pt.kick }

// incSeq adds inc to a sequence number, wrapping from MaxInt32 to 0.
func incSeq(seq, inc int32) int32 {
	if seq > math.MaxInt32-inc {
		return inc - (math.MaxInt32 - seq) - 1
	}
	return seq + inc
}

type seqVerdict int

const (
	seqAccept     seqVerdict = iota
	seqDuplicate             // a repeat of a remembered batch
	seqOutOfOrder            // out_of_order_sequence
	seqFenced                // producer_fenced
)

// checkSeq applies the sequence rules to a batch with epoch and sequences
// first…last from a producer with state st (nil: unknown here) in a
// partition that has never held a record or has. For a duplicate it also
// returns the remembered batch.
func checkSeq(st *producerState, epoch int16, first, last int32, neverWritten bool) (seqVerdict, seqBatch) {
	if st == nil {
		if neverWritten && first != 0 {
			return seqOutOfOrder, seqBatch{}
		}
		return seqAccept, seqBatch{}
	}
	switch {
	case epoch < st.epoch:
		return seqFenced, seqBatch{}
	case epoch > st.epoch:
		if first != 0 {
			return seqOutOfOrder, seqBatch{}
		}
		return seqAccept, seqBatch{}
	}
	for i := range st.n {
		if b := st.batches[(st.head+i)%seqWindow]; b.first == first && b.last == last {
			return seqDuplicate, b
		}
	}
	if first != st.nextSeq {
		return seqOutOfOrder, seqBatch{}
	}
	return seqAccept, seqBatch{}
}

// push records an accepted batch; a new epoch starts a new window.
func (st *producerState) push(epoch int16, b seqBatch) {
	if epoch != st.epoch || st.n == 0 {
		st.epoch, st.n, st.head = epoch, 0, 0
	}
	if st.n == seqWindow {
		st.batches[st.head] = b
		st.head = (st.head + 1) % seqWindow
	} else {
		st.batches[(st.head+st.n)%seqWindow] = b
		st.n++
	}
	st.nextSeq = incSeq(b.last, 1)
}

// has reports whether the window holds the batch first…last.
func (st *producerState) has(first, last int32) bool {
	for i := range st.n {
		if b := st.batches[(st.head+i)%seqWindow]; b.first == first && b.last == last {
			return true
		}
	}
	return false
}

// Appended is the outcome of queueing one partition's batch.
type Appended struct {
	PA   *broker.PendingAppend // to wait for; nil for a duplicate
	Dup  bool                  // a duplicate of an earlier batch: answer with Base
	Base int64                 // for Dup
}

// ErrTransactional refuses a transactional batch (errs.UnsupportedFeature):
// Spool has no transactions. Kafka answers it with INVALID_TXN_STATE.
var ErrTransactional = errs.New(errs.UnsupportedFeature, "transactional batches are not supported")

// AppendFunc queues a partition's validated-by-the-callee batch: the
// front end's append (broker.AppendRaw for Kafka, broker.AppendBatch for
// the native API).
type AppendFunc func(topic string, p int32, records []byte) (*broker.PendingAppend, error)

// Append checks an idempotent producer's batch for partition p of a topic
// (records holds exactly one batch, whose header is h) and queues it with
// appendFn. A refused batch returns an error with Spool's code:
// invalid_argument wrapping the batch's *batch.ValidationError or
// batch.ErrInvalidBatch (malformed), invalid_argument (more than one
// batch), ErrTransactional, producer_fenced, out_of_order_sequence,
// topic_not_found, or appendFn's error. A duplicate of a batch still being
// written waits for it (its failure is storage_failed), or for ctx
// (deadline_exceeded or canceled).
func (pt *Table) Append(ctx context.Context, topic string, p int32, h batch.Header, records []byte, appendFn AppendFunc) (Appended, error) {
	if _, rest, err := batch.Next(records); err != nil {
		return Appended{}, errs.Wrap(errs.InvalidArgument, err, "record batch")
	} else if len(rest) > 0 {
		return Appended{}, errs.New(errs.InvalidArgument, "an idempotent producer sends one batch per partition")
	}
	switch {
	case h.IsTransactional():
		return Appended{}, ErrTransactional
	case h.ProducerEpoch < 0:
		return Appended{}, errs.New(errs.ProducerFenced, "producer epoch %d", h.ProducerEpoch)
	case h.BaseSequence < 0:
		return Appended{}, errs.New(errs.OutOfOrderSequence, "base sequence %d of an idempotent producer's batch", h.BaseSequence)
	case h.LastOffsetDelta < 0:
		return Appended{}, errs.Wrap(errs.InvalidArgument, batch.ErrInvalidBatch, "lastOffsetDelta %d", h.LastOffsetDelta)
	}
	meta, ok := pt.b.Topic(topic)
	if !ok || p < 0 || p >= meta.Config.Partitions {
		return Appended{}, errs.New(errs.TopicNotFound, "topic %q has no partition %d", topic, p)
	}
	first, last := h.BaseSequence, incSeq(h.BaseSequence, h.LastOffsetDelta)
	pp := pt.part(partKey{meta.ID, p}, topic)
	pp.mu.Lock()
	if err := pt.settle(pp); err != nil {
		pp.mu.Unlock()
		return Appended{}, err
	}
	_, end, err := pt.b.Offsets(topic, p)
	if err != nil {
		pp.mu.Unlock()
		return Appended{}, err
	}
	now := pt.clock.Now().UnixMilli()
	st := pp.producers[h.ProducerID]
	verdict, dup := checkSeq(st, h.ProducerEpoch, first, last, end == 0 && len(pp.inflight) == 0)
	switch verdict {
	case seqFenced:
		pp.mu.Unlock()
		return Appended{}, errs.New(errs.ProducerFenced, "producer %d epoch %d is older than epoch %d on %s/%d", h.ProducerID, h.ProducerEpoch, st.epoch, topic, p)
	case seqOutOfOrder:
		next := int32(0)
		if st != nil && st.epoch == h.ProducerEpoch {
			next = st.nextSeq
		}
		pp.mu.Unlock()
		return Appended{}, errs.New(errs.OutOfOrderSequence, "producer %d epoch %d: batch at sequence %d on %s/%d, expected %d", h.ProducerID, h.ProducerEpoch, first, topic, p, next)
	case seqDuplicate:
		st.lastSeen = now
		var pa *broker.PendingAppend
		if dup.fl != nil {
			pa = dup.fl.pa
		}
		pp.mu.Unlock()
		if pa != nil {
			// The original may still be being written: answer once it is
			// durable, with its outcome.
			select {
			case <-pa.Done():
			case <-ctx.Done():
				code := errs.DeadlineExceeded
				if errors.Is(ctx.Err(), context.Canceled) {
					code = errs.Canceled
				}
				return Appended{}, errs.Wrap(code, ctx.Err(), "waiting for the original of a repeated batch")
			}
			if pa.Failed() {
				return Appended{}, errs.New(errs.StorageFailed, "the original of a repeated batch on %s/%d failed", topic, p)
			}
		}
		return Appended{Dup: true, Base: dup.base}, nil
	}
	pa, err := appendFn(topic, p, records)
	if err != nil {
		pp.mu.Unlock()
		return Appended{}, err
	}
	if st == nil {
		st = &producerState{}
		pp.producers[h.ProducerID] = st
		pt.count.Add(1)
	}
	fl := &inflight{pa: pa}
	st.push(h.ProducerEpoch, seqBatch{first: first, last: last, base: pa.BaseOffset(), fl: fl})
	st.lastSeen = now
	pp.inflight = append(pp.inflight, fl)
	pp.dirty = true
	pp.mu.Unlock()
	if pt.count.Load() > int64(pt.max) {
		select {
		case pt.kick <- struct{}{}:
		default:
		}
	}
	return Appended{PA: pa}, nil
}

// part returns a partition's entry, creating it (unloaded).
func (pt *Table) part(k partKey, topic string) *producerPart {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pp := pt.parts[k]
	if pp == nil {
		pp = &producerPart{key: k, topic: topic, snapEnd: -1}
		pt.parts[k] = pp
	}
	return pp
}

// settle loads the partition's state if needed and retires finished
// in-flight appends; if one failed, the state is rebuilt from the log.
// Called with pp.mu held.
func (pt *Table) settle(pp *producerPart) error {
	if pt.retire(pp) {
		pt.unload(pp)
	}
	if pp.loaded && pt.b.PartitionTerm(pp.topic, pp.key.partition) != pp.term {
		// This node leads the partition in another term: what other
		// leaders appended meanwhile is in the log, not in this state.
		pt.unload(pp)
	}
	if !pp.loaded {
		return pt.load(pp)
	}
	return nil
}

// retire drops finished appends from the in-flight list and reports
// whether one of them failed. Called with pp.mu held.
func (pt *Table) retire(pp *producerPart) (failed bool) {
	for len(pp.inflight) > 0 {
		fl := pp.inflight[0]
		if fl.busy() {
			if !failed {
				return false
			}
			<-fl.pa.Done() // after a failure every later append fails too, soon
		}
		if fl.pa.Failed() {
			failed = true
		}
		fl.pa = nil
		pp.inflight[0] = nil
		pp.inflight = pp.inflight[1:]
	}
	return failed
}

// unload forgets the partition's state. Called with pp.mu held.
func (pt *Table) unload(pp *producerPart) {
	pt.count.Add(-int64(len(pp.producers)))
	pp.producers, pp.loaded, pp.inflight = nil, false, nil
}

// load rebuilds the partition's state from its snapshot and the log after
// it. Called with pp.mu held.
func (pt *Table) load(pp *producerPart) error {
	pp.term = pt.b.PartitionTerm(pp.topic, pp.key.partition)
	start, end, err := pt.b.Offsets(pp.topic, pp.key.partition)
	if err != nil {
		return err
	}
	// How far back a scan may reach: the newest segments (a bound in
	// bytes). Record timestamps are the clients' and cannot bound it.
	window, err := pt.b.RecentSegmentsStart(pp.topic, pp.key.partition, scanSegments)
	if err != nil {
		return err
	}
	producers := map[int64]*producerState{}
	from := window
	snap, ok, err := pt.loadSnapshot(pp.key)
	if err != nil {
		return err
	}
	if ok && snap.end <= end && snap.end >= start && snap.end >= window {
		producers = snap.states()
		from = snap.end
		pp.snapEnd = snap.end
	}
	now := pt.clock.Now().UnixMilli()
	for off := from; off < end; {
		raw, err := pt.b.ReadRaw(pp.topic, pp.key.partition, off, scanReadBytes)
		if err != nil {
			return err
		}
		if raw.OutOfRange {
			if off < raw.Start {
				off = raw.Start // retention moved the start meanwhile
				continue
			}
			break
		}
		if len(raw.Data) == 0 {
			break
		}
		before := off
		for bt, err := range batch.Batches(raw.Data) {
			if err != nil {
				break
			}
			h := bt.Header
			off = h.LastOffset() + 1
			if h.BaseOffset < from || h.ProducerID < 0 || h.IsControl() || h.BaseSequence < 0 {
				continue
			}
			st := producers[h.ProducerID]
			if st == nil {
				st = &producerState{}
				producers[h.ProducerID] = st
			}
			first, last := h.BaseSequence, incSeq(h.BaseSequence, h.LastOffsetDelta)
			if h.ProducerEpoch == st.epoch && st.has(first, last) {
				continue
			}
			st.push(h.ProducerEpoch, seqBatch{first: first, last: last, base: h.BaseOffset})
			st.lastSeen = now
		}
		if off <= before {
			break // nothing readable: stop rather than spin
		}
	}
	pp.producers, pp.loaded = producers, true
	pt.count.Add(int64(len(producers)))
	return nil
}

// snapshot encodes the partition's durable state: batches below the log's
// end. Called with pp.mu held.
func (pt *Table) snapshot(pp *producerPart) ([]byte, int64, error) {
	_, end, err := pt.b.Offsets(pp.topic, pp.key.partition)
	if err != nil {
		return nil, 0, err
	}
	snap := producerSnapshot{end: end}
	for id, st := range pp.producers {
		sp := snapshotProducer{id: id, epoch: st.epoch, lastSeen: st.lastSeen}
		for i := range st.n {
			b := st.batches[(st.head+i)%seqWindow]
			if b.base >= end {
				break // not durable yet; the next scan finds it if it becomes so
			}
			sp.batches = append(sp.batches, snapshotBatch{first: b.first, last: b.last, base: b.base})
		}
		if len(sp.batches) > 0 {
			snap.producers = append(snap.producers, sp)
		}
	}
	return snap.encode(), end, nil
}

// Prune deletes the snapshots of topics that no longer exist; the front
// end calls it once at start (snapshots are keyed by topic id, so a topic
// deleted and created again never meets its predecessor's).
func (pt *Table) Prune() error {
	live := map[string]bool{}
	for _, t := range pt.b.Topics() {
		live[t.ID] = true
	}
	var stale []broker.Record
	err := pt.sp.Scan(snapshotPrefix, func(k, _ []byte) error {
		if id, _, ok := snapshotKeyParts(k); !ok || !live[id] {
			stale = append(stale, broker.Record{Key: bytes.Clone(k)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return pt.sp.Write(stale, false)
}

// Sweep forgets partitions of deleted topics and expired producers, evicts
// the least recently used producers beyond the bound, and snapshots what
// changed (unsynced: a lost snapshot costs a longer scan of the log).
func (pt *Table) Sweep() {
	now := pt.clock.Now()
	expireBefore := now.Add(-pt.expiry).UnixMilli()
	pt.mu.Lock()
	parts := make([]*producerPart, 0, len(pt.parts))
	for k, pp := range pt.parts {
		if meta, ok := pt.b.Topic(pp.topic); !ok || meta.ID != k.topicID {
			delete(pt.parts, k)
			pp.mu.Lock()
			pt.unload(pp)
			pp.mu.Unlock()
			continue
		}
		parts = append(parts, pp)
	}
	pt.mu.Unlock()

	type victim struct {
		pp       *producerPart
		id       int64
		lastSeen int64
	}
	var lru []victim
	over := pt.count.Load() > int64(pt.max)
	var snaps []broker.Record
	for _, pp := range parts {
		pp.mu.Lock()
		if pt.retire(pp) {
			pt.unload(pp) // rebuilt from the log at its next use
		}
		if !pp.loaded {
			pp.mu.Unlock()
			continue
		}
		for id, st := range pp.producers {
			if st.lastSeen < expireBefore && !st.pending() {
				delete(pp.producers, id)
				pt.count.Add(-1)
				pp.dirty = true
			} else if over && !st.pending() {
				lru = append(lru, victim{pp, id, st.lastSeen})
			}
		}
		pp.mu.Unlock()
	}
	if excess := int(pt.count.Load()) - pt.max*9/10; over && excess > 0 {
		sort.Slice(lru, func(i, j int) bool { return lru[i].lastSeen < lru[j].lastSeen })
		for _, v := range lru[:min(excess, len(lru))] {
			v.pp.mu.Lock()
			if st := v.pp.producers[v.id]; st != nil && st.lastSeen == v.lastSeen && !st.pending() {
				delete(v.pp.producers, v.id)
				pt.count.Add(-1)
				v.pp.dirty = true
			}
			v.pp.mu.Unlock()
		}
	}
	for _, pp := range parts {
		pp.mu.Lock()
		if pp.loaded {
			_, end, err := pt.b.Offsets(pp.topic, pp.key.partition)
			if err == nil && (pp.dirty || end != pp.snapEnd) {
				data, end, err := pt.snapshot(pp)
				if err == nil {
					snaps = append(snaps, broker.Record{Key: snapshotKey(pp.key), Value: data})
					pp.snapEnd, pp.dirty = end, false
				}
			}
		}
		pp.mu.Unlock()
	}
	if err := pt.sp.Write(snaps, false); err != nil {
		pt.logger.Warn("saving producer snapshots", "err", err)
		for _, pp := range parts {
			pp.mu.Lock()
			pp.dirty = true
			pp.mu.Unlock()
		}
	}
}

// pending reports whether any remembered batch may still be in flight.
// Called with the partition's lock held.
func (st *producerState) pending() bool {
	for i := range st.n {
		if st.batches[(st.head+i)%seqWindow].fl.busy() {
			return true
		}
	}
	return false
}

// nodeIDBits is how many low bits of a cluster node's producer ids it
// counts itself; the node id is above them.
const nodeIDBits = 40

// SetNode makes the table hand out cluster node n's ids: n·2⁴⁰ plus the
// count kept in this node's state store, so that the nodes of a cluster,
// each counting on its own, never hand out the same id (a producer's
// batches reach whichever node leads a partition, which must not take
// another producer's batches for its). Call it before the first id.
func (pt *Table) SetNode(n uint64) error {
	if n >= 1<<(62-nodeIDBits) {
		return fmt.Errorf("producer: node id %d is too large for producer ids", n)
	}
	pt.idMu.Lock()
	defer pt.idMu.Unlock()
	pt.idBase = int64(n) << nodeIDBits
	return nil
}

// NewProducerID hands out a producer id never handed out before.
func (pt *Table) NewProducerID() (int64, error) {
	pt.idMu.Lock()
	defer pt.idMu.Unlock()
	if pt.nextID >= pt.idLimit {
		first, err := pt.reserveIDs(producerIDBlock)
		if err != nil {
			return -1, err
		}
		pt.nextID, pt.idLimit = first, first+producerIDBlock
	}
	id := pt.nextID
	if pt.idBase != 0 && id >= 1<<nodeIDBits {
		return -1, errs.New(errs.ResourceExhausted, "this node has handed out every producer id it may")
	}
	pt.nextID++
	return pt.idBase + id, nil
}

// Issued reports whether id was handed out by this broker (in this or an
// earlier run).
func (pt *Table) Issued(id int64) (bool, error) {
	pt.idMu.Lock()
	defer pt.idMu.Unlock()
	if pt.idLimit == 0 {
		first, err := pt.reserveIDs(producerIDBlock)
		if err != nil {
			return false, err
		}
		pt.nextID, pt.idLimit = first, first+producerIDBlock
	}
	local := id - pt.idBase
	return id >= pt.idBase && local < pt.nextID && (pt.idBase == 0 || local < 1<<nodeIDBits), nil
}
