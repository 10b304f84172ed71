package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

func TestAckBatchCoalescesRanges(t *testing.T) {
	var b ackBatch
	for _, o := range []int64{7, 3, 4, 5, 5, 9, 10, 1} {
		b.add(0, o)
	}
	b.add(2, 100)
	b.add(1, 0)
	b.add(1, 1)
	got := b.take(maxAckOffsets)
	want := "[0:[1,2) 0:[3,6) 0:[7,8) 0:[9,11) 1:[0,2) 2:[100,101)]"
	if len(got) != 1 || fmtRanges(got[0]) != want {
		t.Fatalf("take = %v, want one request %s", got, want)
	}
	if b.n != 0 || len(b.take(10)) != 0 {
		t.Fatal("take did not empty the batch")
	}

	// Requests are split at the limit, within a range if need be.
	for o := range int64(10) {
		b.add(3, o)
	}
	b.add(4, 0)
	got = b.take(4)
	var parts []string
	for _, rs := range got {
		parts = append(parts, fmtRanges(rs))
	}
	if s := strings.Join(parts, " "); s != "[3:[0,4)] [3:[4,8)] [3:[8,10) 4:[0,1)]" {
		t.Fatalf("split: %s", s)
	}

	// merge moves everything.
	var a, c ackBatch
	a.add(0, 1)
	c.add(0, 2)
	a.merge(&c)
	if c.n != 0 || fmtRanges(a.take(10)[0]) != "[0:[1,3)]" {
		t.Fatal("merge")
	}
}

func fmtRanges(rs []*spoolv1.OffsetRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%d:[%d,%d)", r.Partition, r.From, r.To)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestHandlerOutcomeErrors(t *testing.T) {
	bad := errors.New("bad payload")
	rej := fmt.Errorf("order 7: %w", Reject(bad))
	var re *RejectError
	if !errors.As(rej, &re) || !errors.Is(rej, bad) || rej.Error() != "order 7: bad payload" {
		t.Fatalf("Reject: %v", rej)
	}
	if Reject(nil).Error() != "rejected" {
		t.Error("Reject(nil)")
	}
	retry := fmt.Errorf("downstream: %w", RetryAfter(bad, 3*time.Second))
	var ry *RetryError
	if !errors.As(retry, &ry) || ry.After != 3*time.Second || !errors.Is(retry, bad) || errors.As(retry, &re) {
		t.Fatalf("RetryAfter: %v", retry)
	}
	for d, want := range map[time.Duration]time.Duration{-time.Second: 0, 0: 0, 365 * 24 * time.Hour: maxNackDelay} {
		if got := RetryAfter(nil, d).(*RetryError).After; got != want {
			t.Errorf("RetryAfter(%v) delay %v, want %v", d, got, want)
		}
	}
	if RetryAfter(nil, 0).Error() != "retry" {
		t.Error("RetryAfter(nil)")
	}
	long := strings.Repeat("é", maxErrorText) // 2 bytes each
	if got := errorText(errors.New(long)); len(got) != maxErrorText || !strings.HasPrefix(long, got) {
		t.Errorf("errorText cut to %d bytes", len(got))
	}
	if errorText(nil) != "" || errorText(bad) != "bad payload" {
		t.Error("errorText")
	}
}

func TestConsumerQueueDefaults(t *testing.T) {
	cfg := defaultConsumerConfig()
	ConsumerConcurrency(8).apply(&cfg)
	if cfg.credit(true) != 16 || cfg.credit(false) != 1000 {
		t.Errorf("credit: queue %d, stream %d", cfg.credit(true), cfg.credit(false))
	}
	ConsumerPrefetch(5).apply(&cfg)
	if cfg.credit(true) != 5 {
		t.Errorf("explicit prefetch in queue mode: %d", cfg.credit(true))
	}
}

// queuePeer is what the fake server saw from a queue-mode consumer.
type queuePeer struct {
	acked   map[leaseKey]int // times acknowledged
	ackReqs [][]*spoolv1.OffsetRange
	nacks   []*spoolv1.Nack
	rejects []*spoolv1.Reject
	extends []*spoolv1.Extend
	credits int
	order   []string
	stale   func(part int32, off int64) bool // lease results report these stale
}

