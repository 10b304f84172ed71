package cluster

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/spoolmq/spool/internal/state"
)

// The node registry, kept by the metadata group: every node's addresses as
// it advertises them, and the ids removed from the cluster (never reused).
// Its entries are the metadata group's own changes, told from the
// broker's catalog changes by their first byte (at or above changeNodeBase;
// the broker's kinds are small numbers).

const (
	changeNodeBase   = 0x80
	changePutNode    = 0x80 // a node's addresses (added or changed)
	changeRemoveNode = 0x81 // a node removed, for good
)

// NodeInfo is a node as the registry holds it.
type NodeInfo struct {
	ID          uint64
	ClusterAddr string // raft traffic
	HTTPAddr    string // native API (empty: not advertised yet)
	KafkaAddr   string // Kafka protocol (empty: none, or not advertised yet)
	Removed     bool
}

func nodeKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(state.RaftKey(MetaGroup, 'n'), id)
}

func nodePrefix() []byte { return state.RaftKey(MetaGroup, 'n') }

// Registry records: version 1 ‖ cluster addr ‖ http addr ‖ kafka addr
// (each uint32 length ‖ bytes) ‖ removed (1 byte).
func encodeNode(n NodeInfo) []byte {
	out := []byte{1}
	for _, s := range []string{n.ClusterAddr, n.HTTPAddr, n.KafkaAddr} {
		out = append(binary.BigEndian.AppendUint32(out, uint32(len(s))), s...)
	}
	removed := byte(0)
	if n.Removed {
		removed = 1
	}
	return append(out, removed)
}

func decodeNode(id uint64, v []byte) (NodeInfo, error) {
	r := state.NewReader(v)
	if ver := r.U8(); ver != 1 && r.Err == nil {
		return NodeInfo{}, fmt.Errorf("cluster: node %d record version %d is not known to this build", id, ver)
	}
	n := NodeInfo{ID: id, ClusterAddr: r.Str(), HTTPAddr: r.Str(), KafkaAddr: r.Str()}
	switch r.U8() {
	case 0:
	case 1:
		n.Removed = true
	default:
		r.Fail("removed flag out of range")
	}
	if err := r.Done(); err != nil {
		return NodeInfo{}, fmt.Errorf("cluster: node %d record: %w", id, err)
	}
	return n, nil
}

// loadRegistry reads the registry from the state store, by id.
func loadRegistry(st *state.Store) ([]NodeInfo, error) {
	var out []NodeInfo
	prefix := nodePrefix()
	err := st.Scan(prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("cluster: node record key %s", state.KeyString(k))
		}
		n, err := decodeNode(binary.BigEndian.Uint64(k[len(prefix):]), v)
		if err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// A registry change: kind ‖ id (uint64) ‖ for put-node, the three
// addresses (uint32 length ‖ bytes each).
func encodeNodeChange(kind byte, n NodeInfo) []byte {
	out := binary.BigEndian.AppendUint64([]byte{kind}, n.ID)
	if kind == changePutNode {
		for _, s := range []string{n.ClusterAddr, n.HTTPAddr, n.KafkaAddr} {
			out = append(binary.BigEndian.AppendUint32(out, uint32(len(s))), s...)
		}
	}
	return out
}

func decodeNodeChange(data []byte) (kind byte, n NodeInfo, err error) {
	r := state.NewReader(data)
	kind = r.U8()
	n.ID = r.U64()
	switch kind {
	case changePutNode:
		n.ClusterAddr, n.HTTPAddr, n.KafkaAddr = r.Str(), r.Str(), r.Str()
	case changeRemoveNode:
	default:
		r.Fail("unknown registry change %#x", kind)
	}
	if n.ID == 0 {
		r.Fail("node id 0")
	}
	return kind, n, r.Done()
}
