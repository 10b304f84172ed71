package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

func queueCfg(mut func(*catalog.QueueConfig)) catalog.SubConfig {
	c := catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{
		AckTimeout:    10 * time.Second,
		MaxDeliveries: 3,
		Backoff:       queue.Backoff{Initial: time.Second, Max: 4 * time.Second, Multiplier: 2, Jitter: queue.JitterNone},
	}}
	if mut != nil {
		mut(&c.Queue)
	}
	return c
}

// advance moves the fake clock in steps, keeping the sessions alive and
// running the queue machinery at every step.
func (e *env) advance(d time.Duration, sessions ...*Session) {
	for d > 0 {
		step := min(d, time.Second)
		e.clk.Advance(step)
		d -= step
		for _, s := range sessions {
			s.Heartbeat()
		}
		e.b.QueueTick()
	}
}

// deliveries waits for the next Deliveries event, skipping others.
func deliveries(t *testing.T, s *Session, wait time.Duration) []Delivered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			return nil
		}
		if len(ev.Deliveries) > 0 {
			return ev.Deliveries
		}
	}
}

func ackAll(t *testing.T, s *Session, ds []Delivered) {
	t.Helper()
	var rs []OffsetRange
	for _, d := range ds {
		rs = append(rs, OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
	}
	if err := s.Ack(1, rs); err != nil {
		t.Fatal(err)
	}
}

func TestQueueAckSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	if _, err := e.b.CreateSubscription("jobs", "workers", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("jobs", msgs("j", 10)); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "workers", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := deliveries(t, s, 5*time.Second)
	if len(got) != 10 {
		t.Fatalf("delivered %d, want 10", len(got))
	}
	for _, d := range got {
		if d.DeliveryCount != 1 || d.LeaseDeadline.IsZero() {
			t.Fatalf("delivery %+v", d)
		}
	}
	ackAll(t, s, got[:6])
	s.Leave()
	e.b.QueueTick()
	e.restart()
	s, _ = e.b.Join(JoinRequest{Topic: "jobs", Subscription: "workers", Credits: 100})
	defer s.Leave()
	again := deliveries(t, s, 2*time.Second)
	if len(again) != 4 {
		t.Fatalf("after restart %d delivered, want the 4 unacked", len(again))
	}
	acked := map[string]bool{}
	for _, d := range got[:6] {
		acked[string(d.Value)] = true
	}
	for _, d := range again {
		if acked[string(d.Value)] {
			t.Fatalf("acked message %s delivered again", d.Value)
		}
		if d.DeliveryCount != 2 {
			t.Fatalf("redelivery count %d, want 2", d.DeliveryCount)
		}
	}
}

func TestQueueNackBackoffAndDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.Publish("jobs", []Message{{Value: []byte("poison"), ID: "p-1", Partition: -1}})
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	for attempt := 1; attempt <= 3; attempt++ {
		got := deliveries(t, s, 3*time.Second)
		if len(got) != 1 || int(got[0].DeliveryCount) != attempt {
			t.Fatalf("attempt %d: %+v", attempt, got)
		}
		if err := s.Nack(uint64(attempt), 0, got[0].Offset, -1, fmt.Sprintf("boom %d", attempt)); err != nil {
			t.Fatal(err)
		}
		if attempt < 3 {
			// Backoff 1 s then 2 s (no jitter): not before.
			if early := deliveries(t, s, 100*time.Millisecond); len(early) != 0 {
				t.Fatalf("redelivered before the backoff: %+v", early)
			}
			e.advance(time.Duration(1<<(attempt-1))*time.Second, s)
		}
	}
	e.b.QueueTick() // write the dead letter
	dls, _, err := e.b.ListDeadLetters("jobs", "w", 0, 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	dl := dls[0]
	if dl.Reason != "max-deliveries" || dl.DeliveryCount != 3 || dl.Error != "boom 3" || string(dl.Message.Value) != "poison" || dl.OriginTopic != "jobs" {
		t.Fatalf("dead letter %+v", dl)
	}
	var origID string
	for _, h := range dl.Message.Headers {
		if h.Key == HeaderOriginalID {
			origID = string(h.Value)
		}
	}
	if origID != "p-1" {
		t.Fatalf("original id %q", origID)
	}
	// Gone from the queue.
	e.advance(time.Minute, s)
	if more := deliveries(t, s, 200*time.Millisecond); len(more) != 0 {
		t.Fatalf("dead-lettered message delivered again: %+v", more)
	}
	info, _ := e.b.DescribeSubscription("jobs", "w")
	if info.DeadLettered != 1 {
		t.Fatalf("dead-lettered count %d", info.DeadLettered)
	}
}

func TestQueueLeaseExpiryRejectAndRedrive(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.CreateSubscription("jobs", "audit", catalog.SubConfig{})
	e.b.Publish("jobs", msgs("m", 2))
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d", len(got))
	}
	// Lease of m-0 expires: redelivered after timeout + backoff.
	if err := s.Reject(1, 0, got[1].Offset, "bad payload"); err != nil {
		t.Fatal(err)
	}
	e.advance(12*time.Second, s)
	re := deliveries(t, s, 3*time.Second)
	if len(re) != 1 || string(re[0].Value) != "m-0" || re[0].DeliveryCount != 2 {
		t.Fatalf("after lease expiry: %+v", re)
	}
	ackAll(t, s, re)
	e.b.QueueTick()
	dls, _, _ := e.b.ListDeadLetters("jobs", "w", 0, 10)
	if len(dls) != 1 || dls[0].Reason != "rejected" || dls[0].Error != "bad payload" {
		t.Fatalf("dead letters %+v", dls)
	}
	// Redrive to the subscription: it gets the message again; the stream
	// subscription "audit" does not see the copy.
	rep, err := e.b.Redrive(context.Background(), RedriveRequest{Topic: "jobs", Subscription: "w"})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive %+v %v", rep, err)
	}
	back := deliveries(t, s, 3*time.Second)
	if len(back) != 1 || string(back[0].Value) != "m-1" || back[0].DeliveryCount != 1 {
		t.Fatalf("redriven delivery %+v", back)
	}
	rep, _ = e.b.Redrive(context.Background(), RedriveRequest{Topic: "jobs", Subscription: "w"})
	if rep.Moved != 0 || rep.Already != 1 {
		t.Fatalf("second redrive %+v", rep)
	}
	a, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "audit", Credits: 100})
	defer a.Leave()
	next(t, a)
	if seen := next(t, a); len(seen.Deliveries) != 2 {
		t.Fatalf("stream subscription saw %d messages, want the 2 originals only", len(seen.Deliveries))
	}
}

