package broker

import (
	"context"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// nextEvent returns the next event matching keep.
func nextEvent(t *testing.T, s *Session, keep func(Event) bool) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if keep(ev) {
			return ev
		}
	}
}

func isFailed(ev Event) bool { return ev.Failed != nil }

// The default failure action copies the message to the dead-letter topic,
// listed and redriven like a queue subscription's; the copy is stored once
// however often it is reported.
func TestStreamFailedDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("orders", catalog.TopicConfig{})
	if _, err := e.b.CreateSubscription("orders", "billing", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	e.b.Publish("orders", []Message{{Value: []byte("ok"), Partition: -1}, {Value: []byte("bad"), ID: "o-2", Partition: -1}})
	s, err := e.b.Join(JoinRequest{Topic: "orders", Subscription: "billing", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	a := nextEvent(t, s, func(ev Event) bool { return ev.Assignment != nil }).Assignment
	if a.Failure.Action != catalog.FailDeadLetter || a.Failure.MaxAttempts != 5 {
		t.Fatalf("assignment's failure policy %+v", a.Failure)
	}
	nextEvent(t, s, func(ev Event) bool { return len(ev.Deliveries) > 0 })
	for i := range 2 {
		s.Failed(uint64(10+i), 0, 1, 3, "boom")
		out := nextEvent(t, s, isFailed).Failed
		if out.Err != nil || out.Action != catalog.FailDeadLetter || out.DeadLetterTopic != "dlq.orders.billing" || out.DeadLetterOffset != 0 {
			t.Fatalf("report %d: %+v", i, out)
		}
	}
	dl, _, err := e.b.ListDeadLetters("orders", "billing", 0, 10)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters %v %v", dl, err)
	}
	d := dl[0]
	if d.Reason != "max-deliveries" || d.DeliveryCount != 3 || d.Error != "boom" || d.OriginOffset != 1 || string(d.Message.Value) != "bad" {
		t.Fatalf("dead letter %+v", d)
	}
	// Bad reports change nothing.
	for _, c := range []struct {
		p        int32
		off      int64
		attempts int
		code     errs.Code
	}{{0, 2, 1, errs.OffsetOutOfRange}, {3, 0, 1, errs.InvalidArgument}, {0, 0, 0, errs.InvalidArgument}} {
		s.Failed(1, c.p, c.off, c.attempts, "x")
		if out := nextEvent(t, s, isFailed).Failed; !errs.Is(out.Err, c.code) {
			t.Errorf("report %+v: %v, want %s", c, out.Err, c.code)
		}
	}
	rep, err := e.b.Redrive(context.Background(), RedriveRequest{Topic: "orders", Subscription: "billing"})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive %+v %v", rep, err)
	}
	got := nextEvent(t, s, func(ev Event) bool { return len(ev.Deliveries) > 0 }).Deliveries
	if len(got) != 1 || string(got[0].Value) != "bad" {
		t.Fatalf("redriven delivery %v", valuesOf(got))
	}
}

// A stream subscription cannot name its own topic as its dead-letter
// topic.
func TestStreamDeadLetterIntoOwnTopic(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("orders", catalog.TopicConfig{})
	_, err := e.b.CreateSubscription("orders", "s", catalog.SubConfig{Queue: catalog.QueueConfig{DeadLetterTopic: "orders"}})
	if !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("dead-lettering into its own topic: %v", err)
	}
}

// With failure action stop the partition halts: nothing more is
// delivered from it, no commit passes the message, the halt survives a
// restart, and a reset releases it.
func TestStreamFailedStops(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("orders", catalog.TopicConfig{})
	e.b.CreateSubscription("orders", "billing", catalog.SubConfig{OnFailure: catalog.FailStop})
	e.b.Publish("orders", msgs("o", 3))
	s, _ := e.b.Join(JoinRequest{Topic: "orders", Subscription: "billing", Credits: 1})
	a := nextEvent(t, s, func(ev Event) bool { return ev.Assignment != nil }).Assignment
	nextEvent(t, s, func(ev Event) bool { return len(ev.Deliveries) > 0 })
	s.Failed(1, 0, 0, 5, "db down")
	if out := nextEvent(t, s, isFailed).Failed; out.Err != nil || out.Action != catalog.FailStop {
		t.Fatalf("report: %+v", out)
	}
	s.AddCredits(10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	for {
		ev, err := s.Next(ctx)
		if err != nil {
			break
		}
		if len(ev.Deliveries) > 0 {
			t.Fatalf("delivered from a halted partition: %v", valuesOf(ev.Deliveries))
		}
	}
	cancel()
	if err := s.sub.commit(s.id, a.Generation, map[int32]int64{0: 1}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("commit past the halt: %v", err)
	}
	if err := s.sub.commit(s.id, a.Generation, map[int32]int64{0: 0}); err != nil {
		t.Fatalf("commit up to the halt: %v", err)
	}
	s.Leave()
	e.restart()
	info, _ := e.b.DescribeSubscription("orders", "billing")
	if h := info.Partitions[0].Halt; h == nil || h.Offset != 0 || h.Error != "db down" || h.Attempts != 5 {
		t.Fatalf("halt after restart: %+v", h)
	}
	// Commits from outside the sessions (Kafka's) cannot pass the halt either.
	perr, err := e.b.Space("kafka").CommitStream("orders", "billing", StreamCommit{Offsets: map[int32]int64{0: 2}, Alone: true})
	if err != nil || !errs.Is(perr[0], errs.FailedPrecondition) {
		t.Fatalf("commit past the halt from outside the sessions: %v %v", perr, err)
	}
	s, _ = e.b.Join(JoinRequest{Topic: "orders", Subscription: "billing", Credits: 10})
	defer s.Leave()
	nextEvent(t, s, func(ev Event) bool { return ev.Assignment != nil })
	if _, err := e.b.ResetSubscription("orders", "billing", atOffset(1), 0); err != nil {
		t.Fatal(err)
	}
	got := nextEvent(t, s, func(ev Event) bool { return len(ev.Deliveries) > 0 }).Deliveries
	if len(got) != 2 || got[0].Offset != 1 {
		t.Fatalf("after the reset: %v", valuesOf(got))
	}
	info, _ = e.b.DescribeSubscription("orders", "billing")
	if info.Partitions[0].Halt != nil {
		t.Fatalf("halt after the reset: %+v", info.Partitions[0].Halt)
	}
}
