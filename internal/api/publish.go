package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/membudget"
	"github.com/spoolmq/spool/internal/producer"
)

// maxStreamInFlight bounds the requests of one PublishStream that are not
// yet answered; the server stops reading the stream at the bound (and when
// the server-wide publish budget is spent), so HTTP/2 flow control slows a
// producer that is faster than the disk.
const maxStreamInFlight = 64

// publish implements PublishService. Its requests reach it encoded (see
// encodedPublish): each is bounded and charged against the publish budget
// before it is decoded.
type publish struct {
	b         *broker.Broker
	h         *Handler          // its authorizer
	producers *producer.Table   // idempotent producers, shared with Kafka
	budget    *membudget.Budget // memory held by publishes in flight, server-wide
	intake    *membudget.Budget // bodies of unary publishes before admission (intake.go)
}

// encodedPublish is a PublishRequest as it arrived. The codecs leave
// publish requests encoded (Connect would otherwise decode them before the
// handler runs, allocating for every message before the request is
// charged anything); the handler decodes them once the publish budget has
// room for them.
type encodedPublish struct {
	data []byte // a copy (requestBuf): Connect reuses its buffer
	json bool
}

// requestBufs recycles the copies of publish requests: a batch-form
// request's records alias its copy until they are queued in the logs (which
// copy them), so the copy is given back then; other forms' once decoded.
var requestBufs sync.Pool // *[]byte

// maxPooledRequest bounds the copies kept for reuse.
const maxPooledRequest = 8 << 20

// requestBuf returns an empty buffer for a request of n bytes.
func requestBuf(n int) []byte {
	if p, ok := requestBufs.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// release gives the request's copy back for reuse: nothing may refer to
// it any more.
func (ep *encodedPublish) release() {
	if c := cap(ep.data); c > 0 && c <= maxPooledRequest {
		b := ep.data[:0]
		requestBufs.Put(&b)
	}
	ep.data = nil
}

// newPublishHandler is spoolv1connect.NewPublishServiceHandler for
// requests that arrive encoded.
func newPublishHandler(h publish, opts ...connect.HandlerOption) (string, http.Handler) {
	methods := spoolv1.File_spool_v1_publish_proto.Services().ByName("PublishService").Methods()
	unary := connect.NewUnaryHandler(spoolv1connect.PublishServicePublishProcedure, h.Publish,
		connect.WithSchema(methods.ByName("Publish")), connect.WithHandlerOptions(opts...))
	stream := connect.NewBidiStreamHandler(spoolv1connect.PublishServicePublishStreamProcedure, h.PublishStream,
		connect.WithSchema(methods.ByName("PublishStream")), connect.WithHandlerOptions(opts...))
	initProducer := connect.NewUnaryHandler(spoolv1connect.PublishServiceInitProducerProcedure, h.InitProducer,
		connect.WithSchema(methods.ByName("InitProducer")), connect.WithHandlerOptions(opts...))
	return "/spool.v1.PublishService/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case spoolv1connect.PublishServicePublishProcedure:
			h.serveIntake(unary, w, r)
		case spoolv1connect.PublishServicePublishStreamProcedure:
			stream.ServeHTTP(w, r)
		case spoolv1connect.PublishServiceInitProducerProcedure:
			initProducer.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// admit bounds an encoded request's lists, waits until the publish budget
// has room for what it costs, and decodes it. On success the caller
// releases the returned weight; on failure it answers id (the request's
// id, as far as it could be read) with the error.
func (h publish) admit(ctx context.Context, ep *encodedPublish) (req *spoolv1.PublishRequest, w int64, id uint64, err error) {
	md := (*spoolv1.PublishRequest)(nil).ProtoReflect().Descriptor()
	var s listScan
	if ep.json {
		s.json = jsonScanner{data: ep.data}
		if len(ep.data) == 0 {
			err = errMalformedJSON
		} else {
			err = s.scanJSON(md)
		}
	} else {
		err = s.scanBinary(ep.data, md)
	}
	if err != nil {
		return nil, 0, requestID(ep, md), errs.Wrap(errs.InvalidArgument, err, "publish request refused")
	}
	w, err = h.budget.Acquire(ctx, publishCost(len(ep.data), ep.json, s.count(md.Fields().ByName("messages")), s.count(headersField)))
	if err != nil {
		return nil, 0, requestID(ep, md), err
	}
	req = &spoolv1.PublishRequest{}
	switch {
	case ep.json:
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(ep.data, req)
		ep.release() // decoded (copied)
	case decodeBatches(ep.data, req) == nil:
		// The batch form, its records aliasing ep.data: the caller releases
		// it once they are queued.
	default:
		req.Reset()
		err = proto.Unmarshal(ep.data, req)
		ep.release()
	}
	if err != nil {
		h.budget.Release(w)
		return nil, 0, req.RequestId, errs.Wrap(errs.InvalidArgument, err, "decode publish request")
	}
	if err := h.h.authz.Check(ctx, acl.Topic, req.Topic, acl.Publish); err != nil {
		h.budget.Release(w)
		ep.release()
		return nil, 0, req.RequestId, err
	}
	return req, w, req.RequestId, nil
}

// requestID reads the request id of a request that was refused, as far as
// the top level of its encoding can be followed (0 otherwise), to answer
// it in-stream.
func requestID(ep *encodedPublish, md protoreflect.MessageDescriptor) uint64 {
	id := md.Fields().ByName("request_id")
	if !ep.json {
		for b := ep.data; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return 0
			}
			b = b[n:]
			if num == id.Number() && typ == protowire.VarintType {
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return 0
				}
				return v
			}
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0
			}
			b = b[n:]
		}
		return 0
	}
	j := jsonScanner{data: ep.data}
	if j.next() != '{' || j.peek() == '}' {
		return 0
	}
	for {
		var k key
		if _, _, err := j.str(&k); err != nil || j.next() != ':' {
			return 0
		}
		if k.field(md) == id {
			v, _ := j.uint()
			return v
		}
		if j.skip() != nil || j.next() != ',' {
			return 0
		}
	}
}

