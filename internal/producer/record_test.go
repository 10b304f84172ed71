package producer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	goldenfile "github.com/spoolmq/spool/internal/golden"
)

// Golden files of the producer core's records (testdata/
// format, docs/format/state.md): NAME.v1.bin the current encoding of a
// value, NAME.v0.json the same value as releases up to 7e44b4f stored it
// (json.Marshal of that release's snapshot struct, snapshotV0 here),
// NAME.bin a fixed layout. -update writes the golden files that do not
// exist yet and never rewrites one: the bytes of a record version never
// change. A test failing here means the encoding changed; stored data would
// then be misread, so add a version instead.
func golden(t *testing.T, name string, want []byte) []byte {
	return goldenfile.Read(t, filepath.Join("testdata", "format"), name, want)
}

var snapshotCases = []struct {
	name string
	v0   bool
	want producerSnapshot
}{
	{"producer-snapshot", true, producerSnapshot{end: 1234, producers: []snapshotProducer{
		{id: 7, epoch: 0, lastSeen: 1767225600000, batches: []snapshotBatch{{0, 4, 1200}, {5, 9, 1230}}},
		{id: 1 << 40, epoch: 3, lastSeen: 1767225601234, batches: []snapshotBatch{{math.MaxInt32 - 1, 1, 1232}}},
	}}},
	{"producer-snapshot-empty", true, producerSnapshot{end: 0}},
	{"producer-snapshot-full", false, producerSnapshot{end: math.MaxInt64, producers: []snapshotProducer{
		{id: 0, epoch: math.MaxInt16, lastSeen: -1, batches: []snapshotBatch{{0, 0, 1}, {1, 1, 2}, {2, 2, 3}, {3, 3, 4}, {4, math.MaxInt32, math.MaxInt64 - 1}}},
	}}},
}

// v0 is the snapshot as release 7e44b4f encoded it.
func (snap producerSnapshot) v0() []byte {
	w := snapshotV0{V: 1, End: snap.end}
	for _, p := range snap.producers {
		sp := snapshotProducerV0{ID: p.id, Epoch: p.epoch, LastSeen: p.lastSeen}
		for _, b := range p.batches {
			sp.Batches = append(sp.Batches, [3]int64{int64(b.first), int64(b.last), b.base})
		}
		w.Producers = append(w.Producers, sp)
	}
	b, _ := json.Marshal(w)
	return b
}

func TestFormatProducerSnapshotGolden(t *testing.T) {
	for _, c := range snapshotCases {
		enc := c.want.encode()
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%x\nwant (golden)\n%x", c.name, enc, v1)
		}
		got, err := decodeSnapshot(v1)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: decoded %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", c.want.v0())
		got, err = decodeSnapshot(v0)
		want := c.want
		if len(want.producers) == 0 {
			want.producers = nil
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s.v0: decoded %+v, %v; want %+v", c.name, got, err, want)
		}
		if again := got.v0(); !bytes.Equal(again, v0) {
			t.Errorf("%s.v0: re-encoded as version 0:\n%s\nwant\n%s", c.name, again, v0)
		}
	}
}

func TestFormatProducerSnapshotRefused(t *testing.T) {
	good := snapshotCases[0].want.encode()
	one := producerSnapshot{producers: []snapshotProducer{{id: 1, batches: []snapshotBatch{{0, 0, 0}}}}}.encode()
	for _, c := range []struct {
		name string
		v    []byte
		want string
	}{
		{"empty", nil, "empty record"},
		{"future", append([]byte{2}, good[1:]...), "unknown future version 2"},
		{"truncated", good[:len(good)-1], "truncated"},
		{"trailing", append(bytes.Clone(good), 0), "1 bytes after the snapshot"},
		{"count", func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[9:], 1<<30); return b }(), "1073741824 producers in"},
		{"no batches", func() []byte { b := bytes.Clone(one); b[13+18] = 0; return b[:13+19] }(), "with 0 batches"},
		{"six batches", func() []byte { b := bytes.Clone(one); b[13+18] = 6; return b }(), "with 6 batches"},
		{"order", append(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, one[13:]...), one[13:]...), "not in ascending order"},
		{"negative end", func() []byte { b := bytes.Clone(one); b[1] = 0x80; return b }(), "log end"},
		{"v0 version", []byte(`{"v":2,"end":1,"producers":null}`), "v 2"},
		{"v0 unknown field", []byte(`{"v":1,"end":1,"producers":null,"x":1}`), "unknown field"},
		{"v0 missing field", []byte(`{"v":1,"end":1}`), `field "producers" missing`},
		{"v0 garbage", []byte(`{garbage`), "invalid character"},
	} {
		if _, err := decodeSnapshot(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// The producer id high-water mark is a fixed layout: 8 bytes.
func TestFormatProducerIDsGolden(t *testing.T) {
	enc := binary.BigEndian.AppendUint64(nil, 123000)
	b := golden(t, "producer-ids.bin", enc)
	if next, err := decodeProducerIDs(b); err != nil || next != 123000 || !bytes.Equal(b, enc) {
		t.Fatalf("golden: %d %v (%x)", next, err, b)
	}
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{[]byte{1, 2, 3}, "3 bytes, not 8"},
		{append([]byte{2}, enc...), "unknown future version 2"},
		{binary.BigEndian.AppendUint64(nil, 1<<63), "out of range"},
	} {
		if _, err := decodeProducerIDs(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%x: %v, want %q", c.v, err, c.want)
		}
	}
}

func TestSnapshotKeys(t *testing.T) {
	k := snapshotKey(partKey{"54807c9c-f137-4cf8-96df-09913c503bfe", 258})
	if string(k) != "ps/54807c9c-f137-4cf8-96df-09913c503bfe\x00\x00\x00\x01\x02" {
		t.Fatalf("key %q", k)
	}
	if id, p, ok := snapshotKeyParts(k); !ok || id != "54807c9c-f137-4cf8-96df-09913c503bfe" || p != 258 {
		t.Fatalf("parts %q %d %v", id, p, ok)
	}
	for _, bad := range []string{"ps/", "ps/x\x01\x00\x00\x00\x01", "gcfg/x\x00\x00\x00\x00\x01"} {
		if _, _, ok := snapshotKeyParts([]byte(bad)); ok {
			t.Errorf("%q split", bad)
		}
	}
}
