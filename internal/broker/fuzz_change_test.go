package broker

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// Fuzz targets of the broker's halt records and of the metadata group's
// entries (DESIGN.md, "Fuzzing and the bad-input set"): arbitrary bytes
// never panic, and what decodes encodes again to an equivalent value.

func FuzzDecodeHalt(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "format", "halt*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range haltCases {
		b, err := encodeHalt(c.want)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"offset":1,"attempts":2,"time":"2025-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		h, err := decodeHalt(state.HaltKey("t", "s", 0), v)
		if err != nil {
			return
		}
		again, err := encodeHalt(h)
		if err != nil {
			t.Fatalf("%q decoded as %+v, which does not encode: %v", v, h, err)
		}
		back, err := decodeHalt(nil, again)
		if err != nil {
			t.Fatalf("%q re-encoded as %q, which does not decode: %v", v, again, err)
		}
		if !back.Time.Equal(h.Time) {
			t.Fatalf("%q: time %v came back as %v", v, h.Time, back.Time)
		}
		back.Time, h.Time = time.Time{}, time.Time{}
		if back != h {
			t.Fatalf("%q decoded as %+v, re-encoded as %+v", v, h, back)
		}
	})
}

// FuzzDecodeEntry decodes arbitrary bytes as an entry of the metadata
// group, as ApplyChange does (a catalog change, a consumer state write, a
// replicated space's change). What decodes encodes again; that encoding
// is a fixed point (encoded once more, the same bytes), and where no
// record inside was re-encoded it is the input itself.
func FuzzDecodeEntry(f *testing.F) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	topic := catalog.Topic{Name: "t", ID: "id", Created: created, Config: catalog.DefaultDefaults().Fill(catalog.TopicConfig{Partitions: 2})}
	replicated := topic
	replicated.Config.Replicas = 3
	replicated.Assignment = []catalog.PartitionAssignment{{Voters: []uint64{1, 2, 3}, Initial: []uint64{1, 2, 3}}, {Voters: []uint64{2, 3, 4}}}
	sub := catalog.Subscription{Topic: "t", Name: "s", Created: created, Config: catalog.SubConfig{Mode: catalog.ModeQueue,
		Queue: catalog.QueueConfig{Backoff: queue.Backoff{Delays: []time.Duration{time.Second}}}}}
	for _, c := range []change{
		{kind: changeCreateTopic, topic: topic},
		{kind: changeCreateTopic, topic: replicated},
		{kind: changeAddPartitions, topic: topic},
		{kind: changeTopicConfig, topic: topic},
		{kind: changeDeleteTopic, topic: topic},
		{kind: changeCreateSub, sub: sub, offsets: []int64{3, 4}},
		{kind: changeDeleteSub, sub: sub},
		{kind: changeAlterSub, sub: sub},
		{kind: changeReassign, topic: topic, reassign: []Reassignment{{Partition: 1, Voters: []uint64{3, 1, 2}}, {Partition: 0, Voters: []uint64{4}}}},
	} {
		data, err := encodeChange(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	halt, _ := encodeHalt(haltCases[0].want)
	f.Add(encodeSubWrite(&subWrite{topic: "t", sub: "s", created: created, term: 7, ops: []subOp{
		{key: state.OffsetKey("t", "s", 0), value: catalog.EncodeOffset(12)},
		{key: state.HaltKey("t", "s", 1), value: halt},
		{key: state.HaltKey("t", "s", 2)},
		{key: []byte("k"), value: []byte{}},
	}}))
	f.Add(encodeSpaceChange("auth", []byte("change")))
	f.Add(encodeSpaceChange("", nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		again, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("%x decoded as %+v, which does not encode: %v", data, e, err)
		}
		e2, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("%x re-encoded as %x, which does not decode: %v", data, again, err)
		}
		third, err := encodeEntry(e2)
		if err != nil || !bytes.Equal(third, again) {
			t.Fatalf("%x re-encoded as %x, then as %x (%v)", data, again, third, err)
		}
		if k := changeKind(data[0]); k != changeCreateTopic && k != changeAddPartitions && k != changeTopicConfig &&
			k != changeCreateSub && k != changeAlterSub && !bytes.Equal(again, data) {
			t.Fatalf("%x re-encoded as %x", data, again)
		}
	})
}

// encodeEntry encodes a decoded entry again.
func encodeEntry(e metaEntry) ([]byte, error) {
	switch {
	case e.space != nil:
		return encodeSpaceChange(e.space.name, e.space.body), nil
	case e.subWrite != nil:
		return encodeSubWrite(e.subWrite), nil
	}
	return encodeChange(e.change)
}
