package broker

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

func alterSub(t *testing.T, b *Broker, topic, name string, f func(*catalog.SubConfig)) catalog.Subscription {
	t.Helper()
	s, err := b.AlterSubscription(topic, name, func(c *catalog.SubConfig) error { f(c); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inFlight returns the subscription's leases in flight.
func inFlight(t *testing.T, b *Broker, topic, name string) int {
	t.Helper()
	info, err := b.DescribeSubscription(topic, name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range info.Partitions {
		n += p.Queue.Leased
	}
	return n
}

// A connected queue member sees a new max in flight at once, in both
// directions, without losing its leases.
func TestAlterSubscriptionMaxInFlightLive(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.MaxInFlight = 2 }))
	publishValues(t, e.b, "jobs", 20, 10)
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	first := deliveries(t, s, 3*time.Second)
	if len(first) != 2 {
		t.Fatalf("%d delivered with max in flight 2", len(first))
	}
	if more := deliveries(t, s, 200*time.Millisecond); len(more) != 0 {
		t.Fatalf("%d more delivered beyond max in flight", len(more))
	}
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.MaxInFlight = 5 })
	more := deliveries(t, s, 3*time.Second)
	if len(more) != 3 || inFlight(t, e.b, "jobs", "w") != 5 {
		t.Fatalf("%d more delivered after raising the limit to 5 (in flight %d)", len(more), inFlight(t, e.b, "jobs", "w"))
	}
	// Lowered below the leases held: they stay, nothing more goes until
	// enough are acknowledged.
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.MaxInFlight = 1 })
	held := append(first, more...)
	ackAll(t, s, held[:4])
	if late := deliveries(t, s, 200*time.Millisecond); len(late) != 0 {
		t.Fatalf("%d delivered with 1 in flight and max 1", len(late))
	}
	ackAll(t, s, held[4:])
	if next := deliveries(t, s, 3*time.Second); len(next) != 1 {
		t.Fatalf("%d delivered after the last ack, want 1", len(next))
	}
	// Back to the default (1000 per partition).
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.MaxInFlight = 0 })
	if rest := deliveries(t, s, 3*time.Second); len(rest) != 14 {
		t.Fatalf("%d delivered with the default limit, want the other 14", len(rest))
	}
}

// New queue settings govern later decisions; leases keep their deadlines.
func TestAlterSubscriptionQueueSettingsLive(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil)) // ack 10 s, 3 deliveries, backoff 1 s doubling
	publishValues(t, e.b, "jobs", 2, 10)
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 1, SessionTimeout: 5 * time.Minute})
	defer s.Leave()
	a := deliveries(t, s, 3*time.Second)
	if len(a) != 1 || a[0].LeaseDeadline.Sub(e.clk.Now()) != 10*time.Second {
		t.Fatalf("first lease %+v", a)
	}
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) {
		c.Queue.AckTimeout, c.Queue.MaxDeliveries = time.Minute, 2
		c.Queue.Backoff = queue.Backoff{Initial: 20 * time.Second, Jitter: queue.JitterNone}
	})
	s.AddCredits(1)
	b := deliveries(t, s, 3*time.Second)
	if len(b) != 1 || b[0].LeaseDeadline.Sub(e.clk.Now()) != time.Minute {
		t.Fatalf("lease after the change %+v", b)
	}
	// The first lease still ends after 10 s; its redelivery waits the new
	// backoff, 20 s.
	e.advance(11*time.Second, s)
	s.AddCredits(1)
	if got := deliveries(t, s, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("redelivered before the new backoff: %+v", got)
	}
	e.advance(20*time.Second, s)
	again := deliveries(t, s, 3*time.Second)
	if len(again) != 1 || again[0].Offset != a[0].Offset || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivery %+v", again)
	}
	// The second delivery is the new maximum: a nack dead-letters it.
	if err := s.Nack(2, again[0].Partition, again[0].Offset, -1, "boom"); err != nil {
		t.Fatal(err)
	}
	e.b.QueueTick()
	if info, _ := e.b.DescribeSubscription("jobs", "w"); info.DeadLettered != 1 {
		t.Fatalf("dead-lettered %d, want 1", info.DeadLettered)
	}
	// Persisted: a restart builds the cores with the new settings.
	s.Leave()
	e.restart()
	got, _ := e.b.DescribeSubscription("jobs", "w")
	q := got.Sub.Config.Queue
	if q.AckTimeout != time.Minute || q.MaxDeliveries != 2 || q.Backoff.Initial != 20*time.Second {
		t.Fatalf("after restart %+v", q)
	}
	s2, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10})
	defer s2.Leave()
	d := deliveries(t, s2, 3*time.Second)
	if len(d) != 1 || d[0].LeaseDeadline.Sub(e.clk.Now()) != time.Minute {
		t.Fatalf("lease after restart %+v", d)
	}
}

