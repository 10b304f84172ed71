package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/batch"
)

// fakeBatches is a server of the batch form: it applies the producer
// sequence rules as the real server does (epochs, the next sequence, the
// last five batches per partition) and asks decide whether to refuse a
// batch (n counts batches from 1) before it is checked.
type fakeBatches struct {
	spoolv1connect.UnimplementedPublishServiceHandler
	decide func(n int, values []string) *spoolv1.ErrorInfo

	mu     sync.Mutex
	n      int
	bumps  int
	parts  map[int32]*fakeSeq
	stored map[int32][]string // values by offset
}

type fakeSeq struct {
	epoch int16
	next  int32
	last  [][3]int64 // first, last, base
}

func newFakeBatches(decide func(int, []string) *spoolv1.ErrorInfo) *fakeBatches {
	return &fakeBatches{decide: decide, parts: map[int32]*fakeSeq{}, stored: map[int32][]string{}}
}

func (f *fakeBatches) InitProducer(_ context.Context, req *connect.Request[spoolv1.InitProducerRequest]) (*connect.Response[spoolv1.InitProducerResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Msg.ProducerId != nil {
		f.bumps++
		return connect.NewResponse(&spoolv1.InitProducerResponse{ProducerId: 1, ProducerEpoch: req.Msg.ProducerEpoch + 1}), nil
	}
	return connect.NewResponse(&spoolv1.InitProducerResponse{ProducerId: 1}), nil
}

// append applies the rules to one batch.
func (f *fakeBatches) append(pb *spoolv1.PartitionBatch) *spoolv1.BatchResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	res := &spoolv1.BatchResult{Partition: pb.Partition, BaseOffset: -1}
	bt, err := batch.Parse(pb.Records)
	if err != nil {
		res.Error = &spoolv1.ErrorInfo{Code: CodeInvalidArgument}
		return res
	}
	var values []string
	for r, err := range bt.Records(0) {
		if err != nil {
			res.Error = &spoolv1.ErrorInfo{Code: CodeInvalidArgument}
			return res
		}
		values = append(values, string(r.Value))
	}
	res.Count = int32(len(values))
	if f.decide != nil {
		if e := f.decide(f.n, values); e != nil {
			res.Error, res.ErrorMessage = e, "fake refusal"
			return res
		}
	}
	h := bt.Header
	first, last := h.BaseSequence, h.BaseSequence+h.LastOffsetDelta
	st := f.parts[pb.Partition]
	switch {
	case st == nil:
		if first != 0 {
			res.Error = &spoolv1.ErrorInfo{Code: CodeOutOfOrderSequence}
			return res
		}
		st = &fakeSeq{epoch: h.ProducerEpoch}
		f.parts[pb.Partition] = st
	case h.ProducerEpoch < st.epoch:
		res.Error = &spoolv1.ErrorInfo{Code: CodeProducerFenced}
		return res
	case h.ProducerEpoch > st.epoch:
		if first != 0 {
			res.Error = &spoolv1.ErrorInfo{Code: CodeOutOfOrderSequence}
			return res
		}
		*st = fakeSeq{epoch: h.ProducerEpoch}
	default:
		for _, b := range st.last {
			if b[0] == int64(first) && b[1] == int64(last) {
				res.BaseOffset, res.Duplicate = b[2], true
				return res
			}
		}
		if first != st.next {
			res.Error = &spoolv1.ErrorInfo{Code: CodeOutOfOrderSequence}
			return res
		}
	}
	base := int64(len(f.stored[pb.Partition]))
	f.stored[pb.Partition] = append(f.stored[pb.Partition], values...)
	st.last = append(st.last, [3]int64{int64(first), int64(last), base})
	if len(st.last) > 5 {
		st.last = st.last[1:]
	}
	st.next = last + 1
	res.BaseOffset = base
	return res
}

func (f *fakeBatches) PublishStream(_ context.Context, stream *connect.BidiStream[spoolv1.PublishRequest, spoolv1.PublishResponse]) error {
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &spoolv1.PublishResponse{RequestId: req.RequestId}
		for _, pb := range req.Batches {
			resp.BatchResults = append(resp.BatchResults, f.append(pb))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (f *fakeBatches) values(p int32) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stored[p])
}

// twoPartitions describes every topic with two partitions.
type twoPartitions struct {
	spoolv1connect.UnimplementedTopicServiceHandler
}

