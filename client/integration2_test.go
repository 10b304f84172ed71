package client_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// A filtered subscription's lag reaches 0: the consumer commits past the
// messages its filter skipped, using the server's cursor.
func TestIntegrationFilteredLagReachesZero(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "events", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "events", "eu", client.SubscriptionConfig{Filter: "orders.eu.#"}); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for i := range 100 {
		subj := "orders.us.created"
		if i%10 == 0 {
			subj = "orders.eu.created"
		}
		msgs = append(msgs, client.Message{Value: []byte(strconv.Itoa(i)), Subject: subj})
	}
	if _, err := c.Publish(ctx, "events", msgs...); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	k, _ := c.NewConsumer("events", "eu", func(context.Context, *client.Message) error { n.Add(1); return nil },
		client.ConsumerCommitInterval(20*time.Millisecond))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(runCtx) }()
	waitFor(t, "10 eu messages", func() bool { return n.Load() == 10 })
	waitFor(t, "lag 0", func() bool {
		info, err := c.DescribeSubscription(ctx, "events", "eu")
		return err == nil && info.Lag == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A reset while a consumer runs makes it replay from the new position, and
// progress from before the reset does not overwrite it.
func TestIntegrationResetWhileConsuming(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "audit", client.TopicConfig{})
	c.CreateSubscription(ctx, "audit", "recon", client.SubscriptionConfig{})
	var msgs []client.Message
	for i := range 20 {
		msgs = append(msgs, client.Message{Value: []byte(strconv.Itoa(i))})
	}
	c.Publish(ctx, "audit", msgs...)
	var mu sync.Mutex
	seen := map[string]int{}
	k, _ := c.NewConsumer("audit", "recon", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		seen[string(m.Value)]++
		mu.Unlock()
		return nil
	}, client.ConsumerCommitInterval(20*time.Millisecond))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(runCtx) }()
	count := func(v string) int { mu.Lock(); defer mu.Unlock(); return seen[v] }
	waitFor(t, "first pass", func() bool { return count("19") == 1 })
	waitFor(t, "committed", func() bool {
		info, err := c.DescribeSubscription(ctx, "audit", "recon")
		return err == nil && info.Lag == 0
	})
	if _, err := c.ResetSubscription(ctx, "audit", "recon", client.Earliest()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay", func() bool { return count("0") == 2 && count("19") == 2 })
	waitFor(t, "committed again", func() bool {
		info, err := c.DescribeSubscription(ctx, "audit", "recon")
		return err == nil && info.Lag == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
