package kgroup

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a real broker on a temporary data directory, and the group
// offsets over it.
type env struct {
	t   *testing.T
	dir string
	st  *state.Store
	b   *broker.Broker
	o   *Offsets
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: e.dir, State: st, Clock: clock.NewFake(time.Unix(1_700_000_000, 0)),
		Logger: quiet, MaintenanceInterval: time.Hour})
	if err != nil {
		st.Close()
		e.t.Fatal(err)
	}
	e.st, e.b, e.o = st, b, NewOffsets(b, b.Space("kafka"))
}

func (e *env) close() {
	if e.b != nil {
		e.b.Close()
		e.st.Close()
		e.b, e.st = nil, nil
	}
}

func (e *env) restart() { e.close(); e.open() }

func msgs(n int) []broker.Message {
	out := make([]broker.Message, n)
	for i := range out {
		out[i] = broker.Message{Value: fmt.Appendf(nil, "m-%d", i), Partition: -1}
	}
	return out
}

func TestOffsetsCreateCommitRestart(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("orders", msgs(30)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.o.Fetch("g", "orders"); ok || err != nil {
		t.Fatalf("offsets before any commit: ok=%v err=%v", ok, err)
	}
	var p0 int32 = -1
	info, _ := e.b.DescribeTopic("orders")
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			p0 = pi.Partition
		}
	}
	perr, err := e.o.Commit("g", "orders", map[int32]Offset{p0: {Offset: 7, LeaderEpoch: 3, Metadata: "meta"}, 9: {Offset: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !errs.Is(perr[9], errs.TopicNotFound) || len(perr) != 1 {
		t.Fatalf("per-partition errors %v", perr)
	}
	check := func() {
		t.Helper()
		offs, ok, err := e.o.Fetch("g", "orders")
		if err != nil || !ok || len(offs) != 3 {
			t.Fatalf("Fetch: %v %v %v", offs, ok, err)
		}
		for p, o := range offs {
			want := Offset{Offset: -1, LeaderEpoch: -1}
			if p == p0 {
				want = Offset{Offset: 7, LeaderEpoch: 3, Metadata: "meta"}
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
	if got := e.o.Topics("g"); len(got) != 1 || got[0] != "orders" {
		t.Fatalf("Topics %v", got)
	}

	// Beyond the end: refused per partition.
	perr, err = e.o.Commit("g", "orders", map[int32]Offset{p0: {Offset: 1000}})
	if err != nil || !errs.Is(perr[p0], errs.OffsetOutOfRange) {
		t.Fatalf("beyond end: %v %v", perr, err)
	}
	// A native reset moves the offset: the Kafka epoch and metadata no
	// longer apply, and every partition has an offset again.
	if _, err := e.b.ResetSubscription("orders", "g", catalog.Position{Kind: catalog.AtOffset, Offset: 2}, broker.AllPartitions); err != nil {
		t.Fatal(err)
	}
	offs, _, _ := e.o.Fetch("g", "orders")
	if offs[p0] != (Offset{Offset: 2, LeaderEpoch: -1}) {
		t.Fatalf("after reset: %+v", offs)
	}
	// A negative offset reads back as none.
	if _, err := e.o.Commit("g", "orders", map[int32]Offset{p0: {Offset: -1}}); err != nil {
		t.Fatal(err)
	}
	offs, _, _ = e.o.Fetch("g", "orders")
	if offs[p0].Offset != -1 {
		t.Fatalf("after -1 commit: %+v", offs[p0])
	}

	// Invalid names, queue subscriptions.
	if _, err := e.o.Commit("bad group", "orders", map[int32]Offset{0: {Offset: 0}}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := e.b.CreateSubscription("orders", "q", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.o.Commit("q", "orders", map[int32]Offset{0: {Offset: 0}}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("queue subscription: %v", err)
	}
	if _, ok, err := e.o.Fetch("q", "orders"); ok || err != nil {
		t.Fatalf("Fetch of a queue subscription: %v %v", ok, err)
	}
}

func TestOffsetsNativeMembersAndDelete(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	// A native subscription: every partition has an offset.
	offs, ok, err := e.o.Fetch("g", "orders")
	if err != nil || !ok || offs[0].Offset != 0 || offs[1].Offset != 0 {
		t.Fatalf("native subscription offsets %+v %v %v", offs, ok, err)
	}
	sess, err := e.b.Join(broker.JoinRequest{Topic: "orders", Subscription: "g", SessionTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.o.Commit("g", "orders", map[int32]Offset{0: {Offset: 0}}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("commit with native members: %v", err)
	}
	sess.Leave()
	if _, err := e.o.Commit("g", "orders", map[int32]Offset{0: {Offset: 0, Metadata: "x"}}); err != nil {
		t.Fatal(err)
	}
	// Deleting the offsets of every partition deletes the subscription.
	if ok, err := e.o.Delete("g", "orders", []int32{0, 7}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if offs, _, _ := e.o.Fetch("g", "orders"); offs[0].Offset != -1 || offs[1].Offset != 0 {
		t.Fatalf("after deleting partition 0: %+v", offs)
	}
	if _, err := e.o.Delete("g", "orders", []int32{1}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.o.Fetch("g", "orders"); ok {
		t.Fatal("subscription survived deleting all its offsets")
	}
	if ok, err := e.o.Delete("g", "orders", []int32{1}); ok || err != nil {
		t.Fatalf("delete without a subscription: %v %v", ok, err)
	}
	// Created again by a commit: the old one's records are gone with it,
	// and the partitions no commit named have no offset.
	if _, err := e.o.Commit("g", "orders", map[int32]Offset{1: {Offset: 0, LeaderEpoch: 4, Metadata: "new"}}); err != nil {
		t.Fatal(err)
	}
	if offs, _, _ := e.o.Fetch("g", "orders"); offs[0] != (Offset{Offset: -1, LeaderEpoch: -1}) || offs[1] != (Offset{Offset: 0, LeaderEpoch: 4, Metadata: "new"}) {
		t.Fatalf("re-created: %+v", offs)
	}
	if n, err := e.b.DeleteSubsNamed("g"); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if _, ok, _ := e.o.Fetch("g", "orders"); ok {
		t.Fatal("subscription survived DeleteSubsNamed")
	}
}

// A record this server cannot read is an error naming its key, for the
// whole topic's offsets: never misread, never silently dropped.
func TestOffsetsRefuseUnknownRecords(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.o.Commit("g", "orders", map[int32]Offset{0: {Offset: 0, Metadata: "m"}}); err != nil {
		t.Fatal(err)
	}
	future := (commitMeta{offset: 0, epoch: -1}).encode()
	future[0] = 2
	b := e.st.NewBatch()
	b.Set(e.b.Space("kafka").SubKey("orders", "g", metaKey(1)), future)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.o.Fetch("g", "orders")
	want := `Kafka commit metadata record "k/orders\x00g\x00\x00\x00\x00\x01": record of an unknown future version 2; this server reads up to version 1`
	if !errs.Is(err, errs.CorruptData) || !strings.Contains(err.Error(), want) {
		t.Fatalf("fetch over a future record: %v", err)
	}
}
