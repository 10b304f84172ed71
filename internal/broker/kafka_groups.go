package broker

// Kafka consumer groups' committed offsets. A Kafka group "g" committing
// offsets for topic "T" commits them to the stream subscription named "g" on
// "T" (created, start earliest, by the first commit): one data model, so
// `spool sub describe T g` shows a Kafka group's progress and a native
// consumer of "g" resumes where the Kafka group stopped, and back.
//
// What Kafka keeps beside an offset — the committed leader epoch and the
// commit's metadata string — lives in the state store beside the
// subscription's offsets, under
//
//	k/<topic>\x00<subscription>\x00<partition:4 BE>
//
// with the value
//
//	version(1)=1 | subscription created (unix ns, 8) | offset (8) | leader epoch (4) | flags (1) | metadata
//
// A record only applies while the subscription is the one it was written
// for (same creation time) and the partition's committed offset is still
// the record's offset; otherwise the offset was moved by a native commit
// or a reset since, and it reads with epoch -1 and no metadata. Flag 1
// ("unset") marks a partition Kafka has no offset for: partitions a
// Kafka-created subscription was initialized with but no one has committed
// yet, and partitions whose offset was deleted (OffsetDelete) or committed
// as -1. They read as offset -1, so the consumer's auto.offset.reset
// applies, as with Kafka. A record is written in the same synced batch as
// its offset. Records of deleted subscriptions are removed by
// DeleteGroupSubscriptions; those left behind by `spool sub delete` or topic
// deletion are ignored (their creation time no longer matches) and
// overwritten by later commits.

