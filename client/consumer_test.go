package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// seen records handled messages per partition.
type seen struct {
	mu  sync.Mutex
	got map[int32][]int64
	ch  chan struct{} // one token per handled message
}

func newSeen() *seen { return &seen{got: map[int32][]int64{}, ch: make(chan struct{}, 1000)} }

func (s *seen) add(m *Message) {
	s.mu.Lock()
	s.got[m.Partition] = append(s.got[m.Partition], m.Offset)
	s.mu.Unlock()
	s.ch <- struct{}{}
}

func (s *seen) offsets(p int32) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got[p])
}

func (s *seen) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("handler not called")
		}
	}
}

// peerState is what the fake server saw from the consumer.
type peerState struct {
	committed map[int32]int64
	commits   []*spoolv1.Commit
	credits   int
	revoked   [][]int32
	failed    []*spoolv1.Failed
	order     []string // kinds of requests, in order
}

// serveUntil answers the consumer's requests (acknowledging commits) until
// done says so; false if the stream ended first.
func (c *consumeConn) serveUntil(st *peerState, done func() bool) bool {
	c.t.Helper()
	if st.committed == nil {
		st.committed = map[int32]int64{}
	}
	for !done() {
		req := c.recv()
		if req == nil {
			return false
		}
		switch k := req.Kind.(type) {
		case *spoolv1.ConsumeRequest_Commit:
			st.order = append(st.order, "commit")
			st.commits = append(st.commits, k.Commit)
			for _, o := range k.Commit.Offsets {
				st.committed[o.Partition] = o.Offset
			}
			c.commitOK(k.Commit.CommitId)
		case *spoolv1.ConsumeRequest_Credits:
			st.order = append(st.order, "credits")
			st.credits += int(k.Credits.Messages)
		case *spoolv1.ConsumeRequest_Revoked:
			st.order = append(st.order, "revoked")
			st.revoked = append(st.revoked, k.Revoked.Partitions)
		case *spoolv1.ConsumeRequest_Failed:
			st.order = append(st.order, "failed")
			st.failed = append(st.failed, k.Failed)
			c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_FailedResult{FailedResult: &spoolv1.FailedResult{
				RequestId: k.Failed.RequestId, Action: spoolv1.FailureAction_FAILURE_ACTION_DEAD_LETTER, DeadLetterTopic: "dlq.orders.billing"}}})
		default:
			c.t.Fatalf("unexpected request %v", req)
		}
	}
	return true
}

// finish serves the consumer until it closes the stream, then ends it.
func (c *consumeConn) finish(st *peerState) {
	c.serveUntil(st, func() bool { return false })
	c.end <- nil
}