func (twoPartitions) DescribeTopic(_ context.Context, req *connect.Request[spoolv1.DescribeTopicRequest]) (*connect.Response[spoolv1.DescribeTopicResponse], error) {
	return connect.NewResponse(&spoolv1.DescribeTopicResponse{Topic: &spoolv1.Topic{Name: req.Msg.Name, Config: &spoolv1.TopicConfig{Partitions: 2}}}), nil
}

func serveBatches(t *testing.T, f *fakeBatches) *Client {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(spoolv1connect.NewPublishServiceHandler(f))
	mux.Handle(spoolv1connect.NewTopicServiceHandler(twoPartitions{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	c, err := New(srv.URL, WithLogger(slog.New(slog.DiscardHandler)), WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return c
}

// checkStored checks that every value was stored once and that each
// key's values (prefix before '/') are in send order.
func checkStored(t *testing.T, f *fakeBatches, want []string, skip string) {
	t.Helper()
	seen := map[string]int{}
	for p := range int32(2) {
		last := map[string]string{}
		for _, v := range f.values(p) {
			seen[v]++
			k := v[:1]
			if v < last[k] {
				t.Errorf("partition %d: %s after %s", p, v, last[k])
			}
			last[k] = v
		}
	}
	for _, v := range want {
		if v == skip {
			continue
		}
		if seen[v] != 1 {
			t.Errorf("%s stored %d times", v, seen[v])
		}
	}
}

func sendKeyed(t *testing.T, p *Producer, n int, bad int) ([]*Future, []string) {
	t.Helper()
	var fs []*Future
	var vals []string
	for i := range n {
		k := fmt.Sprint(i % 3)
		v := fmt.Sprintf("%s/%04d", k, i)
		if i == bad {
			v = k + "/bad"
		}
		vals = append(vals, v)
		fs = append(fs, p.Send(context.Background(), Message{Key: []byte(k), Value: []byte(v)}))
	}
	return fs, vals
}

// A batch refused with a retriable error is resent after its backoff, and
// the batches of its partition sent after it (refused as out of order) are
// resent after it, in order: nothing is lost, duplicated or reordered.
func TestProducerBatchRetriableKeepsOrder(t *testing.T) {
	f := newFakeBatches(func(n int, _ []string) *spoolv1.ErrorInfo {
		if n == 3 || n == 9 {
			return &spoolv1.ErrorInfo{Code: CodeTopicFull, Retriable: true, RetryAfter: durationpb.New(20 * time.Millisecond)}
		}
		return nil
	})
	p := newProducer(t, serveBatches(t, f), ProducerLinger(0), ProducerMaxBatchMessages(4))
	fs, vals := sendKeyed(t, p, 300, -1)
	waitAll(t, fs)
	checkStored(t, f, vals, "")
}

// A batch refused with message_too_large is broken up: the producer bumps
// its epoch, numbers the unsent messages again and sends them one per
// batch, so only the offending message fails and the rest keep their
// order.
func TestProducerBatchIsolatesARefusedMessage(t *testing.T) {
	f := newFakeBatches(func(_ int, values []string) *spoolv1.ErrorInfo {
		if slices.ContainsFunc(values, func(v string) bool { return v[2:] == "bad" }) {
			return &spoolv1.ErrorInfo{Code: CodeMessageTooLarge}
		}
		return nil
	})
	p := newProducer(t, serveBatches(t, f), ProducerLinger(0), ProducerMaxBatchMessages(4))
	fs, vals := sendKeyed(t, p, 200, 40)
	for i, fu := range fs {
		_, err := fu.Wait(context.Background())
		if bad := i == 40; bad != errors.Is(err, ErrMessageTooLarge) || (!bad && err != nil) {
			t.Errorf("message %d (%s): %v", i, vals[i], err)
		}
	}
	checkStored(t, f, vals, vals[40])
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bumps == 0 {
		t.Error("no epoch bump")
	}
}

// Retriable refusals until the delivery timeout fail the messages with
// ErrDeliveryTimeout wrapping the last error.
func TestProducerBatchDeliveryTimeout(t *testing.T) {
	f := newFakeBatches(func(int, []string) *spoolv1.ErrorInfo {
		return &spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true}
	})
	p := newProducer(t, serveBatches(t, f), ProducerDeliveryTimeout(time.Second)) // room for a refusal under load
	_, err := p.PublishSync(context.Background(), Message{Value: []byte("x")})
	if !errors.Is(err, ErrDeliveryTimeout) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	// The producer still works after a dropped batch.
	f.mu.Lock()
	f.decide = nil
	f.mu.Unlock()
	if _, err := p.PublishSync(context.Background(), Message{Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
}
