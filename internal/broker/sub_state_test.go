package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// TestConsumerStateReplicated: on a cluster, consumer state — stream
// commits, halts, queue snapshots — is written through the metadata log;
// another node applying the same entries holds the same state, and once
// it coordinates, serves the queue from where the first left off. A node
// that does not coordinate refuses sessions, commits and resets.
func TestConsumerStateReplicated(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	e.opts = func(c *Config) { c.Meta = rec }
	e.restart()
	rec.b = e.b
	b := e.b
	if _, err := b.CreateTopic("t", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("t", "q", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	ms := msgs("m", 10)
	for i := range ms {
		ms[i].Partition = int32(i % 2)
	}
	if _, err := b.Publish("t", ms); err != nil {
		t.Fatal(err)
	}
	// Not the coordinator yet.
	if _, err := b.Join(JoinRequest{Topic: "t", Subscription: "s"}); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("join on a node that does not coordinate: %v", err)
	}
	if _, err := b.ResetSubscription("t", "s", catalog.Position{Kind: catalog.Latest}, AllPartitions); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("reset on a node that does not coordinate: %v", err)
	} else if nc := errs.NotCoordinatorOf(err); nc == nil || nc.Node != 1 {
		t.Fatalf("the refusal does not name the coordinator: %v (%+v)", err, nc)
	}
	b.SetCoordinator(1)

	s, err := b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, s)
	if err := s.Commit(1, ev.Assignment.Generation, map[int32]int64{0: 3, 1: 2}); err != nil {
		t.Fatal(err)
	}
	q := e.joinQueue("t", "q")
	got := deliveries(t, q, 5*time.Second)
	if len(got) == 0 {
		t.Fatal("nothing delivered")
	}
	ackAll(t, q, got[:len(got)/2])
	b.QueueTick()
	want, err := b.DescribeSubscription("t", "q")
	if err != nil {
		t.Fatal(err)
	}

	// Another node applies the same entries.
	other := newEnv(t)
	orec := &recorder{}
	other.opts = func(c *Config) { c.Meta = orec }
	other.restart()
	orec.b = other.b
	for _, c := range rec.changes {
		if err := other.b.ApplyChange(c, 0, nil); err != nil && !errs.Is(err, errs.Unavailable) {
			t.Fatalf("apply %d: %v", c[0], err)
		}
	}
	info, err := other.b.DescribeSubscription("t", "s")
	if err != nil {
		t.Fatal(err)
	}
	if info.Partitions[0].Committed != 3 || info.Partitions[1].Committed != 2 {
		t.Fatalf("replicated stream commits %+v, want 3 and 2", info.Partitions)
	}
	other.b.SetCoordinator(2)
	oq, err := other.b.DescribeSubscription("t", "q")
	if err != nil {
		t.Fatal(err)
	}
	for p := range want.Partitions {
		if w, g := want.Partitions[p].Committed, oq.Partitions[p].Committed; w != g {
			t.Fatalf("partition %d queue floor %d on the new coordinator, want %d", p, g, w)
		}
	}

	// A write proposed in one term but appended in another is refused on
	// every node alike.
	w := &subWrite{topic: "t", sub: "s", created: info.Sub.Created, term: 1}
	w.set(state.OffsetKey("t", "s", 0), catalog.EncodeOffset(9))
	if err := other.b.ApplyChange(encodeSubWrite(w), 2, nil); !errs.Is(err, errs.Unavailable) {
		t.Fatalf("a deposed coordinator's write: %v", err)
	}
	// A write naming a key outside its subscription is refused.
	w = &subWrite{topic: "t", sub: "s", created: info.Sub.Created, term: 2}
	w.set(state.OffsetKey("t", "q", 0), catalog.EncodeOffset(9))
	if err := other.b.ApplyChange(encodeSubWrite(w), 2, nil); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("a write outside the subscription: %v", err)
	}

	// Stepping down ends the sessions.
	b.SetCoordinator(0)
	if _, err := s.Next(t.Context()); err == nil {
		t.Fatal("session survived the end of coordination")
	}
}

// TestQueueProgressPersistedOnClose: acknowledgements not yet written by
// the queue loop are written when the broker closes (a closing broker
// refuses lookups by name; the write names its subscription itself).
func TestQueueProgressPersistedOnClose(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("jobs", msgs("j", 4)); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	ackAll(t, s, deliveries(t, s, 5*time.Second))
	s.Leave()
	e.restart() // no queue tick in between
	s = e.joinQueue("jobs", "w")
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("acknowledged messages delivered again after a clean restart: %v", valuesOf(got))
	}
}