// A filter change is seen by connected members: messages read afterwards
// are matched against the new filter, in stream and queue mode.
func TestAlterSubscriptionFilterLive(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	e.b.CreateSubscription("t", "stream", catalog.SubConfig{Filter: "a.#"})
	e.b.CreateSubscription("t", "queue", catalog.SubConfig{Mode: catalog.ModeQueue, Filter: "a.#"})
	pub := func(subjects ...string) {
		var ms []Message
		for _, s := range subjects {
			ms = append(ms, Message{Value: []byte(s), Subject: s, Partition: -1})
		}
		if _, err := e.b.Publish("t", ms); err != nil {
			t.Fatal(err)
		}
	}
	values := func(ds []Delivered) string {
		var out []string
		for _, d := range ds {
			out = append(out, string(d.Value))
		}
		return strings.Join(out, " ")
	}
	ss, _ := e.b.Join(JoinRequest{Topic: "t", Subscription: "stream", Credits: 100})
	defer ss.Leave()
	qs, _ := e.b.Join(JoinRequest{Topic: "t", Subscription: "queue", Credits: 100})
	defer qs.Leave()
	next(t, ss) // assignment
	pub("a.1", "b.1")
	if got := values(deliveries(t, ss, 3*time.Second)); got != "a.1" {
		t.Fatalf("stream before: %q", got)
	}
	if got := values(deliveries(t, qs, 3*time.Second)); got != "a.1" {
		t.Fatalf("queue before: %q", got)
	}
	for _, name := range []string{"stream", "queue"} {
		if s := alterSub(t, e.b, "t", name, func(c *catalog.SubConfig) { c.Filter = "b.#" }); s.Config.Filter != "b.#" {
			t.Fatalf("%s: returned %+v", name, s.Config)
		}
	}
	pub("a.2", "b.2", "b.3")
	if got := values(deliveries(t, ss, 3*time.Second)); got != "b.2 b.3" {
		t.Fatalf("stream after: %q", got)
	}
	if got := values(deliveries(t, qs, 3*time.Second)); got != "b.2 b.3" {
		t.Fatalf("queue after: %q", got)
	}
	// Empty: every message.
	alterSub(t, e.b, "t", "stream", func(c *catalog.SubConfig) { c.Filter = "" })
	pub("c.1")
	if got := values(deliveries(t, ss, 3*time.Second)); got != "c.1" {
		t.Fatalf("stream without a filter: %q", got)
	}
	ss.Leave()
	e.restart()
	if info, _ := e.b.DescribeSubscription("t", "queue"); info.Sub.Config.Filter != "b.#" {
		t.Fatalf("filter after restart %q", info.Sub.Config.Filter)
	}
}

// A rate limit set on a running queue subscription holds back deliveries;
// removing it lets them go.
func TestAlterSubscriptionRateLimitLive(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100, SessionTimeout: time.Minute})
	defer s.Leave()
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.RateLimit, c.Queue.RateBurst = 1, 2 })
	publishValues(t, e.b, "jobs", 10, 10)
	if got := deliveries(t, s, 3*time.Second); len(got) != 2 {
		t.Fatalf("%d delivered with a burst of 2", len(got))
	}
	if got := deliveries(t, s, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d delivered beyond the rate", len(got))
	}
	// A different rate keeps the (empty) bucket: one token a second now
	// comes at 2 a second.
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.RateLimit = 2 })
	e.clk.Advance(500 * time.Millisecond)
	if got := deliveries(t, s, 3*time.Second); len(got) != 1 {
		t.Fatalf("%d delivered half a second later at 2/s", len(got))
	}
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.RateLimit, c.Queue.RateBurst = 0, 0 })
	if got := deliveries(t, s, 3*time.Second); len(got) != 7 {
		t.Fatalf("%d delivered without a rate limit, want the other 7", len(got))
	}
}

