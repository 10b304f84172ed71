package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// Reset and purge of queue subscriptions through the SDK against the real
// broker: a reset to earliest delivers acknowledged messages again, a purge
// skips the backlog, and one partition can be moved alone.
func TestIntegrationQueueResetAndPurge(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "jobs", "w", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		publishValues(t, c, "jobs", client.Message{Value: []byte{byte('a' + i)}}.ToPartition(int32(i%2)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(_ context.Context, m *client.Message) error {
		mu.Lock()
		seen[string(m.Value)]++
		mu.Unlock()
		return nil
	}
	count := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range seen {
			n += v
		}
		return n
	}
	stop := runQueueConsumer(t, c, "jobs", "w", handler)
	waitFor(t, "6 messages handled", func() bool { return count() == 6 })
	waitFor(t, "the acks to land", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "w")
		return err == nil && info.Partitions[0].Queue.AckFloor == 3 && info.Partitions[1].Queue.AckFloor == 3
	})
	stop()

	ps, err := c.ResetSubscription(ctx, "jobs", "w", client.Earliest())
	if err != nil || len(ps) != 2 || ps[0].CommittedOffset != 0 {
		t.Fatalf("ResetSubscription: %v %v", ps, err)
	}
	stop = runQueueConsumer(t, c, "jobs", "w", handler)
	waitFor(t, "the 6 messages again", func() bool { return count() == 12 })
	stop()

	// One partition: back to offset 2 of partition 1 only.
	var cerr *client.Error
	if _, err := c.ResetPartition(ctx, "jobs", "w", 1, client.AtOffset(9)); !errors.As(err, &cerr) || cerr.Code != "offset_out_of_range" {
		t.Fatalf("ResetPartition beyond the end: %v", err)
	}
	p, err := c.ResetPartition(ctx, "jobs", "w", 1, client.AtOffset(2))
	if err != nil || p.Partition != 1 || p.CommittedOffset != 2 {
		t.Fatalf("ResetPartition: %+v %v", p, err)
	}
	stop = runQueueConsumer(t, c, "jobs", "w", handler)
	waitFor(t, "partition 1's last message again", func() bool { return count() == 13 })
	stop()
	mu.Lock()
	if seen["f"] != 3 {
		t.Errorf("seen %v; want f (partition 1, offset 2) three times", seen)
	}
	mu.Unlock()

	// Purge: a backlog published while nobody consumes is skipped.
	for i := range 4 {
		publishValues(t, c, "jobs", client.Message{Value: []byte{byte('p' + i)}})
	}
	res, err := c.PurgeSubscription(ctx, "jobs", "w")
	if err != nil || res.Skipped != 4 || len(res.Partitions) != 2 {
		t.Fatalf("PurgeSubscription: %+v %v", res, err)
	}
	if _, err := c.PurgeSubscription(ctx, "jobs", "nope"); !errors.Is(err, client.ErrSubscriptionNotFound) {
		t.Fatalf("purge of a missing subscription: %v", err)
	}
	if _, err := c.PurgePartition(ctx, "jobs", "w", 7); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("purge of a missing partition: %v", err)
	}
	stop = runQueueConsumer(t, c, "jobs", "w", handler)
	publishValues(t, c, "jobs", client.Message{Value: []byte("z")})
	waitFor(t, "the message after the purge", func() bool { return count() == 14 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	for _, v := range []string{"p", "q", "r", "s"} {
		if seen[v] != 0 {
			t.Errorf("purged message %s handled", v)
		}
	}
}

// A stream message whose handler keeps failing is dead-lettered after the
// subscription's attempts, then committed past; the dead letter is listed
// and redriven like a queue subscription's.
func TestIntegrationStreamFailureDeadLetter(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{
		MaxDeliveries: 3, Backoff: client.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "orders", client.Message{Value: []byte("ok-1")}, client.Message{Value: []byte("bad"), ID: "o-2"}, client.Message{Value: []byte("ok-3")})
	var mu sync.Mutex
	calls := map[string]int{}
	var failures []client.FailureAction
	redriven := false
	h := func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls[string(m.Value)]++
		if string(m.Value) == "bad" && !redriven {
			return errors.New("card declined")
		}
		return nil
	}
	stop := runQueueConsumer(t, c, "orders", "billing", h, client.ConsumerCommitEvery(1),
		client.ConsumerOnFailure(func(m *client.Message, a client.FailureAction, err error) {
			mu.Lock()
			failures = append(failures, a)
			mu.Unlock()
		}))
	waitFor(t, "the subscription to commit past the failed message", func() bool {
		info, err := c.DescribeSubscription(ctx, "orders", "billing")
		return err == nil && info.Partitions[0].CommittedOffset == 3
	})
	mu.Lock()
	if calls["bad"] != 3 || calls["ok-3"] != 1 || len(failures) != 1 || failures[0] != client.FailureDeadLetter {
		t.Errorf("calls %v, failures %v", calls, failures)
	}
	redriven = true
	mu.Unlock()
	dl, _, err := c.ListDeadLetters(ctx, "orders", "billing", 0, 0)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters %v %v", dl, err)
	}
	if d := dl[0]; d.Reason != client.ReasonMaxDeliveries || d.DeliveryCount != 3 || d.Error != "card declined" || d.OriginOffset != 1 || string(d.Message.Value) != "bad" {
		t.Errorf("dead letter %+v", d)
	}
	rep, err := c.Redrive(ctx, client.RedriveRequest{Topic: "orders", Subscription: "billing"})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive %+v %v", rep, err)
	}
	waitFor(t, "the redriven message to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return calls["bad"] == 4
	})
	stop()
}

// With OnFailure stop, the partition halts at the failed message: nothing
// after it is handled or committed, describe shows the halt, and a reset of
// the partition lets the running consumer go on.
func TestIntegrationStreamFailureStop(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{
		OnFailure: client.FailureStop, MaxDeliveries: 2, Backoff: client.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	}); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "orders", client.Message{Value: []byte("ok-1")}, client.Message{Value: []byte("bad")}, client.Message{Value: []byte("ok-3")})
	var mu sync.Mutex
	calls := map[string]int{}
	h := func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls[string(m.Value)]++
		if string(m.Value) == "bad" {
			return errors.New("schema mismatch")
		}
		return nil
	}
	stop := runQueueConsumer(t, c, "orders", "billing", h, client.ConsumerCommitEvery(1))
	var halt *client.PartitionHalt
	waitFor(t, "the partition to halt", func() bool {
		info, err := c.DescribeSubscription(ctx, "orders", "billing")
		if err != nil {
			return false
		}
		halt = info.Partitions[0].Halted
		return halt != nil && info.Partitions[0].CommittedOffset == 1
	})
	if halt.Offset != 1 || halt.Attempts != 2 || halt.Error != "schema mismatch" {
		t.Errorf("halt %+v", halt)
	}
	time.Sleep(200 * time.Millisecond) // nothing more happens while halted
	mu.Lock()
	if calls["bad"] != 2 || calls["ok-3"] != 0 {
		t.Errorf("while halted: calls %v", calls)
	}
	mu.Unlock()
	if _, err := c.ResetPartition(ctx, "orders", "billing", 0, client.AtOffset(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer to go on after the reset", func() bool {
		info, err := c.DescribeSubscription(ctx, "orders", "billing")
		return err == nil && info.Partitions[0].CommittedOffset == 3 && info.Partitions[0].Halted == nil
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	if calls["ok-3"] != 1 || calls["bad"] != 2 {
		t.Errorf("after the reset: calls %v", calls)
	}
}
