package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// partKey is a record key naming a partition, as a front end might keep
// one record per partition.
func partKey(p int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(p)) }

// streamRecords reads a subscription's records of a space as key → value.
func streamRecords(t *testing.T, sp *Space, topic, sub string) (map[string]string, StreamView) {
	t.Helper()
	out := map[string]string{}
	var view StreamView
	err := sp.ReadStream(topic, sub, func(v StreamView) error {
		view = v
		return v.ScanRecords(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("ReadStream %s/%s: %v", topic, sub, err)
	}
	return out, view
}

func TestCommitStreamWithRecords(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("orders", msgs("a", 30)); err != nil {
		t.Fatal(err)
	}
	sp := e.b.Space("kafka")
	if err := sp.ReadStream("orders", "g", func(StreamView) error { return nil }); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("ReadStream before the subscription exists: %v", err)
	}
	var p0 int32 = -1
	info, _ := e.b.DescribeTopic("orders")
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			p0 = pi.Partition
		}
	}
	// The first commit creates the subscription (start earliest); Records
	// sees it fresh, with the partitions that passed the checks.
	var seen StreamView
	perr, err := sp.CommitStream("orders", "g", StreamCommit{
		Offsets: map[int32]int64{p0: 7, 9: 1},
		Create:  &catalog.SubConfig{Start: catalog.Position{Kind: catalog.Earliest}},
		Records: func(v StreamView) ([]Record, error) {
			seen = v
			return []Record{{Key: partKey(p0), Value: []byte("meta-7")}, {Key: []byte("x"), Value: []byte("y")}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errs.Is(perr[9], errs.TopicNotFound) || len(perr) != 1 {
		t.Fatalf("per-partition errors %v", perr)
	}
	if !seen.Fresh || len(seen.Commit) != 1 || seen.Commit[p0] != 7 || fmt.Sprint(seen.Committed) != "[0 0 0]" || seen.Created.IsZero() {
		t.Fatalf("view of the first commit %+v", seen)
	}
	check := func() {
		t.Helper()
		recs, v := streamRecords(t, sp, "orders", "g")
		if len(recs) != 2 || recs[string(partKey(p0))] != "meta-7" || recs["x"] != "y" {
			t.Fatalf("records %q", recs)
		}
		if v.Committed[p0] != 7 || !v.Created.Equal(seen.Created) || v.Fresh {
			t.Fatalf("view %+v", v)
		}
		si, err := e.b.DescribeSubscription("orders", "g")
		if err != nil || si.Partitions[p0].Committed != 7 || si.Sub.Config.Mode != catalog.ModeStream {
			t.Fatalf("subscription %+v %v", si, err)
		}
	}
	check()
	e.restart()
	sp = e.b.Space("kafka")
	check()

	// Beyond the end: refused per partition, nothing written.
	perr, err = sp.CommitStream("orders", "g", StreamCommit{Offsets: map[int32]int64{p0: 1000}})
	if err != nil || !errs.Is(perr[p0], errs.OffsetOutOfRange) {
		t.Fatalf("beyond end: %v %v", perr, err)
	}
	// A negative offset keeps the position; its partition reaches Records.
	perr, err = sp.CommitStream("orders", "g", StreamCommit{
		Offsets: map[int32]int64{p0: -1},
		Records: func(v StreamView) ([]Record, error) {
			if v.Fresh || v.Commit[p0] != -1 || v.Committed[p0] != 7 {
				return nil, fmt.Errorf("view %+v", v)
			}
			return []Record{{Key: partKey(p0), Value: []byte("unset")}, {Key: []byte("x")}}, nil
		},
	})
	if err != nil || len(perr) != 0 {
		t.Fatalf("negative offset: %v %v", perr, err)
	}
	if recs, v := streamRecords(t, sp, "orders", "g"); v.Committed[p0] != 7 || len(recs) != 1 || recs[string(partKey(p0))] != "unset" {
		t.Fatalf("after a negative offset: %v %q", v.Committed, recs)
	}
	// An error of Records stops the commit.
	boom := errors.New("boom")
	if _, err := sp.CommitStream("orders", "g", StreamCommit{
		Offsets: map[int32]int64{p0: 3},
		Records: func(StreamView) ([]Record, error) { return nil, boom },
	}); !errors.Is(err, boom) {
		t.Fatalf("Records error: %v", err)
	}
	if _, v := streamRecords(t, sp, "orders", "g"); v.Committed[p0] != 7 {
		t.Fatalf("a failed commit moved the offset: %v", v.Committed)
	}
	// A reset moves offsets under the commit lock; the records stay (their
	// front end tells them stale by the offset they name).
	if _, err := e.b.ResetSubscription("orders", "g", catalog.Position{Kind: catalog.AtOffset, Offset: 2}, AllPartitions); err != nil {
		t.Fatal(err)
	}
	if recs, v := streamRecords(t, sp, "orders", "g"); v.Committed[p0] != 2 || len(recs) != 1 {
		t.Fatalf("after a reset: %v %q", v.Committed, recs)
	}

	// Invalid names, queue subscriptions, unknown topics.
	create := &catalog.SubConfig{}
	if _, err := sp.CommitStream("orders", "bad name", StreamCommit{Offsets: map[int32]int64{0: 0}, Create: create}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("invalid name: %v", err)
	}
	if _, err := e.b.CreateSubscription("orders", "q", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.CommitStream("orders", "q", StreamCommit{Offsets: map[int32]int64{0: 0}, Create: create}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("queue subscription: %v", err)
	}
	if err := sp.ReadStream("orders", "q", func(StreamView) error { return nil }); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("ReadStream of a queue subscription: %v", err)
	}
	if _, err := sp.CommitStream("nope", "g", StreamCommit{Offsets: map[int32]int64{0: 0}, Create: create}); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
	// Without Create a missing subscription is not made.
	if _, err := sp.CommitStream("orders", "h", StreamCommit{Offsets: map[int32]int64{0: 0}}); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("missing subscription without Create: %v", err)
	}
	// No valid partition: nothing is created.
	if perr, err := sp.CommitStream("orders", "h", StreamCommit{Offsets: map[int32]int64{7: 0}, Create: create}); err != nil || len(perr) != 1 {
		t.Fatalf("only bad partitions: %v %v", perr, err)
	}
	if _, _, err := e.b.sub("orders", "h"); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("a commit of only bad partitions created the subscription: %v", err)
	}
	names := e.b.SubNames()
	if len(names) != 2 || names[0] != (SubName{Name: "g", Stream: 1}) || names[1] != (SubName{Name: "q", Queue: 1}) {
		t.Fatalf("SubNames %+v", names)
	}
}

// Alone refuses commits while session members consume; the records go
// with the subscription and with its topic.
func TestCommitStreamMembersAndDeletion(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	sp := e.b.Space("kafka")
	write := func(c StreamCommit) (map[int32]error, error) {
		c.Records = func(v StreamView) ([]Record, error) {
			var out []Record
			for p := range v.Commit {
				out = append(out, Record{Key: partKey(p), Value: []byte("r")})
			}
			return out, nil
		}
		return sp.CommitStream("orders", "g", c)
	}
	sess, err := e.b.Join(JoinRequest{Topic: "orders", Subscription: "g", SessionTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := write(StreamCommit{Offsets: map[int32]int64{0: 0}, Alone: true}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("commit with session members: %v", err)
	}
	if _, err := write(StreamCommit{Offsets: map[int32]int64{0: -1}}); err != nil {
		t.Fatalf("records only, not alone: %v", err)
	}
	if _, err := e.b.DeleteSubsNamed("g"); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("delete with session members: %v", err)
	}
	if ns := e.b.SubsNamed("g"); len(ns) != 1 || ns[0] != (NamedSub{Topic: "orders", Mode: catalog.ModeStream, Members: 1}) {
		t.Fatalf("SubsNamed %+v", ns)
	}
	if names := e.b.SubNames(); len(names) != 1 || names[0].Members != 1 {
		t.Fatalf("SubNames %+v", names)
	}
	sess.Leave()
	if _, err := write(StreamCommit{Offsets: map[int32]int64{0: 0, 1: 0}, Alone: true}); err != nil {
		t.Fatal(err)
	}
	stored := func(topic, sub string) int {
		n := 0
		e.st.Scan(state.SpaceSubPrefix(sp.sp, topic, sub), func(k, v []byte) error { n++; return nil })
		return n
	}
	if n := stored("orders", "g"); n != 2 {
		t.Fatalf("%d records stored", n)
	}
	// Deleting the subscription deletes its records: one created again
	// under the name starts without them.
	if err := e.b.DeleteSubscription("orders", "g"); err != nil {
		t.Fatal(err)
	}
	if n := stored("orders", "g"); n != 0 {
		t.Fatalf("%d records left after deleting the subscription", n)
	}
	if _, err := write(StreamCommit{Offsets: map[int32]int64{1: 0}, Create: &catalog.SubConfig{}}); err != nil {
		t.Fatal(err)
	}
	if recs, v := streamRecords(t, sp, "orders", "g"); len(recs) != 1 || !slices.Equal(v.Committed, []int64{0, 0}) {
		t.Fatalf("recreated: %q %v", recs, v.Committed)
	}
	if n, err := e.b.DeleteSubsNamed("g"); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := write(StreamCommit{Offsets: map[int32]int64{1: 0}, Create: &catalog.SubConfig{}}); err != nil {
		t.Fatal(err)
	}
	// Deleting the topic deletes the records of all its subscriptions.
	if err := e.b.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if n := stored("orders", ""); n != 0 {
		t.Fatalf("%d records left after deleting the topic", n)
	}
}

// A space's own records: written synced or not, read, scanned, updated,
// kept across restarts, and apart from other keys.
func TestSpaceRecords(t *testing.T) {
	e := newEnv(t)
	sp := e.b.Space("kafka")
	if _, ok, err := sp.Get([]byte("a/1")); ok || err != nil {
		t.Fatalf("missing record: %v %v", ok, err)
	}
	if err := sp.Write([]Record{{Key: []byte("a/1"), Value: []byte("one")}, {Key: []byte("a/2"), Value: []byte("two")}, {Key: []byte("b"), Value: []byte{}}}, true); err != nil {
		t.Fatal(err)
	}
	if err := sp.Write([]Record{{Key: []byte("a/3"), Value: []byte("three")}}, false); err != nil {
		t.Fatal(err)
	}
	if v, err := e.st.Get([]byte("kafka-a/1")); err != nil || string(v) != "one" {
		t.Fatalf("store key: %q %v", v, err)
	}
	if k := sp.Key([]byte("a/1")); string(k) != "kafka-a/1" {
		t.Fatalf("Key %q", k)
	}
	e.restart()
	sp = e.b.Space("kafka")
	var keys []string
	if err := sp.Scan([]byte("a/"), func(k, v []byte) error { keys = append(keys, string(k)+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[a/1=one a/2=two a/3=three]" {
		t.Fatalf("scan %v", keys)
	}
	if v, ok, err := sp.Get([]byte("b")); !ok || err != nil || len(v) != 0 {
		t.Fatalf("empty value: %q %v %v", v, ok, err)
	}
	boom := errors.New("boom")
	if err := sp.Scan(nil, func(k, v []byte) error { return boom }); err != boom {
		t.Fatalf("scan error %v", err)
	}
	if err := sp.Write([]Record{{Key: []byte("a/2")}}, true); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := sp.Get([]byte("a/2")); ok {
		t.Fatal("deleted record still there")
	}
	// Update: read-modify-write, serialized.
	done := make(chan error)
	for range 20 {
		go func() {
			done <- sp.Update([]byte("n"), true, func(old []byte, ok bool) ([]byte, error) {
				n := uint64(0)
				if ok {
					n = binary.BigEndian.Uint64(old)
				}
				return binary.BigEndian.AppendUint64(nil, n+1), nil
			})
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if v, _, _ := sp.Get([]byte("n")); binary.BigEndian.Uint64(v) != 20 {
		t.Fatalf("after 20 updates: %d", binary.BigEndian.Uint64(v))
	}
	if err := sp.Update([]byte("n"), true, func([]byte, bool) ([]byte, error) { return nil, boom }); err != boom {
		t.Fatalf("update error %v", err)
	}
	if err := sp.Update([]byte("n"), true, func([]byte, bool) ([]byte, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := sp.Get([]byte("n")); ok {
		t.Fatal("an update to nil did not delete")
	}
	defer func() {
		if recover() == nil {
			t.Error("a space of no front end did not panic")
		}
	}()
	e.b.Space("nope")
}

// A reader of a subscription a commit is creating waits for the commit's
// records: between the creation and the commit lock it would find the
// subscription without them.
func TestReadStreamWaitsForTheCreatingCommit(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	sp := e.b.Space("kafka")
	read := make(chan map[string]string, 1)
	testHookStreamCreated = func() {
		go func() {
			out := map[string]string{}
			err := sp.ReadStream("orders", "g", func(v StreamView) error {
				return v.ScanRecords(func(k, v []byte) error {
					out[string(k)] = string(v)
					return nil
				})
			})
			if err != nil {
				t.Errorf("ReadStream: %v", err)
			}
			read <- out
		}()
		time.Sleep(50 * time.Millisecond) // the reader's chance to overtake
	}
	t.Cleanup(func() { testHookStreamCreated = nil })
	_, err := sp.CommitStream("orders", "g", StreamCommit{
		Offsets: map[int32]int64{0: 0},
		Create:  &catalog.SubConfig{Start: catalog.Position{Kind: catalog.Earliest}},
		Records: func(v StreamView) ([]Record, error) {
			return []Record{{Key: partKey(0), Value: []byte("m0")}, {Key: partKey(1), Value: []byte("unset")}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-read; len(got) != 2 || got[string(partKey(1))] != "unset" {
		t.Fatalf("the reader saw %q, not the creating commit's records", got)
	}
}