import (
	"encoding/binary"
	"sort"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// GroupOffset is one partition's committed offset as Kafka sees it.
type GroupOffset struct {
	Offset      int64 // next offset to consume; -1: none
	LeaderEpoch int32 // -1: unknown
	Metadata    string
}

// GroupSub is a subscription named after a group.
type GroupSub struct {
	Topic string
	Mode  catalog.Mode
	// Members is the number of native (Spool API) members.
	Members int
}

// GroupName summarizes the subscriptions of one name across topics.
type GroupName struct {
	Name    string
	Stream  int // stream subscriptions of that name
	Queue   int // queue subscriptions of that name
	Members int // native members of its stream subscriptions
}

const (
	kafkaMetaVersion = 1
	kafkaMetaUnset   = 1 // flag: Kafka has no offset for this partition
	kafkaMetaHeader  = 1 + 8 + 8 + 4 + 1
)

// kafkaMetaPrefix is the prefix of a subscription's Kafka commit records.
func kafkaMetaPrefix(topic, sub string) []byte { return state.KafkaCommitPrefix(topic, sub) }

func kafkaMetaKey(topic, sub string, p int32) []byte {
	return binary.BigEndian.AppendUint32(kafkaMetaPrefix(topic, sub), uint32(p))
}

type kafkaMeta struct {
	created int64
	offset  int64
	epoch   int32
	flags   byte
	meta    string
}

func (m kafkaMeta) encode() []byte {
	b := make([]byte, 0, kafkaMetaHeader+len(m.meta))
	b = append(b, kafkaMetaVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(m.created))
	b = binary.BigEndian.AppendUint64(b, uint64(m.offset))
	b = binary.BigEndian.AppendUint32(b, uint32(m.epoch))
	b = append(b, m.flags)
	return append(b, m.meta...)
}

func decodeKafkaMeta(b []byte) (kafkaMeta, bool) {
	if len(b) < kafkaMetaHeader || b[0] != kafkaMetaVersion {
		return kafkaMeta{}, false
	}
	return kafkaMeta{
		created: int64(binary.BigEndian.Uint64(b[1:])),
		offset:  int64(binary.BigEndian.Uint64(b[9:])),
		epoch:   int32(binary.BigEndian.Uint32(b[17:])),
		flags:   b[21],
		meta:    string(b[kafkaMetaHeader:]),
	}, true
}

// kafkaMetas reads a subscription's Kafka commit records by partition.
func (b *Broker) kafkaMetas(topic, sub string) (map[int32]kafkaMeta, error) {
	out := map[int32]kafkaMeta{}
	err := b.cfg.State.Scan(kafkaMetaPrefix(topic, sub), func(k, v []byte) error {
		if m, ok := decodeKafkaMeta(v); ok {
			out[state.PartitionOfOffsetKey(k)] = m
		}
		return nil
	})
	if err != nil {
		return nil, errs.Wrap(errs.StorageFailed, err, "read kafka commit records")
	}
	return out, nil
}

// streamSubForGroup returns the stream subscription named group on a topic,
// creating it (start earliest) if create is set. created reports whether
// this call created it. A queue subscription of that name is
// FailedPrecondition.
func (b *Broker) streamSubForGroup(group, topicName string, create bool) (t *topic, s *subscription, created bool, err error) {
	t, s, err = b.sub(topicName, group)
	if errs.Is(err, errs.SubNotFound) && create {
		_, err = b.CreateSubscription(topicName, group, catalog.SubConfig{Mode: catalog.ModeStream, Start: catalog.Position{Kind: catalog.Earliest}})
		switch {
		case err == nil:
			created = true
		case errs.Is(err, errs.SubExists):
		default:
			return nil, nil, false, err
		}
		t, s, err = b.sub(topicName, group)
	}
	if err != nil {
		return nil, nil, false, err
	}
	if s.q != nil {
		return nil, nil, false, errs.New(errs.FailedPrecondition, "subscription %q on topic %q is a queue subscription (a share group), not a consumer group", group, topicName)
	}
	return t, s, created, nil
}

// CommitGroupOffsets stores Kafka consumer group group's offsets for a
// topic as the committed offsets of the stream subscription named group on
// it, creating the subscription (start earliest) if it does not exist.
// Offsets are durable when it returns. A negative offset means "no offset"
// (it reads back as -1 and leaves the subscription's position alone).
//
// Per-partition problems (no such partition: TopicNotFound; an offset
// beyond the partition's end: OffsetOutOfRange) are returned by partition
// and those partitions are not committed; an error for the whole topic is
// returned as err: an invalid group name (InvalidArgument), no such topic,
// a queue subscription of that name, or native members consuming the
// subscription (FailedPrecondition: Kafka and native members of one
// subscription at once are not supported), or a storage failure.
func (b *Broker) CommitGroupOffsets(group, topicName string, offsets map[int32]GroupOffset) (map[int32]error, error) {
	if err := catalog.ValidateName("subscription", group); err != nil {
		return nil, err
	}
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	// check validates the partitions and offsets; t.life is held shared.
	check := func() (perr map[int32]error, valid map[int32]GroupOffset) {
		perr, valid = map[int32]error{}, map[int32]GroupOffset{}
		for p, o := range offsets {
			if p < 0 || int(p) >= len(t.logs()) {
				perr[p] = errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
				continue
			}
			if end := t.logs()[p].EndOffset(); o.Offset > end {
				perr[p] = errs.New(errs.OffsetOutOfRange, "commit offset %d for partition %d is beyond its end %d", o.Offset, p, end)
				continue
			}
			valid[p] = o
		}
		return perr, valid
	}
	t.life.RLock()
	perr, valid := check()
	t.life.RUnlock()
	if len(valid) == 0 {
		return perr, nil
	}
	t, s, created, err := b.streamSubForGroup(group, topicName, true)
	if err != nil {
		return nil, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if perr, valid = check(); len(valid) == 0 {
		return perr, nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return nil, errs.New(errs.SubNotFound, "subscription %q was deleted", group)
	}
	s.applyLocked(s.coord.Tick(b.clock.Now()))
	if n := s.coord.Len(); n > 0 {
		s.mu.Unlock()
		return nil, errs.New(errs.FailedPrecondition, "subscription %q on topic %q has %d native consumers; Kafka and native members of one subscription at once are not supported", group, topicName, n)
	}
	committed := append([]int64(nil), s.committed...)
	halts := s.haltsLocked()
	s.mu.Unlock()
	for p, o := range valid {
		if h, ok := halts[p]; ok && o.Offset > h.Offset {
			perr[p] = errs.New(errs.FailedPrecondition, "partition %d is halted at offset %d (a failed message); reset it to go on", p, h.Offset)
			delete(valid, p)
		}
	}

	stamp := s.meta.Created.UnixNano()
	var metas map[int32]kafkaMeta
	if created {
		if metas, err = b.kafkaMetas(topicName, group); err != nil {
			return nil, err
		}
	}
	batch := b.cfg.State.NewBatch()
	newOffs := map[int32]int64{}
	for p, o := range valid {
		if int(p) >= len(committed) {
			perr[p] = errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
			continue
		}
		m := kafkaMeta{created: stamp, offset: o.Offset, epoch: o.LeaderEpoch, meta: o.Metadata}
		if o.Offset < 0 {
			m = kafkaMeta{created: stamp, offset: committed[p], epoch: -1, flags: kafkaMetaUnset}
		} else {
			newOffs[p] = o.Offset
			batch.Set(state.OffsetKey(topicName, group, p), catalog.EncodeOffset(o.Offset))
		}
		batch.Set(kafkaMetaKey(topicName, group, p), m.encode())
	}
	if created {
		// Partitions of the new subscription that no commit (this one, or
		// one that won the race to commit first) names have no Kafka offset.
		for p, off := range committed {
			if _, ok := valid[int32(p)]; ok {
				continue
			}
			if m, ok := metas[int32(p)]; ok && m.created == stamp {
				continue
			}
			batch.Set(kafkaMetaKey(topicName, group, int32(p)), kafkaMeta{created: stamp, offset: off, epoch: -1, flags: kafkaMetaUnset}.encode())
		}
	}
	if err := batch.Commit(true); err != nil {
		return nil, errs.Wrap(errs.StorageFailed, err, "commit offsets")
	}
	s.mu.Lock()
	for p, off := range newOffs {
		s.committed[p] = off
	}
	s.mu.Unlock()
	return perr, nil
}

// GroupOffsets returns the committed offsets of the stream subscription
// named group on a topic, by partition (every partition of the topic; -1
// where Kafka has no offset). ok is false if there is no such subscription
// (or no such topic).
func (b *Broker) GroupOffsets(group, topicName string) (offsets map[int32]GroupOffset, ok bool, err error) {
	_, s, _, err := b.streamSubForGroup(group, topicName, false)
	if errs.Is(err, errs.SubNotFound) || errs.Is(err, errs.TopicNotFound) || errs.Is(err, errs.FailedPrecondition) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s.commitMu.Lock() // a commit's offsets and records are read together
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return nil, false, nil
	}
	committed := append([]int64(nil), s.committed...)
	s.mu.Unlock()
	metas, err := b.kafkaMetas(topicName, group)
	if err != nil {
		return nil, false, err
	}
	stamp := s.meta.Created.UnixNano()
	out := make(map[int32]GroupOffset, len(committed))
	for i, off := range committed {
		p := int32(i)
		o := GroupOffset{Offset: off, LeaderEpoch: -1}
		if m, ok := metas[p]; ok && m.created == stamp && m.offset == off {
			if m.flags&kafkaMetaUnset != 0 {
				o.Offset = -1
			} else {
				o.LeaderEpoch, o.Metadata = m.epoch, m.meta
			}
		}
		out[p] = o
	}
	return out, true, nil
}

// DeleteGroupOffsets removes a Kafka group's offsets for some partitions of
// a topic: they read as -1 afterwards (the subscription keeps its position
// for native consumers). When no partition of the subscription has a Kafka
// offset left, the subscription itself is deleted. ok is false if there is
// no such stream subscription.
func (b *Broker) DeleteGroupOffsets(group, topicName string, partitions []int32) (ok bool, err error) {
	t, s, _, err := b.streamSubForGroup(group, topicName, false)
	if errs.Is(err, errs.SubNotFound) || errs.Is(err, errs.TopicNotFound) || errs.Is(err, errs.FailedPrecondition) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t.life.RLock()
	s.commitMu.Lock()
	s.mu.Lock()
	deleted := s.deleted
	committed := append([]int64(nil), s.committed...)
	s.mu.Unlock()
	if deleted {
		s.commitMu.Unlock()
		t.life.RUnlock()
		return false, nil
	}
	stamp := s.meta.Created.UnixNano()
	batch := b.cfg.State.NewBatch()
	for _, p := range partitions {
		if p >= 0 && int(p) < len(committed) {
			batch.Set(kafkaMetaKey(topicName, group, p), kafkaMeta{created: stamp, offset: committed[p], epoch: -1, flags: kafkaMetaUnset}.encode())
		}
	}
	err = batch.Commit(true)
	s.commitMu.Unlock()
	t.life.RUnlock()
	if err != nil {
		return true, errs.Wrap(errs.StorageFailed, err, "delete offsets")
	}
	offs, _, err := b.GroupOffsets(group, topicName)
	if err != nil {
		return true, err
	}
	for _, o := range offs {
		if o.Offset >= 0 {
			return true, nil
		}
	}
	if err := b.DeleteSubscription(topicName, group); err != nil && !errs.Is(err, errs.SubNotFound) {
		return true, err
	}
	b.deleteKafkaMetas(topicName, group)
	return true, nil
}

// GroupSubscriptions returns the subscriptions named group, by topic.
func (b *Broker) GroupSubscriptions(group string) []GroupSub {
	var out []GroupSub
	now := b.clock.Now()
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		s := t.subs[group]
		t.subsMu.Unlock()
		if s == nil {
			continue
		}
		gs := GroupSub{Topic: t.meta.Name, Mode: s.meta.Config.Mode}
		s.mu.Lock()
		if !s.deleted {
			s.applyLocked(s.coord.Tick(now))
			gs.Members = s.coord.Len()
		}
		s.mu.Unlock()
		out = append(out, gs)
	}
	return out
}

