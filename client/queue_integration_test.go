package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// Queue-mode subscriptions against the real broker. Short leases and
// backoffs keep them fast.

// fastQueue is a queue subscription config for tests.
func fastQueue(maxDeliveries int32) client.SubscriptionConfig {
	return client.SubscriptionConfig{
		Mode:          client.ModeQueue,
		AckTimeout:    300 * time.Millisecond,
		MaxDeliveries: maxDeliveries,
		Backoff:       client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: client.JitterNone},
	}
}

// runQueueConsumer runs a consumer of topic/sub until the test ends or the
// returned stop is called (which waits for Run and checks its error).
func runQueueConsumer(t *testing.T, c *client.Client, topic, sub string, h client.Handler, opts ...client.ConsumerOption) (stop func()) {
	t.Helper()
	k, err := c.NewConsumer(topic, sub, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publishValues(t *testing.T, c *client.Client, topic string, msgs ...client.Message) {
	t.Helper()
	if _, err := c.Publish(context.Background(), topic, msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationQueueAck(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(0))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := sub.Config; cfg.Mode != client.ModeQueue || cfg.AckTimeout != 300*time.Millisecond || cfg.MaxDeliveries != 5 ||
		cfg.Backoff.Jitter != client.JitterNone || cfg.DeadLetterTopic != "dlq.jobs.workers" {
		t.Errorf("effective config %+v", cfg)
	}
	var msgs []client.Message
	for i := range 200 {
		msgs = append(msgs, client.Message{Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))})
	}
	publishValues(t, c, "jobs", msgs...)

	var mu sync.Mutex
	seen := map[string]int{}
	var bad []string
	stop := runQueueConsumer(t, c, "jobs", "workers", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		seen[string(m.Value)]++
		if m.DeliveryCount != 1 || m.FirstDeliveredAt.IsZero() || m.LeaseDeadline.Before(m.FirstDeliveredAt) {
			bad = append(bad, fmt.Sprintf("%d/%d count %d first %v deadline %v", m.Partition, m.Offset, m.DeliveryCount, m.FirstDeliveredAt, m.LeaseDeadline))
		}
		return nil
	}, client.ConsumerConcurrency(4))
	waitFor(t, "200 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 200 })
	waitFor(t, "every message acknowledged", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "workers")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range info.Partitions {
			if p.Queue == nil || p.Queue.AckFloor != p.EndOffset || p.Queue.InFlight != 0 {
				return false
			}
		}
		return info.Lag == 0
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	for v, n := range seen {
		if n != 1 {
			t.Errorf("message %s handled %d times", v, n)
		}
	}
	if len(bad) > 0 {
		t.Errorf("delivery fields: %v", bad)
	}
}

func TestIntegrationQueueRedeliveryAndMaxDeliveries(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(3)); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "jobs", client.Message{Value: []byte("poison")}, client.Message{Value: []byte("fine")})

	var mu sync.Mutex
	var counts []int32
	stop := runQueueConsumer(t, c, "jobs", "workers", func(_ context.Context, m *client.Message) error {
		if string(m.Value) == "fine" {
			return nil
		}
		mu.Lock()
		counts = append(counts, m.DeliveryCount)
		mu.Unlock()
		return fmt.Errorf("attempt %d failed", m.DeliveryCount)
	})
	var dead []client.DeadLetter
	waitFor(t, "the message in the dead-letter topic", func() bool {
		var err error
		dead, _, err = c.ListDeadLetters(ctx, "jobs", "workers", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) == 1
	})
	stop()
	mu.Lock()
	if !slices.Equal(counts, []int32{1, 2, 3}) {
		t.Errorf("delivery counts %v, want 1 2 3", counts)
	}
	mu.Unlock()
	d := dead[0]
	if d.Reason != client.ReasonMaxDeliveries || d.DeliveryCount != 3 || d.Error != "attempt 3 failed" ||
		d.OriginPartition != 0 || d.OriginOffset != 0 || d.Redriven || string(d.Message.Value) != "poison" {
		t.Errorf("dead letter %+v", d)
	}
	waitFor(t, "the dead-letter count", func() bool { // it follows the dead-letter write
		info, err := c.DescribeSubscription(ctx, "jobs", "workers")
		return err == nil && info.DeadLettered == 1 && info.Lag == 0
	})
}

