package client_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// The broker's processed-key ledger (idempotent consumer) against a real
// server: a message whose key a consumer processed is acknowledged by the
// server, never handed to a handler again.

func TestIntegrationQueueProcessedKey(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "payments", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cfg := fastQueue(0)
	cfg.ProcessedKey = client.ProcessedKeyHeader("order-id")
	sub, err := c.CreateSubscription(ctx, "payments", "charge", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Config.ProcessedKey != "header:order-id" || sub.Config.ProcessedTTL != 24*time.Hour {
		t.Fatalf("effective ledger settings %q, %v", sub.Config.ProcessedKey, sub.Config.ProcessedTTL)
	}
	order := func(id, v string) client.Message {
		return client.Message{Value: []byte(v), Headers: []client.Header{{Key: "order-id", Value: []byte(id)}}}
	}
	var mu sync.Mutex
	var handled []string
	runQueueConsumer(t, c, "payments", "charge", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		handled = append(handled, string(m.Value))
		mu.Unlock()
		return nil
	})
	drained := func() bool {
		info, err := c.DescribeSubscription(ctx, "payments", "charge")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range info.Partitions {
			if p.Queue == nil || p.Queue.AckFloor != p.EndOffset || p.Queue.InFlight != 0 {
				return false
			}
		}
		return true
	}
	handledCount := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }

	publishValues(t, c, "payments", order("o-1", "charge o-1"), order("o-2", "charge o-2"))
	waitFor(t, "the first charges", func() bool { return handledCount() == 2 && drained() })
	// The same orders again (a producer retrying after its own timeout,
	// with new ids), and a new one: only the new one is handled.
	publishValues(t, c, "payments", order("o-1", "charge o-1 again"), order("o-3", "charge o-3"), order("o-2", "charge o-2 again"))
	waitFor(t, "the second batch", func() bool { return handledCount() == 3 && drained() })
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if handled[2] != "charge o-3" || len(handled) != 3 {
		t.Errorf("handled %q, want the first charges and charge o-3", handled)
	}
	mu.Unlock()

	// Turned off, the ledger no longer skips anything.
	s, err := c.AlterSubscription(ctx, "payments", "charge", client.SubscriptionConfig{ProcessedKey: client.ProcessedKeyOff}, client.SubFieldProcessedKey)
	if err != nil || s.Config.ProcessedKey != "" {
		t.Fatalf("alter: %+v, %v", s.Config, err)
	}
	publishValues(t, c, "payments", order("o-1", "charge o-1 once more"))
	waitFor(t, "the charge without a ledger", func() bool { return handledCount() == 4 && drained() })

	// A bad setting is refused.
	if _, err := c.AlterSubscription(ctx, "payments", "charge", client.SubscriptionConfig{ProcessedKey: "order"}, client.SubFieldProcessedKey); err == nil {
		t.Error("processed key \"order\" accepted")
	}
	if _, err := c.CreateSubscription(ctx, "payments", "audit", client.SubscriptionConfig{ProcessedKey: client.ProcessedKeyID}); err == nil {
		t.Error("a stream subscription with a processed key was created")
	}
}