func runConsumer(t *testing.T, c *Client, h Handler, opts ...ConsumerOption) (cancel func(), errc chan error) {
	t.Helper()
	opts = append([]ConsumerOption{ConsumerSessionTimeout(300 * time.Millisecond)}, opts...)
	k, err := c.NewConsumer("orders", "billing", h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelRun := context.WithCancel(context.Background())
	errc = make(chan error, 1)
	go func() { errc <- k.Run(ctx) }()
	t.Cleanup(cancelRun)
	return cancelRun, errc
}

func runResult(t *testing.T, errc chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestConsumerProcessesInOrderAndCommits(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake, WithClientID("test-client"))
	s := newSeen()
	var assigned []int32
	cancel, errc := runConsumer(t, c, func(_ context.Context, m *Message) error { s.add(m); return nil },
		ConsumerPrefetch(100), ConsumerConcurrency(2), ConsumerCommitInterval(20*time.Millisecond),
		ConsumerOnAssigned(func(_ context.Context, ps []int32) { assigned = ps }))

	conn := fake.accept(t)
	start := conn.recv().GetStart()
	if start.GetTopic() != "orders" || start.GetSubscription() != "billing" || start.GetCredits() != 100 ||
		start.GetClientId() != "test-client" || start.GetMemberId() != "" || start.GetSessionTimeout().AsDuration() != 300*time.Millisecond {
		t.Fatalf("start = %v", start)
	}
	conn.assign(1, nil, 0, 1)
	conn.deliver(1, 0, 10)
	conn.deliver(0, 0, 10)
	var st peerState
	conn.serveUntil(&st, func() bool { return st.committed[0] == 10 && st.committed[1] == 10 && st.credits == 20 })
	for p := range int32(2) {
		if got := s.offsets(p); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("partition %d handled %v", p, got)
		}
	}
	if !slices.Equal(assigned, []int32{0, 1}) {
		t.Errorf("OnAssigned got %v", assigned)
	}
	for _, cm := range st.commits {
		if cm.Generation != 1 {
			t.Errorf("commit with generation %d", cm.Generation)
		}
	}
	time.Sleep(150 * time.Millisecond) // a heartbeat is due every 100 ms
	cancel()
	conn.finish(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if conn.heartbeats == 0 {
		t.Error("no heartbeats")
	}
}

func TestConsumerRevokeWaitsCommitsThenConfirms(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	s := newSeen()
	release := make(chan struct{})
	var mu sync.Mutex
	var events []string
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	h := func(_ context.Context, m *Message) error {
		if m.Partition == 1 && m.Offset == 1 {
			note("handler blocked")
			<-release
		}
		s.add(m)
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerConcurrency(2), ConsumerCommitInterval(time.Hour), ConsumerPrefetch(4),
		ConsumerOnRevoked(func(_ context.Context, ps []int32) { note("revoked") }))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0, 1)
	conn.deliver(1, 0, 3)
	s.wait(t, 1) // p1@0 handled; p1@1 is blocked
	conn.assign(2, []int32{1}, 0)
	go func() {
		time.Sleep(50 * time.Millisecond)
		note("released")
		close(release)
	}()
	var st peerState
	conn.serveUntil(&st, func() bool { return len(st.revoked) > 0 })
	if !slices.Equal(st.revoked[0], []int32{1}) {
		t.Fatalf("revoked %v", st.revoked)
	}
	if i := slices.Index(st.order, "revoked"); i < 1 || st.order[i-1] != "commit" {
		t.Fatalf("requests %v: want a commit right before Revoked", st.order)
	}
	if last := st.commits[len(st.commits)-1]; last.Generation != 2 || st.committed[1] != 2 {
		t.Fatalf("commit %v: want partition 1 at offset 2, generation 2", last)
	}
	mu.Lock()
	if !slices.Equal(events, []string{"handler blocked", "released", "revoked"}) {
		t.Errorf("events %v", events)
	}
	mu.Unlock()
	if got := s.offsets(1); !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("partition 1 handled %v; the queued message must be dropped", got)
	}
	conn.serveUntil(&st, func() bool { return st.credits >= 3 }) // every delivery's credit comes back
	cancel()
	conn.finish(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerReconnectsAsTheSameMember(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	s := newSeen()
	cancel, errc := runConsumer(t, c, func(_ context.Context, m *Message) error { s.add(m); return nil },
		ConsumerCommitInterval(time.Hour), ConsumerCommitEvery(1000))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0)
	conn.deliver(0, 0, 5)
	s.wait(t, 5)
	conn.end <- connect.NewError(connect.CodeUnavailable, errors.New("server restarting"))

	conn2 := fake.accept(t)
	if start := conn2.recv().GetStart(); start.GetMemberId() != "m-1" {
		t.Fatalf("rejoined as %q, want m-1", start.GetMemberId())
	}
	conn2.assign(3, nil, 0)
	var st peerState
	conn2.serveUntil(&st, func() bool { return st.committed[0] == 5 }) // progress carried over
	conn2.deliver(0, 0, 7)                                             // the server redelivers from its committed offset
	s.wait(t, 2)
	if got := s.offsets(0); !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("handled %v; want each offset once", got)
	}
	cancel()
	conn2.finish(&st)
	if st.committed[0] != 7 {
		t.Errorf("final commit %d, want 7", st.committed[0])
	}
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

