package broker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// systemEvents reads every event published to SystemTopic so far.
func systemEvents(t *testing.T, e *env) []SystemEvent {
	t.Helper()
	e.b.Maintain()
	if _, err := e.b.topic(SystemTopic); err != nil {
		return nil
	}
	r, err := e.b.ReadTopic(ReadRequest{Topic: SystemTopic, From: earliest})
	if err != nil {
		t.Fatal(err)
	}
	var out []SystemEvent
	for _, rb := range readAll(t, r) {
		for _, m := range rb.Messages {
			var ev SystemEvent
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("event %q: %v", m.Value, err)
			}
			if string(m.Key) != ev.Topic {
				t.Fatalf("event keyed %q, about topic %q", m.Key, ev.Topic)
			}
			out = append(out, ev)
		}
	}
	return out
}

func kinds(evs []SystemEvent) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		out[ev.Kind]++
	}
	return out
}

// Dead letters (one event per batch, with reason, offsets and trace ids),
// a full topic (rate-limited) and a lost consumer are published to
// spool.events, which is created with the first event.
func TestSystemEvents(t *testing.T) {
	e := newEnv(t)
	if evs := systemEvents(t, e); evs != nil {
		t.Fatalf("events before anything happened: %+v", evs)
	}
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	e.b.Publish("jobs", []Message{{Value: []byte("poison"), Partition: -1, Headers: []batch.RecordHeader{{Key: HeaderTraceparent, Value: []byte(tp)}}}})
	s, _ := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10, SessionTimeout: 10 * time.Second})
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d", len(got))
	}
	if err := s.Reject(1, got[0].Partition, got[0].Offset, "bad input"); err != nil {
		t.Fatal(err)
	}
	e.b.QueueTick()

	e.b.CreateTopic("small", catalog.TopicConfig{MaxMessages: 1, Discard: catalog.DiscardNew})
	e.b.Publish("small", msgs("s", 1))
	for range 3 {
		if _, err := e.b.Publish("small", msgs("s", 1)); !errs.Is(err, errs.TopicFull) {
			t.Fatalf("publish to a full topic: %v", err)
		}
	}
	// The member stops heartbeating: lost after its session timeout.
	e.clk.Advance(11 * time.Second)
	e.b.Maintain()

	evs := systemEvents(t, e)
	k := kinds(evs)
	if k[EventDeadLettered] != 1 || k[EventTopicFull] != 1 || k[EventConsumerLost] != 1 {
		t.Fatalf("events %v: %+v", k, evs)
	}
	for _, ev := range evs {
		switch ev.Kind {
		case EventDeadLettered:
			if ev.Topic != "jobs" || ev.Subscription != "w" || ev.Reason != "rejected" || ev.Count != 1 || len(ev.Offsets) != 1 ||
				len(ev.TraceIDs) != 1 || ev.TraceIDs[0] != "0af7651916cd43dd8448eb211c80319c" {
				t.Fatalf("dead-letter event %+v", ev)
			}
		case EventConsumerLost:
			if ev.Member != s.MemberID() {
				t.Fatalf("lost member %q, want %q", ev.Member, s.MemberID())
			}
		}
	}
}

// A queue held back at max in flight for StallAfter is reported stalled,
// then resumed; a subscription whose backlog grows with nobody connected
// for UnattendedAfter is reported once.
func TestSystemEventsStalledAndUnattended(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.MaxInFlight = 1; q.AckTimeout = time.Hour }))
	e.b.CreateSubscription("jobs", "idle", queueCfg(nil))
	e.b.Publish("jobs", msgs("j", 3))
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10, SessionTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d with max in flight 1", len(got))
	}
	for range 7 {
		e.b.Publish("jobs", msgs("more", 1)) // the idle subscription's backlog grows
		e.clk.Advance(10 * time.Second)
		s.Heartbeat()
		e.b.Maintain()
	}
	ackAll(t, s, got)
	e.b.QueueTick()
	e.b.Maintain()
	k := kinds(systemEvents(t, e))
	if k[EventStalled] != 1 || k[EventResumed] != 1 {
		t.Fatalf("stall events %v", k)
	}
	if k[EventUnattended] != 1 {
		t.Fatalf("unattended events %v", k)
	}
}
