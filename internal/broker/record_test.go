package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"

	goldenfile "github.com/spoolmq/spool/internal/golden"
)

// Golden files of the broker's records (testdata/format, docs/format/
// state.md). NAME.v1.bin is the current encoding of a value, NAME.v0.json
// the same value as releases up to 7e44b4f stored it (the parked messages
// and two snapshots taken from server/testdata/prev-release-7e44b4f.tar.gz,
// the others written by json.Marshal of the structs of the time).
//
// -update writes the golden files that do not exist yet and never rewrites
// one: the bytes of a record version never change. A test failing here
// means the encoding changed; stored data would then be misread, so add a
// version instead (docs/format/state.md, "Changing a record").
func golden(t *testing.T, name string, want []byte) []byte {
	return goldenfile.Read(t, filepath.Join("testdata", "format"), name, want)
}

var snapshotCases = []struct {
	name string
	v0   bool
	want queue.Snapshot
}{
	{"snapshot-floor", true, queue.Snapshot{Floor: 2}},
	{"snapshot-leased", true, queue.Snapshot{Floor: 3, Counts: map[int64]queue.Count{3: {Deliveries: 1, FirstDeliveredAt: 1796592656275}}}},
	{"snapshot-counts", true, queue.Snapshot{Floor: 1000, Done: [][2]int64{{1002, 1005}, {1010, 1011}}, Counts: map[int64]queue.Count{
		1000: {Deliveries: 2, FirstDeliveredAt: 1735689600123, LastError: "timeout: <db> \"orders\" é\n"},
		1001: {Deliveries: 1, FirstDeliveredAt: 1735689600456},
		1006: {Deliveries: 4, FirstDeliveredAt: 1735689600789, LastError: "member left"},
	}}},
	{"snapshot-extremes", false, queue.Snapshot{Floor: math.MaxInt64 - 10, Done: [][2]int64{{math.MaxInt64 - 8, math.MaxInt64}},
		Counts: map[int64]queue.Count{math.MaxInt64 - 10: {Deliveries: math.MaxInt32 + 1, FirstDeliveredAt: -1, LastError: "\x00\xff"}}}},
}

var parkedCases = []struct {
	name string
	v0   bool
	want queue.Parked
}{
	{"parked-nacked", true, queue.Parked{Offset: 3, Due: 1796592970208, DeliveryCount: 2, FirstDeliveredAt: 1796592651164,
		LastError: "nacked by spool consume --nack"}},
	{"parked-far", true, queue.Parked{Offset: 1, Due: 2111952644938, KeyHash: 629957523660743873, HasKey: true}},
	{"parked-keyed", true, queue.Parked{Offset: 42, Due: 1767225600000, DeliveryCount: 3, FirstDeliveredAt: 1735689600000,
		LastError: "boom", KeyHash: math.MaxUint64, HasKey: true, ExpiresAt: 1767312000000}},
}

var haltCases = []struct {
	name string
	v0   bool
	want Halt
}{
	{"halt", true, Halt{Offset: 17, Error: "handler: <nil> map", Attempts: 5, Time: time.Date(2025, 5, 6, 7, 8, 9, 10203040, time.UTC),
		Member: "spool-cli-4b570513-4"}},
	{"halt-bare", false, Halt{Offset: 0, Attempts: 1, Time: time.Date(2025, 5, 6, 9, 8, 9, 0, time.FixedZone("", 2*3600))}},
}

// reencodeV0 checks that the version-0 structs hold every byte of a
// version-0 golden file: decoded and encoded again as the old releases did,
// it is the same.
func reencodeV0(t *testing.T, name string, b []byte, w any) {
	t.Helper()
	if err := json.Unmarshal(b, w); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	again, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("%s: re-encoded as version 0:\n%s\nwant\n%s", name, again, b)
	}
}

var snapKey = state.QueueKey("jobs", "workers", 1)

