package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"

	goldenfile "github.com/spoolmq/spool/internal/golden"
)

// Golden files of the catalog's records (testdata/format, docs/format/
// state.md). NAME.v1.bin is the current encoding of a value, NAME.v0.json
// the same value as releases up to 7e44b4f stored it (most of them taken
// from server/testdata/prev-release-7e44b4f.tar.gz, the others written by
// json.Marshal of the structs of the time).
//
// -update writes the golden files that do not exist yet and never rewrites
// one: the bytes of a record version never change. A test failing here
// means the encoding changed; stored data would then be misread, so add a
// version instead (docs/format/state.md, "Changing a record").
func golden(t *testing.T, name string, want []byte) []byte {
	return goldenfile.Read(t, filepath.Join("testdata", "format"), name, want)
}

var cet = time.FixedZone("", 3600)

var topicCases = []struct {
	name string
	v0   bool // has a version-0 golden file
	want Topic
}{
	{"topic-orders", true, Topic{Name: "orders", ID: "98626a6a-49f6-49c5-9806-9c62f025c733",
		Created: time.Date(2026, 12, 6, 21, 30, 43, 439530402, time.UTC),
		Config: TopicConfig{Partitions: 3, Retention: 168 * time.Hour, RetentionBytes: 64 << 20, DedupWindow: 10 * time.Minute,
			Durability: seglog.SyncAlways, MaxMessageBytes: 256 << 10}}},
	{"topic-metrics", true, Topic{Name: "metrics", ID: "54807c9c-f137-4cf8-96df-09913c503bfe",
		Created: time.Date(2026, 12, 6, 21, 30, 43, 503859213, time.UTC),
		Config: TopicConfig{Partitions: 1, MaxMessages: 1000, MaxBytes: 256 << 20, Discard: DiscardNew, DedupWindow: 30 * time.Second,
			MessageTTL: time.Hour, Durability: seglog.SyncInterval, MaxMessageBytes: 1 << 20}}},
	{"topic-jobs", true, Topic{Name: "jobs", ID: "d898356b-36fb-4023-aea2-c8ccc73701f6",
		Created: time.Date(2026, 12, 6, 21, 30, 43, 534820952, time.UTC),
		Config:  TopicConfig{Partitions: 2, DedupWindow: 2 * time.Minute, Durability: seglog.SyncNone, MaxMessageBytes: 1 << 20}}},
	{"topic-tasks", true, Topic{Name: "tasks", ID: "0f4e2a8c-5b1d-4c3e-9a7f-2d6b8e1c4a90",
		Created: time.Date(2025, 3, 4, 5, 6, 7, 891011121, cet),
		Config: TopicConfig{Partitions: 4, Retention: 36 * time.Hour, RetentionBytes: 1 << 30, DedupWindow: 90*time.Second + 500*time.Microsecond,
			MessageTTL: 1500 * time.Millisecond, Durability: seglog.SyncAlways, MaxMessageBytes: 2 << 20, WorkQueue: true}}},
}

