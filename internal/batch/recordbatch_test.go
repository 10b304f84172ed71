package batch

import (
	"bytes"
	"math"
	"testing"

	"github.com/spoolmq/spool/recordbatch"
)

// The public builder the SDK's producer uses (package recordbatch) makes
// exactly the bytes Encode makes for the same records, and they pass every
// check Validate runs on a produced batch; its partitioner is murmur2's.
func TestPublicBuilderMatchesEncode(t *testing.T) {
	type rec struct {
		ts         int64
		key, value []byte
		headers    []recordbatch.Header
	}
	cases := []struct {
		name           string
		base           int64
		pid            int64
		epoch          int16
		seq            int32
		recs           []rec
		wantNullFields bool
	}{
		{"one", 1767225600000, -1, -1, -1, []rec{{1767225600000, nil, []byte("v"), nil}}, false},
		{"broker time", 0, 7, 0, 0, []rec{{0, []byte("k"), []byte("value"), nil}, {0, nil, nil, nil}}, false},
		{"headers and deltas", 1767225600000, 1 << 40, 3, math.MaxInt32 - 1, []rec{
			{1767225600000, []byte("key"), bytes.Repeat([]byte("x"), 300), []recordbatch.Header{{Key: "spool.subject", Value: []byte("a.b")}, {Key: "h", Value: nil}}},
			{1767225599000, nil, []byte("earlier"), nil},
			{1767225700000, []byte("k2"), make([]byte, 20000), []recordbatch.Header{{Key: "", Value: []byte("v")}}},
		}, false},
	}
	for _, c := range cases {
		var b recordbatch.Builder
		b.Reset(c.base)
		recs := make([]Record, len(c.recs))
		for i, r := range c.recs {
			b.Add(r.ts, r.key, r.value, r.headers)
			hs := make([]RecordHeader, len(r.headers))
			for j, h := range r.headers {
				hs[j] = RecordHeader{Key: h.Key, Value: nilIfEmpty(h.Value)}
			}
			if len(hs) == 0 {
				hs = nil
			}
			recs[i] = Record{TimestampDelta: r.ts - c.base, Key: nilIfEmpty(r.key), Value: nilIfEmpty(r.value), Headers: hs}
		}
		if b.Count() != len(c.recs) {
			t.Fatalf("%s: count %d", c.name, b.Count())
		}
		got := b.Finish(c.pid, c.epoch, c.seq)
		// A builder given back a used buffer builds the same bytes in it.
		var again recordbatch.Builder
		again.ResetBuffer(bytes.Repeat([]byte{0xee}, 1<<16), c.base)
		for _, r := range c.recs {
			again.Add(r.ts, r.key, r.value, r.headers)
		}
		if b2 := again.Finish(c.pid, c.epoch, c.seq); !bytes.Equal(b2, got) {
			t.Errorf("%s: built in a used buffer\n%x\nfresh\n%x", c.name, b2, got)
		}
		want, err := Encode(nil, Header{BaseTimestamp: c.base, ProducerID: c.pid, ProducerEpoch: c.epoch, BaseSequence: c.seq}, recs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: builder\n%x\nEncode\n%x", c.name, got, want)
		}
		h, err := Validate(got, DefaultLimits())
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if int(h.NumRecords) != len(c.recs) || h.ProducerID != c.pid || h.BaseSequence != c.seq {
			t.Errorf("%s: header %+v", c.name, h)
		}
		if n := recordbatch.RecordSize(c.recs[0].ts-c.base, 0, c.recs[0].key, c.recs[0].value, c.recs[0].headers); n <= 0 {
			t.Errorf("%s: record size %d", c.name, n)
		}
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
