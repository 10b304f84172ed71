package broker

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// AllPartitions selects every partition in ResetSubscription and
// PurgeSubscription.
const AllPartitions int32 = -1

// ResetResult is what a reset or purge did.
type ResetResult struct {
	// Partitions are the reset partitions with their new position
	// (Committed) and end.
	Partitions []SubPartition
	// Skipped is the sum over the reset partitions of new − old position
	// where the position moved forward.
	Skipped int64
}

// ResetSubscription moves a subscription's position in every partition
// (partition AllPartitions) or one (replay or skip) and clears halts of the
// partitions it moves.
//
// Stream mode: the committed offsets move; members keep consuming from the
// new position (each gets an assignment marked as a reset).
//
// Queue mode: each partition's queue state starts over at the new position:
// leases in flight are dropped (late acks are stale), waiting, blocked and
// parked messages are forgotten (those at or above the new position are
// read again from the log, with fresh delivery counts), dead letters stay.
// The new state is durable when this returns.
//
// An explicit offset is clamped to what each partition retains when every
// partition is reset; for one partition it must lie within [start, end].
func (b *Broker) ResetSubscription(topicName, name string, to catalog.Position, partition int32) (ResetResult, error) {
	return b.reset(topicName, name, to, partition)
}

// PurgeSubscription acknowledges everything up to the current end of every
// partition (partition AllPartitions) or one: a reset to latest.
func (b *Broker) PurgeSubscription(topicName, name string, partition int32) (ResetResult, error) {
	return b.reset(topicName, name, catalog.Position{Kind: catalog.Latest}, partition)
}

func (b *Broker) reset(topicName, name string, to catalog.Position, partition int32) (ResetResult, error) {
	if err := b.checkCoordinator(); err != nil {
		return ResetResult{}, err
	}
	t, s, err := b.sub(topicName, name)
	if err != nil {
		return ResetResult{}, err
	}
	t.life.RLock()
	unlock := sync.OnceFunc(t.life.RUnlock) // not held while the write waits (sub_state.go)
	defer unlock()
	if t.deleted {
		return ResetResult{}, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	n := int32(len(t.logs()))
	parts := make([]int32, 0, n)
	if partition == AllPartitions {
		for p := range n {
			parts = append(parts, p)
		}
	} else if partition < 0 || partition >= n {
		return ResetResult{}, errs.New(errs.InvalidArgument, "partition %d does not exist: topic %q has partitions 0 to %d", partition, topicName, n-1)
	} else {
		parts = append(parts, partition)
		if to.Kind == catalog.AtOffset {
			l := t.logs()[partition]
			if start, end := l.StartOffset(), l.EndOffset(); to.Offset < start || to.Offset > end {
				return ResetResult{}, errs.New(errs.OffsetOutOfRange, "offset %d is outside partition %d's range [%d, %d]", to.Offset, partition, start, end)
			}
		}
	}
	all, err := t.resolve(to)
	if err != nil {
		return ResetResult{}, err
	}
	offsets := make([]int64, len(parts))
	for i, p := range parts {
		offsets[i] = all[p]
	}
	unlock()
	var old []int64
	if s.q != nil {
		old, err = s.resetQueue(parts, offsets)
	} else {
		old, err = s.resetStream(parts, offsets)
	}
	if err != nil {
		return ResetResult{}, err
	}
	var res ResetResult
	for i, p := range parts {
		res.Partitions = append(res.Partitions, SubPartition{Partition: p, Committed: offsets[i], End: t.logs()[p].EndOffset()})
		res.Skipped += max(0, offsets[i]-old[i])
	}
	b.logger.Info("subscription reset", "topic", topicName, "subscription", name, "to", to, "partitions", parts, "skipped", res.Skipped)
	return res, nil
}

// resetStream moves committed offsets and members' cursors, and clears the
// partitions' halts; it returns the previous committed offsets. Called
// with the topic's life held shared.
func (s *subscription) resetStream(parts []int32, offsets []int64) ([]int64, error) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	old := make([]int64, len(parts))
	s.mu.Lock()
	for i, p := range parts {
		old[i] = s.committed[p]
	}
	s.mu.Unlock()
	w := s.newWrite()
	for i, p := range parts {
		w.set(state.OffsetKey(s.meta.Topic, s.meta.Name, p), catalog.EncodeOffset(offsets[i]))
		w.del(state.HaltKey(s.meta.Topic, s.meta.Name, p))
	}
	if err := s.t.b.writeSub(w); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	moved := map[int32]int64{}
	for i, p := range parts {
		moved[p] = offsets[i]
	}
	s.resetEpoch++
	for _, sess := range s.sessions {
		sess.gen++
		sess.resetCursorsLocked(moved)
	}
	return old, nil
}

