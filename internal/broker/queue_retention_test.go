package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
)

// A slow queue member with little credit, on a topic whose retention
// removes messages the queue core already tracks (read from the log, not
// yet delivered): leasing them must neither spend the member's credits nor
// leave leases behind, and delivery must go on from what the log still
// holds. (Before, each lease of a removed message was skipped silently:
// the member never saw it, so never gave its credit back, and once every
// credit was spent so, nothing was delivered to it again, though its
// leases expired and hundreds of messages were ready.)
func TestQueueRetentionRemovesTrackedMessages(t *testing.T) {
	e := newEnv(t)
	e.opts = func(c *Config) {
		c.Log.SegmentBytes = 64 << 10
		c.Log.Limits.MaxBatchBytes = 32 << 10
	}
	e.restart()
	if _, err := e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1, RetentionBytes: 128 << 10, MaxMessageBytes: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	big := func(n int) []Message {
		ms := make([]Message, n)
		for i := range ms {
			ms[i] = Message{Value: make([]byte, 4000), Partition: -1}
		}
		return ms
	}
	if _, err := e.b.Publish("jobs", big(40)); err != nil {
		t.Fatal(err)
	}
	const credit = 2
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: credit, SessionTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	if len(got) != credit || got[0].Offset != 0 {
		t.Fatalf("first deliveries %+v", got)
	}
	if st := queueStats(t, e); st.Cursor < 10 || st.Ready < 8 {
		t.Fatalf("the core should track more than it delivered: %+v", st)
	}
	ackAll(t, s, got)

	// The topic moves on; retention removes what the core tracks.
	if _, err := e.b.Publish("jobs", big(100)); err != nil {
		t.Fatal(err)
	}
	e.b.Maintain()
	info, err := e.b.DescribeTopic("jobs")
	if err != nil {
		t.Fatal(err)
	}
	start := info.Partitions[0].StartOffset
	if st := queueStats(t, e); start <= credit+credit || st.Floor >= start {
		t.Fatalf("retention should have removed tracked messages: log start %d, queue %+v", start, st)
	}

	// The member finishes its messages and grants the credit back: it gets
	// messages the log still holds, and holds only their leases.
	for round := range 3 {
		s.AddCredits(credit)
		got = deliveries(t, s, 3*time.Second)
		if len(got) != credit {
			t.Fatalf("round %d: delivered %d, want %d; queue %+v", round, len(got), credit, queueStats(t, e))
		}
		for _, d := range got {
			if d.Offset < start || d.DeliveryCount != 1 {
				t.Fatalf("round %d: delivery at offset %d (log start %d), count %d", round, d.Offset, start, d.DeliveryCount)
			}
		}
		if st := queueStats(t, e); st.Leased != credit || st.Floor < start {
			t.Fatalf("round %d: queue %+v, want %d leased and the floor at or above the log start %d", round, st, credit, start)
		}
		ackAll(t, s, got)
	}
}

func queueStats(t *testing.T, e *env) queue.Stats {
	t.Helper()
	info, err := e.b.DescribeSubscription("jobs", "w")
	if err != nil {
		t.Fatal(err)
	}
	return info.Partitions[0].Queue.Stats
}
