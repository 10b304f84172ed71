package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// queueWorker consumes a queue subscription on a raw Consume stream: it
// acks (or, with nack, nacks) everything it receives and records when each
// ack was confirmed by the server.
type queueWorker struct {
	mu        sync.Mutex
	delivered map[string]int       // value -> deliveries seen
	confirmed map[string]time.Time // value -> when its ack was confirmed
	pending   map[uint64][]string  // ack request id -> values
}

func runQueueWorker(ctx context.Context, c *clients, topic, sub string, nack bool, w *queueWorker) {
	stream := c.consume.Consume(ctx)
	defer stream.CloseResponse()
	if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
		Topic: topic, Subscription: sub, Credits: 1000}}}); err != nil {
		return
	}
	var id uint64
	for {
		resp, err := stream.Receive()
		if err != nil {
			return
		}
		if lr := resp.GetLeaseResult(); lr != nil {
			w.mu.Lock()
			if vals, ok := w.pending[lr.RequestId]; ok && len(lr.Stale) == 0 {
				for _, v := range vals {
					w.confirmed[v] = time.Now()
				}
			}
			delete(w.pending, lr.RequestId)
			w.mu.Unlock()
		}
		ds := resp.GetDeliveries()
		if ds == nil {
			continue
		}
		var reqs []*spoolv1.ConsumeRequest
		var vals []string
		for _, d := range ds.Messages {
			id++
			v := string(d.Value)
			vals = append(vals, v)
			if nack {
				reqs = append(reqs, &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Nack{Nack: &spoolv1.Nack{
					Partition: d.Partition, Offset: d.Offset, Delay: durationpb.New(0), Error: "always fails", RequestId: id}}})
			} else {
				reqs = append(reqs, &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: &spoolv1.Ack{
					Ranges: []*spoolv1.OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}, RequestId: id}}})
			}
			w.mu.Lock()
			w.delivered[v]++
			if !nack {
				w.pending[id] = []string{v}
			}
			w.mu.Unlock()
		}
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				return
			}
		}
		stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Credits{Credits: &spoolv1.Credits{Messages: int32(len(ds.Messages))}}})
		_ = vals
	}
}

// TestQueueCrashUnderLoad kills the server with SIGKILL at random moments
// while producers publish and queue consumers ack (subscription "w") or
// always nack (subscription "p", max 3 deliveries). Checked: every
// acknowledged publish is delivered to "w"; a message whose ack was
// confirmed more than ackWindow before a crash is never delivered again;
// every message reaches "p"'s dead-letter topic exactly once.
//
// ackWindow is the documented crash window of acknowledgements (saved every
// 50 ms and fsynced) with margin for a slow disk.
// SPOOL_CRASH_CYCLES raises the cycle count (default 20).
const ackWindow = 500 * time.Millisecond