// resetQueue starts the queue state of partitions over at offsets, durably,
// and returns the previous floors. The outbox is written first (dead letters
// stay); the new snapshots, the committed offsets and the removal of the
// partitions' schedule entries are one synced batch, and memory changes only
// once it is durable. Called with the topic's life held shared.
func (s *subscription) resetQueue(parts []int32, offsets []int64) ([]int64, error) {
	q := s.q
	topic, sub := s.meta.Topic, s.meta.Name
	q.ioMu.Lock()
	defer q.ioMu.Unlock()
	s.processOutbox()

	selected := make(map[int32]bool, len(parts))
	for _, p := range parts {
		selected[p] = true
	}
	w := s.newWrite()
	// Schedule entries of the partitions. Only the queue loop and this
	// function (both under ioMu) write them, so the scan stays true.
	plen := len(state.ParkIndexPrefix(topic, sub))
	err := s.t.b.cfg.State.Scan(state.ParkIndexPrefix(topic, sub), func(k, v []byte) error {
		if len(k) != plen+12 {
			return nil
		}
		p := int32(binary.BigEndian.Uint32(k[plen:]))
		if !selected[p] {
			return nil
		}
		due, err := decodeParkIndex(k, v)
		if err != nil {
			return err
		}
		off := int64(binary.BigEndian.Uint64(k[plen+4:]))
		w.del(bytes.Clone(k))
		w.del(state.ParkKey(topic, sub, due, p, off))
		return nil
	})
	if err != nil {
		return nil, errs.Wrap(errs.StorageFailed, err, "read schedule entries")
	}
	cores := make([]queue.Partition, len(parts))
	for i, p := range parts {
		snap := queue.Snapshot{Floor: offsets[i]}
		if cores[i], err = queue.New(q.cfg, snap, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(p)))); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "queue state")
		}
		cores[i].Observe(s.stats)
		v, err := appendSnapshot(nil, snap)
		if err != nil {
			return nil, errs.Wrap(errs.Internal, err, "encode queue state")
		}
		w.set(state.QueueKey(topic, sub, p), v)
		w.set(state.OffsetKey(topic, sub, p), catalog.EncodeOffset(offsets[i]))
	}

	s.mu.Lock()
	deleted, blocked := s.deleted, q.blocked
	s.mu.Unlock()
	if deleted {
		return nil, errs.New(errs.SubNotFound, "subscription %q was deleted", sub)
	}
	if blocked != nil {
		return nil, errs.Wrap(errs.StorageFailed, blocked, "the subscription cannot save its state until the server restarts")
	}
	// The queue loop writes only under ioMu, held here: nothing of this
	// subscription's queue state is written between this and the swap.
	if err := s.t.b.writeSub(w); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := make([]int64, len(parts))
	for i, p := range parts {
		qp := q.parts[p]
		old[i] = qp.core.Stats(s.t.b.clock.Now()).Floor
		for member, n := range qp.core.LeaseCounts() {
			s.releaseSlotLocked(member, n)
		}
		qp.core = cores[i]
		qp.dirty = false
		qp.unparked = map[int64]int64{}
		qp.parked = 0
		qp.skipTo = 0
		s.committed[p] = offsets[i]
	}
	// Effects of the old state not yet written: dead letters stay; parking
	// and schedule deletions of reset partitions are moot (the entries are
	// gone, the messages are read again or skipped).
	kept := q.outbox[:0]
	for _, op := range q.outbox {
		if op.kind == opDeadLetter || !selected[op.part] {
			kept = append(kept, op)
		}
	}
	clear(q.outbox[len(kept):])
	q.outbox = kept
	for _, sess := range s.sessions {
		sess.signal()
	}
	q.pulls.notify()
	return old, nil
}
