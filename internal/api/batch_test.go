package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
)

// batchEnv is a real server (HTTP and Kafka listeners) with a native
// publish client and a Kafka client, and topics "n" (for the native batch
// form) and "k" (for Kafka) configured alike.
type batchEnv struct {
	t   *testing.T
	srv *spooltest.Server
	pub spoolv1connect.PublishServiceClient
	kc  *kgo.Client
}

func newBatchEnv(t *testing.T, cfg catalog.TopicConfig) *batchEnv {
	t.Helper()
	srv := spooltest.StartServer(t)
	e := &batchEnv{t: t, srv: srv, pub: spoolv1connect.NewPublishServiceClient(http.DefaultClient, srv.URL())}
	for _, name := range []string{"n", "k"} {
		if _, err := srv.Broker().CreateTopic(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.Server().KafkaAddr()), kgo.MaxVersions(kversion.V3_9_0())) // Produce v12: topics by name
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	e.kc = kc
	return e
}

// native publishes batches to topic "n" in one request and returns the
// request's error code ("" if none) and the batch results.
func (e *batchEnv) native(brokerTime bool, parts []int32, batches ...[]byte) (string, []*spoolv1.BatchResult) {
	e.t.Helper()
	req := &spoolv1.PublishRequest{Topic: "n"}
	for i, b := range batches {
		p := int32(0)
		if i < len(parts) {
			p = parts[i]
		}
		req.Batches = append(req.Batches, &spoolv1.PartitionBatch{Partition: p, Records: b, BrokerTime: brokerTime})
	}
	resp, err := e.pub.Publish(context.Background(), connect.NewRequest(req))
	if err != nil {
		return errCode(err), nil
	}
	return "", resp.Msg.BatchResults
}

// nativeOne publishes one batch to partition 0 of "n" and returns its
// error code ("" if stored or a repeat) and result.
func (e *batchEnv) nativeOne(b []byte) (string, *spoolv1.BatchResult) {
	e.t.Helper()
	code, rs := e.native(false, nil, bytes.Clone(b))
	if code != "" {
		return code, nil
	}
	if len(rs) != 1 {
		e.t.Fatalf("%d results", len(rs))
	}
	return rs[0].GetError().GetCode(), rs[0]
}

// kafka produces one batch to partition 0 of "k" (acks all) and returns
// the error code and base offset.
func (e *batchEnv) kafka(b []byte) (int16, int64) {
	e.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "k"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = bytes.Clone(b)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), e.kc)
	if err != nil {
		e.t.Fatal(err)
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

func errCode(err error) string {
	var ce *connect.Error
	if !asConnect(err, &ce) {
		return "?"
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*spoolv1.ErrorInfo); ok {
				return info.Code
			}
		}
	}
	return "connect:" + ce.Code().String()
}

func asConnect(err error, ce **connect.Error) bool {
	c, ok := err.(*connect.Error)
	if ok {
		*ce = c
	}
	return ok
}

func encodeRecs(t *testing.T, h batch.Header, recs ...batch.Record) []byte {
	t.Helper()
	b, err := batch.Encode(nil, h, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func values(n int) []batch.Record {
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte("v")}
	}
	return recs
}

// fixCRC recomputes a batch's CRC after a change inside it.
func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	return b
}

var plain = batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: 1767225600000}

