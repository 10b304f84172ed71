package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
)

// The SDK against the real broker, started in-process on an ephemeral port.
// (Only the tests import internal/spooltest, and through it the server and
// internal/: the client package itself must not; see TestNoInternalImports.)

func startServer(t *testing.T) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	return spooltest.StartServer(t).Client()
}

func TestIntegrationAdmin(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	topic, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	if topic.Name != "orders" || topic.Config.Partitions != 3 || topic.ID == "" {
		t.Fatalf("created %+v", topic)
	}
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{}); !errors.Is(err, client.ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v", err)
	}
	if _, err := c.DescribeTopic(ctx, "nope"); !errors.Is(err, client.ErrTopicNotFound) {
		t.Fatalf("DescribeTopic(nope): %v", err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{Mode: client.ModeStream, Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{}); !errors.Is(err, client.ErrSubscriptionExists) {
		t.Fatalf("second CreateSubscription: %v", err)
	}
	topics, err := c.ListTopics(ctx)
	if err != nil || len(topics) != 1 {
		t.Fatalf("ListTopics: %v %v", topics, err)
	}
	subs, err := c.ListSubscriptions(ctx, "orders")
	if err != nil || len(subs) != 1 || subs[0].Name != "billing" {
		t.Fatalf("ListSubscriptions: %v %v", subs, err)
	}
	info, err := c.DescribeTopic(ctx, "orders")
	if err != nil || len(info.Partitions) != 3 || !slices.Equal(info.Subscriptions, []string{"billing"}) {
		t.Fatalf("DescribeTopic: %+v %v", info, err)
	}
	if _, err := c.ResetSubscription(ctx, "orders", "billing", client.Latest()); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSubscription(ctx, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeSubscription(ctx, "orders", "billing"); !errors.Is(err, client.ErrSubscriptionNotFound) {
		t.Fatalf("DescribeSubscription after delete: %v", err)
	}
	if err := c.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationErrors(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	p, err := c.NewProducer("missing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishSync(ctx, client.Message{Value: []byte("x")}); !errors.Is(err, client.ErrTopicNotFound) {
		t.Fatalf("publish to a missing topic: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, "t", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	k, err := c.NewConsumer("t", "missing", func(context.Context, *client.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := k.Run(runCtx); !errors.Is(err, client.ErrSubscriptionNotFound) {
		t.Fatalf("consuming a missing subscription: %v", err)
	}
	if _, err := c.CreateTopic(ctx, "bad/name", client.TopicConfig{}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("invalid topic name: %v", err)
	}
}

func TestIntegrationProduceAndConsume(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}

	// Produce: 8 keys × 50 messages, sequence numbers per key.
	p, err := c.NewProducer("orders", client.ProducerLinger(2*time.Millisecond), client.ProducerMaxBatchMessages(16))
	if err != nil {
		t.Fatal(err)
	}
	const keys, perKey = 8, 50
	var futures []*client.Future
	for i := range perKey {
		for k := range keys {
			futures = append(futures, p.Send(ctx, client.Message{Key: []byte("k" + strconv.Itoa(k)), Value: []byte(strconv.Itoa(i))}))
		}
	}
	futures = append(futures, p.Send(ctx, client.Message{ID: "once", Value: []byte("dup")}))
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	res, err := c.Publish(ctx, "orders", client.Message{ID: "once", Value: []byte("dup")})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("republishing an id: %+v %v", res, err)
	}

	// Consume everything, checking per-key order.
	var mu sync.Mutex
	got := map[string][]int{}
	total := 0
	all := make(chan struct{})
	h := func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if n, err := strconv.Atoi(string(m.Value)); err == nil {
			got[string(m.Key)] = append(got[string(m.Key)], n)
		}
		if total++; total == keys*perKey+1 {
			close(all)
		}
		return nil
	}
	k, err := c.NewConsumer("orders", "billing", h, client.ConsumerConcurrency(4), client.ConsumerCommitInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- k.Run(runCtx) }()
	select {
	case <-all:
	case err := <-errc:
		t.Fatalf("Run ended early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("consumed %d of %d", total, keys*perKey+1)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	for key, seq := range got {
		if !slices.IsSorted(seq) || len(seq) != perKey {
			t.Errorf("key %s consumed as %v", key, seq)
		}
	}
	mu.Unlock()

	// The graceful shutdown committed everything.
	info, err := c.DescribeSubscription(ctx, "orders", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 {
		t.Errorf("lag %d after a graceful shutdown; partitions %+v", info.Lag, info.Partitions)
	}
}

func TestIntegrationRebalanceBetweenTwoConsumers(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "events", client.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "events", "s", client.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	owned := map[string][]int32{}
	consumer := func(name string) (*client.Consumer, error) {
		return c.NewConsumer("events", "s",
			func(_ context.Context, m *client.Message) error {
				mu.Lock()
				seen[fmt.Sprint(m.Partition, "/", m.Offset)] = true
				mu.Unlock()
				return nil
			},
			client.ConsumerCommitInterval(20*time.Millisecond),
			client.ConsumerOnAssigned(func(_ context.Context, ps []int32) {
				mu.Lock()
				owned[name] = append(owned[name], ps...)
				mu.Unlock()
			}),
			client.ConsumerOnRevoked(func(_ context.Context, ps []int32) {
				mu.Lock()
				owned[name] = slices.DeleteFunc(owned[name], func(p int32) bool { return slices.Contains(ps, p) })
				mu.Unlock()
			}),
		)
	}
	a, err := consumer("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := consumer("b")
	if err != nil {
		t.Fatal(err)
	}
	ctxA, stopA := context.WithCancel(ctx)
	ctxB, stopB := context.WithCancel(ctx)
	defer stopA()
	defer stopB()
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- a.Run(ctxA) }()
	go func() { errB <- b.Run(ctxB) }()

	waitFor(t, "both consumers to own partitions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(owned["a"]) > 0 && len(owned["b"]) > 0 && len(owned["a"])+len(owned["b"]) == 4
	})
	msgs := make([]client.Message, 40)
	for i := range msgs {
		msgs[i] = client.Message{Key: []byte(strconv.Itoa(i)), Value: []byte("v")}
	}
	if _, err := c.Publish(ctx, "events", msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all 40 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 40 })

	stopB()
	if err := <-errB; err != nil {
		t.Fatalf("b.Run: %v", err)
	}
	waitFor(t, "a to own every partition", func() bool { mu.Lock(); defer mu.Unlock(); return len(owned["a"]) == 4 })
	stopA()
	if err := <-errA; err != nil {
		t.Fatalf("a.Run: %v", err)
	}
	info, err := c.DescribeSubscription(ctx, "events", "s")
	if err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 {
		var b strings.Builder
		for _, p := range info.Partitions {
			fmt.Fprintf(&b, " %d:%d/%d", p.Partition, p.CommittedOffset, p.EndOffset)
		}
		t.Errorf("lag %d:%s", info.Lag, b.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