// GroupTopics returns the topics that have a stream subscription named
// group, sorted.
func (b *Broker) GroupTopics(group string) []string {
	var out []string
	for _, gs := range b.GroupSubscriptions(group) {
		if gs.Mode == catalog.ModeStream {
			out = append(out, gs.Topic)
		}
	}
	return out
}

// GroupNames lists every subscription name with what holds it, sorted by
// name.
func (b *Broker) GroupNames() []GroupName {
	byName := map[string]*GroupName{}
	now := b.clock.Now()
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		subs := make([]*subscription, 0, len(t.subs))
		for _, s := range t.subs {
			subs = append(subs, s)
		}
		t.subsMu.Unlock()
		for _, s := range subs {
			g := byName[s.meta.Name]
			if g == nil {
				g = &GroupName{Name: s.meta.Name}
				byName[s.meta.Name] = g
			}
			if s.q != nil {
				g.Queue++
				continue
			}
			g.Stream++
			s.mu.Lock()
			if !s.deleted {
				s.applyLocked(s.coord.Tick(now))
				g.Members += s.coord.Len()
			}
			s.mu.Unlock()
		}
	}
	out := make([]GroupName, 0, len(byName))
	for _, g := range byName {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DeleteGroupSubscriptions deletes every subscription named group, of
// either mode (stream: a Kafka consumer group's committed offsets, with its
// Kafka commit records; queue: a Kafka share group's state), and returns
// how many it deleted. If any of them has native members, nothing is
// deleted and the error is FailedPrecondition.
func (b *Broker) DeleteGroupSubscriptions(group string) (int, error) {
	subs := b.GroupSubscriptions(group)
	for _, gs := range subs {
		if gs.Members > 0 {
			return 0, errs.New(errs.FailedPrecondition, "%s subscription %q on topic %q has %d native consumers", gs.Mode, group, gs.Topic, gs.Members)
		}
	}
	n := 0
	for _, gs := range subs {
		if err := b.DeleteSubscription(gs.Topic, group); err != nil {
			if errs.Is(err, errs.SubNotFound) || errs.Is(err, errs.TopicNotFound) {
				continue
			}
			return n, err
		}
		if gs.Mode == catalog.ModeStream {
			b.deleteKafkaMetas(gs.Topic, group)
		}
		n++
	}
	return n, nil
}

// deleteKafkaMetas removes a deleted subscription's Kafka commit records
// (best effort: stale records are ignored anyway).
func (b *Broker) deleteKafkaMetas(topic, sub string) {
	batch := b.cfg.State.NewBatch()
	batch.DeletePrefix(kafkaMetaPrefix(topic, sub))
	if err := batch.Commit(false); err != nil {
		b.logger.Warn("delete kafka commit records", "topic", topic, "subscription", sub, "err", err)
	}
}
