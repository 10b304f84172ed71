package cluster

import (
	"bytes"
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

// The metadata group's snapshots (multiraft.Snapshotter): the driver
// takes one every so many entries and compacts the log behind it; a node
// behind the compacted log restores one. Its data (docs/format/cluster.md):
// version 1 (1 byte), a record count (uint32), then per record its key
// and value, each uint32 length ‖ bytes — every record of the broker's
// catalog (broker.CatalogPrefixes) and of the node registry.
const metaSnapshotVersion = 1

// SnapshotData returns the state as of the last entry applied (it runs on
// the group's worker, the only writer of these records).
func (m *metaMachine) SnapshotData() ([]byte, error) {
	kvs, err := m.b.DumpCatalog()
	if err != nil {
		return nil, err
	}
	err = m.st.Scan(nodePrefix(), func(k, v []byte) error {
		kvs = append(kvs, broker.KV{Key: bytes.Clone(k), Value: bytes.Clone(v)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return encodeMetaSnapshot(kvs), nil
}

// encodeMetaSnapshot encodes a snapshot's records.
func encodeMetaSnapshot(kvs []broker.KV) []byte {
	out := []byte{metaSnapshotVersion}
	out = binary.BigEndian.AppendUint32(out, uint32(len(kvs)))
	for _, kv := range kvs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(kv.Key)))
		out = append(out, kv.Key...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(kv.Value)))
		out = append(out, kv.Value...)
	}
	return out
}

// decodeMetaSnapshot splits a snapshot's data into the broker's records
// and the registry's.
func decodeMetaSnapshot(data []byte) (cat, reg []broker.KV, err error) {
	r := state.NewReader(data)
	if v := r.U8(); v != metaSnapshotVersion {
		return nil, nil, fmt.Errorf("metadata snapshot version %d, want %d", v, metaSnapshotVersion)
	}
	n := r.Count(8)
	for range n {
		kv := broker.KV{Key: bytes.Clone(r.Take(int(r.U32())))}
		kv.Value = bytes.Clone(r.Take(int(r.U32())))
		if kv.Value == nil {
			kv.Value = []byte{}
		}
		if bytes.HasPrefix(kv.Key, nodePrefix()) {
			reg = append(reg, kv)
		} else {
			cat = append(cat, kv)
		}
	}
	if err := r.Done(); err != nil {
		return nil, nil, err
	}
	return cat, reg, nil
}

// Restore makes this node's catalog, consumer state and registry the
// snapshot's, with the applied index its index, in one batch after the
// broker reconciled its topics and subscriptions.
func (m *metaMachine) Restore(snap *raftpb.Snapshot) error {
	index := snap.GetMetadata().GetIndex()
	if index <= m.applied {
		return nil
	}
	cat, reg, err := decodeMetaSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("metadata snapshot at %d: %w", index, err)
	}
	stamp := func(b *state.Batch) {
		b.DeletePrefix(nodePrefix())
		for _, kv := range reg {
			b.Set(kv.Key, kv.Value)
		}
		b.Set(appliedKey(), binary.BigEndian.AppendUint64(nil, index))
	}
	if err := m.b.RestoreCatalog(cat, stamp); err != nil {
		return fmt.Errorf("metadata snapshot at %d: %w", index, err)
	}
	m.applied = index
	if m.registryChanged != nil {
		m.registryChanged()
	}
	return nil
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
