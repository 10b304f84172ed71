package producer

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Fuzz targets of the producer table's records (DESIGN.md, "Fuzzing and
// the bad-input set"): arbitrary bytes never panic, and what decodes
// encodes again to the same value (version 1: the same bytes).

func FuzzDecodeSnapshot(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "format", "producer-snapshot*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range snapshotCases {
		f.Add(c.want.encode())
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		snap, err := decodeSnapshot(v)
		if err != nil {
			return
		}
		again := snap.encode()
		back, err := decodeSnapshot(again)
		if err != nil {
			t.Fatalf("%q decoded as %+v, re-encoded as %x, which does not decode: %v", v, snap, again, err)
		}
		if !reflect.DeepEqual(back, snap) {
			t.Fatalf("%q decoded as %+v, re-encoded as %+v", v, snap, back)
		}
		if v[0] == snapshotVersion && !bytes.Equal(again, v) {
			t.Fatalf("%x re-encoded as %x", v, again)
		}
		_ = snap.states()
	})
}

func FuzzDecodeProducerIDs(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint64(nil, 1000))
	f.Add(binary.BigEndian.AppendUint64(nil, 1<<63))
	f.Fuzz(func(t *testing.T, v []byte) {
		next, err := decodeProducerIDs(v)
		if err != nil {
			return
		}
		if again := binary.BigEndian.AppendUint64(nil, uint64(next)); !bytes.Equal(again, v) {
			t.Fatalf("%x decoded as %d, re-encoded as %x", v, next, again)
		}
	})
}