var subCases = []struct {
	name string
	v0   bool
	want Subscription
}{
	{"sub-billing", true, Subscription{Topic: "orders", Name: "billing", Created: time.Date(2026, 12, 6, 21, 30, 44, 19262296, time.UTC),
		Config: SubConfig{Filter: "orders.eu.#", Start: Position{Kind: Latest}}}},
	{"sub-audit", true, Subscription{Topic: "orders", Name: "audit", Created: time.Date(2026, 12, 6, 21, 30, 44, 67456939, time.UTC),
		Config: SubConfig{Start: Position{Kind: AtTime, Time: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}}}},
	{"sub-replay", true, Subscription{Topic: "orders", Name: "replay", Created: time.Date(2026, 12, 6, 21, 30, 44, 100200939, time.UTC),
		Config: SubConfig{Start: Position{Kind: AtOffset, Offset: 1}}}},
	{"sub-workers", true, Subscription{Topic: "jobs", Name: "workers", Created: time.Date(2026, 12, 6, 21, 30, 44, 513081522, time.UTC),
		Config: SubConfig{Mode: ModeQueue, Queue: QueueConfig{AckTimeout: 45 * time.Second, MaxDeliveries: 3,
			Backoff:  queue.Backoff{Jitter: queue.JitterEqual, Delays: []time.Duration{2 * time.Second, 10 * time.Minute}},
			Ordering: queue.OrderKey, OnExpired: queue.ExpireDrop, MaxInFlight: 100, RateLimit: 50, RateBurst: 5}}}},
	{"sub-retry", true, Subscription{Topic: "jobs", Name: "retry", Created: time.Date(2026, 12, 6, 21, 30, 44, 682178042, time.UTC),
		Config: SubConfig{Mode: ModeQueue, Queue: QueueConfig{MaxDeliveries: 1,
			Backoff:         queue.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Multiplier: 3, Jitter: queue.JitterNone},
			DeadLetterTopic: "jobs-dead"}}}},
	{"sub-tasks-audit", true, Subscription{Topic: "tasks", Name: "audit", Created: time.Date(2025, 3, 4, 5, 6, 8, 0, cet),
		Config: SubConfig{Filter: "tasks.*.done", Start: Position{Kind: Latest}, OnFailure: FailStop, Queue: QueueConfig{MaxDeliveries: 7,
			Backoff:         queue.Backoff{Initial: 100 * time.Millisecond, Max: time.Minute, Multiplier: 1.5, Jitter: queue.JitterEqual},
			DeadLetterTopic: "tasks-failed"}}}},
	{"sub-dead-letter", false, Subscription{Topic: "tasks", Name: "fail-over", Created: time.Date(2025, 3, 4, 5, 6, 9, 1, time.UTC),
		Config: SubConfig{OnFailure: FailDeadLetter, Start: Position{Kind: AtTime, Time: time.Date(2025, 1, 2, 3, 4, 5, 6, cet)},
			Queue: QueueConfig{Backoff: queue.Backoff{Jitter: queue.JitterFull}}}}},
	{"sub-queue-rate", false, Subscription{Topic: "tasks", Name: "slow", Created: time.Date(2025, 3, 4, 5, 6, 10, 0, time.UTC),
		Config: SubConfig{Mode: ModeQueue, Filter: "tasks.#", Start: Position{Kind: AtOffset, Offset: 1 << 40},
			Queue: QueueConfig{AckTimeout: 1500 * time.Microsecond, RateLimit: 0.25, RateBurst: 1, OnExpired: queue.ExpireDeadLetter,
				Backoff: queue.Backoff{Delays: []time.Duration{0, time.Nanosecond, 36 * time.Hour}}}}}},
}

// sameTopic compares topics, times by instant.
func sameTopic(a, b Topic) bool {
	a.Created, b.Created = a.Created.UTC(), b.Created.UTC()
	return reflect.DeepEqual(a, b)
}

