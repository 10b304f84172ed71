package broker

import (
	"context"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

var (
	earliest = catalog.Position{Kind: catalog.Earliest}
	latest   = catalog.Position{Kind: catalog.Latest}
)

func atOffset(o int64) catalog.Position { return catalog.Position{Kind: catalog.AtOffset, Offset: o} }

// joinQueue joins a queue subscription with plenty of credit.
func (e *env) joinQueue(topic, sub string) *Session {
	e.t.Helper()
	s, err := e.b.Join(JoinRequest{Topic: topic, Subscription: sub, Credits: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Leave)
	return s
}

func valuesOf(ds []Delivered) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Value)
	}
	return out
}

func (e *env) queueInFlight(topic, sub string) int {
	e.t.Helper()
	info, err := e.b.DescribeSubscription(topic, sub)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, p := range info.Partitions {
		n += p.Queue.Leased
	}
	return n
}

// The reported defect: five messages acked, reset to earliest, and the next
// consume got none. Now they are delivered again, as new deliveries, and
// the reset survives a restart.
func TestQueueResetToEarliestDeliversAgain(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	e.b.Publish("jobs", msgs("j", 5))
	s := e.joinQueue("jobs", "w")
	ackAll(t, s, deliveries(t, s, 5*time.Second))
	e.b.QueueTick() // the acks are durable
	res, err := e.b.ResetSubscription("jobs", "w", earliest, AllPartitions)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Partitions) != 1 || res.Partitions[0].Committed != 0 || res.Skipped != 0 {
		t.Fatalf("reset result %+v", res)
	}
	again := deliveries(t, s, 5*time.Second)
	if len(again) != 5 {
		t.Fatalf("after the reset %d delivered (%v), want 5", len(again), valuesOf(again))
	}
	for _, d := range again {
		if d.DeliveryCount != 1 {
			t.Fatalf("delivery count %d after a reset, want 1", d.DeliveryCount)
		}
	}
	s.Leave()
	e.restart()
	s = e.joinQueue("jobs", "w")
	if got := deliveries(t, s, 5*time.Second); len(got) != 5 {
		t.Fatalf("after a restart %d delivered, want the 5 unacked again", len(got))
	}
}

