package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// Partition-level administration: adding partitions (Kafka
// CreatePartitions) and moving a partition's log start (Kafka
// DeleteRecords).
//
// A topic's partition slice (topic.parts) and its config are changed only
// while the topic's life lock is held exclusively, and the slice is always
// replaced, never grown in place. Code that reads t.logs() holds life shared
// (publishing, retention, the queue loop, the raw reads of the Kafka front
// end, native sessions' reads).

// topicAdminMu serializes changes of topic definitions made after creation
// (AddPartitions, UpdateTopicConfig), so that two of them never race on
// the catalog record.
var topicAdminMu sync.Mutex

// AddPartitions grows a topic to n partitions; partitions only grow. The
// new partition logs are created first, then the new count is stored in the
// catalog (a crash in between leaves empty partition directories that a
// later AddPartitions reuses), then the logs join the topic and every
// subscription learns of them: stream subscriptions' groups distribute the
// new partitions (a rebalance when there are members), queue subscriptions
// start delivering them. New partitions start empty at offset 0, and every
// subscription starts them at 0: all they will ever hold is published after
// the subscription was created.
func (b *Broker) AddPartitions(topicName string, n int32) (catalog.Topic, error) {
	topicAdminMu.Lock()
	defer topicAdminMu.Unlock()
	t, err := b.topic(topicName)
	if err != nil {
		return catalog.Topic{}, err
	}
	t.life.RLock()
	meta, cur := t.meta, int32(len(t.logs()))
	t.life.RUnlock()
	meta.Assignment = b.assignment(meta.Name, meta.ID)
	switch {
	case n > catalog.MaxPartitions:
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q: %d partitions is more than the limit of %d", topicName, n, catalog.MaxPartitions)
	case n < cur:
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q has %d partitions; %d would remove some, but partitions can only be added", topicName, cur, n)
	case n == cur:
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q already has %d partitions", topicName, cur)
	}
	meta.Config.Partitions = n
	if b.cfg.Replicator != nil {
		// The new partitions' replicas; a topic created before replication
		// factors gets the cluster's default for them.
		_, asg, err := b.cfg.Replicator.Place(meta.ID, meta.Config.Replicas, cur, n)
		if err != nil {
			return catalog.Topic{}, err
		}
		meta.Assignment = append(padAssignment(meta.Assignment, cur), asg...)
	}
	if err := b.decide(change{kind: changeAddPartitions, topic: meta}); err != nil {
		return catalog.Topic{}, err
	}
	return meta, nil
}

// padAssignment returns a copy of asg with n entries (those missing
// empty).
func padAssignment(asg []catalog.PartitionAssignment, n int32) []catalog.PartitionAssignment {
	out := make([]catalog.PartitionAssignment, n)
	copy(out, asg)
	return out
}