func sameSub(a, b Subscription) bool {
	a.Created, b.Created = a.Created.UTC(), b.Created.UTC()
	a.Config.Start.Time, b.Config.Start.Time = a.Config.Start.Time.UTC(), b.Config.Start.Time.UTC()
	return reflect.DeepEqual(a, b)
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

func TestFormatTopicGolden(t *testing.T) {
	for _, c := range topicCases {
		enc, err := encodeTopic(c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%q\nwant (golden)\n%q", c.name, enc, v1)
		}
		got, err := decodeTopic(state.TopicKey(c.want.Name), v1)
		if err != nil || !sameTopic(got, c.want) {
			t.Errorf("%s: version 1 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", nil)
		got, err = decodeTopic(state.TopicKey(c.want.Name), v0)
		if err != nil || !sameTopic(got, c.want) {
			t.Errorf("%s: version 0 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if again, _ := encodeTopic(got); !bytes.Equal(again, v1) {
			t.Errorf("%s: version 0 re-encoded as\n%q\nwant\n%q", c.name, again, v1)
		}
		reencodeV0(t, c.name, v0, &topicV0{})
	}
}

func TestFormatSubGolden(t *testing.T) {
	for _, c := range subCases {
		enc, err := encodeSub(c.want)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%q\nwant (golden)\n%q", c.name, enc, v1)
		}
		key := state.SubKey(c.want.Topic, c.want.Name)
		got, err := decodeSub(key, v1)
		if err != nil || !sameSub(got, c.want) {
			t.Errorf("%s: version 1 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if !c.v0 {
			continue
		}
		v0 := golden(t, c.name+".v0.json", nil)
		got, err = decodeSub(key, v0)
		if err != nil || !sameSub(got, c.want) {
			t.Errorf("%s: version 0 decoded to %+v, %v; want %+v", c.name, got, err, c.want)
		}
		if again, _ := encodeSub(got); !bytes.Equal(again, v1) {
			t.Errorf("%s: version 0 re-encoded as\n%q\nwant\n%q", c.name, again, v1)
		}
		reencodeV0(t, c.name, v0, &subV0{})
	}
}

func TestFormatOffsetGolden(t *testing.T) {
	const off = 1<<40 + 258
	enc := EncodeOffset(off)
	if g := golden(t, "offset.bin", enc); !bytes.Equal(enc, g) {
		t.Fatalf("encoded %x, golden %x", enc, g)
	}
	key := state.OffsetKey("orders", "billing", 2)
	if got, err := DecodeOffset(key, enc); err != nil || got != off {
		t.Fatalf("decoded %d, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {1}, append(EncodeOffset(off), 0)} {
		_, err := DecodeOffset(key, bad)
		var re *state.RecordError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), `"o/orders\x00billing\x00\x00\x00\x00\x02"`) {
			t.Errorf("%x: %v; want an error naming the key", bad, err)
		}
	}
}

// TestFormatFutureVersion stores records of a version this server does not
// know in a real state store: loading the catalog fails, naming the record
// and both versions.
func TestFormatFutureVersion(t *testing.T) {
	topic, _ := encodeTopic(topicCases[0].want)
	sub, _ := encodeSub(subCases[0].want)
	for _, c := range []struct {
		key, value []byte
		want       string
	}{
		{state.TopicKey("orders"), append([]byte{4}, topic[1:]...),
			`catalog: topic record "t/orders": record of an unknown future version 4; this server reads up to version 3`},
		{state.SubKey("orders", "billing"), append([]byte{0x7a}, sub[1:]...),
			`catalog: subscription record "s/orders\x00billing": record of an unknown future version 122; this server reads up to version 2`},
		{state.SubKey("orders", "billing"), append([]byte{0}, sub[1:]...),
			`catalog: subscription record "s/orders\x00billing": record of unknown version byte 0x00`},
		{state.TopicKey("orders"), append([]byte{0xff}, topic[1:]...),
			`catalog: topic record "t/orders": record of an unknown future version 255; this server reads up to version 3`},
	} {
		st := openStore(t, t.TempDir())
		b := st.NewBatch()
		b.Set(c.key, c.value)
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		_, err := Load(st)
		var ve *state.VersionError
		if !errors.As(err, &ve) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("load with %q: %v\nwant %s", c.value[:1], err, c.want)
		}
		st.Close()
	}
}

// TestFormatBadRecords: damaged records are errors that name the record,
// never a panic or a misread.
func TestFormatBadRecords(t *testing.T) {
	topic, _ := encodeTopic(topicCases[1].want)
	sub, _ := encodeSub(subCases[3].want)
	v1 := func(b []byte, old, new string) []byte {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%q not in %q", old, b)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	for _, c := range []struct {
		name       string
		topic, sub []byte
		want       string
	}{
		{"empty", []byte{}, []byte{}, "empty record"},
		{"truncated", topic[:len(topic)/2], sub[:len(sub)/2], "unexpected EOF"},
		{"trailing", append(append([]byte(nil), topic...), ' ', '{', '}'), append(append([]byte(nil), sub...), '1'), "bytes after"},
		{"unknown field", v1(topic, `"name":`, `"colour":"red","name":`), v1(sub, `"name":`, `"colour":"red","name":`), `unknown field "colour"`},
		{"unknown enum", v1(topic, `"discard":"new"`, `"discard":"newest"`), v1(sub, `"ordering":"key"`, `"ordering":"fifo"`), "unknown"},
		{"bad duration", v1(topic, `"dedup_window":"30s"`, `"dedup_window":"30 seconds"`), v1(sub, `"ack_timeout":"45s"`, `"ack_timeout":45000000000`), "duration"},
		{"missing field", v1(topic, `,"work_queue":false`, ``), v1(sub, `,"rate_burst":5`, ``), "missing"},
		{"version 0 enum", []byte(`{"name":"t","id":"x","config":{"partitions":1,"discard":2,"dedup_window":1,"durability":0,"max_message_bytes":1},"created":"2025-01-01T00:00:00Z"}`),
			[]byte(`{"topic":"t","name":"s","config":{"mode":0,"start":{"kind":4}},"created":"2025-01-01T00:00:00Z"}`), "unknown"},
		{"version 0 types", []byte(`{"name":"t","config":{"partitions":"1"}}`), []byte(`{"topic":"t","config":{"mode":"queue"}}`), "version-0 record"},
		{"version 0 garbage", []byte(`{{`), []byte(`{`), "version-0 record"},
	} {
		_, err := decodeTopic(state.TopicKey("t"), c.topic)
		if err == nil || !strings.HasPrefix(err.Error(), `topic record "t/t": `) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: topic: %v; want %q", c.name, err, c.want)
		}
		_, err = decodeSub(state.SubKey("t", "s"), c.sub)
		if err == nil || !strings.HasPrefix(err.Error(), `subscription record "s/t\x00s": `) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: subscription: %v; want %q", c.name, err, c.want)
		}
	}
	if _, err := encodeTopic(Topic{Name: "t", Config: TopicConfig{Discard: 7}}); err == nil {
		t.Error("a topic with discard policy 7 was encoded")
	}
	if _, err := encodeSub(Subscription{Name: "s", Config: SubConfig{Queue: QueueConfig{Backoff: queue.Backoff{Jitter: 9}}}}); err == nil {
		t.Error("a subscription with jitter 9 was encoded")
	}
	if _, err := encodeSub(Subscription{Name: "s", Config: SubConfig{OnFailure: "retry"}}); err == nil {
		t.Error("a subscription with failure action retry was encoded")
	}
}

