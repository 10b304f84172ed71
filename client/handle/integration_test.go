package handle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
	"github.com/spoolmq/spool/internal/spooltest"
)

// The middlewares in front of real queue consumers of a real server.

// setup starts a server with topic and a queue subscription "workers"
// of maxDeliveries deliveries and a lease of lease.
func setup(t *testing.T, topic string, maxDeliveries int32, lease time.Duration, opts ...client.Option) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	c := spooltest.StartServer(t, spooltest.ClientOptions(opts...)).Client()
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, topic, "workers", client.SubscriptionConfig{
		Mode:          client.ModeQueue,
		AckTimeout:    lease,
		MaxDeliveries: maxDeliveries,
		Backoff:       client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: client.JitterNone},
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// consume runs a consumer of topic/workers until the test ends or stop
// is called.
func consume(t *testing.T, c *client.Client, topic string, h client.Handler, opts ...client.ConsumerOption) (stop func()) {
	t.Helper()
	k, err := c.NewConsumer(topic, "workers", h, opts...)
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
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func publish(t *testing.T, c *client.Client, topic string, values ...string) {
	t.Helper()
	msgs := make([]client.Message, len(values))
	for i, v := range values {
		msgs[i] = client.Message{Value: []byte(v)}
	}
	if _, err := c.Publish(context.Background(), topic, msgs...); err != nil {
		t.Fatal(err)
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

// deadLetters waits for n messages in the dead-letter topic of
// topic/workers.
func deadLetters(t *testing.T, c *client.Client, topic string, n int) []client.DeadLetter {
	t.Helper()
	var dead []client.DeadLetter
	waitFor(t, fmt.Sprintf("%d dead letters", n), func() bool {
		var err error
		dead, _, err = c.ListDeadLetters(context.Background(), topic, "workers", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) >= n
	})
	return dead
}

// dependency fails with a refused connection until it is brought back.
type dependency struct {
	down          atomic.Bool
	calls, failed atomic.Int64
}

func (d *dependency) call() error {
	d.calls.Add(1)
	if d.down.Load() {
		d.failed.Add(1)
		return fmt.Errorf("payments: dial tcp: %w", syscall.ECONNREFUSED)
	}
	return nil
}

// TestIntegrationBreakerOutage: while the dependency is down the breaker
// opens and consumption pauses; the messages held meanwhile keep their
// leases (extended by the consumer through an outage of several lease
// lengths) and their delivery counts, and all of them are handled once
// the dependency is back, none dead-lettered though the outage outlasts
// MaxDeliveries backoffs many times over.
func TestIntegrationBreakerOutage(t *testing.T) {
	const lease = 300 * time.Millisecond
	c := setup(t, "orders", 5, lease)
	var dep dependency
	dep.down.Store(true)
	var mu sync.Mutex
	var states []string
	maxCount := map[int64]int32{} // offset → highest delivery count seen
	acked := map[int64]bool{}
	br := handle.NewBreaker(handle.BreakerConfig{
		Name: "payments", Failures: 3, OpenFor: 100 * time.Millisecond, Logger: quiet,
		OnStateChange: func(_ string, _, to handle.State) {
			mu.Lock()
			defer mu.Unlock()
			states = append(states, to.String())
		},
	})
	h := handle.Chain(func(ctx context.Context, m *client.Message) error {
		mu.Lock()
		maxCount[m.Offset] = max(maxCount[m.Offset], m.DeliveryCount)
		mu.Unlock()
		if err := dep.call(); err != nil {
			return err
		}
		mu.Lock()
		acked[m.Offset] = true
		mu.Unlock()
		return nil
	}, handle.Classify(handle.WithLogger(quiet)), br.Middleware(), handle.Recover(false))
	consume(t, c, "orders", h, client.ConsumerConcurrency(2))
	const n = 20
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprint("order-", i)
	}
	publish(t, c, "orders", vals...)
	waitFor(t, "the breaker to open", func() bool { return br.State() == handle.StateOpen })
	// The outage lasts 8 leases (about 50 backoffs of the subscription):
	// without extensions the held messages' leases would expire, and they
	// would be delivered again until dead-lettered.
	time.Sleep(8 * lease)
	callsDuringOutage := dep.calls.Load()
	mu.Lock()
	for off, dc := range maxCount {
		if dc > 3 {
			t.Errorf("offset %d delivered %d times during the outage", off, dc)
		}
	}
	mu.Unlock()
	dep.down.Store(false)
	waitFor(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n
	})
	// Only the failures that opened the breaker spent a delivery: with two
	// workers, at most two messages were nacked before it opened.
	mu.Lock()
	spent := 0
	for _, dc := range maxCount {
		if dc > 1 {
			spent++
		}
		if dc > 3 {
			t.Errorf("a message was delivered %d times", dc)
		}
	}
	got := strings.Join(states, ",")
	mu.Unlock()
	if spent > 2 {
		t.Errorf("%d messages were redelivered; at most the two that failed before the breaker opened", spent)
	}
	if !strings.HasPrefix(got, "open,half-open") || !strings.HasSuffix(got, "half-open,closed") {
		t.Errorf("breaker states %s", got)
	}
	// Paused: the calls made during the outage were the failures that
	// opened the breaker and one trial per OpenFor, not one per backoff.
	if max := int64(3 + 8*lease/(100*time.Millisecond) + 4); callsDuringOutage > max {
		t.Errorf("%d calls to the dependency during the outage, want at most %d", callsDuringOutage, max)
	}
	if dead, _, err := c.ListDeadLetters(context.Background(), "orders", "workers", 0, 0); err != nil || len(dead) != 0 {
		t.Errorf("dead letters %v, %v", dead, err)
	}
}

// TestIntegrationPermanent: a Permanent error dead-letters the message at
// once with its text; a panic is recovered and retried; a panic under
// Recover(true) dead-letters.
func TestIntegrationPermanent(t *testing.T) {
	c := setup(t, "jobs", 5, time.Second)
	var mu sync.Mutex
	handled := map[string]int32{}
	base := func(ctx context.Context, m *client.Message) error {
		v := string(m.Value)
		mu.Lock()
		handled[v] = m.DeliveryCount
		mu.Unlock()
		switch {
		case v == "malformed":
			return handle.Permanent(errors.New("malformed payload: no order id"))
		case v == "panics-once" && m.DeliveryCount == 1:
			panic("nil map")
		case v == "always-panics":
			panic(errors.New("corrupt state"))
		case v == "duplicate":
			return handle.DropMessage(errors.New("already applied"))
		}
		return nil
	}
	retry := handle.Chain(base, handle.Classify(handle.WithLogger(quiet)), handle.Recover(false))
	reject := handle.Chain(base, handle.Classify(handle.WithLogger(quiet)), handle.Recover(true))
	consume(t, c, "jobs", func(ctx context.Context, m *client.Message) error {
		if string(m.Value) == "always-panics" {
			return reject(ctx, m)
		}
		return retry(ctx, m)
	}, client.ConsumerConcurrency(2))
	publish(t, c, "jobs", "ok", "malformed", "panics-once", "always-panics", "duplicate")
	dead := deadLetters(t, c, "jobs", 2)
	byErr := map[string]client.DeadLetter{}
	for _, d := range dead {
		byErr[string(d.Message.Value)] = d
	}
	if d := byErr["malformed"]; d.Reason != client.ReasonRejected || d.Error != "malformed payload: no order id" || d.DeliveryCount != 1 {
		t.Errorf("malformed: %+v", d)
	}
	if d := byErr["always-panics"]; d.Reason != client.ReasonRejected || !strings.Contains(d.Error, "corrupt state") || d.DeliveryCount != 1 {
		t.Errorf("always-panics: %+v", d)
	}
	waitFor(t, "the panicking message redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["panics-once"] == 2
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if handled["duplicate"] != 1 || handled["ok"] != 1 {
		t.Errorf("deliveries %v", handled)
	}
	if len(dead) != 2 {
		t.Errorf("dead letters %+v", dead)
	}
}

// TestIntegrationTimeout: a handler that does not return in time is
// abandoned: its message is nacked and redelivered, and handled then.
func TestIntegrationTimeout(t *testing.T) {
	c := setup(t, "slow", 5, time.Second)
	abandoned := make(chan struct{})
	var second atomic.Bool
	h := handle.Chain(func(ctx context.Context, m *client.Message) error {
		if m.DeliveryCount == 1 {
			<-ctx.Done() // hangs until its deadline, then some more
			time.Sleep(50 * time.Millisecond)
			close(abandoned)
			return nil // discarded: the message was nacked already
		}
		second.Store(true)
		return nil
	}, handle.Classify(handle.WithLogger(quiet)), handle.Timeout(100*time.Millisecond))
	consume(t, c, "slow", h, client.ConsumerConcurrency(2))
	publish(t, c, "slow", "x")
	waitFor(t, "the redelivery", second.Load)
	<-abandoned
}

// TestIntegrationSpansAndShutdown: the handler's span records the
// classification and the breaker's waits; a call held by an open breaker
// ends when the consumer shuts down, and its message is nacked, not
// dead-lettered.
func TestIntegrationSpansAndShutdown(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	c := setup(t, "calls", 5, time.Second, client.WithTracerProvider(tp))
	var dep dependency
	dep.down.Store(true)
	br := handle.NewBreaker(handle.BreakerConfig{Name: "ledger", Failures: 1, OpenFor: time.Hour, Logger: quiet})
	held := make(chan struct{}, 1)
	h := handle.Chain(func(ctx context.Context, m *client.Message) error {
		if string(m.Value) == "bad" {
			return handle.Permanent(errors.New("bad request"))
		}
		select {
		case held <- struct{}{}:
		default:
		}
		return dep.call()
	}, handle.Classify(handle.WithLogger(quiet)), br.Middleware())
	stop := consume(t, c, "calls", h, client.ConsumerShutdownTimeout(200*time.Millisecond))
	publish(t, c, "calls", "bad")
	deadLetters(t, c, "calls", 1)
	if br.State() != handle.StateClosed {
		t.Fatalf("a permanent error changed the breaker: %v", br.State())
	}
	publish(t, c, "calls", "x")
	<-held
	waitFor(t, "the breaker to open", func() bool { return br.State() == handle.StateOpen })
	time.Sleep(50 * time.Millisecond) // the call waits for the breaker
	start := time.Now()
	stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a call held by the breaker", d)
	}
	if dep.calls.Load() != 1 {
		t.Errorf("%d calls to the dependency; the held call ran again while the breaker was open", dep.calls.Load())
	}
	if dead, _, err := c.ListDeadLetters(context.Background(), "calls", "workers", 0, 0); err != nil || len(dead) != 1 {
		t.Errorf("dead letters %d, %v; want only the bad message", len(dead), err)
	}
	var sawReject, sawHeld bool
	for _, s := range rec.Ended() {
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range s.Attributes() {
			attrs[a.Key] = a.Value
		}
		events := map[string]bool{}
		for _, e := range s.Events() {
			events[e.Name] = true
		}
		switch attrs[handle.AttrClass].AsString() {
		case "reject":
			sawReject = true
		case "retry":
			if events["spool.breaker.held"] && events["spool.breaker.wait"] {
				sawHeld = true
			}
		}
	}
	if !sawReject || !sawHeld {
		t.Errorf("spans: reject classified %v, held call with breaker events %v", sawReject, sawHeld)
	}
}