// serveQueueUntil answers a queue-mode consumer's requests (with lease
// results) until done says so; false if the stream ended first.
func (c *consumeConn) serveQueueUntil(st *queuePeer, done func() bool) bool {
	c.t.Helper()
	if st.acked == nil {
		st.acked = map[leaseKey]int{}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		req, ok := c.recvWithin(10 * time.Millisecond)
		if !ok {
			if time.Now().After(deadline) {
				c.t.Fatalf("timed out serving the consumer; seen %+v", st)
			}
			continue
		}
		if req == nil {
			return false
		}
		var id uint64
		var offs []leaseKey
		switch k := req.Kind.(type) {
		case *spoolv1.ConsumeRequest_Ack:
			st.order = append(st.order, "ack")
			st.ackReqs = append(st.ackReqs, k.Ack.Ranges)
			for _, r := range k.Ack.Ranges {
				for o := r.From; o < r.To; o++ {
					st.acked[leaseKey{r.Partition, o}]++
					offs = append(offs, leaseKey{r.Partition, o})
				}
			}
			id = k.Ack.RequestId
		case *spoolv1.ConsumeRequest_Nack:
			st.order = append(st.order, "nack")
			st.nacks = append(st.nacks, k.Nack)
			id, offs = k.Nack.RequestId, []leaseKey{{k.Nack.Partition, k.Nack.Offset}}
		case *spoolv1.ConsumeRequest_Reject:
			st.order = append(st.order, "reject")
			st.rejects = append(st.rejects, k.Reject)
			id, offs = k.Reject.RequestId, []leaseKey{{k.Reject.Partition, k.Reject.Offset}}
		case *spoolv1.ConsumeRequest_Extend:
			st.order = append(st.order, "extend")
			st.extends = append(st.extends, k.Extend)
			id = k.Extend.RequestId
			for _, o := range k.Extend.Offsets {
				offs = append(offs, leaseKey{k.Extend.Partition, o})
			}
		case *spoolv1.ConsumeRequest_Credits:
			st.order = append(st.order, "credits")
			st.credits += int(k.Credits.Messages)
			continue
		default:
			c.t.Fatalf("unexpected request %v", req)
		}
		if id == 0 {
			c.t.Fatalf("lease request without a request id: %v", req)
		}
		lr := &spoolv1.LeaseResult{RequestId: id}
		for _, o := range offs {
			if st.stale != nil && st.stale(o.part, o.off) {
				lr.Stale = append(lr.Stale, &spoolv1.PartitionOffset{Partition: o.part, Offset: o.off})
			}
		}
		c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_LeaseResult{LeaseResult: lr}})
	}
	return true
}

// finishQueue serves a queue-mode consumer until it closes the stream.
func (c *consumeConn) finishQueue(st *queuePeer) {
	c.serveQueueUntil(st, func() bool { return false })
	c.end <- nil
}

// joinQueue reads ConsumeStart and sends the queue-mode assignment.
func (c *consumeConn) joinQueue() *spoolv1.ConsumeStart {
	c.t.Helper()
	start := c.recv().GetStart()
	if start == nil {
		c.t.Fatal("no ConsumeStart")
	}
	c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Assignment{Assignment: &spoolv1.Assignment{
		MemberId: "m-1", SessionTimeout: durationpb.New(300 * time.Millisecond)}}})
	return start
}

// lease delivers leased messages of partition part at the given offsets,
// keyed by keys[i] if given, with a lease of ackTimeout.
func (c *consumeConn) lease(part int32, ackTimeout time.Duration, offsets []int64, keys ...string) {
	c.t.Helper()
	now := time.Now()
	ds := &spoolv1.Deliveries{}
	for i, o := range offsets {
		d := &spoolv1.Delivery{Partition: part, Offset: o, Value: []byte(fmt.Sprint(o)), DeliveryCount: 1,
			FirstDeliveredAt: timestamppb.New(now), LeaseDeadline: timestamppb.New(now.Add(ackTimeout))}
		if i < len(keys) {
			d.Key = []byte(keys[i])
		}
		ds.Messages = append(ds.Messages, d)
	}
	c.send(&spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Deliveries{Deliveries: ds}})
}