// TestFormatEveryField sets every field of a topic and a subscription and
// checks that each survives a round trip: a field added to the in-memory
// structs but not to the record fails here.
func TestFormatEveryField(t *testing.T) {
	var topic Topic
	fill(t, reflect.ValueOf(&topic).Elem(), "Topic")
	topic.Config.Partitions = int32(len(topic.Assignment)) // one assignment per partition
	enc, err := encodeTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeTopic(state.TopicKey(topic.Name), enc); err != nil || !sameTopic(got, topic) {
		t.Errorf("topic with every field set came back as %+v, %v; want %+v", got, err, topic)
	}
	var sub Subscription
	fill(t, reflect.ValueOf(&sub).Elem(), "Subscription")
	if enc, err = encodeSub(sub); err != nil {
		t.Fatal(err)
	}
	if got, err := decodeSub(state.SubKey(sub.Topic, sub.Name), enc); err != nil || !sameSub(got, sub) {
		t.Errorf("subscription with every field set came back as %+v, %v; want %+v", got, err, sub)
	}
}

// fill sets every field under v to a value other than its zero value (enum
// values to their second constant).
func fill(t *testing.T, v reflect.Value, path string) {
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
		return
	case *time.Duration:
		*x = 90*time.Minute + time.Nanosecond
		return
	case *FailureAction:
		*x = FailStop
		return
	case *string:
		if strings.HasSuffix(path, ".ProcessedKey") {
			*x = "header:x-" + path
			return
		}
	case *[]uint64: // node ids: distinct
		*x = []uint64{2, 1}
		return
	case *map[string]string:
		*x = map[string]string{"k1-" + path: "v1", "k2": "v2"}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), path+"[]")
		}
	case reflect.String:
		v.SetString("s-" + path)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Float64:
		v.SetFloat(1.25)
	case reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("%s: cannot fill a %s", path, v.Type())
	}
}