func TestIntegrationQueueRejectAndRedrive(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2})
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "jobs", "audit", client.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "jobs", client.Message{Key: []byte("a"), Value: []byte("bad")}, client.Message{Key: []byte("b"), Value: []byte("good")})

	var mu sync.Mutex
	handled := map[string][]int32{}
	accept := false
	stop := runQueueConsumer(t, c, "jobs", "workers", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled[string(m.Value)] = append(handled[string(m.Value)], m.DeliveryCount)
		if string(m.Value) == "bad" && !accept {
			return client.Reject(errors.New("cannot parse"))
		}
		return nil
	})
	var dead []client.DeadLetter
	waitFor(t, "the rejected message in the dead-letter topic", func() bool {
		var err error
		dead, _, err = c.ListDeadLetters(ctx, "jobs", "workers", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) == 1
	})
	if d := dead[0]; d.Reason != client.ReasonRejected || d.DeliveryCount != 1 || d.Error != "cannot parse" || string(d.Message.Key) != "a" {
		t.Errorf("dead letter %+v", d)
	}
	mu.Lock()
	if !slices.Equal(handled["bad"], []int32{1}) {
		t.Errorf("rejected message handled %v: a reject must not be redelivered", handled["bad"])
	}
	accept = true
	mu.Unlock()

	req := client.RedriveRequest{Topic: "jobs", Subscription: "workers", Reason: client.ReasonRejected}
	dry := req
	dry.DryRun = true
	if rep, err := c.Redrive(ctx, dry); err != nil || rep.Moved != 1 || !slices.Equal(rep.Offsets, []int64{dead[0].Offset}) {
		t.Fatalf("dry run: %+v %v", rep, err)
	}
	if rep, err := c.Redrive(ctx, client.RedriveRequest{Topic: "jobs", Subscription: "workers", Reason: client.ReasonExpired}); err != nil || rep.Moved != 0 || rep.Skipped != 1 {
		t.Fatalf("redrive of another reason: %+v %v", rep, err)
	}
	if rep, err := c.Redrive(ctx, req); err != nil || rep.Moved != 1 {
		t.Fatalf("redrive: %+v %v", rep, err)
	}
	waitFor(t, "the redriven message", func() bool { mu.Lock(); defer mu.Unlock(); return len(handled["bad"]) == 2 })
	if rep, err := c.Redrive(ctx, req); err != nil || rep.Moved != 0 || rep.Already != 1 {
		t.Fatalf("second redrive: %+v %v", rep, err)
	}
	dead, _, err := c.ListDeadLetters(ctx, "jobs", "workers", 0, 0)
	if err != nil || len(dead) != 1 || !dead[0].Redriven {
		t.Fatalf("after redrive: %+v %v", dead, err)
	}
	stop()
	mu.Lock()
	if len(handled["good"]) != 1 {
		t.Errorf("good handled %v", handled["good"])
	}
	mu.Unlock()

	// Redriven to the subscription only: the stream subscription saw "bad"
	// once, when it was published.
	var auditMu sync.Mutex
	audit := map[string]int{}
	k, err := c.NewConsumer("jobs", "audit", func(_ context.Context, m *client.Message) error {
		auditMu.Lock()
		audit[string(m.Value)]++
		auditMu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- k.Run(runCtx) }()
	waitFor(t, "the audit subscription to catch up", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "audit")
		return err == nil && info.Lag == 0
	})
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if audit["bad"] != 1 || audit["good"] != 1 {
		t.Errorf("audit saw %v", audit)
	}

	if dl, _, err := c.ListDeadLetters(ctx, "jobs", "audit", 0, 0); err != nil || len(dl) != 0 {
		t.Errorf("ListDeadLetters on a stream subscription without failures: %v %v", dl, err)
	}
	if _, _, err := c.ListDeadLetters(ctx, "jobs", "nope", 0, 0); !errors.Is(err, client.ErrSubscriptionNotFound) {
		t.Errorf("ListDeadLetters on a missing subscription: %v", err)
	}
}