// TestBatchFormBadInput: malformed batches, and idempotent producers'
// batches breaking the sequence rules, get the same checks through the
// native batch form as through Kafka's Produce, each answered with the
// native code of the Kafka error (a refused batch stores nothing).
func TestBatchFormBadInput(t *testing.T) {
	e := newBatchEnv(t, catalog.TopicConfig{Partitions: 2, MaxMessageBytes: 4096})
	good := encodeRecs(t, plain, values(3)...)
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	idem := func(pid int64, epoch int16, seq int32, n int) []byte {
		h := plain
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = pid, epoch, seq
		return encodeRecs(t, h, values(n)...)
	}
	control := plain
	control.Attributes = batch.AttrControl
	txn := plain
	txn.ProducerID, txn.ProducerEpoch, txn.BaseSequence, txn.Attributes = 99, 0, 0, batch.AttrTransactional
	for _, c := range []struct {
		name   string
		b      []byte
		native string
		kafka  int16
	}{
		{"crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "invalid_argument", kerr.CorruptMessage.Code},
		{"record count", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 4); return fixCRC(b) }), "invalid_argument", kerr.CorruptMessage.Code},
		{"last offset delta", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 5); return fixCRC(b) }), "invalid_argument", kerr.CorruptMessage.Code},
		{"record offset delta", mutate(func(b []byte) []byte { b[batch.HeaderSize+3] = 2; return fixCRC(b) }), "invalid_argument", kerr.CorruptMessage.Code},
		{"batch length", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], uint32(len(b)-11)); return b }), "invalid_argument", kerr.CorruptMessage.Code},
		{"truncated", good[:len(good)-3], "invalid_argument", kerr.CorruptMessage.Code},
		{"magic", mutate(func(b []byte) []byte { b[16] = 1; return b }), "invalid_argument", kerr.CorruptMessage.Code},
		{"codec", mutate(func(b []byte) []byte { b[22] |= 7; return fixCRC(b) }), "invalid_argument", kerr.CorruptMessage.Code},
		{"timestamp above the max", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[35:], uint64(plain.BaseTimestamp-1))
			return fixCRC(b)
		}), "invalid_argument", kerr.CorruptMessage.Code},
		{"control batch", encodeRecs(t, control, values(1)...), "invalid_argument", kerr.InvalidRecord.Code},
		{"two batches of an idempotent producer", append(idem(96, 0, 0, 1), idem(96, 0, 1, 1)...), "invalid_argument", kerr.InvalidRecord.Code},
		{"transactional", encodeRecs(t, txn, values(1)...), "unsupported", kerr.InvalidTxnState.Code},
		{"record too large", encodeRecs(t, plain, batch.Record{Value: make([]byte, 6000)}), "message_too_large", kerr.MessageTooLarge.Code},
		{"negative epoch", idem(98, -1, 0, 1), "producer_fenced", kerr.InvalidProducerEpoch.Code},
		{"negative sequence", func() []byte {
			b := idem(97, 0, 0, 1)
			binary.BigEndian.PutUint32(b[53:], 0xffffffff)
			return fixCRC(b)
		}(), "out_of_order_sequence", kerr.OutOfOrderSequenceNumber.Code},
		{"first sequence not 0 on an empty partition", idem(7, 0, 5, 2), "out_of_order_sequence", kerr.OutOfOrderSequenceNumber.Code},
	} {
		if _, ok := e.srv.Broker().Topic("n"); !ok {
			t.Fatal("no topic")
		}
		got, _ := e.nativeOne(c.b)
		kc, _ := e.kafka(c.b)
		if got != c.native || kc != c.kafka {
			t.Errorf("%s: native %q, Kafka %v; want %q and %v", c.name, got, kerr.ErrorForCode(kc), c.native, kerr.ErrorForCode(c.kafka))
		}
	}
	for _, topic := range []string{"n", "k"} {
		if _, end, _ := e.srv.Broker().Offsets(topic, 0); end != 0 {
			t.Errorf("%s: %d records stored from refused batches", topic, end)
		}
	}

	// Sequences: a producer's batches in order, a repeat, a gap, an old
	// epoch, a newer epoch starting over.
	for _, c := range []struct {
		name      string
		b         []byte
		native    string
		kafka     int16
		base      int64
		duplicate bool
	}{
		{"first", idem(7, 0, 0, 3), "", 0, 0, false},
		{"next", idem(7, 0, 3, 2), "", 0, 3, false},
		{"repeat of the first", idem(7, 0, 0, 3), "", 0, 0, true},
		{"repeat of the last", idem(7, 0, 3, 2), "", 0, 3, true},
		{"gap", idem(7, 0, 6, 1), "out_of_order_sequence", kerr.OutOfOrderSequenceNumber.Code, -1, false},
		{"same first, other last", idem(7, 0, 3, 3), "out_of_order_sequence", kerr.OutOfOrderSequenceNumber.Code, -1, false},
		{"new epoch not at 0", idem(7, 1, 5, 1), "out_of_order_sequence", kerr.OutOfOrderSequenceNumber.Code, -1, false},
		{"new epoch at 0", idem(7, 1, 0, 1), "", 0, 5, false},
		{"old epoch", idem(7, 0, 5, 1), "producer_fenced", kerr.InvalidProducerEpoch.Code, -1, false},
		{"another producer", idem(8, 0, 0, 1), "", 0, 6, false},
	} {
		got, res := e.nativeOne(c.b)
		kc, kbase := e.kafka(c.b)
		if got != c.native || kc != c.kafka {
			t.Fatalf("%s: native %q, Kafka %v; want %q and %v", c.name, got, kerr.ErrorForCode(kc), c.native, kerr.ErrorForCode(c.kafka))
		}
		if c.native != "" {
			continue
		}
		if res.BaseOffset != c.base || kbase != c.base || res.Duplicate != c.duplicate {
			t.Errorf("%s: native at %d (duplicate %v), Kafka at %d; want %d (%v)", c.name, res.BaseOffset, res.Duplicate, kbase, c.base, c.duplicate)
		}
	}

	// Refused by the batch form only: an id (the de-duplication window is
	// the per-message form's), more than one batch in a partition's bytes
	// (Kafka takes several from a producer that is not idempotent), a
	// record above the topic's max message bytes in a batch that is not
	// (Kafka bounds the batch), a partition the topic does not have, two
	// batches for one partition, messages and batches together.
	if got, _ := e.nativeOne(append(bytes.Clone(good), good...)); got != "invalid_argument" {
		t.Errorf("two plain batches: %q", got)
	}
	if got, _ := e.nativeOne(encodeRecs(t, plain, batch.Record{Value: make([]byte, 4097)})); got != "message_too_large" {
		t.Errorf("a record of 4097 bytes: %q", got)
	}
	withID := encodeRecs(t, plain, batch.Record{Value: []byte("v"), Headers: []batch.RecordHeader{{Key: broker.HeaderID, Value: []byte("x")}}})
	if got, _ := e.nativeOne(withID); got != "invalid_argument" {
		t.Errorf("a batch with an id: %q", got)
	}
	if code, rs := e.native(false, []int32{2}, good); code != "" || rs[0].GetError().GetCode() != "invalid_argument" {
		t.Errorf("partition 2 of 2: %q %v", code, rs)
	}
	if code, _ := e.native(false, []int32{1, 1}, good, good); code != "invalid_argument" {
		t.Errorf("two batches for one partition: %q", code)
	}
	req := &spoolv1.PublishRequest{Topic: "n", Messages: []*spoolv1.Message{{Value: []byte("v")}}, Batches: []*spoolv1.PartitionBatch{{Records: good}}}
	if _, err := e.pub.Publish(context.Background(), connect.NewRequest(req)); errCode(err) != "invalid_argument" {
		t.Errorf("messages and batches: %v", err)
	}
	req = &spoolv1.PublishRequest{Topic: "nope", Batches: []*spoolv1.PartitionBatch{{Records: good}}}
	if _, err := e.pub.Publish(context.Background(), connect.NewRequest(req)); errCode(err) != "topic_not_found" {
		t.Errorf("no such topic: %v", err)
	}
	// Broker time: the batch must carry zero timestamps.
	if code, rs := e.native(true, nil, bytes.Clone(good)); code != "" || rs[0].GetError().GetCode() != "invalid_argument" {
		t.Errorf("broker time with timestamps: %q %v", code, rs)
	}
}

