package kgroup

// Kafka consumer groups' committed offsets. A Kafka group "g" committing
// offsets for topic "T" commits them to the stream subscription named "g" on
// "T" (created, start earliest, by the first commit): one data model, so
// `spool sub describe T g` shows a Kafka group's progress and a native
// consumer of "g" resumes where the Kafka group stopped, and back.
//
// What Kafka keeps beside an offset — the committed leader epoch and the
// commit's metadata string — is a record of the Kafka front end's space
// kept with the subscription (commit_record.go), written in the same
// synced batch as the offset (broker.Space.CommitStream) and deleted with
// the subscription and with its topic.
//
// A record only applies while the subscription is the one it was written
// for (same creation time) and the partition's committed offset is still
// the record's offset; otherwise the offset was moved by a native commit
// or a reset since, and it reads with epoch -1 and no metadata. Flag
// "unset" marks a partition Kafka has no offset for: partitions a
// Kafka-created subscription was initialized with but no one has committed
// yet, and partitions whose offset was deleted (OffsetDelete) or committed
// as -1. They read as offset -1, so the consumer's auto.offset.reset
// applies, as with Kafka.

import (
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Offset is one partition's committed offset as Kafka sees it.
type Offset struct {
	Offset      int64 // next offset to consume; -1: none
	LeaderEpoch int32 // -1: unknown
	Metadata    string
}

// Offsets stores Kafka groups' committed offsets on the broker's stream
// subscriptions.
type Offsets struct {
	b  *broker.Broker
	sp *broker.Space
}

// NewOffsets returns the offsets of groups on b, their commit metadata in
// the space sp.
func NewOffsets(b *broker.Broker, sp *broker.Space) *Offsets {
	return &Offsets{b: b, sp: sp}
}

// notFound reports whether err means there is no stream subscription of
// the group on the topic.
func notFound(err error) bool {
	return errs.Is(err, errs.SubNotFound) || errs.Is(err, errs.TopicNotFound) || errs.Is(err, errs.FailedPrecondition)
}

// Commit stores group's offsets for a topic as the committed offsets of the
// stream subscription named group on it, creating the subscription (start
// earliest) if it does not exist. Offsets are durable when it returns. A
// negative offset means "no offset" (it reads back as -1 and leaves the
// subscription's position alone).
//
// Per-partition problems (no such partition: TopicNotFound; an offset
// beyond the partition's end: OffsetOutOfRange; past a halt:
// FailedPrecondition) are returned by partition and those partitions are
// not committed; an error for the whole topic is returned as err: an
// invalid group name (InvalidArgument), no such topic, a queue
// subscription of that name, or native members consuming the subscription
// (FailedPrecondition: Kafka and native members of one subscription at once
// are not supported), a damaged record, or a storage failure.
func (o *Offsets) Commit(group, topic string, offsets map[int32]Offset) (map[int32]error, error) {
	return o.CommitInTerm(0, group, topic, offsets)
}

// CommitInTerm is Commit authorized by group state of a cluster's
// coordination term (broker.StreamCommit.Term): refused as not
// coordinator unless this node still coordinates in that term, and its
// write is refused if it reaches the metadata log in another. Term 0 is
// Commit.
func (o *Offsets) CommitInTerm(term uint64, group, topic string, offsets map[int32]Offset) (map[int32]error, error) {
	if err := catalog.ValidateName("subscription", group); err != nil {
		return nil, err
	}
	offs := make(map[int32]int64, len(offsets))
	for p, off := range offsets {
		offs[p] = max(off.Offset, -1)
	}
	return o.sp.CommitStream(topic, group, broker.StreamCommit{
		Offsets: offs,
		Create:  &catalog.SubConfig{Mode: catalog.ModeStream, Start: catalog.Position{Kind: catalog.Earliest}},
		Alone:   true,
		Term:    term,
		Records: func(v broker.StreamView) ([]broker.Record, error) {
			stamp := v.Created.UnixNano()
			recs := make([]broker.Record, 0, len(v.Commit))
			for p := range v.Commit {
				off := offsets[p]
				m := commitMeta{created: stamp, offset: off.Offset, epoch: off.LeaderEpoch, meta: off.Metadata}
				if off.Offset < 0 {
					m = commitMeta{created: stamp, offset: v.Committed[p], epoch: -1, flags: metaUnset}
				}
				recs = append(recs, broker.Record{Key: metaKey(p), Value: m.encode()})
			}
			if !v.Fresh {
				return recs, nil
			}
			// Partitions of the new subscription that no commit (this one,
			// or one that won the race to commit first) names have no
			// Kafka offset.
			metas, err := o.metas(topic, group, v)
			if err != nil {
				return nil, err
			}
			for i, off := range v.Committed {
				p := int32(i)
				if _, ok := v.Commit[p]; ok {
					continue
				}
				if m, ok := metas[p]; ok && m.created == stamp {
					continue
				}
				m := commitMeta{created: stamp, offset: off, epoch: -1, flags: metaUnset}
				recs = append(recs, broker.Record{Key: metaKey(p), Value: m.encode()})
			}
			return recs, nil
		},
	})
}

// metas reads a subscription's commit metadata by partition. A record that
// does not decode is an error naming its key (CorruptData).
func (o *Offsets) metas(topic, group string, v broker.StreamView) (map[int32]commitMeta, error) {
	out := map[int32]commitMeta{}
	err := v.ScanRecords(func(k, val []byte) error {
		p, err := metaPartition(k)
		var m commitMeta
		if err == nil {
			m, err = decodeCommitMeta(val)
		}
		if err != nil {
			rerr := &state.RecordError{Kind: "Kafka commit metadata", Key: o.sp.SubKey(topic, group, k), Err: err}
			return errs.Wrap(errs.CorruptData, rerr, "read committed offsets of group %q", group)
		}
		out[p] = m
		return nil
	})
	return out, err
}

// Fetch returns the committed offsets of the stream subscription named
// group on a topic, by partition (every partition of the topic; -1 where
// Kafka has no offset). ok is false if there is no such subscription (or
// no such topic).
func (o *Offsets) Fetch(group, topic string) (offsets map[int32]Offset, ok bool, err error) {
	err = o.sp.ReadStream(topic, group, func(v broker.StreamView) error {
		metas, err := o.metas(topic, group, v)
		if err != nil {
			return err
		}
		stamp := v.Created.UnixNano()
		offsets = make(map[int32]Offset, len(v.Committed))
		for i, off := range v.Committed {
			p := int32(i)
			got := Offset{Offset: off, LeaderEpoch: -1}
			if m, ok := metas[p]; ok && m.created == stamp && m.offset == off {
				if m.flags&metaUnset != 0 {
					got.Offset = -1
				} else {
					got.LeaderEpoch, got.Metadata = m.epoch, m.meta
				}
			}
			offsets[p] = got
		}
		return nil
	})
	switch {
	case notFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return offsets, true, nil
}

// Delete removes a group's offsets for some partitions of a topic: they
// read as -1 afterwards (the subscription keeps its position for native
// consumers). When no partition of the subscription has a Kafka offset
// left, the subscription itself is deleted. ok is false if there is no
// such stream subscription.
func (o *Offsets) Delete(group, topic string, partitions []int32) (ok bool, err error) {
	offs := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		offs[p] = -1
	}
	_, err = o.sp.CommitStream(topic, group, broker.StreamCommit{
		Offsets: offs,
		Records: func(v broker.StreamView) ([]broker.Record, error) {
			stamp := v.Created.UnixNano()
			recs := make([]broker.Record, 0, len(v.Commit))
			for p := range v.Commit {
				m := commitMeta{created: stamp, offset: v.Committed[p], epoch: -1, flags: metaUnset}
				recs = append(recs, broker.Record{Key: metaKey(p), Value: m.encode()})
			}
			return recs, nil
		},
	})
	switch {
	case notFound(err):
		return false, nil
	case err != nil:
		return true, err
	}
	left, ok, err := o.Fetch(group, topic)
	if err != nil || !ok {
		return ok, err
	}
	for _, off := range left {
		if off.Offset >= 0 {
			return true, nil
		}
	}
	if err := o.b.DeleteSubscription(topic, group); err != nil && !errs.Is(err, errs.SubNotFound) {
		return true, err
	}
	return true, nil
}

// Topics returns the topics that have a stream subscription named group,
// sorted.
func (o *Offsets) Topics(group string) []string {
	var out []string
	for _, ns := range o.b.SubsNamed(group) {
		if ns.Mode == catalog.ModeStream {
			out = append(out, ns.Topic)
		}
	}
	return out
}
