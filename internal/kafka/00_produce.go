package kafka

// Produce (key 0), advertised v0–v13 (librdkafka sends codecs uncompressed
// when v0 is not advertised), served v3–v13: v0–v2 carry the old message
// formats and are answered UNSUPPORTED_VERSION. Record batches are
// validated (CRC, lengths, codec, counts; decompressed under a cap) and
// stored as produced; control batches from clients are INVALID_RECORD.
// Batches of an idempotent producer (producer id >= 0) go through the
// producer-sequence checks first. All partitions are queued in order, then
// awaited together; acks=0 gets no response at all. v13 names topics by id.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/spoolmq/spool/internal/producer"
)

// startProduce checks and queues every partition's batches, in order (the
// offsets are assigned here), and returns the function that waits for
// them to be durable and builds the response (nil for acks=0). The
// connection loop reads the next request while an earlier produce waits,
// so that consecutive produces of one connection share an fsync.
func (s *Server) startProduce(ctx context.Context, req *kmsg.ProduceRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var pendings []produceWait
	for _, rt := range req.Topics {
		name := rt.Topic
		if req.Version >= 13 {
			if t, ok := s.b.TopicByID(kwire.UUIDString(rt.TopicID)); ok {
				name = t.Name
			}
		}
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		allowed := s.can(ctx, acl.Topic, name, acl.Publish)
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			if req.Version < 3 {
				sp.ErrorCode = kerr.UnsupportedVersion.Code
				continue
			}
			if !allowed {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				continue
			}
			if _, ok := s.b.Topic(name); !ok {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			pa, code, err := s.appendBatches(ctx, name, rp.Partition, rp.Records)
			if code != 0 {
				sp.ErrorCode = code
				recordErrors(sp, err)
				continue
			}
			if pa.Dup {
				sp.BaseOffset = pa.Base
				continue
			}
			pendings = append(pendings, produceWait{sp, pa.PA})
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return func() kmsg.Response {
			for _, p := range pendings {
				p.pa.Wait()
			}
			return nil
		}
	}
	return func() kmsg.Response { return s.finishProduce(resp, pendings) }
}

// produceWait is a partition's queued append and its part of the response.
type produceWait struct {
	rp *kmsg.ProduceResponseTopicPartition
	pa *broker.PendingAppend
}

// finishProduce waits for a produce's appends and completes its response.
func (s *Server) finishProduce(resp *kmsg.ProduceResponse, pendings []produceWait) kmsg.Response {
	for _, p := range pendings {
		base, err := p.pa.Wait()
		if err != nil {
			p.rp.ErrorCode = kwire.ErrCode(err)
			continue
		}
		p.rp.BaseOffset = base
	}
	// Fill log start offsets (v5+).
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			sp := &resp.Topics[i].Partitions[j]
			name := resp.Topics[i].Topic
			if start, _, err := s.b.Offsets(name, sp.Partition); err == nil {
				sp.LogStartOffset = start
			}
		}
	}
	return resp
}

// appendBatches checks and queues a partition's batches: those of an
// idempotent producer through the producer table (internal/producer).
func (s *Server) appendBatches(ctx context.Context, topic string, p int32, records []byte) (producer.Appended, int16, error) {
	if len(records) == 0 {
		return producer.Appended{}, kerr.CorruptMessage.Code, nil
	}
	if h, err := batch.ParseHeader(records); err == nil && h.ProducerID >= 0 {
		a, err := s.producers.Append(ctx, topic, p, h, records, s.b.AppendRaw)
		return a, producerErrCode(err), err
	}
	pa, err := s.b.AppendRaw(topic, p, records)
	if err != nil {
		return producer.Appended{}, kwire.AppendErrCode(err), err
	}
	return producer.Appended{PA: pa}, 0, nil
}

// recordErrors says, in a refused partition's response (v8+), which
// record was invalid and why: a record of a topic bound to a schema
// subject that does not match it (INVALID_RECORD).
func recordErrors(sp *kmsg.ProduceResponseTopicPartition, err error) {
	var re *broker.RecordError
	if !errors.As(err, &re) {
		return
	}
	msg := err.Error()
	sp.ErrorMessage = &msg
	e := kmsg.NewProduceResponseTopicPartitionErrorRecord()
	e.RelativeOffset = int32(re.Index)
	reason := re.Err.Error()
	e.ErrorMessage = &reason
	sp.ErrorRecords = append(sp.ErrorRecords, e)
}
