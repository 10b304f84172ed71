package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

func publish(t *testing.T, c *clients, topic string, msgs ...*spoolv1.Message) []*spoolv1.PublishResult {
	t.Helper()
	resp, err := c.publish.Publish(context.Background(), connect.NewRequest(&spoolv1.PublishRequest{Topic: topic, Messages: msgs}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Results
}

func values(prefix string, n int) []*spoolv1.Message {
	out := make([]*spoolv1.Message, n)
	for i := range out {
		out[i] = &spoolv1.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return out
}

func TestPublishConsumeCommitRestartContinue(t *testing.T) {
	dir, addr := t.TempDir(), freePort(t)
	p := startSpool(t, dir, addr)
	c := newClients(addr)
	defer c.close()
	c.createTopic(t, "orders", &spoolv1.TopicConfig{Partitions: 3})
	c.createSub(t, "orders", "billing", nil)
	publish(t, c, "orders", values("m", 100)...)

	cs := c.join(t, "orders", "billing", 1000)
	got := cs.receive(t, 100, 5*time.Second)
	if len(got) != 100 {
		t.Fatalf("received %d of 100", len(got))
	}
	// Process (and commit) the first 40 deliveries of each partition only.
	processed := map[string]bool{}
	next := map[int32]int64{}
	count := map[int32]int{}
	for _, d := range got {
		if count[d.Partition] < 40 {
			count[d.Partition]++
			processed[string(d.Value)] = true
			next[d.Partition] = d.Offset + 1
		}
	}
	cs.commit(t, next)
	cs.close()
	p.stop()

	p = startSpool(t, dir, addr)
	defer p.stop()
	cs = c.join(t, "orders", "billing", 1000)
	defer cs.close()
	rest := cs.receive(t, 100-len(processed), 5*time.Second)
	seen := map[string]bool{}
	for _, d := range rest {
		if processed[string(d.Value)] {
			t.Fatalf("committed message %s delivered again", d.Value)
		}
		seen[string(d.Value)] = true
	}
	if len(seen)+len(processed) != 100 {
		t.Fatalf("after restart: %d new + %d processed != 100", len(seen), len(processed))
	}
	if extra := cs.receive(t, 1, 300*time.Millisecond); len(extra) != 0 {
		t.Fatalf("unexpected extra deliveries: %v", extra)
	}
}

func TestFanOutToSeveralSubscriptions(t *testing.T) {
	addr := freePort(t)
	p := startSpool(t, t.TempDir(), addr)
	defer p.stop()
	c := newClients(addr)
	defer c.close()
	c.createTopic(t, "events", &spoolv1.TopicConfig{Partitions: 2})
	for _, s := range []string{"a", "b", "c"} {
		c.createSub(t, "events", s, nil)
	}
	c.createSub(t, "events", "eu-only", &spoolv1.SubscriptionConfig{Filter: "orders.eu.#"})
	var msgs []*spoolv1.Message
	for i := range 50 {
		subj := "orders.us.created"
		if i%5 == 0 {
			subj = "orders.eu.created"
		}
		msgs = append(msgs, &spoolv1.Message{Value: []byte(strconv.Itoa(i)), Subject: subj})
	}
	publish(t, c, "events", msgs...)
	for s, want := range map[string]int{"a": 50, "b": 50, "c": 50, "eu-only": 10} {
		cs := c.join(t, "events", s, 1000)
		got := cs.receive(t, want+1, time.Second)
		cs.close()
		if len(got) != want {
			t.Fatalf("subscription %s got %d messages, want %d", s, len(got), want)
		}
	}
}

func TestReplayByTime(t *testing.T) {
	addr := freePort(t)
	p := startSpool(t, t.TempDir(), addr)
	defer p.stop()
	c := newClients(addr)
	defer c.close()
	c.createTopic(t, "audit", nil)
	c.createSub(t, "audit", "recon", &spoolv1.SubscriptionConfig{Start: &spoolv1.Position{Position: &spoolv1.Position_Latest{Latest: true}}})
	publish(t, c, "audit", values("old", 5)...)
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	publish(t, c, "audit", values("new", 5)...)

	reset := func(pos *spoolv1.Position) {
		if _, err := c.subs.ResetSubscription(context.Background(), connect.NewRequest(&spoolv1.ResetSubscriptionRequest{Topic: "audit", Name: "recon", To: pos})); err != nil {
			t.Fatal(err)
		}
	}
	// Latest at creation: the subscription sees everything published after.
	cs := c.join(t, "audit", "recon", 100)
	if got := cs.receive(t, 11, time.Second); len(got) != 10 {
		t.Fatalf("latest subscription got %d, want 10", len(got))
	}
	cs.close()
	reset(&spoolv1.Position{Position: &spoolv1.Position_Time{Time: timestamppb.New(mark)}})
	cs = c.join(t, "audit", "recon", 100)
	got := cs.receive(t, 6, time.Second)
	cs.close()
	if len(got) != 5 || string(got[0].Value) != "new-0" {
		t.Fatalf("replay from time: %d messages, first %q", len(got), firstValue(got))
	}
	reset(&spoolv1.Position{Position: &spoolv1.Position_Earliest{Earliest: true}})
	cs = c.join(t, "audit", "recon", 100)
	got = cs.receive(t, 11, time.Second)
	cs.close()
	if len(got) != 10 || string(got[0].Value) != "old-0" {
		t.Fatalf("replay from earliest: %d messages, first %q", len(got), firstValue(got))
	}
}

func firstValue(ds []*spoolv1.Delivery) string {
	if len(ds) == 0 {
		return ""
	}
	return string(ds[0].Value)
}

func TestTopicFullBackpressure(t *testing.T) {
	addr := freePort(t)
	p := startSpool(t, t.TempDir(), addr)
	defer p.stop()
	c := newClients(addr)
	defer c.close()
	c.createTopic(t, "bounded", &spoolv1.TopicConfig{MaxMessages: 10, Discard: spoolv1.Discard_DISCARD_NEW})
	publish(t, c, "bounded", values("m", 10)...)
	_, err := c.publish.Publish(context.Background(), connect.NewRequest(&spoolv1.PublishRequest{Topic: "bounded", Messages: values("x", 1)}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
		t.Fatalf("publish to a full topic: %v", err)
	}
	var info *spoolv1.ErrorInfo
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			info, _ = v.(*spoolv1.ErrorInfo)
		}
	}
	if info == nil || info.Code != "topic_full" || !info.Retriable || info.RetryAfter.AsDuration() <= 0 {
		t.Fatalf("error detail %+v", info)
	}
	// The server keeps serving everyone else.
	c.createTopic(t, "other", nil)
	publish(t, c, "other", values("y", 3)...)
}

// TestCrashUnderLoad kills the server with SIGKILL at random moments while
// producers publish; after each restart every acknowledged message must be
// readable where it was acknowledged, and no offset may ever hold two
// different messages. SPOOL_CRASH_CYCLES raises the cycle count (default 20).
func TestCrashUnderLoad(t *testing.T) {
	cycles := 20
	if v, err := strconv.Atoi(os.Getenv("SPOOL_CRASH_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	dir, addr := t.TempDir(), freePort(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[pos]string{} // everything ever acknowledged
	var mu sync.Mutex
	for cycle := range cycles {
		p := startSpool(t, dir, addr)
		c := newClients(addr)
		if cycle == 0 {
			c.createTopic(t, "crash", &spoolv1.TopicConfig{Partitions: 3})
		}
		// Verify what previous cycles acknowledged.
		verifyAll(t, c, fmt.Sprintf("verify-%d", cycle), acked, cycle)

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					var msgs []*spoolv1.Message
					for j := range 1 + i%20 {
						msgs = append(msgs, &spoolv1.Message{Key: []byte(strconv.Itoa(j)), Value: []byte(fmt.Sprintf("c%d-w%d-r%d-m%d", cycle, w, i, j))})
					}
					resp, err := c.publish.Publish(ctx, connect.NewRequest(&spoolv1.PublishRequest{Topic: "crash", Messages: msgs}))
					if err != nil {
						return // the server died
					}
					mu.Lock()
					for k, r := range resp.Msg.Results {
						at := pos{r.Partition, r.Offset}
						if old, ok := acked[at]; ok && old != string(msgs[k].Value) {
							t.Errorf("offset %d/%d acknowledged twice: %q and %q", r.Partition, r.Offset, old, msgs[k].Value)
						}
						acked[at] = string(msgs[k].Value)
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		p.kill()
		cancel()
		wg.Wait()
		c.close()
		if t.Failed() {
			t.Fatalf("cycle %d failed; server log:\n%s", cycle, p.logs)
		}
	}
	p := startSpool(t, dir, addr)
	c := newClients(addr)
	verifyAll(t, c, "verify-final", acked, cycles)
	c.close()
	p.stop()
	t.Logf("%d crash cycles, %d acknowledged messages verified", cycles, len(acked))
}

// pos is a message's place in a topic.
type pos struct {
	p   int32
	off int64
}

// verifyAll reads the whole topic through a new subscription and checks
// every acknowledged message is at its offset with its content.
func verifyAll(t *testing.T, c *clients, sub string, acked map[pos]string, cycle int) {
	t.Helper()
	desc, err := c.topics.DescribeTopic(context.Background(), connect.NewRequest(&spoolv1.DescribeTopicRequest{Name: "crash"}))
	if err != nil {
		t.Fatal(err)
	}
	total := int(desc.Msg.Messages)
	c.createSub(t, "crash", sub, nil)
	cs := c.join(t, "crash", sub, 1<<20)
	got := cs.receive(t, total, 10*time.Second)
	cs.close()
	if len(got) != total {
		t.Fatalf("cycle %d: read %d of %d stored messages", cycle, len(got), total)
	}
	stored := map[pos]string{}
	for _, d := range got {
		stored[pos{d.Partition, d.Offset}] = string(d.Value)
	}
	for at, v := range acked {
		if got := stored[at]; got != v {
			t.Fatalf("cycle %d: acknowledged %q at %d/%d, stored %q", cycle, v, at.p, at.off, got)
		}
	}
}