// Reset to latest and purge skip the backlog, leased messages included,
// durably; messages published later are delivered.
func TestQueueResetToLatestAndPurgeSkipBacklog(t *testing.T) {
	for _, purge := range []bool{false, true} {
		e := newEnv(t)
		e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
		e.b.CreateSubscription("jobs", "w", queueCfg(nil))
		e.b.Publish("jobs", msgs("old", 10))
		s := e.joinQueue("jobs", "w")
		leased := deliveries(t, s, 5*time.Second)
		if len(leased) == 0 {
			t.Fatal("nothing leased")
		}
		var res ResetResult
		var err error
		if purge {
			res, err = e.b.PurgeSubscription("jobs", "w", AllPartitions)
		} else {
			res, err = e.b.ResetSubscription("jobs", "w", latest, AllPartitions)
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped != 10 || len(res.Partitions) != 2 {
			t.Fatalf("purge=%v: result %+v, want 10 skipped over 2 partitions", purge, res)
		}
		if n := e.queueInFlight("jobs", "w"); n != 0 {
			t.Fatalf("purge=%v: %d leases in flight after the reset", purge, n)
		}
		// A late ack of a dropped lease is stale and changes nothing.
		if err := s.Ack(7, []OffsetRange{{Partition: leased[0].Partition, From: leased[0].Offset, To: leased[0].Offset + 1}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(ev.Deliveries) > 0 {
				t.Fatalf("purge=%v: backlog delivered after the reset: %v", purge, valuesOf(ev.Deliveries))
			}
			if ev.Lease != nil && ev.Lease.ID == 7 {
				if len(ev.Lease.Stale) != 1 {
					t.Fatalf("late ack: %+v, want stale", ev.Lease)
				}
				break
			}
		}
		cancel()
		e.b.Publish("jobs", msgs("new", 1))
		if got := deliveries(t, s, 5*time.Second); len(got) != 1 || string(got[0].Value) != "new-0" {
			t.Fatalf("purge=%v: after the reset got %v, want new-0", purge, valuesOf(got))
		}
		s.Leave()
		e.restart()
		s = e.joinQueue("jobs", "w")
		if got := deliveries(t, s, 2*time.Second); len(got) != 1 || string(got[0].Value) != "new-0" {
			t.Fatalf("purge=%v: after a restart got %v, want only new-0 (unacked)", purge, valuesOf(got))
		}
		e.close()
	}
}

// A reset forgets parked (long-delayed) messages below the new position
// and reads those above it again, exactly once; dead letters stay.
func TestQueueResetParkedAndDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	s := e.joinQueue("jobs", "w")
	// A poison message dead-lettered by a reject.
	e.b.Publish("jobs", []Message{{Value: []byte("poison"), Partition: -1}})
	d := deliveries(t, s, 5*time.Second)
	if err := s.Reject(1, d[0].Partition, d[0].Offset, "bad"); err != nil {
		t.Fatal(err)
	}
	// A message parked for ten minutes.
	e.b.Publish("jobs", []Message{{Value: []byte("later"), Delay: 10 * time.Minute, Partition: -1}})
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 { // read and parked
		t.Fatalf("delayed message delivered at once: %v", valuesOf(got))
	}
	e.advance(2*time.Second, s)
	info, _ := e.b.DescribeSubscription("jobs", "w")
	if info.Partitions[0].Queue.Parked != 1 {
		t.Fatalf("parked %d, want 1", info.Partitions[0].Queue.Parked)
	}
	if _, err := e.b.ResetSubscription("jobs", "w", earliest, AllPartitions); err != nil {
		t.Fatal(err)
	}
	dl, _, err := e.b.ListDeadLetters("jobs", "w", 0, 10)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters after the reset: %v %v", dl, err)
	}
	// The poison message is read again (delivered now); the delayed one is
	// read again and parked again, and delivered once when due.
	if got := deliveries(t, s, 5*time.Second); len(got) != 1 || string(got[0].Value) != "poison" {
		t.Fatalf("after the reset got %v, want poison", valuesOf(got))
	} else {
		ackAll(t, s, got)
	}
	e.advance(11*time.Minute, s)
	got := deliveries(t, s, 5*time.Second)
	if len(got) != 1 || string(got[0].Value) != "later" {
		t.Fatalf("when due got %v, want later once", valuesOf(got))
	}
	ackAll(t, s, got)
	e.advance(2*time.Minute, s)
	if more := deliveries(t, s, 300*time.Millisecond); len(more) != 0 {
		t.Fatalf("delivered again: %v", valuesOf(more))
	}
	// Reset to latest while a message is parked: it is forgotten.
	e.b.Publish("jobs", []Message{{Value: []byte("never"), Delay: 10 * time.Minute, Partition: -1}})
	deliveries(t, s, 300*time.Millisecond)
	e.advance(2*time.Second, s)
	if info, _ = e.b.DescribeSubscription("jobs", "w"); info.Partitions[0].Queue.Parked != 1 {
		t.Fatalf("parked %d before the purge, want 1", info.Partitions[0].Queue.Parked)
	}
	if _, err := e.b.PurgeSubscription("jobs", "w", AllPartitions); err != nil {
		t.Fatal(err)
	}
	info, _ = e.b.DescribeSubscription("jobs", "w")
	if info.Partitions[0].Queue.Parked != 0 {
		t.Fatalf("parked %d after a purge, want 0", info.Partitions[0].Queue.Parked)
	}
	s.Leave()
	e.restart()
	s = e.joinQueue("jobs", "w")
	e.advance(12*time.Minute, s)
	if got := deliveries(t, s, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("purged parked message delivered: %v", valuesOf(got))
	}
}

