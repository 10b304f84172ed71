package api

// The batch form of publishing (PublishRequest.batches): record batches the
// client built, one per partition, validated exactly as Kafka's Produce
// validates them and stored as sent (broker.AppendBatch), with an
// idempotent producer's sequences checked by the producer table Kafka
// shares (internal/producer). Nothing is decoded into messages or encoded
// again, and nothing per message is remembered: the producer's sequences,
// not message ids, make retries safe. Messages with ids and relative
// delays go by the per-message form (see publish.proto).

import (
	"context"
	"math"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/producer"
)

// pendingBatches is a batch-form request whose batches are queued in their
// partition logs (or answered: refused or repeats).
type pendingBatches struct {
	id      uint64
	results []*spoolv1.BatchResult
	pas     []*broker.PendingAppend // per result; nil when already answered
}

// appendBatches checks and queues the batches of req in request order; the
// error is the request's as a whole (no topic, malformed), each batch's
// own outcome is in its result. With flush a request of one batch is
// written by the calling goroutine when no flush is in progress.
func (h publish) appendBatches(ctx context.Context, req *spoolv1.PublishRequest, flush bool) (*pendingBatches, error) {
	switch {
	case req.Topic == "":
		return nil, errs.New(errs.InvalidArgument, "topic is required")
	case len(req.Messages) > 0:
		return nil, errs.New(errs.InvalidArgument, "a publish request carries messages or batches, not both")
	}
	meta, ok := h.b.Topic(req.Topic)
	if !ok {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", req.Topic)
	}
	seen := make(map[int32]struct{}, len(req.Batches))
	for _, pb := range req.Batches {
		if _, dup := seen[pb.Partition]; dup {
			return nil, errs.New(errs.InvalidArgument, "two batches for partition %d in one request", pb.Partition)
		}
		seen[pb.Partition] = struct{}{}
	}
	flush = flush && len(req.Batches) == 1
	pb := &pendingBatches{id: req.RequestId, results: make([]*spoolv1.BatchResult, len(req.Batches)), pas: make([]*broker.PendingAppend, len(req.Batches))}
	for i, b := range req.Batches {
		res := &spoolv1.BatchResult{Partition: b.Partition, BaseOffset: -1}
		pb.results[i] = res
		a, err := h.appendBatch(ctx, meta.Config.Partitions, req.Topic, b, flush)
		if err != nil {
			res.Error, res.ErrorMessage = errorInfo(err)
			continue
		}
		res.Count = a.count
		if a.Dup {
			res.BaseOffset, res.Duplicate = a.Base, true
			continue
		}
		pb.pas[i] = a.PA
	}
	return pb, nil
}

type appendedBatch struct {
	producer.Appended
	count int32
}

// appendBatch checks and queues one batch: an idempotent producer's
// through the producer table.
func (h publish) appendBatch(ctx context.Context, partitions int32, topic string, b *spoolv1.PartitionBatch, flush bool) (appendedBatch, error) {
	if b.Partition < 0 || b.Partition >= partitions {
		return appendedBatch{}, errs.New(errs.InvalidArgument, "partition %d does not exist (topic %q has %d)", b.Partition, topic, partitions)
	}
	hd, err := batch.ParseHeader(b.Records)
	if err != nil {
		return appendedBatch{}, errs.Wrap(errs.InvalidArgument, err, "record batch for %s/%d", topic, b.Partition)
	}
	appendFn := func(topic string, p int32, records []byte) (*broker.PendingAppend, error) {
		return h.b.AppendBatch(topic, p, records, b.BrokerTime, flush)
	}
	var a producer.Appended
	if hd.ProducerID >= 0 {
		a, err = h.producers.Append(ctx, topic, b.Partition, hd, b.Records, appendFn)
	} else {
		a.PA, err = appendFn(topic, b.Partition, b.Records)
	}
	if err != nil {
		return appendedBatch{}, err
	}
	return appendedBatch{Appended: a, count: hd.NumRecords}, nil
}

// wait waits for every queued batch to be durable and returns the
// response.
func (pb *pendingBatches) wait() *spoolv1.PublishResponse {
	for i, pa := range pb.pas {
		if pa == nil {
			continue
		}
		base, err := pa.Wait()
		if err != nil {
			pb.results[i].Error, pb.results[i].ErrorMessage = errorInfo(err)
			continue
		}
		pb.results[i].BaseOffset = base
	}
	return &spoolv1.PublishResponse{RequestId: pb.id, BatchResults: pb.results}
}

// InitProducer hands out a producer id and epoch from the producer table
// Kafka's InitProducerId uses: a known id named with its epoch gets the
// next epoch (a new id once the epoch would reach MaxInt16), anything else
// a new id with epoch 0. A failure to reserve ids is unavailable
// (retriable).
func (h publish) InitProducer(_ context.Context, req *connect.Request[spoolv1.InitProducerRequest]) (*connect.Response[spoolv1.InitProducerResponse], error) {
	m := req.Msg
	if m.ProducerId != nil && *m.ProducerId >= 0 && m.ProducerEpoch >= 0 && m.ProducerEpoch < math.MaxInt16-1 {
		ok, err := h.producers.Issued(*m.ProducerId)
		if err != nil {
			return nil, toConnect(errs.Wrap(errs.Unavailable, err, "reserve producer ids"))
		}
		if ok {
			return connect.NewResponse(&spoolv1.InitProducerResponse{ProducerId: *m.ProducerId, ProducerEpoch: m.ProducerEpoch + 1}), nil
		}
	}
	id, err := h.producers.NewProducerID()
	if err != nil {
		return nil, toConnect(errs.Wrap(errs.Unavailable, err, "reserve producer ids"))
	}
	return connect.NewResponse(&spoolv1.InitProducerResponse{ProducerId: id, ProducerEpoch: 0}), nil
}