func TestQueueConsumerAcksNacksAndRejects(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	var mu sync.Mutex
	var got []*Message
	var onErr []string
	h := func(_ context.Context, m *Message) error {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		switch m.Offset {
		case 3:
			return errors.New("flaky")
		case 4:
			return fmt.Errorf("decoding: %w", Reject(errors.New("not JSON")))
		case 5:
			return RetryAfter(errors.New("rate limited"), 2*time.Second)
		}
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerPrefetch(20), ConsumerMaxInFlight(50), ConsumerAckInterval(time.Hour),
		ConsumerOnError(func(m *Message, err error) { mu.Lock(); onErr = append(onErr, err.Error()); mu.Unlock() }))
	conn := fake.accept(t)
	start := conn.joinQueue()
	if start.GetCredits() != 20 || start.GetMaxInFlight() != 50 || start.GetSubscription() != "billing" {
		t.Fatalf("start = %v", start)
	}
	conn.lease(0, 30*time.Second, []int64{0, 1, 2, 3, 4, 5, 6, 8})
	conn.lease(1, 30*time.Second, []int64{7})
	var st queuePeer
	// Everything finished: the acks of the last ones are sent when the
	// consumer has nothing left in hand, so no timer is involved.
	conn.serveQueueUntil(&st, func() bool { return len(st.acked) == 6 && len(st.nacks) == 2 && len(st.rejects) == 1 })
	for _, k := range []leaseKey{{0, 0}, {0, 1}, {0, 2}, {0, 6}, {0, 8}, {1, 7}} {
		if st.acked[k] != 1 {
			t.Errorf("%v acked %d times", k, st.acked[k])
		}
	}
	slices.SortFunc(st.nacks, func(a, b *spoolv1.Nack) int { return int(a.Offset - b.Offset) })
	if n := st.nacks[0]; n.Offset != 3 || n.Delay != nil || n.Error != "flaky" {
		t.Errorf("nack %v: want offset 3, the subscription's backoff, error text", n)
	}
	if n := st.nacks[1]; n.Offset != 5 || n.Delay.AsDuration() != 2*time.Second || n.Error != "rate limited" {
		t.Errorf("nack %v: want offset 5 after 2s", n)
	}
	if r := st.rejects[0]; r.Offset != 4 || r.Error != "decoding: not JSON" {
		t.Errorf("reject %v", r)
	}
	conn.serveQueueUntil(&st, func() bool { return st.credits == 9 }) // one credit back per delivery
	mu.Lock()
	if len(got) != 9 || len(onErr) != 3 {
		t.Errorf("handled %d, OnError %v", len(got), onErr)
	}
	for _, m := range got {
		if m.FirstDeliveredAt.IsZero() || m.LeaseDeadline.IsZero() || m.DeliveryCount != 1 || m.Topic != "orders" {
			t.Errorf("message %+v", m)
		}
	}
	mu.Unlock()
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestQueueConsumerBatchesAcks(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	release := make(chan struct{})
	h := func(_ context.Context, m *Message) error {
		if m.Offset == 99 {
			<-release // keeps the consumer busy, so acks wait for the flush
		}
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerConcurrency(2), ConsumerPrefetch(200), ConsumerAckEvery(50), ConsumerAckInterval(time.Hour))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{99})
	offs := make([]int64, 120)
	for i := range offs {
		offs[i] = int64(i)
	}
	offs[99] = 200
	conn.lease(0, 30*time.Second, offs[:60])
	conn.lease(1, 30*time.Second, offs[60:])
	var st queuePeer
	conn.serveQueueUntil(&st, func() bool { return len(st.ackReqs) >= 2 })
	for _, rs := range st.ackReqs[:2] {
		n := int64(0)
		for _, r := range rs {
			n += r.To - r.From
		}
		if n != 50 || len(rs) > 4 {
			t.Errorf("ack request %s: want 50 offsets in a few ranges", fmtRanges(rs))
		}
	}
	close(release)
	conn.serveQueueUntil(&st, func() bool { return len(st.acked) == 121 })
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if len(st.ackReqs) > 4 {
		t.Errorf("%d ack requests for 121 messages", len(st.ackReqs))
	}
}

func TestQueueConsumerExtendsLeases(t *testing.T) {
	fake := newFakeConsume()
	const ackTimeout = 150 * time.Millisecond
	c := serveQueue(t, fake, ackTimeout)
	done := make(chan struct{})
	h := func(_ context.Context, m *Message) error {
		if m.Offset == 0 {
			<-done
		}
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerConcurrency(2))
	conn := fake.accept(t)
	conn.joinQueue()
	start := time.Now()
	conn.lease(0, ackTimeout, []int64{0, 1})
	var st queuePeer
	conn.serveQueueUntil(&st, func() bool { return len(st.extends) >= 3 })
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("3 extensions within %v: too early for a %v lease", el, ackTimeout)
	}
	for _, e := range st.extends {
		if e.Partition != 0 || !slices.Equal(e.Offsets, []int64{0}) || e.By != nil {
			t.Errorf("extend %v: want offset 0 only (1 is finished), by the ack timeout", e)
		}
	}
	close(done)
	conn.serveQueueUntil(&st, func() bool { return st.acked[leaseKey{0, 0}] == 1 })
	n := len(st.extends)
	time.Sleep(2 * ackTimeout)
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if len(st.extends) != n {
		t.Errorf("extended after the ack")
	}
}

