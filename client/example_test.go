package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolmq/spool/client"
)

// These examples need a running server (`spool serve`), so they have no
// Output lines: they compile and document, they are not run.

func Example() {
	ctx := context.Background()
	c, err := client.New(client.DefaultAddr, client.WithClientID("billing"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 8, Retention: 7 * 24 * time.Hour})
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		log.Fatal(err)
	}
	res, err := c.Publish(ctx, "orders", client.Message{Key: []byte("customer-42"), Value: []byte(`{"total":12}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at", res[0].Partition, res[0].Offset)
}

func ExampleProducer() {
	ctx := context.Background()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p, err := c.NewProducer("orders",
		client.ProducerLinger(10*time.Millisecond),
		client.ProducerMaxInFlight(8),
	)
	if err != nil {
		log.Fatal(err)
	}
	var futures []*client.Future
	for i := range 1000 {
		futures = append(futures, p.Send(ctx, client.Message{
			Key:     []byte(fmt.Sprintf("customer-%d", i%10)), // per-customer order is kept
			Value:   []byte(fmt.Sprintf(`{"n":%d}`, i)),
			Subject: "orders.eu.created",
		}))
	}
	// Close flushes everything still buffered.
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			log.Println("not published:", err)
		}
	}
}

func ExampleProducer_PublishSync() {
	ctx := context.Background()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer("payments")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	// An ID of your own makes the publish idempotent across restarts too.
	res, err := p.PublishSync(ctx, client.Message{ID: "payment-7781", Value: []byte("captured")})
	switch {
	case errors.Is(err, client.ErrTopicNotFound):
		log.Fatal("create the topic first")
	case err != nil:
		log.Fatal(err)
	case res.Duplicate:
		fmt.Println("already published at offset", res.Offset)
	}
}

func ExampleConsumer() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	handle := func(ctx context.Context, m *client.Message) error {
		fmt.Printf("%s/%d@%d: %s\n", m.Topic, m.Partition, m.Offset, m.Value)
		return nil // committed once this returns
	}
	k, err := c.NewConsumer("orders", "billing", handle,
		client.ConsumerConcurrency(4), // up to 4 partitions in parallel, each in order
		client.ConsumerHandlerRetries(3),
		client.ConsumerOnRevoked(func(_ context.Context, ps []int32) { log.Println("revoked", ps) }),
	)
	if err != nil {
		log.Fatal(err)
	}
	// Run returns nil after a graceful shutdown on SIGINT/SIGTERM.
	if err := k.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_ResetSubscription() {
	ctx := context.Background()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Replay the last hour.
	parts, err := c.ResetSubscription(ctx, "orders", "billing", client.AtTime(time.Now().Add(-time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range parts {
		fmt.Println(p.Partition, "now at", p.CommittedOffset)
	}
}

func ExampleIsRetriable() {
	ctx := context.Background()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Publish(ctx, "bounded", client.Message{Value: []byte("x")})
	var e *client.Error
	if errors.As(err, &e) && client.IsRetriable(err) {
		fmt.Println("try again in", e.RetryAfter, "—", e.Code)
	}
}

func ExampleReject() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A queue subscription: 5 deliveries at most, then the dead-letter topic.
	_, err = c.CreateSubscription(ctx, "orders", "fulfilment", client.SubscriptionConfig{
		Mode:          client.ModeQueue,
		AckTimeout:    time.Minute,
		MaxDeliveries: 5,
		Backoff:       client.Backoff{Initial: time.Second, Max: time.Minute},
	})
	if err != nil && !errors.Is(err, client.ErrSubscriptionExists) {
		log.Fatal(err)
	}

	handle := func(ctx context.Context, m *client.Message) error {
		var order struct{ ID, Warehouse string }
		if err := json.Unmarshal(m.Value, &order); err != nil {
			return client.Reject(err) // can never succeed: dead-letter it now
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+order.Warehouse+"/ship", nil)
		if err != nil {
			return client.Reject(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err // nacked: redelivered after the subscription's backoff
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			return client.RetryAfter(errors.New("warehouse busy"), 30*time.Second)
		}
		return nil // acked
	}
	k, err := c.NewConsumer("orders", "fulfilment", handle, client.ConsumerConcurrency(8))
	if err != nil {
		log.Fatal(err)
	}
	if err := k.Run(ctx); err != nil {
		log.Fatal(err)
	}

	// Later: what failed, and why; then send it back.
	dead, _, err := c.ListDeadLetters(ctx, "orders", "fulfilment", 0, 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range dead {
		fmt.Println(d.OriginPartition, d.OriginOffset, d.Reason, d.DeliveryCount, d.Error)
	}
	report, err := c.Redrive(ctx, client.RedriveRequest{Topic: "orders", Subscription: "fulfilment", Reason: client.ReasonMaxDeliveries})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("redriven:", report.Moved)
}

func ExampleClient_ReadTopic() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// What arrived in partition 3 during the last hour, and then everything
	// new until Ctrl-C: nothing is committed, the subscriptions do not see it.
	for m, err := range c.ReadTopic(ctx, "orders",
		client.ReadPartition(3),
		client.ReadFrom(client.AtTime(time.Now().Add(-time.Hour))),
		client.ReadFollow(),
	) {
		if errors.Is(err, context.Canceled) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d/%d %s %s\n", m.Partition, m.Offset, m.Timestamp.Format(time.RFC3339), m.Value)
	}
}