func TestIntegrationQueueLeaseExtension(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "jobs", client.Message{Value: []byte("slow")})
	var mu sync.Mutex
	calls := 0
	started := make(chan struct{}, 1)
	stop := runQueueConsumer(t, c, "jobs", "workers", func(ctx context.Context, m *client.Message) error {
		mu.Lock()
		calls++
		mu.Unlock()
		started <- struct{}{}
		select {
		case <-time.After(1200 * time.Millisecond): // four leases
		case <-ctx.Done():
		}
		return nil
	})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("not delivered")
	}
	// A second member would get the message if its lease expired.
	stop2 := runQueueConsumer(t, c, "jobs", "workers", func(context.Context, *client.Message) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil
	})
	waitFor(t, "the message acknowledged", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "workers")
		return err == nil && info.Partitions[0].Queue.AckFloor == 1
	})
	stop()
	stop2()
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("handled %d times; the lease must have been extended", calls)
	}
}

func TestIntegrationQueueKeyOrderedSubscription(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2})
	cfg := fastQueue(5)
	cfg.Ordering = client.OrderingKey
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", cfg); err != nil {
		t.Fatal(err)
	}
	const keys, perKey = 6, 15
	var msgs []client.Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, client.Message{Key: []byte("k" + strconv.Itoa(k)), Value: []byte(strconv.Itoa(i))})
		}
	}
	publishValues(t, c, "jobs", msgs...)

	var mu sync.Mutex
	busy := map[string]bool{}
	order := map[string][]int{}
	var overlaps []string
	total, running, maxRunning := 0, 0, 0
	h := func(_ context.Context, m *client.Message) error {
		k := string(m.Key)
		mu.Lock()
		if busy[k] {
			overlaps = append(overlaps, k)
		}
		busy[k] = true
		running++
		maxRunning = max(maxRunning, running)
		n, _ := strconv.Atoi(string(m.Value))
		order[k] = append(order[k], n)
		mu.Unlock()
		time.Sleep(3 * time.Millisecond)
		mu.Lock()
		busy[k] = false
		running--
		total++
		mu.Unlock()
		return nil
	}
	// Two members, four workers each: only the server keeps keys apart.
	stopA := runQueueConsumer(t, c, "jobs", "workers", h, client.ConsumerConcurrency(4), client.ConsumerPrefetch(16))
	stopB := runQueueConsumer(t, c, "jobs", "workers", h, client.ConsumerConcurrency(4), client.ConsumerPrefetch(16))
	waitFor(t, "every message", func() bool { mu.Lock(); defer mu.Unlock(); return total == keys*perKey })
	stopA()
	stopB()
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("two messages of one key in flight at once: %v", overlaps)
	}
	for k, seq := range order {
		if !slices.IsSorted(seq) || len(seq) != perKey {
			t.Errorf("key %s handled as %v", k, seq)
		}
	}
	if maxRunning < 2 {
		t.Errorf("at most %d handlers at once: different keys must proceed in parallel", maxRunning)
	}
}

