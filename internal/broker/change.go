package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Catalog changes: every change of a topic or a subscription definition is
// made in two steps. The node a client reached validates the request and
// builds a change that says exactly what to do (the topic's id and creation
// time, a subscription's starting offsets); applying it then decides the
// outcome from the catalog alone, so that every node applying the same
// changes in the same order reaches the same catalog and the same answers.
// A single node applies each change at once (Config.Meta nil); a cluster
// orders them through its metadata group, which applies them on every node
// (ApplyChange).
//
// Applying never waits for another change and never makes one, and the
// node that proposed a change holds no lock while it waits for it.
//
// A change may be applied twice on one node (a crash after its effects but
// before the applied index was stored): applying a change whose effect is
// already there (the same topic id, the same subscription incarnation)
// changes nothing, and changes name what they act on by identity, not only
// by name.

// MetaLog orders catalog changes across a cluster.
type MetaLog interface {
	// Commit proposes an encoded change and waits until it is applied on
	// this node; it returns the change's outcome (ApplyChange's error on
	// this node), or an Unavailable error when the order could not be
	// decided (no leader, a leader change with the outcome unknown).
	Commit(ctx context.Context, change []byte) error
	// Coordinator returns the node that coordinates subscriptions (the
	// metadata leader; 0: none known) and its native API address ("":
	// unknown).
	Coordinator() (id uint64, addr string)
}

type changeKind byte

const (
	changeCreateTopic changeKind = iota + 1
	changeDeleteTopic
	changeAddPartitions
	changeTopicConfig
	changeCreateSub
	changeDeleteSub
	changeAlterSub
	changeSubState // a subscription's consumer state (sub_state.go)
	changeReassign // partitions' replicas (reassign.go)
	changeSpace    // a replicated front-end space's change (space_replicated.go)
)

// change is one catalog change. Which fields are set depends on kind.
type change struct {
	kind    changeKind
	topic   catalog.Topic        // create-topic, add-partitions, topic-config; delete-topic: Name and ID
	sub     catalog.Subscription // create-sub, alter-sub; delete-sub: Topic, Name and Created
	offsets []int64              // create-sub: the starting offset of every partition
	// reassign: the partitions' new replicas (topic: Name and ID)
	reassign []Reassignment
}

// decide makes a change: applied at once on a single node, ordered through
// the metadata group on a cluster.
func (b *Broker) decide(c change) error {
	if b.cfg.Meta == nil {
		return b.applyChange(c, nil)
	}
	data, err := encodeChange(c)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "encode catalog change")
	}
	return b.metaCommit(data)
}

// metaCommit orders an encoded change through the metadata group and
// waits until this node applied it.
func (b *Broker) metaCommit(data []byte) error {
	timeout := b.cfg.MetaTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return b.cfg.Meta.Commit(ctx, data)
}

// ApplyChange applies an encoded change (an entry of the metadata group),
// in the order every node applies them; term is the entry's raft term.
// stamp, when set, is written
// atomically with the change's catalog record. The error is the change's
// outcome: a refusal that every node reaches alike (errs codes such as
// TopicExists), or a StorageFailed error local to this node.
func (b *Broker) ApplyChange(data []byte, term uint64, stamp catalog.Stamp) error {
	e, err := decodeEntry(data)
	if err != nil {
		return err
	}
	var stamps []catalog.Stamp
	if stamp != nil {
		stamps = []catalog.Stamp{stamp}
	}
	switch {
	case e.space != nil:
		return b.applySpace(e.space.name, e.space.body, stamps)
	case e.subWrite != nil:
		return b.applySubWrite(e.subWrite, term, stamps)
	}
	return b.applyChange(e.change, stamp)
}

// metaEntry is an entry of the metadata group, decoded: a replicated
// space's change, a subscription's consumer state, or a catalog change.
type metaEntry struct {
	space    *spaceChange
	subWrite *subWrite
	change   change
}

type spaceChange struct {
	name string
	body []byte // the space's own encoding, for its applier
}

// decodeEntry decodes an entry of the metadata group; the error is an
// InvalidArgument one.
func decodeEntry(data []byte) (metaEntry, error) {
	if len(data) > 0 && changeKind(data[0]) == changeSpace {
		r := state.NewReader(data[1:])
		sc := &spaceChange{name: r.Str()}
		sc.body = r.Take(r.Left())
		if err := r.Done(); err != nil {
			return metaEntry{}, errs.Wrap(errs.InvalidArgument, err, "space change")
		}
		return metaEntry{space: sc}, nil
	}
	if len(data) > 0 && changeKind(data[0]) == changeSubState {
		w, err := decodeSubWrite(state.NewReader(data[1:]))
		if err != nil {
			return metaEntry{}, errs.Wrap(errs.InvalidArgument, err, "consumer state change")
		}
		return metaEntry{subWrite: w}, nil
	}
	c, err := decodeChange(data)
	if err != nil {
		return metaEntry{}, errs.Wrap(errs.InvalidArgument, err, "catalog change")
	}
	return metaEntry{change: c}, nil
}