func TestQueueConsumerStopsExtendingStaleLeases(t *testing.T) {
	fake := newFakeConsume()
	const ackTimeout = 90 * time.Millisecond
	c := serveQueue(t, fake, ackTimeout)
	done := make(chan struct{})
	cancel, errc := runConsumer(t, c, func(context.Context, *Message) error { <-done; return nil })
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, ackTimeout, []int64{0})
	st := queuePeer{stale: func(int32, int64) bool { return true }}
	conn.serveQueueUntil(&st, func() bool { return len(st.extends) == 1 })
	stop := time.Now().Add(4 * ackTimeout)
	conn.serveQueueUntil(&st, func() bool { return time.Now().After(stop) || len(st.extends) > 1 || len(st.acked) > 0 })
	if len(st.extends) != 1 {
		t.Errorf("%d extensions of a lease reported stale", len(st.extends))
	}
	close(done)
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestQueueConsumerMaxExtension(t *testing.T) {
	fake := newFakeConsume()
	const ackTimeout = 60 * time.Millisecond
	c := serveQueue(t, fake, ackTimeout)
	done := make(chan struct{})
	cancel, errc := runConsumer(t, c, func(context.Context, *Message) error { <-done; return nil },
		ConsumerMaxExtension(150*time.Millisecond))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, ackTimeout, []int64{0})
	var st queuePeer
	stop := time.Now().Add(500 * time.Millisecond)
	conn.serveQueueUntil(&st, func() bool { return time.Now().After(stop) })
	if n := len(st.extends); n < 1 || n > 4 {
		t.Errorf("%d extensions within a 150ms cap of a 60ms lease", n)
	}
	close(done)
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

func TestQueueConsumerShutdown(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	started := make(chan struct{})
	h := func(ctx context.Context, m *Message) error {
		if m.Offset == 0 {
			close(started)
			<-ctx.Done() // only the shutdown timeout ends it
			return ctx.Err()
		}
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerPrefetch(4), ConsumerShutdownTimeout(100*time.Millisecond))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{0, 1, 2})
	<-started
	cancel()
	conn.lease(0, 30*time.Second, []int64{3}) // arrives while shutting down
	var st queuePeer
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if len(st.acked) != 0 {
		t.Errorf("acked %v", st.acked)
	}
	byOffset := map[int64]*spoolv1.Nack{}
	for _, n := range st.nacks {
		byOffset[n.Offset] = n
	}
	for _, o := range []int64{1, 2, 3} {
		if n := byOffset[o]; n == nil || n.Delay.AsDuration() != 0 || n.Delay == nil {
			t.Errorf("offset %d: nack %v, want one for immediate redelivery", o, n)
		}
	}
	if n := byOffset[0]; n == nil || n.Delay != nil || n.Error == "" {
		t.Errorf("abandoned offset 0: nack %v, want one with the backoff and a reason", n)
	}
	if len(st.nacks) != 4 {
		t.Errorf("nacks %v", st.nacks)
	}
}

func TestQueueConsumerKeyOrdered(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	var mu sync.Mutex
	busy := map[string]bool{}
	order := map[string][]int64{}
	overlap := false
	maxParallel, running := 0, 0
	h := func(_ context.Context, m *Message) error {
		k := string(m.Key)
		mu.Lock()
		if busy[k] {
			overlap = true
		}
		busy[k] = true
		running++
		maxParallel = max(maxParallel, running)
		order[k] = append(order[k], m.Offset)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		busy[k] = false
		running--
		mu.Unlock()
		return nil
	}
	cancel, errc := runConsumer(t, c, h, ConsumerConcurrency(4), ConsumerPrefetch(100), ConsumerKeyOrdered())
	conn := fake.accept(t)
	conn.joinQueue()
	var offs []int64
	var keys []string
	for i := range 40 {
		offs = append(offs, int64(i))
		keys = append(keys, fmt.Sprint("k", i%3))
	}
	conn.lease(0, 30*time.Second, offs, keys...)
	var st queuePeer
	conn.serveQueueUntil(&st, func() bool { return len(st.acked) == 40 })
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two messages of one key handled at once")
	}
	for k, o := range order {
		if !slices.IsSorted(o) || len(o) < 13 {
			t.Errorf("key %s handled as %v", k, o)
		}
	}
	if maxParallel < 2 {
		t.Errorf("at most %d handlers at once: keys must run in parallel", maxParallel)
	}
}