func TestIntegrationQueueClientKeyOrdered(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for i := range 60 {
		msgs = append(msgs, client.Message{Key: []byte("k" + strconv.Itoa(i%3)), Value: []byte(strconv.Itoa(i))})
	}
	publishValues(t, c, "jobs", msgs...)
	var mu sync.Mutex
	busy := map[string]bool{}
	order := map[string][]int{}
	overlap := false
	total := 0
	stop := runQueueConsumer(t, c, "jobs", "workers", func(_ context.Context, m *client.Message) error {
		k := string(m.Key)
		mu.Lock()
		overlap = overlap || busy[k]
		busy[k] = true
		n, _ := strconv.Atoi(string(m.Value))
		order[k] = append(order[k], n)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		busy[k] = false
		total++
		mu.Unlock()
		return nil
	}, client.ConsumerConcurrency(4), client.ConsumerPrefetch(30), client.ConsumerKeyOrdered())
	waitFor(t, "every message", func() bool { mu.Lock(); defer mu.Unlock(); return total == 60 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("two messages of one key handled at once")
	}
	for k, seq := range order {
		if !slices.IsSorted(seq) {
			t.Errorf("key %s handled as %v", k, seq)
		}
	}
}

func TestIntegrationQueueAdminValidation(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	for _, cfg := range []client.SubscriptionConfig{
		{Mode: client.ModeQueue, AckTimeout: -time.Second},
		{Mode: client.ModeQueue, Ordering: 7},
		{Mode: client.ModeQueue, RateLimit: -1},
	} {
		if _, err := c.CreateSubscription(ctx, "jobs", "bad", cfg); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("config %+v: %v", cfg, err)
		}
	}
	if _, err := c.Redrive(ctx, client.RedriveRequest{Topic: "jobs", Subscription: "x", Limit: -1}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("negative limit: %v", err)
	}
	if _, err := c.CreateSubscription(ctx, "jobs", "q", client.SubscriptionConfig{Mode: client.ModeQueue, RateLimit: 100, RateBurst: 10,
		OnExpired: client.ExpiredDrop, DeadLetterTopic: "failed-jobs", MaxInFlight: 50,
		Backoff: client.Backoff{Delays: []time.Duration{time.Second, time.Minute}}}); err != nil {
		t.Fatal(err)
	}
	info, err := c.DescribeSubscription(ctx, "jobs", "q")
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Subscription.Config
	if cfg.RateLimit != 100 || cfg.RateBurst != 10 || cfg.OnExpired != client.ExpiredDrop || cfg.DeadLetterTopic != "failed-jobs" ||
		cfg.MaxInFlight != 50 || !slices.Equal(cfg.Backoff.Delays, []time.Duration{time.Second, time.Minute}) {
		t.Errorf("config round trip: %+v", cfg)
	}
	dead, next, err := c.ListDeadLetters(ctx, "jobs", "q", 0, 0)
	if err != nil || len(dead) != 0 || dead == nil || next != 0 {
		t.Errorf("empty dead-letter list: %v %d %v", dead, next, err)
	}
}

func TestIntegrationQueueMaxInFlightAndLeaseExpiry(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{Partitions: 2})
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", fastQueue(5)); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for i := range 20 {
		msgs = append(msgs, client.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	publishValues(t, c, "jobs", msgs...)

	// One lease at a time for this member, however many workers it has.
	var mu sync.Mutex
	running, maxRunning, total := 0, 0, 0
	stop := runQueueConsumer(t, c, "jobs", "workers", func(context.Context, *client.Message) error {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		time.Sleep(3 * time.Millisecond)
		mu.Lock()
		running--
		total++
		mu.Unlock()
		return nil
	}, client.ConsumerConcurrency(4), client.ConsumerPrefetch(8), client.ConsumerMaxInFlight(1))
	waitFor(t, "20 messages", func() bool { mu.Lock(); defer mu.Unlock(); return total == 20 })
	stop()
	if maxRunning != 1 {
		t.Errorf("%d handlers at once under ConsumerMaxInFlight(1)", maxRunning)
	}

	// Without extension a lease runs out: the message is delivered again,
	// and the late acknowledgement is stale (and harmless).
	publishValues(t, c, "jobs", client.Message{Value: []byte("slow")})
	var counts []int32
	stop = runQueueConsumer(t, c, "jobs", "workers", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		counts = append(counts, m.DeliveryCount)
		n := len(counts)
		mu.Unlock()
		if n == 1 {
			time.Sleep(700 * time.Millisecond) // the lease is 300ms
		}
		return nil
	}, client.ConsumerConcurrency(2), client.ConsumerMaxExtension(0))
	waitFor(t, "the redelivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(counts) == 2 })
	waitFor(t, "every message acknowledged", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "workers")
		return err == nil && info.Lag == 0
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	// While the first handler still runs, a redelivery to the same consumer
	// is folded into it; the one handled again came after it finished.
	if len(counts) != 2 || counts[0] != 1 || counts[1] < 2 {
		t.Errorf("delivery counts %v", counts)
	}
}