func messagesFromProto(req *spoolv1.PublishRequest) ([]broker.Message, error) {
	if req.Topic == "" {
		return nil, invalid("topic is required")
	}
	msgs := make([]broker.Message, len(req.Messages))
	for i, m := range req.Messages {
		var err error
		if msgs[i], err = messageFromProto(m); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

func resultsToProto(rs []broker.Result, id uint64) *spoolv1.PublishResponse {
	out := &spoolv1.PublishResponse{RequestId: id, Results: make([]*spoolv1.PublishResult, len(rs))}
	for i, r := range rs {
		out.Results[i] = &spoolv1.PublishResult{Partition: r.Partition, Offset: r.Offset, Duplicate: r.Duplicate, DeadLettered: r.DeadLettered}
	}
	return out
}

func (h publish) Publish(ctx context.Context, creq *connect.Request[encodedPublish]) (*connect.Response[spoolv1.PublishResponse], error) {
	req, w, _, err := h.admit(ctx, creq.Msg)
	admitted(ctx) // the body is now decoded or charged to the budget
	if err != nil {
		return nil, toConnect(err)
	}
	defer h.budget.Release(w)
	if len(req.Batches) > 0 {
		pb, err := h.appendBatches(ctx, req, true)
		creq.Msg.release() // the batches are queued (copied) or refused
		if err != nil {
			return nil, toConnect(err)
		}
		return connect.NewResponse(pb.wait()), nil
	}
	msgs, err := messagesFromProto(req)
	if err != nil {
		return nil, err
	}
	rs, err := h.b.Publish(req.Topic, msgs)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(resultsToProto(rs, req.RequestId)), nil
}

// loneWait is how long PublishStream's reader must have waited for a
// request, with nothing in flight on the stream, for the request to count
// as lone (a producer publishing one at a time): a request already
// buffered when the reader asked for it is part of a pipelined burst.
const loneWait = 50 * time.Microsecond

// PublishStream reads requests in order and queues each in the logs in
// that order (PublishAsync), so a producer's messages keep their order
// while the requests it has in flight share one fsync. One sender
// goroutine answers them in request order: it waits for each to be
// durable and sends its response, so the stream has a single writer and
// the answers to a group commit go out back to back, instead of a
// goroutine per request contending for the stream.
//
// A lone request — the reader waited for it, and everything before it on
// the stream had been answered — is written by the reader itself when no
// flush of its log is in progress (PublishFlush, as the unary Publish
// does), saving the hand-off to the log's writer and back (about 100 µs at
// the median of one-at-a-time publishing, in-process). The requests of a pipelined burst arrive while
// others are in flight, or are already buffered when the reader asks for
// them, and are queued for the log's writer: the reader goes on reading
// them during the fsync, and they share the next one. A burst's first
// request may be written by the reader; the requests arriving during its
// fsync then wait for it to end before they are read, as they would wait
// for it before their own fsync if they had been queued.
func (h publish) PublishStream(ctx context.Context, stream *connect.BidiStream[encodedPublish, spoolv1.PublishResponse]) error {
	type reply struct {
		size   int64
		finish func() *spoolv1.PublishResponse // waits until durable (or failed) and answers
	}
	answer := func(id uint64, err error) func() *spoolv1.PublishResponse {
		return func() *spoolv1.PublishResponse { return errorResponse(id, err) }
	}
	replies := make(chan reply, maxStreamInFlight) // bounds the requests in flight
	var failed atomic.Pointer[error]               // the first send error
	var inflight atomic.Int64                      // requests queued for the sender and not yet answered
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		for r := range replies {
			resp := r.finish()
			if failed.Load() == nil {
				if err := stream.Send(resp); err != nil {
					failed.Store(&err)
				}
			}
			h.budget.Release(r.size)
			inflight.Add(-1)
		}
	}()
	queue := func(r reply) {
		inflight.Add(1)
		replies <- r
	}
	defer func() {
		close(replies)
		<-senderDone
	}()
	for {
		t0 := time.Now()
		ep, err := stream.Receive()
		// Lone: everything before it answered, and it was not already
		// waiting to be read.
		lone := time.Since(t0) >= loneWait && inflight.Load() == 0
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e := failed.Load(); e != nil {
			return *e
		}
		// Queued for the log's writer unless lone: writing it here would
		// keep this loop from reading (and queueing) the requests that
		// arrive during the fsync.
		req, size, id, err := h.admit(ctx, ep)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			queue(reply{finish: answer(id, err)})
			continue
		}
		if len(req.Batches) > 0 {
			pb, err := h.appendBatches(ctx, req, lone)
			ep.release() // the batches are queued (copied) or refused
			if err != nil {
				queue(reply{size: size, finish: answer(id, err)})
				continue
			}
			queue(reply{size: size, finish: pb.wait})
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		msgs, err := messagesFromProto(req)
		var pp *broker.PendingPublish
		if err == nil {
			if lone {
				pp, err = h.b.PublishFlush(req.Topic, msgs)
			} else {
				pp, err = h.b.PublishAsync(req.Topic, msgs)
			}
		}
		if err != nil {
			queue(reply{size: size, finish: answer(id, err)})
			continue
		}
		queue(reply{size: size, finish: func() *spoolv1.PublishResponse {
			rs, err := pp.Wait()
			if err != nil {
				return errorResponse(id, err)
			}
			return resultsToProto(rs, id)
		}})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func errorResponse(id uint64, err error) *spoolv1.PublishResponse {
	info, msg := errorInfo(err)
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
		for _, d := range ce.Details() {
			if v, derr := d.Value(); derr == nil {
				if ei, ok := v.(*spoolv1.ErrorInfo); ok {
					info = ei
				}
			}
		}
	}
	return &spoolv1.PublishResponse{RequestId: id, Error: info, ErrorMessage: msg}
}