func TestQueueDelayAndTTL(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.Publish("jobs", []Message{
		{Value: []byte("soon"), Delay: 10 * time.Second, Partition: -1},
		{Value: []byte("later"), Delay: 10 * time.Minute, Partition: -1},
		{Value: []byte("short-lived"), TTL: time.Second, Delay: 5 * time.Second, Partition: -1},
	})
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("delayed messages delivered early: %+v", got)
	}
	e.advance(10*time.Second, s)
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 1 || string(got[0].Value) != "soon" {
		t.Fatalf("after 10s: %+v", got)
	}
	ackAll(t, s, got)
	s.Leave()
	e.b.QueueTick()
	// The 10-minute one is parked in the state store: it survives a restart.
	e.restart()
	s, _ = e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	e.advance(10*time.Minute, s)
	got = deliveries(t, s, 3*time.Second)
	if len(got) != 1 || string(got[0].Value) != "later" {
		t.Fatalf("after 10min and a restart: %+v", got)
	}
	ackAll(t, s, got)
	e.b.QueueTick()
	dls, _, _ := e.b.ListDeadLetters("jobs", "w", 0, 10)
	if len(dls) != 1 || dls[0].Reason != "expired" || string(dls[0].Message.Value) != "short-lived" {
		t.Fatalf("expired message: %+v", dls)
	}
}

func TestQueueKeyOrdering(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.Ordering = queue.OrderKey }))
	var ms []Message
	for i := range 6 {
		ms = append(ms, Message{Key: []byte(fmt.Sprintf("k%d", i%2)), Value: []byte(fmt.Sprint(i)), Partition: 0})
	}
	e.b.Publish("jobs", ms)
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 2 || string(got[0].Value) != "0" || string(got[1].Value) != "1" {
		t.Fatalf("first leases: %+v (want one per key)", got)
	}
	// Key k0 is stuck (nack with a long delay); key k1 keeps flowing.
	s.Nack(1, 0, got[0].Offset, time.Hour, "stuck")
	ackAll(t, s, got[1:])
	next := deliveries(t, s, 3*time.Second)
	if len(next) != 1 || string(next[0].Value) != "3" {
		t.Fatalf("other key blocked: %+v", next)
	}
}