// One partition can be reset alone; bad partitions and offsets are refused
// with clear errors and change nothing.
func TestResetOnePartition(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	e.b.CreateSubscription("jobs", "st", catalog.SubConfig{})
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 3; i++ {
			e.b.Publish("jobs", []Message{{Value: []byte{byte('a' + p)}, Partition: p}})
		}
	}
	for _, sub := range []string{"w", "st"} {
		for _, c := range []struct {
			part int32
			to   catalog.Position
			code errs.Code
		}{
			{2, earliest, errs.InvalidArgument},
			{-5, earliest, errs.InvalidArgument},
			{1, atOffset(4), errs.OffsetOutOfRange},
			{1, atOffset(-1), errs.OffsetOutOfRange},
		} {
			if _, err := e.b.ResetSubscription("jobs", sub, c.to, c.part); !errs.Is(err, c.code) {
				t.Errorf("%s: reset partition %d to %v: %v, want %s", sub, c.part, c.to, err, c.code)
			}
		}
		res, err := e.b.ResetSubscription("jobs", sub, atOffset(3), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Partitions) != 1 || res.Partitions[0].Partition != 1 || res.Partitions[0].Committed != 3 || res.Skipped != 3 {
			t.Fatalf("%s: %+v", sub, res)
		}
	}
	// Queue: partition 0 still delivers its three messages, partition 1 none.
	s := e.joinQueue("jobs", "w")
	got := deliveries(t, s, 5*time.Second)
	if len(got) != 3 {
		t.Fatalf("queue delivered %v, want partition 0's three", valuesOf(got))
	}
	for _, d := range got {
		if d.Partition != 0 {
			t.Fatalf("delivered from partition %d", d.Partition)
		}
	}
	// Stream: partition 0 committed nothing (0), partition 1 at 3.
	info, _ := e.b.DescribeSubscription("jobs", "st")
	if info.Partitions[0].Committed != 0 || info.Partitions[1].Committed != 3 {
		t.Fatalf("stream committed %d %d", info.Partitions[0].Committed, info.Partitions[1].Committed)
	}
	e.restart()
	info, _ = e.b.DescribeSubscription("jobs", "st")
	if info.Partitions[1].Committed != 3 {
		t.Fatalf("after restart committed %d", info.Partitions[1].Committed)
	}
}

// A stream member told of a one-partition reset restarts that partition
// only; the other keeps its cursor.
func TestStreamResetOnePartitionAssignment(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	for p := int32(0); p < 2; p++ {
		e.b.Publish("t", []Message{{Value: []byte("x"), Partition: p}, {Value: []byte("y"), Partition: p}})
	}
	sess, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for n < 4 {
		ev, err := sess.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ev.Deliveries)
	}
	if _, err := e.b.ResetSubscription("t", "s", earliest, 1); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.Assignment; a != nil {
			if !a.Reset || len(a.ResetPartitions) != 1 || a.ResetPartitions[0] != 1 {
				t.Fatalf("assignment %+v, want a reset of partition 1 only", a)
			}
			for _, p := range a.Partitions {
				if want := map[int32]int64{0: 2, 1: 0}[p.Partition]; p.Offset != want {
					t.Fatalf("partition %d restarts at %d, want %d", p.Partition, p.Offset, want)
				}
			}
			break
		}
	}
	ev, err := sess.Next(ctx)
	if err != nil || len(ev.Deliveries) != 2 || ev.Deliveries[0].Partition != 1 {
		t.Fatalf("after the reset: %+v %v", ev, err)
	}
}

// Purges racing with consumers that lease and ack, and with publishes:
// nothing breaks (the race detector watches), in-flight counts stay
// consistent, and after the last purge nothing old is delivered.
func TestQueuePurgeRacesConsumers(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	for range 2 {
		s := e.joinQueue("jobs", "w")
		go func() {
			defer func() { done <- struct{}{} }()
			for ctx.Err() == nil {
				ev, err := s.Next(ctx)
				if err != nil {
					return
				}
				if len(ev.Deliveries) > 0 {
					var rs []OffsetRange
					for _, d := range ev.Deliveries {
						rs = append(rs, OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
					}
					s.Ack(1, rs)
					s.AddCredits(len(ev.Deliveries))
				}
			}
		}()
	}
	for i := range 20 {
		e.b.Publish("jobs", msgs("m", 50))
		if _, err := e.b.PurgeSubscription("jobs", "w", int32(i%3)-1); err != nil {
			t.Fatal(err)
		}
		e.b.QueueTick()
	}
	cancel()
	<-done
	<-done
	if _, err := e.b.PurgeSubscription("jobs", "w", AllPartitions); err != nil {
		t.Fatal(err)
	}
	if n := e.queueInFlight("jobs", "w"); n != 0 {
		t.Fatalf("%d in flight after the last purge", n)
	}
	s := e.joinQueue("jobs", "w")
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("delivered after the last purge: %v", valuesOf(got))
	}
	e.b.Publish("jobs", []Message{{Value: []byte("after"), Partition: -1}})
	if got := deliveries(t, s, 5*time.Second); len(got) != 1 {
		t.Fatalf("after the purge got %v", valuesOf(got))
	}
}
