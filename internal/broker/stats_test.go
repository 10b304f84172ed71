package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// A topic counts what it stores, what it refuses by reason, duplicates
// and the latency of each publish; the snapshots come with DescribeTopic.
func TestTopicStats(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("s", catalog.TopicConfig{Partitions: 2, MaxMessageBytes: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("s", msgs("m", 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("s", []Message{{Value: []byte("x"), ID: "a", Partition: -1}, {Value: []byte("y"), ID: "a", Partition: -1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("s", []Message{{Value: []byte("x"), ID: "a", Partition: -1}}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 200)
	if _, err := e.b.Publish("s", []Message{{Value: big, Partition: -1}, {Value: []byte("ok"), Partition: -1}}); !errs.Is(err, errs.MessageTooLarge) {
		t.Fatalf("oversized message: %v", err)
	}
	if _, err := e.b.Publish("s", []Message{{Value: []byte("x"), Partition: 9}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("bad partition: %v", err)
	}
	info, err := e.b.DescribeTopic("s")
	if err != nil {
		t.Fatal(err)
	}
	st := info.Stats
	if st.Published != 6 || st.PublishedBytes == 0 {
		t.Fatalf("published %d messages, %d bytes; want 6", st.Published, st.PublishedBytes)
	}
	if st.DedupHits != 2 {
		t.Fatalf("dedup hits %d, want 2 (one in the request, one across requests)", st.DedupHits)
	}
	if st.Rejected[RejectTooLarge] != 2 || st.Rejected[RejectInvalid] != 1 {
		t.Fatalf("rejected %v", st.Rejected)
	}
	if st.PublishLatency.Count != 2 {
		t.Fatalf("%d publish latencies observed, want one per request that stored something", st.PublishLatency.Count)
	}
}

// A queue subscription counts deliveries, redeliveries, acks, nacks,
// rejects and dead letters by reason, and observes its end-to-end
// latencies in the broker's clock.
func TestQueueSubscriptionStats(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	if _, err := e.b.Publish("jobs", msgs("j", 3)); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Second) // published 2 s before the first delivery
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 3 {
		t.Fatalf("delivered %d", len(got))
	}
	e.clk.Advance(500 * time.Millisecond)
	ackAll(t, s, got[:1])
	if err := s.Reject(2, got[1].Partition, got[1].Offset, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(3, got[2].Partition, got[2].Offset, 0, "later"); err != nil {
		t.Fatal(err)
	}
	again := deliveries(t, s, 3*time.Second)
	if len(again) != 1 || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivery %+v", again)
	}
	ackAll(t, s, again)
	e.b.QueueTick() // writes the dead letter
	info, err := e.b.DescribeSubscription("jobs", "w")
	if err != nil {
		t.Fatal(err)
	}
	st := info.Stats
	if st.Delivered != 4 || st.Redelivered != 1 || st.Acked != 2 || st.Nacked != 1 || st.Rejected != 1 {
		t.Fatalf("counters %+v", st)
	}
	if st.DeadLettered["rejected"] != 1 || st.DeadLettered["max-deliveries"] != 0 {
		t.Fatalf("dead-lettered %v", st.DeadLettered)
	}
	if st.ToFirstDelivery.Count != 3 || st.ToAck.Count != 2 || st.DeliverToAck.Count != 2 {
		t.Fatalf("latency counts: first %d, ack %d, deliver→ack %d", st.ToFirstDelivery.Count, st.ToAck.Count, st.DeliverToAck.Count)
	}
	if p50, _ := st.ToFirstDelivery.Quantile(0.5); p50 < float64(time.Second) || p50 > float64(2500*time.Millisecond) {
		t.Fatalf("publish → first delivery p50 %v, want about 2 s", time.Duration(p50))
	}
}

// A stream session's deliveries are counted; offsets delivered again
// after a reset are redeliveries; commits are counted.
func TestStreamSubscriptionStats(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("ev", catalog.TopicConfig{})
	e.b.CreateSubscription("ev", "r", catalog.SubConfig{})
	e.b.Publish("ev", msgs("e", 4))
	s, err := e.b.Join(JoinRequest{Topic: "ev", Subscription: "r", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 4 {
		t.Fatalf("delivered %d", len(got))
	}
	if err := s.Commit(1, s.gen, map[int32]int64{0: 4}); err != nil {
		t.Fatal(err)
	}
	s.Leave()
	if _, err := e.b.ResetSubscription("ev", "r", earliest, -1); err != nil {
		t.Fatal(err)
	}
	s2, _ := e.b.Join(JoinRequest{Topic: "ev", Subscription: "r", Credits: 100})
	defer s2.Leave()
	if again := deliveries(t, s2, 3*time.Second); len(again) != 4 {
		t.Fatalf("after reset %d delivered", len(again))
	}
	st, _ := e.b.DescribeSubscription("ev", "r")
	if st.Stats.Delivered != 8 || st.Stats.Redelivered != 4 || st.Stats.Commits != 1 || st.Stats.ToFirstDelivery.Count != 4 {
		t.Fatalf("counters %+v", st.Stats)
	}
}
