package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// A minimal protocol peer for the client's tests: the real server lives in
// server/ and is exercised by integration_test.go; these fakes implement just
// enough of the generated handler interfaces to drive the client's
// transport-level behaviour deterministically.

// serve starts an h2c test server with the given handlers (nil: the
// Unimplemented ones) and returns a client for it. Its subscriptions are
// stream subscriptions.
func serve(t *testing.T, pub spoolv1connect.PublishServiceHandler, cons spoolv1connect.ConsumeServiceHandler, opts ...Option) *Client {
	t.Helper()
	return serveWith(t, pub, cons, fakeSubs{mode: spoolv1.Mode_MODE_STREAM}, opts...)
}

// serveQueue is serve for queue subscriptions with the given ack timeout.
func serveQueue(t *testing.T, cons spoolv1connect.ConsumeServiceHandler, ackTimeout time.Duration, opts ...Option) *Client {
	t.Helper()
	return serveWith(t, nil, cons, fakeSubs{mode: spoolv1.Mode_MODE_QUEUE, ackTimeout: ackTimeout}, opts...)
}

func serveWith(t *testing.T, pub spoolv1connect.PublishServiceHandler, cons spoolv1connect.ConsumeServiceHandler, subs fakeSubs, opts ...Option) *Client {
	t.Helper()
	if pub == nil {
		pub = spoolv1connect.UnimplementedPublishServiceHandler{}
	}
	if cons == nil {
		cons = spoolv1connect.UnimplementedConsumeServiceHandler{}
	}
	mux := http.NewServeMux()
	mux.Handle(spoolv1connect.NewPublishServiceHandler(pub))
	mux.Handle(spoolv1connect.NewConsumeServiceHandler(cons))
	mux.Handle(spoolv1connect.NewTopicServiceHandler(fakeTopics{}))
	mux.Handle(spoolv1connect.NewSubscriptionServiceHandler(subs))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler)), WithBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	c, err := New(srv.URL, opts...)
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

// spoolErr is a Connect error carrying an ErrorInfo detail, as Spool sends.
func spoolErr(code connect.Code, info *spoolv1.ErrorInfo, msg string) error {
	e := connect.NewError(code, errors.New(msg))
	d, err := connect.NewErrorDetail(info)
	if err != nil {
		panic(err)
	}
	e.AddDetail(d)
	return e
}

// fakeTopics answers DescribeTopic with topic_not_found and CreateTopic by
// echoing the request.
type fakeTopics struct {
	spoolv1connect.UnimplementedTopicServiceHandler
}

func (fakeTopics) CreateTopic(_ context.Context, req *connect.Request[spoolv1.CreateTopicRequest]) (*connect.Response[spoolv1.CreateTopicResponse], error) {
	return connect.NewResponse(&spoolv1.CreateTopicResponse{Topic: &spoolv1.Topic{Name: req.Msg.Name, Config: req.Msg.Config, Id: "id-1"}}), nil
}

func (fakeTopics) DescribeTopic(_ context.Context, req *connect.Request[spoolv1.DescribeTopicRequest]) (*connect.Response[spoolv1.DescribeTopicResponse], error) {
	return nil, spoolErr(connect.CodeNotFound, &spoolv1.ErrorInfo{Code: CodeTopicNotFound}, "topic "+req.Msg.Name+" does not exist")
}

// fakeSubs describes every subscription as one of the given mode.
type fakeSubs struct {
	spoolv1connect.UnimplementedSubscriptionServiceHandler
	mode       spoolv1.Mode
	ackTimeout time.Duration
}

func (f fakeSubs) DescribeSubscription(_ context.Context, req *connect.Request[spoolv1.DescribeSubscriptionRequest]) (*connect.Response[spoolv1.DescribeSubscriptionResponse], error) {
	cfg := &spoolv1.SubscriptionConfig{Mode: f.mode}
	if f.ackTimeout > 0 {
		cfg.AckTimeout = durationpb.New(f.ackTimeout)
	}
	return connect.NewResponse(&spoolv1.DescribeSubscriptionResponse{
		Subscription: &spoolv1.Subscription{Topic: req.Msg.Topic, Name: req.Msg.Name, Config: cfg},
	}), nil
}

