package sreg_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
)

const orderSchema = `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`

type order struct {
	ID   int64  `avro:"id"`
	Item string `avro:"item"`
}

// TestKafkaProducersAgainstBoundTopics: franz-go producers, with franz-go's
// schema registry client and serde, publish to topics bound to a subject;
// invalid records are refused with INVALID_RECORD, or dead-lettered.
func TestKafkaProducersAgainstBoundTopics(t *testing.T) {
	s := spooltest.StartServer(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections) // the registry client's
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rcl, err := sr.NewClient(sr.URLs("http://" + s.Server().SchemaRegistryAddr()))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := rcl.CreateSchema(ctx, "orders-value", sr.Schema{Schema: orderSchema})
	if err != nil {
		t.Fatal(err)
	}
	as, err := avro.Parse(orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	var serde sr.Serde
	serde.Register(ss.ID, order{}, sr.EncodeFn(func(v any) ([]byte, error) { return as.Encode(v) }),
		sr.DecodeFn(func(b []byte, v any) error { _, err := as.Decode(b, v); return err }))

	// The topics are bound through Kafka's CreateTopics, with Spool's
	// topic configs.
	admin, err := kgo.NewClient(kgo.SeedBrokers(s.Server().KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(admin)
	for topic, mode := range map[string]string{"strict": "reject", "lenient": "dead-letter"} {
		subject := "orders-value"
		resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"spool.schema.subject": &subject, "spool.schema.mode": &mode}, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
	}
	admin.Close()
	if m, _ := s.Broker().Topic("lenient"); m.Config.SchemaSubject != "orders-value" || m.Config.SchemaMode != catalog.SchemaDeadLetter {
		t.Fatalf("the Kafka topic configs did not bind the topic: %+v", m.Config)
	}
	for _, idempotent := range []bool{true, false} {
		opts := []kgo.Opt{kgo.SeedBrokers(s.Server().KafkaAddr()), kgo.RecordRetries(2)}
		if !idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		good := &kgo.Record{Topic: "strict", Value: serde.MustEncode(order{ID: 1, Item: "book"})}
		if err := cl.ProduceSync(ctx, good).FirstErr(); err != nil {
			t.Fatalf("idempotent %v: valid record: %v", idempotent, err)
		}
		bad := &kgo.Record{Topic: "strict", Value: []byte("plain text")}
		if err := cl.ProduceSync(ctx, bad).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("idempotent %v: invalid record: %v, want INVALID_RECORD", idempotent, err)
		}
		// Dead-letter mode: the valid records are stored, the invalid one
		// goes to dlq.lenient, and the producer is answered success.
		rs := []*kgo.Record{
			{Topic: "lenient", Value: serde.MustEncode(order{ID: 2, Item: "pen"})},
			{Topic: "lenient", Value: []byte("garbage")},
			{Topic: "lenient", Value: serde.MustEncode(order{ID: 3, Item: "ink"})},
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("idempotent %v: dead-letter topic: %v", idempotent, err)
		}
		// The producer goes on after the dead-lettered record.
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lenient", Value: serde.MustEncode(order{ID: 4, Item: "cap"})}).FirstErr(); err != nil {
			t.Fatalf("idempotent %v: after a dead-lettered record: %v", idempotent, err)
		}
		cl.Close()
	}
	got := consume(ctx, t, s, "lenient", 6)
	for _, r := range got {
		var o order
		if err := serde.Decode(r.Value, &o); err != nil {
			t.Fatalf("a record of the bound topic does not decode: %v", err)
		}
	}
	dl := consume(ctx, t, s, "dlq.lenient", 2)
	for _, r := range dl {
		if string(r.Value) != "garbage" {
			t.Fatalf("dead letter %q", r.Value)
		}
		var reason string
		for _, h := range r.Headers {
			if h.Key == "spool.dlq.reason" {
				reason = string(h.Value)
			}
		}
		if reason != "schema-invalid" {
			t.Fatalf("dead letter reason %q", reason)
		}
	}
}

// consume reads n records of a topic from its start, and checks there
// are no more.
func consume(ctx context.Context, t *testing.T, s *spooltest.Server, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Server().KafkaAddr()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
		if len(out) > n {
			break
		}
	}
	if len(out) != n {
		var vals []string
		for _, r := range out {
			vals = append(vals, string(r.Value))
		}
		t.Fatalf("%s holds %d records, want %d: %s", topic, len(out), n, strings.Join(vals, ", "))
	}
	return out
}