func TestFormatSnapshotGolden(t *testing.T) {
	for _, c := range snapshotCases {
		enc, err := appendSnapshot(nil, c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%x\nwant (golden)\n%x", c.name, enc, v1)
		}
		if again, _ := appendSnapshot([]byte("reused"), c.want); !bytes.Equal(again[6:], v1) {
			t.Errorf("%s: appended to a buffer: %x", c.name, again)
		}
		got, err := decodeSnapshot(snapKey, v1)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: version 1 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", nil)
		got, err = decodeSnapshot(snapKey, v0)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: version 0 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		reencodeV0(t, c.name, v0, &snapshotV0{})
	}
}

func TestFormatParkedGolden(t *testing.T) {
	key := state.ParkKey("jobs", "workers", 1796592970208, 0, 3)
	for _, c := range parkedCases {
		enc, err := appendParked(nil, c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%x\nwant (golden)\n%x", c.name, enc, v1)
		}
		got, err := decodeParked(key, v1)
		if err != nil || got != c.want {
			t.Errorf("%s: version 1 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", nil)
		got, err = decodeParked(key, v0)
		if err != nil || got != c.want {
			t.Errorf("%s: version 0 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		reencodeV0(t, c.name, v0, &parkedV0{})
	}
}

func TestFormatHaltGolden(t *testing.T) {
	key := state.HaltKey("orders", "audit", 2)
	for _, c := range haltCases {
		enc, err := encodeHalt(c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%q\nwant (golden)\n%q", c.name, enc, v1)
		}
		got, err := decodeHalt(key, v1)
		want := c.want
		want.Time = want.Time.UTC()
		if err != nil || got != want {
			t.Errorf("%s: version 1 decoded to %+v, %v; want %+v", c.name, got, err, want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", nil)
		got, err = decodeHalt(key, v0)
		if err != nil || got != want {
			t.Errorf("%s: version 0 decoded to %+v, %v; want %+v", c.name, got, err, want)
		}
		reencodeV0(t, c.name, v0, &haltV0{})
	}
}

func TestFormatParkIndexGolden(t *testing.T) {
	const due = 1796592970208
	enc := encodeParkIndex(due)
	if g := golden(t, "park-index.bin", enc); !bytes.Equal(enc, g) {
		t.Fatalf("encoded %x, golden %x", enc, g)
	}
	key := state.ParkIndexKey("jobs", "workers", 0, 3)
	if got, err := decodeParkIndex(key, enc); err != nil || got != due {
		t.Fatalf("decoded %d, %v", got, err)
	}
	_, err := decodeParkIndex(key, append([]byte{2}, enc...))
	var ve *state.VersionError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `park index record "x/jobs\x00workers\x00`) ||
		!strings.Contains(err.Error(), "record of an unknown future version 2; this server reads up to version 0") {
		t.Errorf("9-byte index entry: %v", err)
	}
	if _, err := decodeParkIndex(key, enc[:7]); err == nil || !strings.Contains(err.Error(), "7 bytes, not 8") {
		t.Errorf("7-byte index entry: %v", err)
	}
}

// TestFormatFutureVersion: records of a version this server does not know
// are refused with an error naming the record and both versions.
func TestFormatFutureVersion(t *testing.T) {
	snap, _ := appendSnapshot(nil, snapshotCases[2].want)
	parked, _ := appendParked(nil, parkedCases[2].want)
	halt, _ := encodeHalt(haltCases[0].want)
	_, snapErr := decodeSnapshot(snapKey, append([]byte{2}, snap[1:]...))
	_, parkedErr := decodeParked(snapKey, append([]byte{9}, parked[1:]...))
	_, haltErr := decodeHalt(snapKey, append([]byte{2}, halt[1:]...))
	for kind, err := range map[string]error{"queue snapshot": snapErr, "parked message": parkedErr, "halt": haltErr} {
		var ve *state.VersionError
		want := kind + ` record "q/jobs\x00workers\x00\x00\x00\x00\x01": record of an unknown future version`
		if !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; this server reads up to version 1") {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

// TestFormatFutureVersionAtOpen stores a queue snapshot and a halt of a
// version this server does not know in a real state store: the broker does
// not open, and says which record and why.
func TestFormatFutureVersionAtOpen(t *testing.T) {
	for _, c := range []struct {
		mode catalog.Mode
		key  []byte
		want string
	}{
		{catalog.ModeQueue, state.QueueKey("jobs", "s", 1),
			`broker: queue snapshot record "q/jobs\x00s\x00\x00\x00\x00\x01": record of an unknown future version 2; this server reads up to version 1`},
		{catalog.ModeStream, state.HaltKey("jobs", "s", 0),
			`broker: halt record "h/jobs\x00s\x00\x00\x00\x00\x00": record of an unknown future version 2; this server reads up to version 1`},
	} {
		e := newEnv(t)
		if _, err := e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.CreateSubscription("jobs", "s", catalog.SubConfig{Mode: c.mode}); err != nil {
			t.Fatal(err)
		}
		e.close()
		st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		b := st.NewBatch()
		b.Set(c.key, []byte{2, '{', '}'})
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		_, err = Open(Config{DataDir: e.dir, State: st, Clock: e.clk, Logger: quiet, MaintenanceInterval: time.Hour})
		var ve *state.VersionError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("open: %v\nwant %s", err, c.want)
		}
		st.Close()
	}
}

// TestFormatRedrivenMark: a redriven mark is an empty value; a value is a
// later version, refused.
func TestFormatRedrivenMark(t *testing.T) {
	if len(redrivenMark()) != 0 {
		t.Fatalf("mark %x", redrivenMark())
	}
	e := newEnv(t)
	b := e.st.NewBatch()
	b.Set(state.RedrivenKey("dlq.jobs.s", 4), redrivenMark())
	b.Set(state.RedrivenKey("dlq.jobs.s", 5), []byte{1, 0})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	for off, want := range map[int64]bool{3: false, 4: true} {
		if got, err := e.b.redriven("dlq.jobs.s", off); err != nil || got != want {
			t.Errorf("offset %d: redriven %v, %v; want %v", off, got, err, want)
		}
	}
	if _, err := e.b.redriven("dlq.jobs.s", 5); err == nil || !strings.Contains(err.Error(), `redriven mark record "r/dlq.jobs.s\x00\x00\x00\x00\x00\x00\x00\x00\x05": 2 bytes, not 0: record of an unknown future version 1; this server reads up to version 0`) {
		t.Errorf("mark with a value: %v", err)
	}
}

// TestFormatBadQueueRecords: every truncation of a version-1 record and
// records with bad counts, flags, order or trailing bytes are errors that
// name the record, never a panic or a misread.
func TestFormatBadQueueRecords(t *testing.T) {
	snap, _ := appendSnapshot(nil, snapshotCases[2].want)
	parked, _ := appendParked(nil, parkedCases[2].want)
	halt, _ := encodeHalt(haltCases[0].want)
	decoders := map[string]func([]byte) error{
		"queue snapshot": func(v []byte) error { _, err := decodeSnapshot(snapKey, v); return err },
		"parked message": func(v []byte) error { _, err := decodeParked(snapKey, v); return err },
		"halt":           func(v []byte) error { _, err := decodeHalt(snapKey, v); return err },
	}
	check := func(kind string, v []byte, want string) {
		t.Helper()
		err := decoders[kind](v)
		if err == nil || !strings.HasPrefix(err.Error(), kind+` record "q/jobs\x00workers\x00\x00\x00\x00\x01": `) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %q: %v; want an error with %q", kind, v, err, want)
		}
	}
	for kind, v := range map[string][]byte{"queue snapshot": snap, "parked message": parked, "halt": halt} {
		for n := range len(v) {
			check(kind, v[:n], "")
		}
		check(kind, append(append([]byte(nil), v...), 0), "after")
	}
	// A count larger than the record can hold is refused before anything
	// is allocated for it.
	huge := append([]byte{1}, make([]byte, 8)...)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff)
	check("queue snapshot", huge, "4294967295 items of at least 16 bytes in 0 bytes")
	// Counts in descending order (or twice) are not a record this server
	// wrote.
	swapped := append([]byte(nil), snap...)
	first := snapshotHeader - 4 + 2*snapshotRange + 4 // the first entry's offset
	copy(swapped[first:first+8], []byte{0, 0, 0, 0, 0, 0, 0x03, 0xe9})
	check("queue snapshot", swapped, "counts out of order: offset 1001 after 1001")
	flags := append([]byte(nil), parked...)
	flags[1+5*8] = 3
	check("parked message", flags, "unknown flags 0x03")
	check("queue snapshot", []byte(`{"Floor":"2"}`), "version-0 record")
	check("queue snapshot", []byte(`{"Floor":2,"Colour":1}`), `unknown field "Colour"`)
	check("parked message", []byte(`{"Offset":1}{}`), "bytes after")
	check("halt", []byte(`{"offset":1,"time":"yesterday"}`), "version-0 record")
	check("halt", append([]byte{1}, `{"offset":1}`...), `field "error" missing`)
	check("halt", append([]byte{1}, `{"offset":1,"error":"","attempts":1,"time":"2025-01-01T00:00:00Z","member":"","node":"n"}`...), `unknown field "node"`)
	for _, v := range [][]byte{nil, {0}, {0x7b}, {0x80}} {
		check("queue snapshot", v, "")
	}
}

// FuzzQueueRecords decodes arbitrary bytes as a snapshot and as a parked
// message: never a panic, and a version-1 record that decodes encodes to
// the same bytes (one encoding per value).
func FuzzQueueRecords(f *testing.F) {
	for _, c := range snapshotCases {
		b, _ := appendSnapshot(nil, c.want)
		f.Add(b)
	}
	for _, c := range parkedCases {
		b, _ := appendParked(nil, c.want)
		f.Add(b)
	}
	f.Add([]byte(`{"Floor":2,"Done":null,"Counts":{"3":{"Deliveries":1}}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		if snap, err := decodeSnapshot(snapKey, v); err == nil && v[0] == queueRecordVersion {
			if again, _ := appendSnapshot(nil, snap); !bytes.Equal(again, v) {
				t.Fatalf("snapshot %x re-encoded as %x", v, again)
			}
		}
		if p, err := decodeParked(snapKey, v); err == nil && v[0] == queueRecordVersion {
			if again, _ := appendParked(nil, p); !bytes.Equal(again, v) {
				t.Fatalf("parked %x re-encoded as %x", v, again)
			}
		}
	})
}

// benchSnapshot is a partition with n messages delivered and not finished
// (a tenth with an error text) and n/10 finished ranges above the floor.
func benchSnapshot(n int) queue.Snapshot {
	s := queue.Snapshot{Floor: 1_000_000, Counts: map[int64]queue.Count{}}
	for i := range n {
		c := queue.Count{Deliveries: 1 + i%3, FirstDeliveredAt: 1_767_225_600_000 + int64(i)}
		if i%10 == 0 {
			c.LastError = "handler: connection refused"
		}
		s.Counts[s.Floor+int64(i)*3] = c
		if i%10 == 0 {
			s.Done = append(s.Done, [2]int64{s.Floor + int64(i)*3 + 1, s.Floor + int64(i)*3 + 2})
		}
	}
	return s
}

// BenchmarkSnapshotEncode compares the snapshot record of version 1 with
// what version 0 did (json.Marshal of the snapshot), as persistSnapshots
// writes them: every 50 ms for each changed partition.
func BenchmarkSnapshotEncode(b *testing.B) {
	for _, n := range []int{0, 10, 1000} {
		snap := benchSnapshot(n)
		b.Run("json-v0/counts="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(snap); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("binary-v1/counts="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = appendSnapshot(buf[:0], snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshotDecode: the same, read back (at start-up).
func BenchmarkSnapshotDecode(b *testing.B) {
	snap := benchSnapshot(1000)
	v0, _ := json.Marshal(snap)
	v1, _ := appendSnapshot(nil, snap)
	for name, v := range map[string][]byte{"json-v0": v0, "binary-v1": v1} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeSnapshot(snapKey, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParkedEncode compares the parked-message records.
func BenchmarkParkedEncode(b *testing.B) {
	p := parkedCases[2].want
	b.Run("json-v0", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary-v1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendParked(nil, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
