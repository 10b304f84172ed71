package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

func TestRebalanceHandsOverAfterRevocation(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 4})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	a, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", ClientID: "a", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Leave()
	ev := next(t, a)
	if len(ev.Assignment.Partitions) != 4 {
		t.Fatalf("first member owns %v", ev.Assignment.Partitions)
	}
	gen1 := ev.Assignment.Generation
	b, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", ClientID: "b", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Leave()
	// a is asked to revoke two partitions; b owns nothing until a confirms.
	ev = next(t, a)
	if len(ev.Assignment.Revoke) != 2 || len(ev.Assignment.Partitions) != 2 {
		t.Fatalf("a after b joined: %+v", ev.Assignment)
	}
	revoke := ev.Assignment.Revoke
	gen2 := ev.Assignment.Generation
	evb := next(t, b)
	if len(evb.Assignment.Partitions) != 0 {
		t.Fatalf("b owns %v before a confirmed", evb.Assignment.Partitions)
	}
	// A commit with the old generation is refused; a's commit of a revoking
	// partition with the new generation is accepted.
	if err := a.Commit(1, gen1, map[int32]int64{revoke[0]: 0}); !errs.Is(err, errs.StaleGeneration) {
		t.Fatalf("stale commit: %v", err)
	}
	if err := a.Commit(2, gen2, map[int32]int64{revoke[0]: 0}); err != nil {
		t.Fatalf("commit while revoking: %v", err)
	}
	if err := a.Revoked(revoke); err != nil {
		t.Fatal(err)
	}
	evb = next(t, b)
	if len(evb.Assignment.Partitions) != 2 {
		t.Fatalf("b after revocation: %+v", evb.Assignment)
	}
	// b cannot commit a's partitions.
	for _, ps := range ev.Assignment.Partitions {
		if err := b.Commit(3, evb.Assignment.Generation, map[int32]int64{ps.Partition: 0}); !errs.Is(err, errs.NotOwner) {
			t.Fatalf("commit of another member's partition: %v", err)
		}
	}
}

func TestMissedHeartbeatsEvict(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	a, _ := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", SessionTimeout: 2 * time.Second})
	next(t, a)
	e.clk.Advance(3 * time.Second)
	e.b.Maintain()
	if _, err := a.Next(t.Context()); !errs.Is(err, errs.UnknownMember) {
		t.Fatalf("evicted session: %v", err)
	}
	info, _ := e.b.DescribeSubscription("t", "s")
	if len(info.Group.Members) != 0 {
		t.Fatalf("members after eviction: %+v", info.Group.Members)
	}
}

func TestDeleteTopicEndsSessions(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	a, _ := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 10})
	next(t, a)
	if err := e.b.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Next(t.Context()); err == nil {
		t.Fatal("session survived topic deletion")
	}
	if _, err := e.b.Publish("t", msgs("x", 1)); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("publish to deleted topic: %v", err)
	}
	// Re-create with the same name: empty, no old subscriptions.
	e.b.CreateTopic("t", catalog.TopicConfig{})
	info, _ := e.b.DescribeTopic("t")
	if info.Messages != 0 || len(info.Subscriptions) != 0 {
		t.Fatalf("re-created topic: %+v", info)
	}
}

func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"", "a b", "..", "x/y", string(make([]byte, 300))} {
		if _, err := e.b.CreateTopic(name, catalog.TopicConfig{}); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("topic name %q: %v", name, err)
		}
	}
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 5000}); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("5000 partitions: %v", err)
	}
	e.b.CreateTopic("t", catalog.TopicConfig{MaxMessageBytes: 100})
	if _, err := e.b.Publish("t", []Message{{Value: make([]byte, 200), Partition: -1}}); !errs.Is(err, errs.MessageTooLarge) {
		t.Errorf("oversize message: %v", err)
	}
	if _, err := e.b.Publish("t", []Message{{Value: []byte("x"), Partition: 3}}); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("bad partition: %v", err)
	}
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{Filter: "a..b"}); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("bad filter: %v", err)
	}
	if _, err := e.b.CreateSubscription("nope", "s", catalog.SubConfig{}); !errs.Is(err, errs.TopicNotFound) {
		t.Errorf("sub on unknown topic: %v", err)
	}
	if _, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "nope"}); !errs.Is(err, errs.SubNotFound) {
		t.Errorf("join unknown sub: %v", err)
	}
	info, _ := e.b.DescribeTopic("t")
	if info.Messages != 0 {
		t.Fatalf("rejected publishes stored %d messages", info.Messages)
	}
}