// verdict is what fakePublish does with one request.
type verdict struct {
	fail        *spoolv1.ErrorInfo // answer in-stream with this error
	breakStream bool               // end the stream (unavailable) without answering
	storeFirst  bool               // with breakStream: store the messages before breaking
	delay       time.Duration      // answer after this long
}

// fakePublish stores messages once per id (the de-duplication window) and
// asks decide what to do with each request (n counts from 1).
type fakePublish struct {
	spoolv1connect.UnimplementedPublishServiceHandler
	decide func(n int, req *spoolv1.PublishRequest) verdict

	mu          sync.Mutex
	requests    int
	streams     int
	byID        map[string]*spoolv1.PublishResult
	stored      []*spoolv1.Message // in store order
	next        map[int32]int64
	outstanding int // received, unanswered
	maxOutstd   int
	sizes       []int // messages per request, in arrival order
}

func newFakePublish(decide func(int, *spoolv1.PublishRequest) verdict) *fakePublish {
	return &fakePublish{decide: decide, byID: map[string]*spoolv1.PublishResult{}, next: map[int32]int64{}}
}

func (f *fakePublish) store(msgs []*spoolv1.Message) []*spoolv1.PublishResult {
	out := make([]*spoolv1.PublishResult, len(msgs))
	for i, m := range msgs {
		if r, ok := f.byID[m.Id]; ok {
			out[i] = &spoolv1.PublishResult{Partition: r.Partition, Offset: r.Offset, Duplicate: true}
			continue
		}
		p := m.GetPartition()
		r := &spoolv1.PublishResult{Partition: p, Offset: f.next[p]}
		f.next[p]++
		f.byID[m.Id] = r
		f.stored = append(f.stored, m)
		out[i] = r
	}
	return out
}

// admit counts a request and returns its verdict.
func (f *fakePublish) admit(req *spoolv1.PublishRequest) verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.sizes = append(f.sizes, len(req.Messages))
	f.outstanding++
	f.maxOutstd = max(f.maxOutstd, f.outstanding)
	if f.decide == nil {
		return verdict{}
	}
	return f.decide(f.requests, req)
}

// answer builds the response for an admitted request.
func (f *fakePublish) answer(req *spoolv1.PublishRequest, v verdict) *spoolv1.PublishResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outstanding--
	if v.fail != nil {
		return &spoolv1.PublishResponse{RequestId: req.RequestId, Error: v.fail, ErrorMessage: "fake failure"}
	}
	return &spoolv1.PublishResponse{RequestId: req.RequestId, Results: f.store(req.Messages)}
}

func (f *fakePublish) Publish(_ context.Context, req *connect.Request[spoolv1.PublishRequest]) (*connect.Response[spoolv1.PublishResponse], error) {
	v := f.admit(req.Msg)
	resp := f.answer(req.Msg, v)
	if resp.Error != nil {
		return nil, spoolErr(connect.CodeUnavailable, resp.Error, resp.ErrorMessage)
	}
	return connect.NewResponse(resp), nil
}

func (f *fakePublish) PublishStream(ctx context.Context, stream *connect.BidiStream[spoolv1.PublishRequest, spoolv1.PublishResponse]) error {
	f.mu.Lock()
	f.streams++
	f.mu.Unlock()
	var (
		wg     sync.WaitGroup
		sendMu sync.Mutex
	)
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		v := f.admit(req)
		if v.breakStream {
			f.mu.Lock()
			f.outstanding--
			if v.storeFirst {
				f.store(req.Messages)
			}
			f.mu.Unlock()
			return connect.NewError(connect.CodeUnavailable, errors.New("fake stream break"))
		}
		wg.Go(func() {
			if v.delay > 0 {
				select {
				case <-time.After(v.delay):
				case <-ctx.Done():
					return
				}
			}
			resp := f.answer(req, v)
			sendMu.Lock()
			defer sendMu.Unlock()
			_ = stream.Send(resp)
		})
	}
}

