package cluster

import (
	"bytes"
	"testing"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/state"
)

// Fuzz targets of the cluster's records (DESIGN.md, "Fuzzing and the
// bad-input set"): arbitrary bytes never panic, and what decodes encodes
// again to the same bytes.

// FuzzDecodeMetaSnapshot decodes arbitrary bytes as the metadata group's
// snapshot data: what decodes holds the same records, split into the
// catalog's and the registry's, and encodes again as them.
func FuzzDecodeMetaSnapshot(f *testing.F) {
	off := catalog.EncodeOffset(7)
	f.Add(encodeMetaSnapshot(nil))
	f.Add(encodeMetaSnapshot([]broker.KV{
		{Key: state.TopicKey("orders"), Value: []byte{1, '{', '}'}},
		{Key: state.OffsetKey("orders", "billing", 0), Value: off},
		{Key: nodeKey(1), Value: encodeNode(NodeInfo{ID: 1, ClusterAddr: "a:1", HTTPAddr: "a:2", KafkaAddr: "a:3"})},
		{Key: nodeKey(2), Value: encodeNode(NodeInfo{ID: 2, Removed: true})},
		{Key: []byte{}, Value: []byte{}},
	}))
	f.Add([]byte{2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, reg, err := decodeMetaSnapshot(data)
		if err != nil {
			return
		}
		for _, kv := range reg {
			if !bytes.HasPrefix(kv.Key, nodePrefix()) {
				t.Fatalf("registry record %q", kv.Key)
			}
		}
		again := encodeMetaSnapshot(append(append([]broker.KV{}, cat...), reg...))
		cat2, reg2, err := decodeMetaSnapshot(again)
		if err != nil {
			t.Fatalf("%x re-encoded as %x, which does not decode: %v", data, again, err)
		}
		if !sameKVs(cat, cat2) || !sameKVs(reg, reg2) {
			t.Fatalf("%x: records changed in a round trip", data)
		}
		if len(cat) == 0 || len(reg) == 0 {
			// One kind only: the order is the input's.
			if !bytes.Equal(again, data) {
				t.Fatalf("%x re-encoded as %x", data, again)
			}
		}
	})
}

func sameKVs(a, b []broker.KV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Key, b[i].Key) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// FuzzDecodeNode decodes arbitrary bytes as a registry record and as a
// registry change (an entry of the metadata group).
func FuzzDecodeNode(f *testing.F) {
	for _, n := range []NodeInfo{{ID: 1, ClusterAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080", KafkaAddr: "10.0.0.1:9092"}, {ID: 9, Removed: true}} {
		f.Add(encodeNode(n))
		f.Add(encodeNodeChange(changePutNode, n))
		f.Add(encodeNodeChange(changeRemoveNode, n))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if n, err := decodeNode(3, v); err == nil {
			if again := encodeNode(n); !bytes.Equal(again, v) {
				t.Fatalf("node record %x decoded as %+v, re-encoded as %x", v, n, again)
			}
		}
		if kind, n, err := decodeNodeChange(v); err == nil {
			if again := encodeNodeChange(kind, n); !bytes.Equal(again, v) {
				t.Fatalf("registry change %x decoded as %d %+v, re-encoded as %x", v, kind, n, again)
			}
		}
	})
}
