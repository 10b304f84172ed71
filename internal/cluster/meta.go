package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/multiraft"
	"github.com/spoolmq/spool/internal/state"
)

// appliedKey holds the index of the last metadata entry applied to the
// catalog: written in the same batch as the catalog change it applied (so
// that a restart neither skips nor repeats it), or alone after an entry
// that changed nothing.
func appliedKey() []byte { return state.RaftKey(MetaGroup, 'a') }

// metaMachine applies the metadata group's entries — catalog changes — to
// the broker.
type metaMachine struct {
	st      *state.Store
	b       *broker.Broker
	applied uint64 // owned by the group's worker
	// registryChanged is called after a registry change is applied (on the
	// group's worker).
	registryChanged func()
}

func newMetaMachine(st *state.Store, b *broker.Broker) (*metaMachine, error) {
	m := &metaMachine{st: st, b: b}
	v, err := st.Get(appliedKey())
	switch {
	case errors.Is(err, state.ErrNotFound):
	case err != nil:
		return nil, err
	case len(v) != 8:
		return nil, fmt.Errorf("cluster: applied index record of %d bytes", len(v))
	default:
		m.applied = binary.BigEndian.Uint64(v)
	}
	return m, nil
}

// LeaderReady makes this node the subscription coordinator for the term
// (multiraft.LeaderReadier): it leads the metadata group and applied every
// entry of the terms before.
func (m *metaMachine) LeaderReady(term uint64) { m.b.SetCoordinator(term) }

// Apply applies entries in order. A change the catalog refuses (a name
// taken, a topic gone) is refused alike on every node: that is its
// outcome, for its proposer. A storage failure stops the group on this
// node: it cannot keep its catalog in step with the others.
func (m *metaMachine) Apply(ents []multiraft.Entry) ([]error, error) {
	var outcomes []error
	for i, e := range ents {
		if e.Index <= m.applied {
			continue
		}
		index := binary.BigEndian.AppendUint64(nil, e.Index)
		stamped := false
		stamp := func(b *state.Batch) {
			b.Set(appliedKey(), index)
			stamped = true
		}
		var err error
		if len(e.Data) > 0 && e.Data[0] >= changeNodeBase {
			err = m.applyNodeChange(e.Data, stamp)
		} else {
			err = m.b.ApplyChange(e.Data, e.Term, stamp)
		}
		if errs.Is(err, errs.StorageFailed) {
			return nil, fmt.Errorf("metadata entry %d: %w", e.Index, err)
		}
		if !stamped {
			b := m.st.NewBatch()
			b.Set(appliedKey(), index)
			if cerr := b.Commit(false); cerr != nil {
				return nil, fmt.Errorf("metadata entry %d: store the applied index: %w", e.Index, cerr)
			}
		}
		m.applied = e.Index
		if err != nil {
			if outcomes == nil {
				outcomes = make([]error, len(ents))
			}
			outcomes[i] = err
		}
	}
	return outcomes, nil
}

// errNoMetaSnapshots: the metadata group's log is never compacted, so a
// leader always has every entry and never sends a snapshot.
var errNoMetaSnapshots = errors.New("cluster: a snapshot of the metadata group arrived, but its log is never compacted: this node cannot apply one")

// Restore is never called: the metadata log is kept whole (it takes a
// change per administrative action, not per message).
func (m *metaMachine) Restore(snap *raftpb.Snapshot) error {
	if snap.GetMetadata().GetIndex() <= m.applied {
		return nil
	}
	return errNoMetaSnapshots
}

// applyNodeChange applies a registry change: a node's addresses (the
// non-empty ones replace what the registry had), or its removal. A
// removed id is never registered again.
func (m *metaMachine) applyNodeChange(data []byte, stamp func(*state.Batch)) error {
	kind, n, err := decodeNodeChange(data)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "registry change")
	}
	cur := NodeInfo{ID: n.ID}
	v, err := m.st.Get(nodeKey(n.ID))
	switch {
	case errors.Is(err, state.ErrNotFound):
	case err != nil:
		return errs.Wrap(errs.StorageFailed, err, "read node %d", n.ID)
	default:
		if cur, err = decodeNode(n.ID, v); err != nil {
			return errs.Wrap(errs.StorageFailed, err, "read node %d", n.ID)
		}
	}
	if cur.Removed {
		return errs.New(errs.FailedPrecondition, "node %d was removed from the cluster; node ids are never reused", n.ID)
	}
	switch kind {
	case changePutNode:
		for _, f := range []struct {
			dst *string
			v   string
		}{{&cur.ClusterAddr, n.ClusterAddr}, {&cur.HTTPAddr, n.HTTPAddr}, {&cur.KafkaAddr, n.KafkaAddr}} {
			if f.v != "" {
				*f.dst = f.v
			}
		}
	case changeRemoveNode:
		cur.Removed = true
	}
	b := m.st.NewBatch()
	b.Set(nodeKey(n.ID), encodeNode(cur))
	stamp(b)
	if err := b.Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store node %d", n.ID)
	}
	if m.registryChanged != nil {
		m.registryChanged()
	}
	return nil
}