// TestBatchFormTooLarge: a request above the request limit is refused
// while it is read (resource_exhausted), before it is read whole.
func TestBatchFormTooLarge(t *testing.T) {
	e := newBatchEnv(t, catalog.TopicConfig{Partitions: 1})
	big := encodeRecs(t, plain, batch.Record{Value: make([]byte, 9<<20)})
	if code, _ := e.native(false, nil, big); code != "connect:resource_exhausted" {
		t.Errorf("9 MiB batch: %q", code)
	}
}

// TestInitProducerShared: InitProducer and Kafka's InitProducerId draw
// from one allocator (never the same id twice); naming an issued id with
// its epoch bumps the epoch.
func TestInitProducerShared(t *testing.T) {
	e := newBatchEnv(t, catalog.TopicConfig{Partitions: 1})
	seen := map[int64]bool{}
	for i := range 6 {
		var id int64
		if i%2 == 0 {
			resp, err := e.pub.InitProducer(context.Background(), connect.NewRequest(&spoolv1.InitProducerRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			id = resp.Msg.ProducerId
			if resp.Msg.ProducerEpoch != 0 {
				t.Fatalf("epoch %d", resp.Msg.ProducerEpoch)
			}
		} else {
			req := kmsg.NewPtrInitProducerIDRequest()
			resp, err := req.RequestWith(context.Background(), e.kc)
			if err != nil || resp.ErrorCode != 0 {
				t.Fatal(err, resp.ErrorCode)
			}
			id = resp.ProducerID
		}
		if seen[id] {
			t.Fatalf("producer id %d handed out twice", id)
		}
		seen[id] = true
		pid := id
		resp, err := e.pub.InitProducer(context.Background(), connect.NewRequest(&spoolv1.InitProducerRequest{ProducerId: &pid, ProducerEpoch: 4}))
		if err != nil || resp.Msg.ProducerId != id || resp.Msg.ProducerEpoch != 5 {
			t.Fatalf("bump of %d: %v %v", id, resp, err)
		}
	}
	never := int64(1 << 50)
	resp, err := e.pub.InitProducer(context.Background(), connect.NewRequest(&spoolv1.InitProducerRequest{ProducerId: &never, ProducerEpoch: 0}))
	if err != nil || resp.Msg.ProducerId == never || seen[resp.Msg.ProducerId] {
		t.Fatalf("an id never issued: %v %v", resp, err)
	}
}
