package kafka_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

// frame encodes req at version v with correlation id corr.
func frame(req kmsg.Request, v int16, corr int32) []byte {
	req.SetVersion(v)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("pipe")).AppendRequest(nil, req, corr)
}

func produceReq(topic string, acks int16, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = acks
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// TestPipelinedProducesAnsweredInOrder sends many requests back to back
// without reading — produces with acks=-1 and acks=0, failing produces,
// and other requests among them — and checks that every answer comes in
// request order, each produce with its own offsets, and that the records
// are stored in the order sent.
func TestPipelinedProducesAnsweredInOrder(t *testing.T) {
	srv := startServer(t)
	if _, err := serverhook.Broker(srv).CreateTopic("pipe", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	w := dialGroupWire(t, srv.KafkaAddr())
	type sent struct {
		corr    int32
		key     int16
		acks0   bool
		badPart bool
		value   byte
	}
	var out []byte
	var plan []sent
	corr := int32(0)
	for i := range 60 {
		corr++
		switch {
		case i%10 == 9: // a request of another kind between produces
			out = append(out, frame(kmsg.NewPtrMetadataRequest(), 9, corr)...)
			plan = append(plan, sent{corr: corr, key: 3})
		case i%10 == 4: // acks=0: no answer
			rec := encodeValues(t, []byte{byte(i)})
			out = append(out, frame(produceReq("pipe", 0, 0, rec), 9, corr)...)
			plan = append(plan, sent{corr: corr, key: 0, acks0: true, value: byte(i)})
		case i%10 == 7: // a partition that does not exist
			out = append(out, frame(produceReq("pipe", -1, 5, encodeValues(t, []byte{byte(i)})), 9, corr)...)
			plan = append(plan, sent{corr: corr, key: 0, badPart: true})
		default:
			out = append(out, frame(produceReq("pipe", -1, 0, encodeValues(t, []byte{byte(i)})), 9, corr)...)
			plan = append(plan, sent{corr: corr, key: 0, value: byte(i)})
		}
	}
	w.nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := w.nc.Write(out); err != nil {
		t.Fatal(err)
	}
	var stored []byte // values in offset order, from the answers
	lastOffset := int64(-1)
	for _, p := range plan {
		if p.acks0 {
			stored = append(stored, p.value) // no answer; its place in the log is checked below
			continue
		}
		var hdr [8]byte
		if _, err := io.ReadFull(w.nc, hdr[:]); err != nil {
			t.Fatalf("answer to %d: %v", p.corr, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
		if _, err := io.ReadFull(w.nc, body); err != nil {
			t.Fatal(err)
		}
		if got := int32(binary.BigEndian.Uint32(hdr[4:])); got != p.corr {
			t.Fatalf("answer with correlation id %d, want %d (answers out of order)", got, p.corr)
		}
		if p.key != 0 {
			continue
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		if err := resp.ReadFrom(body[1:]); err != nil {
			t.Fatal(err)
		}
		rp := resp.Topics[0].Partitions[0]
		if p.badPart {
			if rp.ErrorCode == 0 {
				t.Fatalf("produce %d to a missing partition succeeded", p.corr)
			}
			continue
		}
		if rp.ErrorCode != 0 {
			t.Fatalf("produce %d: error %d", p.corr, rp.ErrorCode)
		}
		if rp.BaseOffset <= lastOffset {
			t.Fatalf("produce %d at offset %d after %d: not in request order", p.corr, rp.BaseOffset, lastOffset)
		}
		lastOffset = rp.BaseOffset
		stored = append(stored, p.value)
	}
	// The log holds every accepted record in request order.
	b := serverhook.Broker(srv)
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	for time.Now().Before(deadline) {
		rr, err := b.ReadRaw("pipe", 0, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for bt, err := range batch.Batches(rr.Data) {
			if err != nil {
				t.Fatal(err)
			}
			recs, err := batch.Records(bt.Bytes, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				got = append(got, r.Value[0])
			}
		}
		if len(got) == len(stored) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bytes.Equal(got, stored) {
		t.Fatalf("log holds %v, want %v", got, stored)
	}
}

func encodeValues(t *testing.T, values ...[]byte) []byte {
	t.Helper()
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		recs[i] = batch.Record{Value: v}
	}
	b, err := batch.Encode(nil, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