func TestQueueBadLeaseOps(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.Publish("jobs", msgs("m", 1))
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	ackAll(t, s, got)
	ackAll(t, s, got) // double ack: answered as stale, changes nothing
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stale []PartitionStart
	for stale == nil {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Lease != nil && len(ev.Lease.Stale) > 0 {
			stale = ev.Lease.Stale
		}
	}
	if stale[0].Offset != got[0].Offset {
		t.Fatalf("stale %+v", stale)
	}
	if err := s.Ack(3, []OffsetRange{{Partition: 5, From: 0, To: 1}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("ack of a missing partition: %v", err)
	}
	if err := s.Ack(4, []OffsetRange{{Partition: 0, From: 0, To: 1 << 40}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("huge ack range: %v", err)
	}
}

func TestSharedDeadLetterTopic(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("shared", catalog.TopicConfig{})
	for _, name := range []string{"a", "b"} {
		if _, err := e.b.CreateSubscription("shared", name, queueCfg(func(q *catalog.QueueConfig) { q.DeadLetterTopic = "failed" })); err != nil {
			t.Fatal(err)
		}
	}
	e.b.Publish("shared", msgs("one", 1))
	b, _ := e.b.Join(JoinRequest{Topic: "shared", Subscription: "b", Credits: 10})
	defer b.Leave()
	got := deliveries(t, b, 3*time.Second)
	b.Reject(1, 0, got[0].Offset, "no")
	e.b.QueueTick()
	if dls, _, _ := e.b.ListDeadLetters("shared", "a", 0, 10); len(dls) != 0 {
		t.Fatalf("a lists b's dead letters: %+v", dls)
	}
	if dls, _, _ := e.b.ListDeadLetters("shared", "b", 0, 10); len(dls) != 1 {
		t.Fatalf("b's dead letters: %+v", dls)
	}
	if rep, _ := e.b.Redrive(context.Background(), RedriveRequest{Topic: "shared", Subscription: "a"}); rep.Moved != 0 {
		t.Fatalf("a redrove b's dead letter: %+v", rep)
	}
	if rep, _ := e.b.Redrive(context.Background(), RedriveRequest{Topic: "shared", Subscription: "b"}); rep.Moved != 1 {
		t.Fatalf("b's redrive: %+v", rep)
	}
	info, _ := e.b.DescribeSubscription("shared", "b")
	if len(info.Group.Members) != 1 || len(info.Group.Members[0].Owned) != 0 {
		t.Fatalf("queue members must not own partitions: %+v", info.Group.Members)
	}
}

func TestQueueMemberVanishesLeasesReturn(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.Backoff.Initial = time.Millisecond; q.Backoff.Max = time.Millisecond }))
	e.b.Publish("jobs", msgs("m", 3))
	a, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10, SessionTimeout: 2 * time.Second})
	got := deliveries(t, a, 3*time.Second)
	if len(got) != 3 {
		t.Fatalf("a got %d", len(got))
	}
	b, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10, SessionTimeout: time.Minute})
	defer b.Leave()
	// a stops heartbeating: after its session timeout its leases return.
	e.advance(3*time.Second, b)
	e.b.Maintain()
	e.advance(10*time.Millisecond, b)
	again := deliveries(t, b, 3*time.Second)
	if len(again) != 3 || again[0].DeliveryCount != 2 {
		t.Fatalf("b got %+v", again)
	}
	if _, err := a.Next(context.Background()); !errs.Is(err, errs.UnknownMember) {
		t.Fatalf("vanished member's session: %v", err)
	}
}

func TestWorkQueueRetention(t *testing.T) {
	e := newEnv(t)
	e.opts = func(c *Config) {
		c.Log.SegmentBytes = 64 << 10
		c.Log.Limits.MaxBatchBytes = 32 << 10
	}
	e.restart()
	if _, err := e.b.CreateTopic("wq", catalog.TopicConfig{WorkQueue: true, MaxMessageBytes: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("wq", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4000)
	var ms []Message
	for range 100 {
		ms = append(ms, Message{Value: big, Partition: -1})
	}
	if _, err := e.b.Publish("wq", ms); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.Join(JoinRequest{Topic: "wq", Subscription: "w", Credits: 1000, SessionTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	var all []Delivered
	for len(all) < 100 {
		got := deliveries(t, s, 3*time.Second)
		if len(got) == 0 {
			t.Fatalf("got %d of 100", len(all))
		}
		all = append(all, got...)
	}
	info, _ := e.b.DescribeTopic("wq")
	before := info.Partitions[0].StartOffset
	e.b.Maintain()
	if info, _ = e.b.DescribeTopic("wq"); info.Partitions[0].StartOffset != before {
		t.Fatal("work-queue retention deleted unacked segments")
	}
	ackAll(t, s, all)
	e.b.QueueTick()
	e.b.Maintain()
	info, _ = e.b.DescribeTopic("wq")
	if info.Partitions[0].StartOffset <= before {
		t.Fatalf("acked segments not deleted: start %d", info.Partitions[0].StartOffset)
	}
}
