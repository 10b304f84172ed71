package broker

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Idempotent-producer support for the Kafka front end, which owns the
// sequence rules (internal/kafka/producers.go); the broker stores what must
// outlive the process:
//
//   - the producer id high-water mark, under "kafka-pid/next": 8 bytes,
//     big-endian, the first id not yet handed out. Ids are reserved in
//     blocks, each reservation a synced write, so no id is ever handed out
//     twice, across restarts and crashes (a crash wastes the rest of a
//     block);
//   - producer-state snapshots, one per partition, under
//     "kafka-ps/<topic id>\x00<partition:4 BE>", opaque to the broker.
//     A snapshot only saves re-reading the log: the log, which carries every
//     batch's producer id, epoch and sequence, is the truth, so snapshots
//     are written without sync and a lost one costs a longer scan.
//
// Snapshots are keyed by topic id, so a topic deleted and created again
// never meets its predecessor's; PruneProducerSnapshots removes those of
// topics that no longer exist.

var (
	producerIDKey          = []byte("kafka-pid/next")
	producerSnapshotPrefix = []byte("kafka-ps/")
)

func producerSnapshotKey(topicID string, p int32) []byte {
	k := append([]byte(nil), producerSnapshotPrefix...)
	k = append(k, topicID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(p))
}

// producerIDMu serializes reservations (read, add, write).
var producerIDMu sync.Mutex

// ReserveProducerIDs reserves n producer ids and returns the first: ids
// first … first+n−1 are the caller's and are never returned again, even
// after a crash. The reservation is durable when it returns.
func (b *Broker) ReserveProducerIDs(n int64) (int64, error) {
	if n <= 0 {
		return 0, errs.New(errs.InvalidArgument, "reserve %d producer ids", n)
	}
	producerIDMu.Lock()
	defer producerIDMu.Unlock()
	var next int64
	v, err := b.cfg.State.Get(producerIDKey)
	switch {
	case errors.Is(err, state.ErrNotFound):
	case err != nil:
		return 0, errs.Wrap(errs.StorageFailed, err, "read producer id high-water mark")
	case len(v) != 8:
		return 0, errs.New(errs.CorruptData, "producer id high-water mark has %d bytes", len(v))
	default:
		next = int64(binary.BigEndian.Uint64(v))
	}
	if next < 0 || next > 1<<62 {
		return 0, errs.New(errs.CorruptData, "producer id high-water mark %d is out of range", next)
	}
	batch := b.cfg.State.NewBatch()
	batch.Set(producerIDKey, binary.BigEndian.AppendUint64(nil, uint64(next+n)))
	if err := batch.Commit(true); err != nil {
		return 0, errs.Wrap(errs.StorageFailed, err, "store producer id high-water mark")
	}
	return next, nil
}

// ProducerSnapshot is one partition's producer-state snapshot; nil Data
// deletes it.
type ProducerSnapshot struct {
	TopicID   string
	Partition int32
	Data      []byte
}

// SaveProducerSnapshots stores snapshots in one batch, not synced.
func (b *Broker) SaveProducerSnapshots(snaps []ProducerSnapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	batch := b.cfg.State.NewBatch()
	for _, s := range snaps {
		if s.Data == nil {
			batch.Delete(producerSnapshotKey(s.TopicID, s.Partition))
		} else {
			batch.Set(producerSnapshotKey(s.TopicID, s.Partition), s.Data)
		}
	}
	if err := batch.Commit(false); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store producer snapshots")
	}
	return nil
}

// ProducerSnapshotData returns a partition's producer-state snapshot, or
// nil if there is none.
func (b *Broker) ProducerSnapshotData(topicID string, p int32) ([]byte, error) {
	v, err := b.cfg.State.Get(producerSnapshotKey(topicID, p))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(errs.StorageFailed, err, "read producer snapshot")
	}
	return v, nil
}

// PruneProducerSnapshots deletes the snapshots of topics that no longer
// exist.
func (b *Broker) PruneProducerSnapshots() error {
	live := map[string]bool{}
	for _, t := range b.catalog.Topics() {
		live[t.ID] = true
	}
	var stale [][]byte
	err := b.cfg.State.Scan(producerSnapshotPrefix, func(k, _ []byte) error {
		rest := k[len(producerSnapshotPrefix):]
		if len(rest) < 5 || !live[string(rest[:len(rest)-5])] {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil || len(stale) == 0 {
		return err
	}
	batch := b.cfg.State.NewBatch()
	for _, k := range stale {
		batch.Delete(k)
	}
	return batch.Commit(false)
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

// RecentSegmentsStart returns where the newest n segments of partition p
// begin (never below the log start): how far back a scan of a partition's
// recent history reaches.
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