func TestQueueCrashUnderLoad(t *testing.T) {
	cycles := 20
	if v, err := strconv.Atoi(os.Getenv("SPOOL_CRASH_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	dir, addr := t.TempDir(), freePort(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	published := map[string]bool{} // acknowledged publishes
	attempted := map[string]bool{} // every message sent (a publish cut short by a crash may still be stored)
	w := &queueWorker{delivered: map[string]int{}, confirmed: map[string]time.Time{}, pending: map[uint64][]string{}}
	pw := &queueWorker{delivered: map[string]int{}, confirmed: map[string]time.Time{}, pending: map[uint64][]string{}}
	var pubMu sync.Mutex
	for cycle := range cycles {
		p := startSpool(t, dir, addr)
		c := newClients(addr)
		if cycle == 0 {
			c.createTopic(t, "work", &spoolv1.TopicConfig{Partitions: 2})
			c.createSub(t, "work", "w", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE, MaxDeliveries: 1000,
				AckTimeout: durationpb.New(2 * time.Second), Backoff: &spoolv1.Backoff{Initial: durationpb.New(10 * time.Millisecond), Jitter: spoolv1.Jitter_JITTER_NONE}})
			c.createSub(t, "work", "p", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE, MaxDeliveries: 3,
				AckTimeout: durationpb.New(2 * time.Second), Backoff: &spoolv1.Backoff{Initial: durationpb.New(10 * time.Millisecond), Jitter: spoolv1.Jitter_JITTER_NONE}})
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); runQueueWorker(ctx, c, "work", "w", false, w) }()
		go func() { defer wg.Done(); runQueueWorker(ctx, c, "work", "p", true, pw) }()
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var msgs []*spoolv1.Message
				for j := range 1 + i%10 {
					msgs = append(msgs, &spoolv1.Message{Key: []byte(strconv.Itoa(j)), Value: []byte(fmt.Sprintf("c%d-r%d-m%d", cycle, i, j))})
				}
				pubMu.Lock()
				for _, m := range msgs {
					attempted[string(m.Value)] = true
				}
				pubMu.Unlock()
				if _, err := c.publish.Publish(ctx, connect.NewRequest(&spoolv1.PublishRequest{Topic: "work", Messages: msgs})); err != nil {
					return
				}
				pubMu.Lock()
				for _, m := range msgs {
					published[string(m.Value)] = true
				}
				pubMu.Unlock()
				time.Sleep(time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(700+rng.IntN(800)) * time.Millisecond)
		p.kill()
		killedAt := time.Now()
		cancel()
		wg.Wait()
		c.close()
		// Acks confirmed well before the crash must stick: remember them.
		w.mu.Lock()
		before := map[string]bool{}
		for v, at := range w.confirmed {
			if killedAt.Sub(at) > ackWindow {
				before[v] = true
			}
		}
		deliveredBefore := map[string]int{}
		for v, n := range w.delivered {
			deliveredBefore[v] = n
		}
		w.mu.Unlock()
		// Anything in "before" delivered again later is a violation.
		checkNoRedelivery := func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			for v := range before {
				if w.delivered[v] > deliveredBefore[v] {
					t.Errorf("cycle %d: %s was acked (confirmed more than %s before the crash) and delivered again", cycle, v, ackWindow)
				}
			}
		}
		defer checkNoRedelivery()
		if t.Failed() {
			t.Fatalf("cycle %d; server log:\n%s", cycle, p.logs)
		}
	}
	// Drain: start once more and consume until everything published was
	// delivered to "w" and dead-lettered from "p".
	p := startSpool(t, dir, addr)
	defer p.stop()
	c := newClients(addr)
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); runQueueWorker(ctx, c, "work", "w", false, w) }()
	go func() { defer wg.Done(); runQueueWorker(ctx, c, "work", "p", true, pw) }()
	deadline := time.Now().Add(60 * time.Second)
	var dlqCount map[string]int
	for {
		missing := 0
		w.mu.Lock()
		for v := range published {
			if w.delivered[v] == 0 {
				missing++
			}
		}
		w.mu.Unlock()
		dlqCount = deadLetterCounts(t, c, "work", "p")
		if missing == 0 && len(dlqCount) >= len(published) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after draining: %d published messages never delivered to w; %d of %d dead-lettered from p\n%s",
				missing, len(dlqCount), len(published), p.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for v, n := range dlqCount {
		if n != 1 {
			t.Errorf("%s is %d times in the dead-letter topic", v, n)
		}
		if !attempted[v] {
			t.Errorf("dead-letter topic holds %s, which was never published", v)
		}
	}
	t.Logf("%d crash cycles; %d published messages delivered and dead-lettered exactly once", cycles, len(published))
}

// deadLetterCounts reads a subscription's whole dead-letter topic and counts
// each original value.
func deadLetterCounts(t *testing.T, c *clients, topic, sub string) map[string]int {
	t.Helper()
	out := map[string]int{}
	from := int64(0)
	for {
		resp, err := c.subs.ListDeadLetters(context.Background(), connect.NewRequest(&spoolv1.ListDeadLettersRequest{
			Topic: topic, Subscription: sub, FromOffset: from, Limit: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range resp.Msg.DeadLetters {
			out[string(d.Message.Value)]++
		}
		if len(resp.Msg.DeadLetters) == 0 || resp.Msg.NextOffset == from {
			return out
		}
		from = resp.Msg.NextOffset
	}
}