// applyAddPartitions gives the topic of meta's id meta's partition count,
// if it has fewer.
func (b *Broker) applyAddPartitions(meta catalog.Topic, stamps []catalog.Stamp) error {
	topicName, n := meta.Name, meta.Config.Partitions
	t, err := b.topic(topicName)
	if err != nil || t.meta.ID != meta.ID {
		return errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	added := meta.Assignment
	t.life.RLock()
	cur := int32(len(t.logs()))
	meta = t.meta
	t.life.RUnlock()
	if n <= cur {
		return nil // applied before, or a later change has more
	}
	meta.Config.Partitions = n
	meta.Assignment = b.assignment(meta.Name, meta.ID)
	if len(added) == int(n) {
		// The partitions this node has keep the replicas it recorded.
		meta.Assignment = append(padAssignment(meta.Assignment, cur), added[cur:]...)
	}
	opts := b.logOptions(meta)
	opts.OnAdvance = t.notify
	var logs []*seglog.Log
	cleanup := func() {
		for _, l := range logs {
			l.Close()
		}
		for p := cur; p < cur+int32(len(logs)); p++ {
			b.fs.RemoveAll(filepath.Join(t.dir, strconv.Itoa(int(p))))
		}
		vfs.SyncDir(b.fs, t.dir)
	}
	for p := cur; p < n; p++ {
		l, _, err := seglog.Open(b.fs, filepath.Join(t.dir, strconv.Itoa(int(p))), opts)
		if err != nil {
			cleanup()
			return errs.Wrap(errs.StorageFailed, err, "create partition %d of topic %q", p, topicName)
		}
		logs = append(logs, l)
	}

	t.life.Lock()
	if t.deleted {
		t.life.Unlock()
		cleanup()
		return errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if err := b.catalog.PutTopic(meta, false, stamps...); err != nil {
		t.life.Unlock()
		cleanup()
		return err
	}
	if b.cfg.Replicator != nil {
		rs := append([]*replica(nil), t.replicas()...)
		for k, l := range logs {
			r, err := t.startReplica(cur+int32(k), l, meta.AssignmentOf(cur+int32(k)))
			if err != nil {
				for _, r := range rs[len(t.replicas()):] {
					r.stop()
				}
				t.life.Unlock()
				cleanup()
				return errs.Wrap(errs.StorageFailed, err, "start the group of %s/%d", topicName, cur+int32(k))
			}
			rs = append(rs, r)
		}
		t.repl.Store(&rs)
	}
	parts := make([]*seglog.Log, 0, n)
	parts = append(parts, t.logs()...)
	parts = append(parts, logs...)
	t.parts.Store(&parts)
	t.meta.Config.Partitions = n
	now := b.clock.Now()
	t.subsMu.Lock()
	for _, s := range t.subs {
		if err := s.addPartitions(int(n), now); err != nil {
			// The topic has the partitions; a subscription that could not
			// take them (only an invalid queue config can fail) serves the
			// old ones until the next restart rebuilds it.
			b.logger.Error("subscription could not take new partitions", "topic", topicName, "subscription", s.meta.Name, "err", err)
		}
	}
	t.subsMu.Unlock()
	t.life.Unlock()
	t.notify()
	b.queueWake()
	b.logger.Info("partitions added", "topic", topicName, "from", cur, "to", n)
	return nil
}

// addPartitions extends a subscription to n partitions. Called with the
// topic's life lock held exclusively and subsMu held.
func (s *subscription) addPartitions(n int, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || len(s.committed) >= n {
		return nil
	}
	old := len(s.committed)
	committed := make([]int64, n) // new partitions start at 0
	copy(committed, s.committed)
	s.committed = committed
	if s.q == nil {
		eff, err := s.coord.SetPartitions(now, n)
		s.applyLocked(eff)
		return err
	}
	q := s.q
	for p := old; p < n; p++ {
		core, err := queue.New(q.cfg, queue.Snapshot{Floor: 0}, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(p))))
		if err != nil {
			return fmt.Errorf("queue partition %d: %w", p, err)
		}
		core.Observe(s.stats)
		q.parts = append(q.parts, &queuePart{id: int32(p), core: core, unparked: map[int64]int64{}, dirty: true})
	}
	if s.meta.Config.Queue.MaxInFlight == 0 {
		q.maxInFlight = q.cfg.MaxInFlight * n
	}
	return nil
}

// DeleteRecords makes the records of partition p below offset unreadable
// at once and deletes the whole segments below it (Kafka DeleteRecords);
// offset -1 means the high watermark. The new log start offset is durable
// when it returns (it survives a restart) and is returned. An offset at or
// below the current start changes nothing; one beyond the high watermark is
// OffsetOutOfRange.
func (b *Broker) DeleteRecords(topicName string, p int32, offset int64) (int64, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return 0, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return 0, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if p < 0 || int(p) >= len(t.logs()) {
		return 0, errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
	}
	l := t.logs()[p]
	if offset == -1 {
		offset = l.EndOffset()
	}
	start, err := l.DeleteRecordsBefore(offset)
	switch {
	case errors.Is(err, seglog.ErrOffsetOutOfRange):
		return start, errs.New(errs.OffsetOutOfRange, "offset %d of %s/%d is outside [%d, %d]", offset, topicName, p, l.StartOffset(), l.EndOffset())
	case err != nil:
		return start, errs.Wrap(errs.StorageFailed, err, "delete records of %s/%d", topicName, p)
	}
	b.logger.Info("records deleted", "topic", topicName, "partition", p, "start", start)
	return start, nil
}