// Stream failure settings are stored and sent to members again.
func TestAlterSubscriptionStreamFailure(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	sess, _ := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	defer sess.Leave()
	first := next(t, sess).Assignment
	got := alterSub(t, e.b, "t", "s", func(c *catalog.SubConfig) {
		c.OnFailure, c.Queue.MaxDeliveries = catalog.FailStop, 7
		c.Queue.Backoff = queue.Backoff{Delays: []time.Duration{time.Second, time.Minute}}
	})
	f := got.StreamFailure()
	if f.Action != catalog.FailStop || f.MaxAttempts != 7 || len(f.Backoff.Delays) != 2 {
		t.Fatalf("failure policy %+v", f)
	}
	a := next(t, sess).Assignment
	if a == nil || a.Generation != first.Generation || len(a.Partitions) != 2 || a.Reset || len(a.Revoke) != 0 {
		t.Fatalf("assignment sent again %+v (first %+v)", a, first)
	}
	// A filter change alone sends nothing.
	alterSub(t, e.b, "t", "s", func(c *catalog.SubConfig) { c.Filter = "x.#" })
	e.b.Publish("t", []Message{{Value: []byte("x"), Subject: "x.1", Partition: 0}})
	if ev := next(t, sess); len(ev.Deliveries) != 1 {
		t.Fatalf("event after a filter change %+v", ev)
	}
	sess.Leave()
	e.restart()
	info, _ := e.b.DescribeSubscription("t", "s")
	if f := info.Sub.StreamFailure(); f.Action != catalog.FailStop || f.MaxAttempts != 7 || info.Sub.Config.Filter != "x.#" {
		t.Fatalf("after restart %+v", info.Sub.Config)
	}
}

// Invalid changes are refused, name what is wrong, and change nothing.
func TestAlterSubscriptionRefused(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	q, _ := e.b.CreateSubscription("t", "q", queueCfg(func(q *catalog.QueueConfig) { q.Ordering = queue.OrderKey }))
	st, _ := e.b.CreateSubscription("t", "s", catalog.SubConfig{Filter: "a.#"})
	cases := []struct {
		sub  string
		f    func(*catalog.SubConfig)
		want string
	}{
		{"q", func(c *catalog.SubConfig) { c.Mode = catalog.ModeStream }, "mode cannot change"},
		{"q", func(c *catalog.SubConfig) { c.Start = catalog.Position{Kind: catalog.Latest} }, "start cannot change"},
		{"q", func(c *catalog.SubConfig) { c.Queue.Ordering = queue.OrderNone }, "ordering cannot change"},
		{"q", func(c *catalog.SubConfig) { c.Queue.DeadLetterTopic = "elsewhere" }, "dead-letter topic cannot change"},
		{"s", func(c *catalog.SubConfig) { c.Queue.DeadLetterTopic = "elsewhere" }, "dead-letter topic cannot change"},
		{"q", func(c *catalog.SubConfig) { c.Filter = "a..b" }, "filter"},
		{"q", func(c *catalog.SubConfig) { c.Queue.MaxInFlight = -1 }, "must not be negative"},
		{"q", func(c *catalog.SubConfig) { c.Queue.RateLimit = math.NaN() }, "rate limit"},
		{"q", func(c *catalog.SubConfig) { c.Queue.RateLimit = math.Inf(1) }, "rate limit"},
		{"q", func(c *catalog.SubConfig) { c.Queue.Backoff.Multiplier = math.Inf(1) }, "Multiplier"},
		{"q", func(c *catalog.SubConfig) { c.Queue.Backoff.Multiplier = math.NaN() }, "Multiplier"},
		{"q", func(c *catalog.SubConfig) { c.Queue.MaxDeliveries = -2 }, "MaxDeliveries"},
		{"q", func(c *catalog.SubConfig) { c.Queue.AckTimeout = -time.Second }, "AckTimeout"},
		{"q", func(c *catalog.SubConfig) { c.OnFailure = catalog.FailStop }, "always dead-letter"},
		{"q", func(c *catalog.SubConfig) { c.Filter, c.Queue.MaxInFlight = "ok.#", -1 }, "must not be negative"},
		{"s", func(c *catalog.SubConfig) { c.Queue.AckTimeout = time.Second }, "stream subscription"},
		{"s", func(c *catalog.SubConfig) { c.Queue.MaxInFlight = 3 }, "stream subscription"},
		{"s", func(c *catalog.SubConfig) { c.OnFailure = "skip" }, "failure action"},
	}
	for _, c := range cases {
		_, err := e.b.AlterSubscription("t", c.sub, func(cfg *catalog.SubConfig) error { c.f(cfg); return nil })
		if !errs.Is(err, errs.InvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, want %q: %v", c.sub, c.want, err)
		}
	}
	if _, err := e.b.AlterSubscription("t", "q", func(*catalog.SubConfig) error { return errs.New(errs.InvalidArgument, "no") }); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("error of the update: %v", err)
	}
	if _, err := e.b.AlterSubscription("t", "nope", func(*catalog.SubConfig) error { return nil }); !errs.Is(err, errs.SubNotFound) {
		t.Errorf("unknown subscription: %v", err)
	}
	if _, err := e.b.AlterSubscription("nope", "q", func(*catalog.SubConfig) error { return nil }); !errs.Is(err, errs.TopicNotFound) {
		t.Errorf("unknown topic: %v", err)
	}
	check := func(when string) {
		t.Helper()
		for _, want := range []catalog.Subscription{q, st} {
			info, _ := e.b.DescribeSubscription("t", want.Name)
			if !sameSubConfig(info.Sub.Config, want.Config) {
				t.Fatalf("%s: %s changed by refused updates: %+v", when, want.Name, info.Sub.Config)
			}
		}
	}
	check("before restart")
	e.restart()
	check("after restart")
	// No change is no error.
	if s, err := e.b.AlterSubscription("t", "q", func(*catalog.SubConfig) error { return nil }); err != nil || !sameSubConfig(s.Config, q.Config) {
		t.Fatalf("empty change: %+v %v", s, err)
	}
}

