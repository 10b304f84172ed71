package schemaserde

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// The headers are byte for byte those of franz-go's schema registry
// package, an independent implementation, and read back by it.
func TestHeaderMatchesFranzGo(t *testing.T) {
	var ch sr.ConfluentHeader
	for _, id := range []int{0, 1, 255, 256, 1 << 24, 1<<31 - 1, 1<<32 - 1} {
		want, _ := ch.AppendEncode([]byte("pre"), id, nil)
		if got := AppendHeader([]byte("pre"), id); !bytes.Equal(got, want) {
			t.Errorf("AppendHeader(%d) = %x, franz-go %x", id, got, want)
		}
		gotID, rest, err := ParseHeader(append(want[3:], 'x'))
		if err != nil || gotID != id || string(rest) != "x" {
			t.Errorf("ParseHeader(%x) = %d %q %v", want[3:], gotID, rest, err)
		}
	}
	for _, idx := range [][]int{{0}, {1}, {0, 0}, {1, 0}, {3, 2, 1}, {64}, {1000, 70000}, make([]int, MaxIndexes)} {
		want, _ := ch.AppendEncode(nil, 7, idx)
		got := AppendProtobufHeader(nil, 7, idx)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendProtobufHeader(%v) = %x, franz-go %x", idx, got, want)
		}
		id, gotIdx, payload, err := ParseProtobufHeader(append(got, 0xAA))
		if err != nil || id != 7 || !slices.Equal(gotIdx, idx) || !bytes.Equal(payload, []byte{0xAA}) {
			t.Errorf("ParseProtobufHeader(%x) = %d %v %x %v", got, id, gotIdx, payload, err)
		}
		_, rest, _ := ch.DecodeID(got)
		fIdx, _, err := ch.DecodeIndex(rest, 0)
		if err != nil || !slices.Equal(fIdx, idx) {
			t.Errorf("franz-go reads %x as %v %v", got, fIdx, err)
		}
	}
	// nil indexes are the first message: the single byte 0.
	if got := AppendProtobufHeader(nil, 7, nil); !bytes.Equal(got, []byte{0, 0, 0, 0, 7, 0}) {
		t.Errorf("nil indexes: %x", got)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		proto bool
	}{
		{"empty", nil, false},
		{"truncated id", []byte{0, 0, 0, 1}, false},
		{"magic byte", []byte{1, 0, 0, 0, 1, 'x'}, false},
		{"magic byte json", []byte(`{"a":1}`), false},
		{"proto truncated id", []byte{0, 0, 0}, true},
		{"proto magic byte", []byte{2, 0, 0, 0, 1, 0}, true},
		{"no indexes", []byte{0, 0, 0, 0, 1}, true},
		{"truncated indexes", []byte{0, 0, 0, 0, 1, 4, 2}, true},           // 2 indexes, one given
		{"truncated varint", []byte{0, 0, 0, 0, 1, 2, 0x80}, true},         // an unfinished varint
		{"too many indexes", []byte{0, 0, 0, 0, 1, 130, 1, 0, 0, 0}, true}, // 65
		{"negative count", []byte{0, 0, 0, 0, 1, 1, 0}, true},              // zigzag -1
		{"negative index", []byte{0, 0, 0, 0, 1, 2, 3}, true},              // [-2]
		{"huge count", append([]byte{0, 0, 0, 0, 1}, 0xfe, 0xff, 0xff, 0xff, 0x0f), true},
		{"overflow", append([]byte{0, 0, 0, 0, 1}, bytes.Repeat([]byte{0xff}, 11)...), true},
	} {
		var err error
		if tc.proto {
			_, _, _, err = ParseProtobufHeader(tc.b)
		} else {
			_, _, err = ParseHeader(tc.b)
		}
		if !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("%s: %x: err %v, want ErrInvalidHeader", tc.name, tc.b, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

func TestAppendHeaderPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"negative id":     func() { AppendHeader(nil, -1) },
		"id too large":    func() { AppendHeader(nil, 1<<32) },
		"negative index":  func() { AppendProtobufHeader(nil, 1, []int{1, -1}) },
		"too many":        func() { AppendProtobufHeader(nil, 1, make([]int, MaxIndexes+1)) },
		"index too large": func() { AppendProtobufHeader(nil, 1, []int{1 << 31}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// A header ParseProtobufHeader accepts is written by AppendProtobufHeader
// into one read back the same (varints are accepted in non-minimal
// spellings too, as other readers do).
func FuzzParseProtobufHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 4, 2, 0, 'x'})
	f.Add([]byte{0, 0, 0, 0, 1, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, idx, payload, err := ParseProtobufHeader(b)
		if err != nil {
			return
		}
		if len(idx) == 0 || len(idx) > MaxIndexes {
			t.Fatalf("%d indexes", len(idx))
		}
		out := append(AppendProtobufHeader(nil, id, idx), payload...)
		id2, idx2, payload2, err := ParseProtobufHeader(out)
		if err != nil || id2 != id || !slices.Equal(idx2, idx) || !bytes.Equal(payload2, payload) {
			t.Fatalf("%x read as %d %v %x, written back as %x, read as %d %v %x %v", b, id, idx, payload, out, id2, idx2, payload2, err)
		}
	})
}