// The last commit of a shutdown, refused because a rebalance completed
// while it travelled, is sent again with the member's new generation.
func TestConsumerShutdownCommitOutlivesARebalance(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	s := newSeen()
	cancel, errc := runConsumer(t, c, func(_ context.Context, m *Message) error { s.add(m); return nil },
		ConsumerCommitInterval(time.Hour))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0)
	conn.deliver(0, 0, 3)
	s.wait(t, 3)
	cancel()
	commit := func() *spoolv1.Commit {
		t.Helper()
		for {
			req := conn.recv()
			if req == nil {
				t.Fatal("the stream ended without the commit")
			}
			if cm := req.GetCommit(); cm != nil {
				return cm
			}
		}
	}
	first := commit()
	if first.Generation != 1 || len(first.Offsets) != 1 || first.Offsets[0].Offset != 3 {
		t.Fatalf("shutdown commit %v", first)
	}
	conn.assign(2, nil, 0) // the rebalance the commit raced with
	conn.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_CommitResult{CommitResult: &spoolv1.CommitResult{
		CommitId: first.CommitId, Error: &spoolv1.ErrorInfo{Code: CodeStaleGeneration, Retriable: true}, ErrorMessage: "stale generation 1"}}})
	again := commit()
	if again.Generation != 2 || len(again.Offsets) != 1 || again.Offsets[0].Offset != 3 {
		t.Fatalf("commit after the stale one: %v", again)
	}
	conn.commitOK(again.CommitId)
	conn.finish(&peerState{})
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerFatalStartError(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	_, errc := runConsumer(t, c, func(context.Context, *Message) error { return nil })
	conn := fake.accept(t)
	conn.recv()
	conn.end <- spoolErr(connect.CodeNotFound, &spoolv1.ErrorInfo{Code: CodeSubscriptionNotFound}, "no such subscription")
	if err := runResult(t, errc); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("Run: %v", err)
	}
}

// A message still failing after its attempts is reported to the server
// (which dead-letters it here) before it is committed past.
func TestConsumerHandlerRetriesThenDeadLetters(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	var mu sync.Mutex
	attempts := map[int64]int{}
	var hooked int
	h := func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.Offset]++
		if m.Offset == 0 {
			return errors.New("always fails")
		}
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerHandlerRetries(2), ConsumerCommitEvery(1),
		ConsumerOnError(func(m *Message, err error) { mu.Lock(); hooked++; mu.Unlock() }))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0)
	conn.deliver(0, 0, 2)
	var st peerState
	conn.serveUntil(&st, func() bool { return st.committed[0] == 2 })
	mu.Lock()
	if attempts[0] != 3 || attempts[1] != 1 || hooked != 3 {
		t.Errorf("attempts %v, OnError calls %d", attempts, hooked)
	}
	mu.Unlock()
	if len(st.failed) != 1 || st.failed[0].Offset != 0 || st.failed[0].Attempts != 3 || st.failed[0].Error != "always fails" {
		t.Errorf("failure reports %v", st.failed)
	}
	commits := 0
	for _, kind := range st.order {
		if kind == "failed" {
			break
		}
		if kind == "commit" {
			for _, o := range st.commits[commits].Offsets {
				if o.Offset > 0 {
					t.Errorf("committed %d before reporting the failed message: %v", o.Offset, st.order)
				}
			}
			commits++
		}
	}
	cancel()
	conn.finish(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerStopOnError(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	boom := errors.New("boom")
	h := func(_ context.Context, m *Message) error {
		if m.Offset == 1 {
			return boom
		}
		return nil
	}
	_, errc := runConsumer(t, c, h, ConsumerStopOnError(), ConsumerCommitInterval(time.Hour))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0)
	conn.deliver(0, 0, 3)
	var st peerState
	conn.finish(&st)
	if err := runResult(t, errc); !errors.Is(err, boom) {
		t.Fatalf("Run: %v", err)
	}
	if st.committed[0] != 1 {
		t.Fatalf("committed %d; the failed message must not be committed", st.committed[0])
	}
}

func TestConsumerShutdownAbandonsSlowHandlers(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	started := make(chan struct{})
	h := func(ctx context.Context, m *Message) error {
		close(started)
		<-ctx.Done() // only the shutdown timeout ends it
		return ctx.Err()
	}
	cancel, errc := runConsumer(t, c, h, ConsumerShutdownTimeout(50*time.Millisecond))
	conn := fake.accept(t)
	conn.recv()
	conn.assign(1, nil, 0)
	conn.deliver(0, 0, 1)
	<-started
	cancel()
	var st peerState
	conn.finish(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if len(st.commits) != 0 {
		t.Fatalf("an abandoned message was committed: %v", st.commits)
	}
}

func TestConsumerRunTwiceAndClientClose(t *testing.T) {
	fake := newFakeConsume()
	c := serve(t, nil, fake)
	k, err := c.NewConsumer("orders", "billing", func(context.Context, *Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- k.Run(context.Background()) }()
	conn := fake.accept(t)
	conn.recv()
	if err := k.Run(context.Background()); !errors.Is(err, ErrConsumerRunning) {
		t.Fatalf("second Run: %v", err)
	}
	go func() { conn.finish(&peerState{}) }()
	c.Close()
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}
