package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

func TestGroupOffsetsCreateCommitRestart(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("orders", msgs("a", 30)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.b.GroupOffsets("g", "orders"); ok || err != nil {
		t.Fatalf("offsets before any commit: ok=%v err=%v", ok, err)
	}
	var p0 int32 = -1
	info, _ := e.b.DescribeTopic("orders")
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			p0 = pi.Partition
		}
	}
	perr, err := e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{p0: {Offset: 7, LeaderEpoch: 3, Metadata: "meta"}, 9: {Offset: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !errs.Is(perr[9], errs.TopicNotFound) || len(perr) != 1 {
		t.Fatalf("per-partition errors %v", perr)
	}
	check := func() {
		t.Helper()
		offs, ok, err := e.b.GroupOffsets("g", "orders")
		if err != nil || !ok || len(offs) != 3 {
			t.Fatalf("GroupOffsets: %v %v %v", offs, ok, err)
		}
		for p, o := range offs {
			want := GroupOffset{Offset: -1, LeaderEpoch: -1}
			if p == p0 {
				want = GroupOffset{Offset: 7, LeaderEpoch: 3, Metadata: "meta"}
			}
			if o != want {
				t.Fatalf("partition %d: %+v, want %+v", p, o, want)
			}
		}
		si, err := e.b.DescribeSubscription("orders", "g")
		if err != nil {
			t.Fatal(err)
		}
		if si.Partitions[p0].Committed != 7 {
			t.Fatalf("subscription committed %+v", si.Partitions)
		}
	}
	check()
	e.restart()
	check()
	if got := e.b.GroupTopics("g"); len(got) != 1 || got[0] != "orders" {
		t.Fatalf("GroupTopics %v", got)
	}

	// Beyond the end: refused per partition.
	perr, err = e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{p0: {Offset: 1000}})
	if err != nil || !errs.Is(perr[p0], errs.OffsetOutOfRange) {
		t.Fatalf("beyond end: %v %v", perr, err)
	}
	// A native reset moves the offset: the Kafka epoch and metadata no
	// longer apply, and every partition has an offset again.
	if _, err := e.b.ResetSubscription("orders", "g", catalog.Position{Kind: catalog.AtOffset, Offset: 2}, AllPartitions); err != nil {
		t.Fatal(err)
	}
	offs, _, _ := e.b.GroupOffsets("g", "orders")
	if offs[p0] != (GroupOffset{Offset: 2, LeaderEpoch: -1}) {
		t.Fatalf("after reset: %+v", offs)
	}
	// A negative offset reads back as none.
	if _, err := e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{p0: {Offset: -1}}); err != nil {
		t.Fatal(err)
	}
	offs, _, _ = e.b.GroupOffsets("g", "orders")
	if offs[p0].Offset != -1 {
		t.Fatalf("after -1 commit: %+v", offs[p0])
	}

	// Invalid names, queue subscriptions.
	if _, err := e.b.CommitGroupOffsets("bad group", "orders", map[int32]GroupOffset{0: {Offset: 0}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := e.b.CreateSubscription("orders", "q", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CommitGroupOffsets("q", "orders", map[int32]GroupOffset{0: {Offset: 0}}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("queue subscription: %v", err)
	}
	names := e.b.GroupNames()
	if len(names) != 2 || names[0].Name != "g" || names[0].Stream != 1 || names[1].Name != "q" || names[1].Queue != 1 {
		t.Fatalf("GroupNames %+v", names)
	}
}

func TestGroupOffsetsNativeMembersAndDelete(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	// A native subscription: every partition has an offset.
	offs, ok, err := e.b.GroupOffsets("g", "orders")
	if err != nil || !ok || offs[0].Offset != 0 || offs[1].Offset != 0 {
		t.Fatalf("native subscription offsets %+v %v %v", offs, ok, err)
	}
	sess, err := e.b.Join(JoinRequest{Topic: "orders", Subscription: "g", SessionTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{0: {Offset: 0}}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("commit with native members: %v", err)
	}
	if _, err := e.b.DeleteGroupSubscriptions("g"); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("delete with native members: %v", err)
	}
	if gs := e.b.GroupSubscriptions("g"); len(gs) != 1 || gs[0].Members != 1 {
		t.Fatalf("GroupSubscriptions %+v", gs)
	}
	sess.Leave()
	if _, err := e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{0: {Offset: 0, Metadata: "x"}}); err != nil {
		t.Fatal(err)
	}
	// Deleting the offsets of every partition deletes the subscription.
	if ok, err := e.b.DeleteGroupOffsets("g", "orders", []int32{0}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if offs, _, _ := e.b.GroupOffsets("g", "orders"); offs[0].Offset != -1 || offs[1].Offset != 0 {
		t.Fatalf("after deleting partition 0: %+v", offs)
	}
	if _, err := e.b.DeleteGroupOffsets("g", "orders", []int32{1}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.b.GroupOffsets("g", "orders"); ok {
		t.Fatal("subscription survived deleting all its offsets")
	}
	// Re-created by a commit: stale records of the old one do not apply.
	if _, err := e.b.CommitGroupOffsets("g", "orders", map[int32]GroupOffset{1: {Offset: 0, Metadata: "new"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.b.DeleteGroupSubscriptions("g"); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if _, ok, _ := e.b.GroupOffsets("g", "orders"); ok {
		t.Fatal("subscription survived DeleteGroupSubscriptions")
	}
}