func (b *Broker) applyChange(c change, stamp catalog.Stamp) error {
	var stamps []catalog.Stamp
	if stamp != nil {
		stamps = []catalog.Stamp{stamp}
	}
	switch c.kind {
	case changeCreateTopic:
		return b.applyCreateTopic(c.topic, stamps)
	case changeDeleteTopic:
		return b.applyDeleteTopic(c.topic.Name, c.topic.ID, stamps)
	case changeAddPartitions:
		return b.applyAddPartitions(c.topic, stamps)
	case changeTopicConfig:
		return b.applyTopicConfig(c.topic, stamps)
	case changeCreateSub:
		return b.applyCreateSub(c.sub, c.offsets, stamps)
	case changeDeleteSub:
		return b.applyDeleteSub(c.sub, stamps)
	case changeAlterSub:
		return b.applyAlterSub(c.sub, stamps)
	case changeReassign:
		return b.applyReassign(c.topic.Name, c.topic.ID, c.reassign, stamps)
	}
	return errs.New(errs.InvalidArgument, "unknown catalog change %d", c.kind)
}

// The encoding: kind (1 byte), then per kind:
//
//	create-topic, add-partitions, topic-config: topic record
//	delete-topic: name, id
//	create-sub: subscription record, count (uint32), offsets (int64 each)
//	delete-sub: topic, name, created (unix nanoseconds, int64)
//	alter-sub: subscription record
//	reassign: name, id, count (uint32), then per partition: partition
//	  (uint32), count (uint32), node ids (uint64 each)
//
// with records and strings as uint32 length ‖ bytes (records as the
// catalog stores them).
func encodeChange(c change) ([]byte, error) {
	out := []byte{byte(c.kind)}
	str := func(s []byte) { out = append(binary.BigEndian.AppendUint32(out, uint32(len(s))), s...) }
	switch c.kind {
	case changeCreateTopic, changeAddPartitions, changeTopicConfig:
		rec, err := catalog.EncodeTopic(c.topic)
		if err != nil {
			return nil, err
		}
		str(rec)
	case changeDeleteTopic:
		str([]byte(c.topic.Name))
		str([]byte(c.topic.ID))
	case changeReassign:
		str([]byte(c.topic.Name))
		str([]byte(c.topic.ID))
		out = encodeReassign(out, c.reassign)
	case changeCreateSub, changeAlterSub:
		rec, err := catalog.EncodeSub(c.sub)
		if err != nil {
			return nil, err
		}
		str(rec)
		if c.kind == changeCreateSub {
			out = binary.BigEndian.AppendUint32(out, uint32(len(c.offsets)))
			for _, o := range c.offsets {
				out = binary.BigEndian.AppendUint64(out, uint64(o))
			}
		}
	case changeDeleteSub:
		str([]byte(c.sub.Topic))
		str([]byte(c.sub.Name))
		out = binary.BigEndian.AppendUint64(out, uint64(c.sub.Created.UnixNano()))
	default:
		return nil, fmt.Errorf("unknown change kind %d", c.kind)
	}
	return out, nil
}

func decodeChange(data []byte) (change, error) {
	r := state.NewReader(data)
	c := change{kind: changeKind(r.U8())}
	var err error
	switch c.kind {
	case changeCreateTopic, changeAddPartitions, changeTopicConfig:
		rec := r.Take(int(r.U32()))
		if err = r.Done(); err == nil {
			c.topic, err = catalog.DecodeTopic(rec)
		}
	case changeDeleteTopic:
		c.topic.Name, c.topic.ID = r.Str(), r.Str()
	case changeReassign:
		c.topic.Name, c.topic.ID = r.Str(), r.Str()
		c.reassign = decodeReassign(r)
	case changeCreateSub, changeAlterSub:
		rec := r.Take(int(r.U32()))
		if c.kind == changeCreateSub {
			n := r.Count(8)
			c.offsets = make([]int64, 0, n)
			for range n {
				c.offsets = append(c.offsets, r.I64())
			}
		}
		if err = r.Done(); err == nil {
			c.sub, err = catalog.DecodeSub(rec)
		}
	case changeDeleteSub:
		c.sub.Topic, c.sub.Name = r.Str(), r.Str()
		c.sub.Created = time.Unix(0, r.I64()).UTC()
	default:
		return change{}, fmt.Errorf("unknown change kind %d", c.kind)
	}
	if err != nil {
		return change{}, err
	}
	return c, r.Done()
}
