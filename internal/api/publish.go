package api

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/broker"
)

// maxStreamInFlight bounds the requests of one PublishStream that are not
// yet answered; the server stops reading the stream at the bound (and when
// the server-wide publish budget is spent), so HTTP/2 flow control slows a
// producer that is faster than the disk.
const maxStreamInFlight = 64

// publish implements PublishService.
type publish struct {
	b         *broker.Broker
	budget    *semaphore.Weighted // publish bytes in flight, server-wide
	budgetMax int64
}

// weight is what a request counts against the publish budget (a request
// costing more than the whole budget takes all of it); contentType is the
// request's (or stream's), which tells JSON from binary.
func (h publish) weight(req *spoolv1.PublishRequest, contentType string) int64 {
	return min(publishCost(req, strings.Contains(contentType, "json")), h.budgetMax)
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
		out.Results[i] = &spoolv1.PublishResult{Partition: r.Partition, Offset: r.Offset, Duplicate: r.Duplicate}
	}
	return out
}

func (h publish) Publish(ctx context.Context, req *connect.Request[spoolv1.PublishRequest]) (*connect.Response[spoolv1.PublishResponse], error) {
	w := h.weight(req.Msg, req.Header().Get("Content-Type"))
	if err := h.budget.Acquire(ctx, w); err != nil {
		return nil, toConnect(err)
	}
	defer h.budget.Release(w)
	msgs, err := messagesFromProto(req.Msg)
	if err != nil {
		return nil, err
	}
	rs, err := h.b.Publish(req.Msg.Topic, msgs)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(resultsToProto(rs, req.Msg.RequestId)), nil
}

// PublishStream reads requests in order and queues each in the logs in
// that order (PublishAsync), then waits for durability concurrently, so a
// producer's messages keep their order while many requests share one fsync.
func (h publish) PublishStream(ctx context.Context, stream *connect.BidiStream[spoolv1.PublishRequest, spoolv1.PublishResponse]) error {
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
		window  = make(chan int, maxStreamInFlight) // one token per request in flight
	)
	send := func(resp *spoolv1.PublishResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(resp)
		}
	}
	release := func(w int64) {
		<-window
		h.budget.Release(w)
	}
	defer wg.Wait()
	ctype := stream.RequestHeader().Get("Content-Type")
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		sendMu.Lock()
		failed := sendErr
		sendMu.Unlock()
		if failed != nil {
			return failed
		}
		size := h.weight(req, ctype)
		// With nothing else of this stream in flight, the request's own
		// goroutine may write it (no hand-off to the log's writer): a
		// request read meanwhile would wait for the next fsync anyway.
		alone := len(window) == 0
		window <- 1
		if err := h.budget.Acquire(ctx, size); err != nil {
			<-window
			return err
		}

		id := req.RequestId
		msgs, err := messagesFromProto(req)
		var pp *broker.PendingPublish
		if err == nil {
			if alone {
				pp, err = h.b.PublishFlush(req.Topic, msgs)
			} else {
				pp, err = h.b.PublishAsync(req.Topic, msgs)
			}
		}
		if err != nil {
			send(errorResponse(id, err))
			release(size)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release(size)
			rs, err := pp.Wait()
			if err != nil {
				send(errorResponse(id, err))
				return
			}
			send(resultsToProto(rs, id))
		}()
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
