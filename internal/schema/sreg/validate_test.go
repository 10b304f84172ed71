package sreg

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// order is avroV1's Go form.
type order struct {
	ID   int64  `avro:"id"`
	Item string `avro:"item"`
}

// wire returns payload in the registry's wire format for schema id.
func wire(id int, payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), payload...)
}

func (e *env) avroOrder(t *testing.T, id int64, item string) []byte {
	t.Helper()
	s, err := avro.Parse(avroV1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(&order{ID: id, Item: item})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) bind(t *testing.T, topic, subject string, mode catalog.SchemaMode) {
	t.Helper()
	e.b.SetSchemaValidator(e.reg)
	cfg := catalog.TopicConfig{Partitions: 1, Durability: catalog.DurabilityDefault, MaxMessageBytes: 1 << 20,
		SchemaSubject: subject, SchemaMode: mode}
	if _, err := e.b.CreateTopic(topic, cfg); err != nil {
		t.Fatal(err)
	}
}

// values reads every message value of a topic.
func (e *env) read(t *testing.T, topic string) []broker.Delivered {
	t.Helper()
	r, err := e.b.ReadTopic(broker.ReadRequest{Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	var out []broker.Delivered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		rb, err := r.Next(ctx)
		if err != nil {
			break
		}
		out = append(out, rb.Messages...)
		if len(rb.Messages) == 0 {
			break
		}
	}
	return out
}

func header(d broker.Delivered, k string) string {
	for _, h := range d.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func TestValidateOnPublishReject(t *testing.T) {
	e := newEnv(t)
	id, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	otherID, err := e.reg.Register("other", SchemaInput{Type: "AVRO", Text: `"string"`}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.bind(t, "orders", "orders-value", catalog.SchemaReject)
	good := wire(id, e.avroOrder(t, 7, "book"))
	if _, err := e.b.Publish("orders", []broker.Message{{Value: good, Partition: -1}}); err != nil {
		t.Fatalf("valid message: %v", err)
	}
	// The payload alone, its schema named by header.
	hdr := []batch.RecordHeader{{Key: broker.HeaderSchemaID, Value: []byte(strconv.Itoa(id))}}
	if _, err := e.b.Publish("orders", []broker.Message{{Value: e.avroOrder(t, 8, "pen"), Headers: hdr, Partition: -1}}); err != nil {
		t.Fatalf("valid message named by header: %v", err)
	}
	for name, c := range map[string]struct {
		value []byte
		hdr   []batch.RecordHeader
		want  string
	}{
		"not wire format":   {[]byte("hello"), nil, "wire format"},
		"other subject's":   {wire(otherID, []byte{2, 'x'}), nil, "not a version of subject"},
		"unknown id":        {wire(999, good[5:]), nil, "not a version of subject"},
		"truncated payload": {good[:len(good)-2], nil, "schema id"},
		"trailing bytes":    {append(append([]byte{}, good...), 1), nil, "schema id"},
		"bad header id":     {good[5:], []batch.RecordHeader{{Key: broker.HeaderSchemaID, Value: []byte("x1")}}, "not a schema id"},
	} {
		msgs := []broker.Message{{Value: good, Partition: -1}, {Value: c.value, Headers: c.hdr, Partition: -1}}
		_, err := e.b.Publish("orders", msgs)
		var re *broker.RecordError
		if !errs.Is(err, errs.SchemaInvalid) || !errors.As(err, &re) || re.Index != 1 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want schema_invalid naming message 1 and %q", name, err, c.want)
		}
	}
	if n := len(e.read(t, "orders")); n != 2 {
		t.Fatalf("topic holds %d messages, want the 2 valid ones (a refused publish stores nothing)", n)
	}
	// A soft-deleted version's id is no longer accepted.
	if _, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV2}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.DeleteVersion("orders-value", 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("orders", []broker.Message{{Value: good, Partition: -1}}); !errs.Is(err, errs.SchemaInvalid) {
		t.Fatalf("publish with a retired version's id: %v", err)
	}
}

func TestValidateOnPublishDeadLetter(t *testing.T) {
	e := newEnv(t)
	id, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.bind(t, "orders", "orders-value", catalog.SchemaDeadLetter)
	good := wire(id, e.avroOrder(t, 1, "a"))
	msgs := []broker.Message{
		{Value: good, Partition: -1},
		{Value: []byte("not avro"), ID: "m-2", Partition: -1},
		{Value: good, Partition: -1},
	}
	res, err := e.b.Publish("orders", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].DeadLettered || !res[1].DeadLettered || res[2].DeadLettered || res[2].Offset != 1 {
		t.Fatalf("results %+v", res)
	}
	if got := e.read(t, "orders"); len(got) != 2 {
		t.Fatalf("topic holds %d messages, want 2", len(got))
	}
	dl := e.read(t, catalog.TopicDeadLetterName("orders"))
	if len(dl) != 1 || string(dl[0].Value) != "not avro" || header(dl[0], broker.HeaderDLQReason) != broker.ReasonSchemaInvalid ||
		header(dl[0], broker.HeaderDLQTopic) != "orders" || header(dl[0], broker.HeaderOriginalID) != "m-2" ||
		!strings.Contains(header(dl[0], broker.HeaderDLQError), "wire format") {
		t.Fatalf("dead letters: %+v", dl)
	}
	// The same message published again (a retry) is stored once.
	if _, err := e.b.Publish("orders", msgs[1:2]); err != nil {
		t.Fatal(err)
	}
	if dl := e.read(t, catalog.TopicDeadLetterName("orders")); len(dl) != 1 {
		t.Fatalf("a retried invalid message was dead-lettered %d times", len(dl))
	}
}

// rawBatch encodes records as one batch, as a Kafka producer would.
func rawBatch(t *testing.T, pid int64, seq int32, values ...[]byte) []byte {
	t.Helper()
	h := batch.Header{ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq, BaseTimestamp: time.Now().UnixMilli()}
	if pid < 0 {
		h.ProducerEpoch, h.BaseSequence = -1, -1
	}
	var recs []batch.Record
	for _, v := range values {
		recs = append(recs, batch.Record{Value: v})
	}
	b, err := batch.Encode(nil, h, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateRecordBatches(t *testing.T) {
	e := newEnv(t)
	id, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.bind(t, "strict", "orders-value", catalog.SchemaReject)
	e.bind(t, "lenient", "orders-value", catalog.SchemaDeadLetter)
	good := wire(id, e.avroOrder(t, 1, "a"))

	_, err = e.b.AppendRaw("strict", 0, rawBatch(t, -1, -1, good, good, []byte{0, 0, 0}))
	var re *broker.RecordError
	if !errs.Is(err, errs.SchemaInvalid) || !errors.As(err, &re) || re.Index != 2 {
		t.Fatalf("invalid record in a strict topic: %v", err)
	}
	pa, err := e.b.AppendRaw("strict", 0, rawBatch(t, -1, -1, good, good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pa.Wait(); err != nil {
		t.Fatal(err)
	}

	// Dead-letter mode: an idempotent producer's batch of 4 (sequences
	// 10–13) with records 1 and 2 invalid is stored as 2 records whose
	// last sequence is still 13.
	pa, err = e.b.AppendRaw("lenient", 0, rawBatch(t, 5, 10, good, []byte("x"), []byte("y"), good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pa.Wait(); err != nil {
		t.Fatal(err)
	}
	raw, err := e.b.ReadRaw("lenient", 0, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	bt, err := batch.Parse(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if h := bt.Header; h.NumRecords != 2 || h.BaseSequence != 12 || h.ProducerID != 5 || h.BaseSequence+h.LastOffsetDelta != 13 {
		t.Fatalf("stored batch header %+v", h)
	}
	dl := e.read(t, catalog.TopicDeadLetterName("lenient"))
	if len(dl) != 2 || string(dl[0].Value) != "x" || string(dl[1].Value) != "y" {
		t.Fatalf("dead letters %+v", dl)
	}
	// Every record invalid: refused, and dead-lettered.
	if _, err := e.b.AppendRaw("lenient", 0, rawBatch(t, -1, -1, []byte("z"))); !errs.Is(err, errs.SchemaInvalid) {
		t.Fatalf("all records invalid: %v", err)
	}
	if dl := e.read(t, catalog.TopicDeadLetterName("lenient")); len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dl))
	}
}

func TestValidateProtobufAndJSON(t *testing.T) {
	e := newEnv(t)
	proto := `syntax = "proto3"; package acme; message A { string a = 1; } message B { int64 n = 1; }`
	pid, err := e.reg.Register("pb", SchemaInput{Type: "PROTOBUF", Text: proto}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	jid, err := e.reg.Register("js", SchemaInput{Type: "JSON", Text: `{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.bind(t, "pbt", "pb", catalog.SchemaReject)
	e.bind(t, "jst", "js", catalog.SchemaReject)
	// B{n: 5} is field 1, varint 5; message indexes [1] (count 1, index 1,
	// zigzag: 2, 2).
	bMsg := []byte{0x08, 0x05}
	hdr, err := (&sr.ConfluentHeader{}).AppendEncode(nil, pid, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("pbt", []broker.Message{{Value: append(hdr, bMsg...), Partition: -1}}); err != nil {
		t.Fatalf("protobuf B: %v", err)
	}
	// The same bytes as message A (index [0]): field 1 must be a string
	// (wire type 2), not a varint.
	hdr0, _ := (&sr.ConfluentHeader{}).AppendEncode(nil, pid, nil)
	if _, err := e.b.Publish("pbt", []broker.Message{{Value: append(hdr0, bMsg...), Partition: -1}}); !errs.Is(err, errs.SchemaInvalid) {
		t.Fatalf("protobuf B's bytes as A: %v", err)
	}
	hdrBad, _ := (&sr.ConfluentHeader{}).AppendEncode(nil, pid, []int{5})
	if _, err := e.b.Publish("pbt", []broker.Message{{Value: append(hdrBad, bMsg...), Partition: -1}}); !errs.Is(err, errs.SchemaInvalid) {
		t.Fatalf("protobuf index out of range: %v", err)
	}
	if _, err := e.b.Publish("jst", []broker.Message{{Value: wire(jid, []byte(`{"n":3}`)), Partition: -1}}); err != nil {
		t.Fatalf("json: %v", err)
	}
	for _, bad := range []string{`{"n":"3"}`, `{}`, `{"n":3`, `[`} {
		if _, err := e.b.Publish("jst", []broker.Message{{Value: wire(jid, []byte(bad)), Partition: -1}}); !errs.Is(err, errs.SchemaInvalid) {
			t.Errorf("json %s: %v", bad, err)
		}
	}
}
