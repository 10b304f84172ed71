package broker

import (
	"encoding/binary"
	"slices"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Reassignments move a partition's replicas on a cluster: the catalog
// records the replicas wanted (every node applies the change and tells the
// partition's group), and the group's leader changes the group's voters
// until it has them (internal/cluster).

// Reassignment is the replicas wanted for one partition.
type Reassignment struct {
	Partition int32
	Voters    []uint64
}

// ReassignPartitions changes the replicas of partitions of a topic.
// Each list must name nodes of the cluster, none twice, as many as the
// topic's replication factor (for a topic created before replication
// factors: 1, 3 or 5).
func (b *Broker) ReassignPartitions(topicName string, rs []Reassignment) error {
	return b.reassign(topicName, rs, true)
}

// MoveReplicas is ReassignPartitions without the count check: the cluster
// moves the replicas of a node being removed, keeping fewer when no other
// node can take them.
func (b *Broker) MoveReplicas(topicName string, rs []Reassignment) error {
	return b.reassign(topicName, rs, false)
}

func (b *Broker) reassign(topicName string, rs []Reassignment, counted bool) error {
	if b.cfg.Replicator == nil {
		return errs.New(errs.FailedPrecondition, "a single node holds the one replica of every partition; reassignment is for clusters")
	}
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	t.life.RLock()
	meta, n := t.meta, int32(len(t.logs()))
	t.life.RUnlock()
	if len(rs) == 0 {
		return errs.New(errs.InvalidArgument, "no partition to reassign")
	}
	seen := map[int32]bool{}
	for _, r := range rs {
		if r.Partition < 0 || r.Partition >= n {
			return errs.New(errs.InvalidArgument, "topic %q has no partition %d (it has %d)", topicName, r.Partition, n)
		}
		if seen[r.Partition] {
			return errs.New(errs.InvalidArgument, "partition %d is listed twice", r.Partition)
		}
		seen[r.Partition] = true
		count := int(meta.Config.Replicas)
		if !counted {
			count = 0
		}
		if err := catalog.ValidateReplicas(r.Voters, count); err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "partition %s/%d", topicName, r.Partition)
		}
		if counted && meta.Config.Replicas == 0 {
			if rf := len(r.Voters); rf != 1 && rf != 3 && rf != 5 {
				return errs.New(errs.InvalidArgument, "partition %s/%d: give 1, 3 or 5 replicas, not %d", topicName, r.Partition, rf)
			}
		}
		if err := b.cfg.Replicator.CheckReplicas(r.Voters); err != nil {
			return err
		}
	}
	return b.decide(change{kind: changeReassign, topic: catalog.Topic{Name: topicName, ID: meta.ID}, reassign: rs})
}

// applyReassign records the replicas of partitions of the topic of that
// id and tells their groups. It takes no lock of the topic: the catalog
// record holds a topic's replicas (topic.meta keeps those it opened
// with), and a cluster applies every catalog change on one goroutine, so
// that a reassignment — made most when replicas are down — never waits for
// publishes stuck on a partition without a quorum (they hold the topic's
// life until their entries commit).
func (b *Broker) applyReassign(name, id string, rs []Reassignment, stamps []catalog.Stamp) error {
	t, err := b.topic(name)
	if err != nil || t.meta.ID != id {
		return errs.New(errs.TopicNotFound, "topic %q not found", name)
	}
	cur, ok := b.catalog.Topic(name)
	if !ok || cur.ID != id {
		return errs.New(errs.TopicNotFound, "topic %q not found", name)
	}
	n := cur.Config.Partitions
	asg := padAssignment(cur.Assignment, n)
	for _, r := range rs {
		if r.Partition < 0 || r.Partition >= n {
			return errs.New(errs.InvalidArgument, "topic %q has no partition %d", name, r.Partition)
		}
		if len(r.Voters) > 0 {
			if err := catalog.ValidateReplicas(r.Voters, 0); err != nil {
				return err
			}
		}
		asg[r.Partition].Voters = slices.Clone(r.Voters)
	}
	cur.Assignment = asg
	if err := b.catalog.PutTopic(cur, false, stamps...); err != nil {
		return err
	}
	if reps := t.replicas(); reps != nil {
		for _, r := range rs {
			if int(r.Partition) < len(reps) {
				reps[r.Partition].g.SetAssignment(asg[r.Partition])
			}
		}
	}
	b.logger.Info("partitions reassigned", "topic", name, "partitions", len(rs))
	return nil
}

// assignment returns the replicas the catalog records for a topic (nil if
// it has none, or is not the topic of that id).
func (b *Broker) assignment(name, id string) []catalog.PartitionAssignment {
	if ct, ok := b.catalog.Topic(name); ok && ct.ID == id {
		return ct.Assignment
	}
	return nil
}

// applyAssignment makes a topic's replicas meta's (a restored snapshot).
func (b *Broker) applyAssignment(meta catalog.Topic) error {
	var rs []Reassignment
	for p, a := range meta.Assignment {
		rs = append(rs, Reassignment{Partition: int32(p), Voters: a.Voters})
	}
	if len(rs) == 0 {
		return nil
	}
	return b.applyReassign(meta.Name, meta.ID, rs, nil)
}

// encodeReassign appends a reassignment's count and entries: per entry
// the partition (uint32), the number of replicas (uint32) and each node
// id (uint64).
func encodeReassign(out []byte, rs []Reassignment) []byte {
	out = binary.BigEndian.AppendUint32(out, uint32(len(rs)))
	for _, r := range rs {
		out = binary.BigEndian.AppendUint32(out, uint32(r.Partition))
		out = binary.BigEndian.AppendUint32(out, uint32(len(r.Voters)))
		for _, v := range r.Voters {
			out = binary.BigEndian.AppendUint64(out, v)
		}
	}
	return out
}

func decodeReassign(r *state.Reader) []Reassignment {
	n := r.Count(8)
	out := make([]Reassignment, 0, n)
	for range n {
		re := Reassignment{Partition: int32(r.U32())}
		k := r.Count(8)
		for range k {
			re.Voters = append(re.Voters, r.U64())
		}
		out = append(out, re)
	}
	return out
}