func TestQueueConsumerRedeliveryWhileHeld(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	cancel, errc := runConsumer(t, c, func(context.Context, *Message) error {
		mu.Lock()
		calls++
		mu.Unlock()
		<-release
		return nil
	}, ConsumerPrefetch(4))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{0})
	conn.lease(0, 30*time.Second, []int64{0}) // the lease ran out and came back
	var st queuePeer
	conn.serveQueueUntil(&st, func() bool { return st.credits == 1 }) // the copy's credit at once
	close(release)
	conn.serveQueueUntil(&st, func() bool { return st.acked[leaseKey{0, 0}] == 1 && st.credits == 2 })
	cancel()
	conn.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || st.acked[leaseKey{0, 0}] != 1 {
		t.Errorf("handled %d times, acked %d times", calls, st.acked[leaseKey{0, 0}])
	}
}

func TestQueueConsumerCarriesOutcomesOverReconnect(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	cancel, errc := runConsumer(t, c, func(_ context.Context, m *Message) error {
		started <- struct{}{}
		<-release
		if m.Offset == 1 {
			return errors.New("failed")
		}
		return nil
	}, ConsumerConcurrency(2))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{0, 1})
	<-started
	<-started
	conn.end <- connect.NewError(connect.CodeUnavailable, errors.New("server restarting"))
	time.Sleep(20 * time.Millisecond)
	close(release)

	conn2 := fake.accept(t)
	if start := conn2.joinQueue(); start.GetMemberId() != "m-1" {
		t.Fatalf("rejoined as %q", start.GetMemberId())
	}
	var st queuePeer
	conn2.serveQueueUntil(&st, func() bool { return st.acked[leaseKey{0, 0}] == 1 && len(st.nacks) == 1 })
	if n := st.nacks[0]; n.Offset != 1 || n.Error != "failed" {
		t.Errorf("nack %v", n)
	}
	cancel()
	conn2.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
}

// Acks and nacks sent on a stream that then breaks without answering them
// may not have reached the server: they are sent again on the next stream.
func TestQueueConsumerResendsUnansweredOutcomes(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	cancel, errc := runConsumer(t, c, func(_ context.Context, m *Message) error {
		if m.Offset == 1 {
			return errors.New("failed")
		}
		return nil
	}, ConsumerConcurrency(2))
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{0, 1})
	var acked, nacked bool
	for !acked || !nacked {
		switch req := conn.recv(); {
		case req.GetAck() != nil:
			acked = true
		case req.GetNack() != nil:
			nacked = true
		}
	}
	conn.end <- connect.NewError(connect.CodeUnavailable, errors.New("server restarting"))

	conn2 := fake.accept(t)
	conn2.joinQueue()
	var st queuePeer
	conn2.serveQueueUntil(&st, func() bool { return st.acked[leaseKey{0, 0}] == 1 && len(st.nacks) == 1 })
	if n := st.nacks[0]; n.Offset != 1 || n.Error != "failed" {
		t.Errorf("nack %v", n)
	}
	cancel()
	conn2.finishQueue(&st)
	if err := runResult(t, errc); err != nil {
		t.Fatal(err)
	}
	if st.acked[leaseKey{0, 0}] != 1 || len(st.nacks) != 1 || len(st.extends) != 0 {
		t.Errorf("after the reconnect: %+v", st)
	}
}

func TestQueueConsumerStopOnError(t *testing.T) {
	fake := newFakeConsume()
	c := serveQueue(t, fake, 30*time.Second)
	boom := errors.New("boom")
	_, errc := runConsumer(t, c, func(_ context.Context, m *Message) error {
		if m.Offset == 1 {
			return boom
		}
		if m.Offset == 2 {
			return Reject(errors.New("not fatal"))
		}
		return nil
	}, ConsumerStopOnError())
	conn := fake.accept(t)
	conn.joinQueue()
	conn.lease(0, 30*time.Second, []int64{0, 2})
	var st queuePeer
	conn.serveQueueUntil(&st, func() bool { return len(st.rejects) == 1 && st.acked[leaseKey{0, 0}] == 1 })
	conn.lease(0, 30*time.Second, []int64{1})
	conn.finishQueue(&st)
	if err := runResult(t, errc); !errors.Is(err, boom) {
		t.Fatalf("Run: %v", err)
	}
	if len(st.nacks) != 1 || st.nacks[0].Offset != 1 {
		t.Errorf("nacks %v: the failed message must be nacked", st.nacks)
	}
}