// TestFormatTopicV2Golden: a cluster's topic with a replication factor and
// its partitions' replicas is a version-2 record; one without (a single
// node's, an older cluster's) stays version 1, as the goldens above.
func TestFormatTopicV2Golden(t *testing.T) {
	want := Topic{Name: "payments", ID: "6b1d0c1e-2f3a-4b5c-8d9e-0a1b2c3d4e5f",
		Created: time.Date(2026, 12, 7, 12, 0, 0, 123456789, time.UTC),
		Config: TopicConfig{Partitions: 3, DedupWindow: 2 * time.Minute, Durability: seglog.SyncAlways, MaxMessageBytes: 1 << 20,
			Replicas: 3},
		Assignment: []PartitionAssignment{
			{Voters: []uint64{2, 3, 4}, Initial: []uint64{2, 3, 4}},
			{Voters: []uint64{3, 4, 5}, Initial: []uint64{3, 4, 1}},
			{}, // a partition without replicas recorded
		}}
	enc, err := encodeTopic(want)
	if err != nil {
		t.Fatal(err)
	}
	g := golden(t, "topic-payments.v2.bin", enc)
	if !bytes.Equal(enc, g) {
		t.Errorf("encoded\n%q\nwant (golden)\n%q", enc, g)
	}
	got, err := decodeTopic(state.TopicKey(want.Name), g)
	if err != nil || !sameTopic(got, want) {
		t.Errorf("decoded to %+v, %v; want %+v", got, err, want)
	}
	if old, _ := encodeTopic(topicCases[0].want); old[0] != 1 {
		t.Errorf("a topic without replicas encoded as version %d, want 1", old[0])
	}
	for name, bad := range map[string]Topic{
		"count":     {Config: TopicConfig{Partitions: 2, Replicas: 1}, Assignment: []PartitionAssignment{{Voters: []uint64{1}}}},
		"duplicate": {Config: TopicConfig{Partitions: 1, Replicas: 3}, Assignment: []PartitionAssignment{{Voters: []uint64{1, 2, 1}}}},
		"node 0":    {Config: TopicConfig{Partitions: 1, Replicas: 1}, Assignment: []PartitionAssignment{{Initial: []uint64{0}}}},
		"factor":    {Config: TopicConfig{Partitions: 1, Replicas: 7}},
	} {
		if _, err := encodeTopic(bad); err == nil {
			t.Errorf("%s: encoded %+v", name, bad)
		}
	}
	if _, err := decodeTopic(state.TopicKey("t"), bytes.Replace(g, []byte(`[3,4,5]`), []byte(`[3,3,5]`), 1)); err == nil {
		t.Error("a record with a node listed twice decoded")
	}
}

// TestFormatTopicV3Golden: a topic bound to a schema subject, or with a
// catalog description, is a version-3 record (a single node's too).
func TestFormatTopicV3Golden(t *testing.T) {
	want := Topic{Name: "orders", ID: "0b6f3d1e-2f3a-4b5c-8d9e-0a1b2c3d4e5f",
		Created: time.Date(2026, 12, 7, 15, 0, 0, 5, time.UTC),
		Config: TopicConfig{Partitions: 2, DedupWindow: 2 * time.Minute, Durability: seglog.SyncAlways, MaxMessageBytes: 1 << 20,
			SchemaSubject: "orders-value", SchemaMode: SchemaDeadLetter, Owner: "team-orders",
			Description: "An order was placed.", Labels: map[string]string{"domain": "sales", "pii": "no"}}}
	enc, err := encodeTopic(want)
	if err != nil {
		t.Fatal(err)
	}
	g := golden(t, "topic-orders.v3.bin", enc)
	if !bytes.Equal(enc, g) {
		t.Errorf("encoded\n%q\nwant (golden)\n%q", enc, g)
	}
	got, err := decodeTopic(state.TopicKey(want.Name), g)
	if err != nil || !sameTopic(got, want) {
		t.Errorf("decoded to %+v, %v; want %+v", got, err, want)
	}
	for name, bad := range map[string]TopicConfig{
		"mode":   {Partitions: 1, SchemaSubject: "s", SchemaMode: 7},
		"labels": {Partitions: 1, Labels: map[string]string{"": "x"}},
		"owner":  {Partitions: 1, Owner: strings.Repeat("o", MaxOwnerBytes+1)},
	} {
		if _, err := encodeTopic(Topic{Name: "t", Config: bad}); err == nil {
			t.Errorf("%s: encoded %+v", name, bad)
		}
	}
	if _, err := decodeTopic(state.TopicKey("t"), bytes.Replace(g, []byte(`"dead-letter"`), []byte(`"drop"`), 1)); err == nil {
		t.Error("a record with an unknown schema mode decoded")
	}
}