// counts returns the requests and streams seen and the most requests
// outstanding at once.
func (f *fakePublish) counts() (requests, streams, maxOutstanding int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.streams, f.maxOutstd
}

// storedValues returns the values stored, in order.
func (f *fakePublish) storedValues() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.stored))
	for i, m := range f.stored {
		out[i] = string(m.Value)
	}
	return out
}

// fakeConsume hands each Consume stream to the test, which scripts it.
type fakeConsume struct {
	spoolv1connect.UnimplementedConsumeServiceHandler
	conns chan *consumeConn
}

func newFakeConsume() *fakeConsume { return &fakeConsume{conns: make(chan *consumeConn, 4)} }

// consumeConn is one server-side Consume stream. The test reads and writes
// it from its own goroutine until it sends the handler's result on end.
type consumeConn struct {
	t          *testing.T
	stream     *connect.BidiStream[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse]
	end        chan error
	heartbeats int
	readOnce   sync.Once
	reqs       chan *spoolv1.ConsumeRequest // from the reader goroutine; closed at the stream's end
}

func (f *fakeConsume) Consume(ctx context.Context, stream *connect.BidiStream[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse]) error {
	c := &consumeConn{stream: stream, end: make(chan error, 1)}
	select {
	case f.conns <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.end:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept waits for the client's next Consume stream.
func (f *fakeConsume) accept(t *testing.T) *consumeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		c.t = t
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no Consume stream")
		return nil
	}
}

// recv returns the next non-heartbeat request (nil at the stream's end).
func (c *consumeConn) recv() *spoolv1.ConsumeRequest {
	c.t.Helper()
	req, ok := c.recvWithin(10 * time.Second)
	if !ok {
		c.t.Fatal("no request from the consumer")
	}
	return req
}

// recvWithin is recv giving up after d; false if it did.
func (c *consumeConn) recvWithin(d time.Duration) (*spoolv1.ConsumeRequest, bool) {
	c.readOnce.Do(func() {
		c.reqs = make(chan *spoolv1.ConsumeRequest, 64)
		go func() {
			defer close(c.reqs)
			for {
				req, err := c.stream.Receive()
				if err != nil {
					return
				}
				c.reqs <- req
			}
		}()
	})
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case req := <-c.reqs:
			if req.GetHeartbeat() != nil {
				c.heartbeats++
				continue
			}
			return req, true
		case <-t.C:
			return nil, false
		}
	}
}

func (c *consumeConn) send(resp *spoolv1.ConsumeResponse) {
	c.t.Helper()
	if err := c.stream.Send(resp); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *consumeConn) assign(gen int64, revoke []int32, parts ...int32) {
	a := &spoolv1.Assignment{MemberId: "m-1", Generation: gen, Revoke: revoke, SessionTimeout: durationpb.New(300 * time.Millisecond),
		FailurePolicy: &spoolv1.FailurePolicy{Action: spoolv1.FailureAction_FAILURE_ACTION_DEAD_LETTER, MaxAttempts: 3,
			Backoff: &spoolv1.Backoff{Initial: durationpb.New(time.Millisecond), Max: durationpb.New(10 * time.Millisecond), Multiplier: 2}}}
	for _, p := range parts {
		a.Partitions = append(a.Partitions, &spoolv1.PartitionOffset{Partition: p})
	}
	c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Assignment{Assignment: a}})
}

func (c *consumeConn) deliver(part int32, from, to int64) {
	ds := &spoolv1.Deliveries{}
	for o := from; o < to; o++ {
		ds.Messages = append(ds.Messages, &spoolv1.Delivery{Partition: part, Offset: o, Value: []byte{byte(o)}, DeliveryCount: 1})
	}
	c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Deliveries{Deliveries: ds}})
}

func (c *consumeConn) commitOK(id uint64) {
	c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_CommitResult{CommitResult: &spoolv1.CommitResult{CommitId: id}}})
}