// Changes race with consumers, share leases, describe and partition
// additions without data races (run with -race) or lost leases.
func TestAlterSubscriptionConcurrent(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.CreateSubscription("jobs", "st", catalog.SubConfig{})
	publish := func(n int) { // with a subject: the filters below all match it
		ms := make([]Message, n)
		for i := range ms {
			ms[i] = Message{Value: []byte("job"), Subject: "job.new", Partition: -1}
		}
		if _, err := e.b.Publish("jobs", ms); err != nil {
			t.Error(err)
		}
	}
	publish(400)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	acked := make(chan int, 1)
	defer func() { cancel(); wg.Wait() }() // before the env closes, also on failure
	wg.Add(4)
	go func() { // a native queue member acknowledging everything
		defer wg.Done()
		s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 1 << 20})
		if err != nil {
			t.Error(err)
			return
		}
		defer s.Leave()
		n := 0
		for ctx.Err() == nil {
			ev, err := s.Next(ctx)
			if err != nil {
				break
			}
			if len(ev.Deliveries) > 0 {
				var rs []OffsetRange
				for _, d := range ev.Deliveries {
					rs = append(rs, OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
				}
				s.Ack(1, rs)
				n += len(ev.Deliveries)
			}
		}
		acked <- n
	}()
	go func() { // a consumer pulling leases and acknowledging
		defer wg.Done()
		for ctx.Err() == nil {
			for p := int32(0); p < 2; p++ {
				l, err := e.b.Lease("jobs", "w", "kafka", p, LeaseOptions{MaxRecords: 10, MaxBytes: 1 << 20})
				if err != nil {
					continue
				}
				var acks []LeaseOp
				for _, r := range l.Runs {
					acks = append(acks, LeaseOp{First: r.First, Last: r.Last, Action: LeaseAck})
				}
				e.b.SettleLeases("jobs", "w", "kafka", p, acks)
			}
			e.b.QueueSubscription("jobs", "w")
		}
	}()
	go func() { // a stream member
		defer wg.Done()
		s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "st", Credits: 1 << 20})
		if err != nil {
			t.Error(err)
			return
		}
		defer s.Leave()
		for ctx.Err() == nil {
			if _, err := s.Next(ctx); err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			e.b.DescribeSubscription("jobs", "w")
			e.b.DescribeSubscription("jobs", "st")
			e.b.QueueTick()
		}
	}()
	for i := range 30 {
		alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) {
			c.Queue.MaxInFlight = 1 + i%7
			c.Queue.AckTimeout = time.Duration(5+i) * time.Second
			c.Queue.RateLimit = float64(i % 3 * 1000)
			c.Filter = []string{"", "#", "job.*"}[i%3]
		})
		alterSub(t, e.b, "jobs", "st", func(c *catalog.SubConfig) {
			c.Queue.MaxDeliveries = 1 + i%4
			c.Filter = []string{"", "#", "job.*"}[i%3]
		})
		if i == 10 {
			if _, err := e.b.AddPartitions("jobs", 3); err != nil {
				t.Fatal(err)
			}
		}
		publish(10)
		time.Sleep(5 * time.Millisecond)
	}
	alterSub(t, e.b, "jobs", "w", func(c *catalog.SubConfig) { c.Queue.MaxInFlight, c.Queue.RateLimit = 0, 0 })
	// Everything is consumed in the end.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := e.b.DescribeSubscription("jobs", "w")
		if info.Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %d left: %+v", info.Lag, info.Partitions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := <-acked; n == 0 {
		t.Fatal("the native member acknowledged nothing")
	}
}