// TestFormatSubV2Golden: a queue subscription with a processed-key ledger
// is a version-2 record; one without stays version 1, as the goldens
// above.
func TestFormatSubV2Golden(t *testing.T) {
	want := Subscription{Topic: "payments", Name: "charge", Created: time.Date(2026, 12, 8, 1, 0, 0, 42, time.UTC),
		Config: SubConfig{Mode: ModeQueue, Start: Position{Kind: Earliest},
			Queue: QueueConfig{MaxDeliveries: 3, ProcessedKey: "header:order-id", ProcessedTTL: 48 * time.Hour}}}
	enc, err := encodeSub(want)
	if err != nil {
		t.Fatal(err)
	}
	g := golden(t, "sub-charge.v2.bin", enc)
	if !bytes.Equal(enc, g) {
		t.Errorf("encoded\n%q\nwant (golden)\n%q", enc, g)
	}
	got, err := decodeSub(state.SubKey(want.Topic, want.Name), g)
	if err != nil || !sameSub(got, want) {
		t.Errorf("decoded to %+v, %v; want %+v", got, err, want)
	}
	ttlOnly := want
	ttlOnly.Config.Queue.ProcessedKey = ""
	if enc, err := encodeSub(ttlOnly); err != nil || enc[0] != 2 || !bytes.Contains(enc, []byte(`"processed_key":"off"`)) {
		t.Errorf("a ledger TTL without a key encoded as %q, %v", enc, err)
	} else if got, err := decodeSub(state.SubKey("t", "s"), enc); err != nil || got.Config.Queue.ProcessedKey != "" {
		t.Errorf("processed key off decoded as %q, %v", got.Config.Queue.ProcessedKey, err)
	}
	if old, _ := encodeSub(subCases[0].want); old[0] != 1 {
		t.Errorf("a subscription without a ledger encoded as version %d, want 1", old[0])
	}
	for _, bad := range []string{`"processed_key":"name"`, `"processed_key":"header:"`} {
		if _, err := decodeSub(state.SubKey("t", "s"), bytes.Replace(g, []byte(`"processed_key":"header:order-id"`), []byte(bad), 1)); err == nil {
			t.Errorf("a record with %s decoded", bad)
		}
	}
	if _, err := encodeSub(Subscription{Name: "s", Config: SubConfig{Queue: QueueConfig{ProcessedKey: "value"}}}); err == nil {
		t.Error("a subscription with processed key \"value\" was encoded")
	}
}

func TestValidateProcessedKey(t *testing.T) {
	for _, c := range []struct {
		cfg SubConfig
		ok  bool
	}{
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "id"}}, true},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "key", ProcessedTTL: time.Hour}}, true},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "header:x"}}, true},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "header:"}}, false},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "ids"}}, false},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "id", ProcessedTTL: -time.Second}}, false},
		{SubConfig{Mode: ModeQueue, Queue: QueueConfig{ProcessedKey: "id", ProcessedTTL: MaxProcessedTTL + 1}}, false},
		{SubConfig{Mode: ModeStream, Queue: QueueConfig{ProcessedKey: "id"}}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok %v", c.cfg.Queue, err, c.ok)
		}
	}
}
