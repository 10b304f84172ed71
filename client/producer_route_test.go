package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// followerStream is the batch form of a node that leads partition 0 and
// not partition 1: partition 1's batches are refused, naming the leader,
// the others go to the shared log.
type followerStream struct {
	*fakeBatches
	leaderAddr string
	refused    atomic.Int64
}

func (f *followerStream) PublishStream(_ context.Context, stream *connect.BidiStream[spoolv1.PublishRequest, spoolv1.PublishResponse]) error {
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
			if pb.Partition == 1 {
				f.refused.Add(1)
				resp.BatchResults = append(resp.BatchResults, &spoolv1.BatchResult{Partition: 1, BaseOffset: -1,
					Error: &spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true, NotLeader: &spoolv1.NotLeader{
						Topic: req.Topic, Partition: 1, Leader: 2, LeaderAddr: f.leaderAddr}},
					ErrorMessage: "this node does not lead partition 1"})
				continue
			}
			resp.BatchResults = append(resp.BatchResults, f.append(pb))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// countingStream is the leader's batch form, counting the batches it gets.
type countingStream struct {
	*fakeBatches
	batches atomic.Int64
}

func (c *countingStream) PublishStream(ctx context.Context, stream *connect.BidiStream[spoolv1.PublishRequest, spoolv1.PublishResponse]) error {
	for {
		req, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		c.batches.Add(int64(len(req.Batches)))
		resp := &spoolv1.PublishResponse{RequestId: req.RequestId}
		for _, pb := range req.Batches {
			resp.BatchResults = append(resp.BatchResults, c.append(pb))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func startFake(t *testing.T, pub spoolv1connect.PublishServiceHandler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(spoolv1connect.NewPublishServiceHandler(pub))
	mux.Handle(spoolv1connect.NewTopicServiceHandler(twoPartitions{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// A Producer whose node refuses a partition it does not lead sends the
// partition's batches to the leader the refusal names, at once, on a
// stream of its own, with the same sequences: every message is stored
// once, each key's in order, and the other partition stays where it was.
func TestProducerFollowsLeader(t *testing.T) {
	log := newFakeBatches(nil)
	leader := &countingStream{fakeBatches: log}
	lsrv := startFake(t, leader)
	u, err := url.Parse(lsrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	follower := &followerStream{fakeBatches: log, leaderAddr: u.Host}
	fsrv := startFake(t, follower)
	c, err := New(fsrv.URL, WithLogger(slog.New(slog.DiscardHandler)), WithBackoff(10*time.Second, 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newProducer(t, c, ProducerLinger(0), ProducerMaxBatchMessages(4))
	t0 := time.Now()
	fs, vals := sendKeyed(t, p, 300, -1)
	waitAll(t, fs)
	// A backoff (at least 5 s) would take longer: the redirect is
	// immediate.
	if d := time.Since(t0); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	checkStored(t, log, vals, "")
	if follower.refused.Load() == 0 || leader.batches.Load() == 0 {
		t.Fatalf("refused %d batches, the leader got %d", follower.refused.Load(), leader.batches.Load())
	}
	// Once followed, partition 1 goes to the leader only: a few refusals
	// (the batches in flight when the first came back), not one per batch.
	if n := follower.refused.Load(); n > maxPartInFlight {
		t.Errorf("%d refusals", n)
	}
}

// A leader hint is kept only when its address is a plain host:port.
func TestLeaderHintAddress(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7070": true, "[::1]:7070": true, "node-2.example:7070": true,
		"": false, "127.0.0.1": false, "http://127.0.0.1:7070": false, "a@b:1": false, ":7070": false,
		"127.0.0.1:7070/x": false, string(make([]byte, 300)) + ":1": false,
	} {
		h := leaderHintOf(&spoolv1.NotLeader{Topic: "t", Partition: 1, Leader: 2, LeaderAddr: addr})
		if (h.addr != "") != ok {
			t.Errorf("%q: kept %q", addr, h.addr)
		}
	}
	if leaderHintOf(nil) != nil {
		t.Error("a hint from nothing")
	}
}
