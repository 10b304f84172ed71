package kafka_test

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// Consumer groups with real franz-go clients against a real server.

// groupServer starts a server on dir (a fresh one if empty).
func groupServer(t *testing.T, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return spooltest.StartServer(t, spooltest.Dir(dir)).Server()
}

func groupTopic(t *testing.T, srv *server.Server, name string, partitions int32) {
	t.Helper()
	if _, err := serverhook.Broker(srv).CreateTopic(name, catalog.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// produceN produces n records "prefix-i" spread over the topic's partitions.
func groupProduceN(t *testing.T, srv *server.Server, topic, prefix string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := range n {
		rs = append(rs, &kgo.Record{Value: []byte(prefix + "-" + strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// groupTracker records a group consumer's assignment.
type groupTracker struct {
	mu       sync.Mutex
	assigned map[int32]bool
}

func (tr *groupTracker) parts() []int32 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []int32
	for p := range tr.assigned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func groupConsumer(t *testing.T, srv *server.Server, group, topic string, opts ...kgo.Opt) (*kgo.Client, *groupTracker) {
	t.Helper()
	tr := &groupTracker{assigned: map[int32]bool{}}
	base := []kgo.Opt{
		kgo.SeedBrokers(srv.KafkaAddr()),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			for _, p := range m[topic] {
				tr.assigned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			for _, p := range m[topic] {
				delete(tr.assigned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			for _, p := range m[topic] {
				delete(tr.assigned, p)
			}
		}),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, tr
}

// consume polls until it has n records (failing after a deadline),
// marking them for commit.
func groupConsume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch error %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
		cl.MarkCommitRecords(fs.Records()...)
	}
	return got
}

func groupWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func groupCommitMarked(t *testing.T, cl *kgo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGroupOneConsumerGetsAllAndCommitsToSubscription(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "orders", 4)
	groupProduceN(t, srv, "orders", "a", 100)
	cl, tr := groupConsumer(t, srv, "billing", "orders")
	groupConsume(t, cl, 100)
	if got := tr.parts(); len(got) != 4 {
		t.Fatalf("assigned %v, want all 4 partitions", got)
	}
	groupCommitMarked(t, cl)
	info, err := serverhook.Broker(srv).DescribeSubscription("orders", "billing")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Committed != p.End || p.Lag != 0 {
			t.Fatalf("partition %d: committed %d, end %d", p.Partition, p.Committed, p.End)
		}
	}
	if info.Lag != 0 || info.Sub.Config.Mode != catalog.ModeStream {
		t.Fatalf("subscription %+v", info)
	}
	// kadm sees the same offsets, with a group that is Stable.
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	offs, err := adm.FetchOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != 100 {
		t.Fatalf("fetched offsets sum to %d, want 100", total)
	}
	dg, err := adm.DescribeGroups(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	g := dg["billing"]
	if g.State != "Stable" || len(g.Members) != 1 || g.ProtocolType != "consumer" {
		t.Fatalf("described %+v", g)
	}
	ca, ok := g.Members[0].Assigned.AsConsumer()
	if !ok || len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != 4 {
		t.Fatalf("member assignment %+v", g.Members[0].Assigned)
	}
}

func TestGroupTwoConsumersSplitAndRebalance(t *testing.T) {
	for _, bal := range []struct {
		name string
		opt  kgo.Opt
	}{
		{"cooperative-sticky", kgo.Balancers(kgo.CooperativeStickyBalancer())},
		{"range", kgo.Balancers(kgo.RangeBalancer())},
	} {
		t.Run(bal.name, func(t *testing.T) {
			srv := groupServer(t, "")
			groupTopic(t, srv, "events", 6)
			groupProduceN(t, srv, "events", "a", 60)
			c1, t1 := groupConsumer(t, srv, "g", "events", bal.opt)
			groupConsume(t, c1, 60)
			groupCommitMarked(t, c1)
			c2, t2 := groupConsumer(t, srv, "g", "events", bal.opt)
			// c1 keeps polling so that it takes part in the rebalance.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					c1.PollFetches(ctx)
					cancel()
				}
			}()
			groupWaitFor(t, "an even split", func() bool {
				c2ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				c2.PollFetches(c2ctx)
				cancel()
				return len(t1.parts()) == 3 && len(t2.parts()) == 3
			})
			seen := map[int32]bool{}
			for _, p := range append(t1.parts(), t2.parts()...) {
				seen[p] = true
			}
			if len(seen) != 6 {
				t.Fatalf("split %v / %v", t1.parts(), t2.parts())
			}
			close(stop)
			wg.Wait()
			// New records: both consume theirs; nothing is read twice.
			groupProduceN(t, srv, "events", "b", 60)
			var mu sync.Mutex
			got := map[string]int{}
			deadline := time.Now().Add(30 * time.Second)
			for len(got) < 60 && time.Now().Before(deadline) {
				for _, c := range []*kgo.Client{c1, c2} {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					fs := c.PollFetches(ctx)
					cancel()
					fs.EachRecord(func(r *kgo.Record) {
						mu.Lock()
						got[string(r.Value)]++
						mu.Unlock()
					})
					c.MarkCommitRecords(fs.Records()...)
				}
			}
			if len(got) != 60 {
				t.Fatalf("consumed %d distinct new records, want 60", len(got))
			}
			for v, n := range got {
				if n != 1 || v[0] != 'b' {
					t.Fatalf("record %q consumed %d times", v, n)
				}
			}
			groupCommitMarked(t, c1)
			groupCommitMarked(t, c2)
			// c2 leaves: c1 gets everything.
			c2.Close()
			groupWaitFor(t, "c1 to own every partition", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				c1.PollFetches(ctx)
				cancel()
				return len(t1.parts()) == 6
			})
			info, err := serverhook.Broker(srv).DescribeSubscription("events", "g")
			if err != nil {
				t.Fatal(err)
			}
			if info.Lag != 0 {
				t.Fatalf("lag %d after both committed", info.Lag)
			}
		})
	}
}

func TestGroupCommitsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := groupServer(t, dir)
	groupTopic(t, srv, "log", 3)
	groupProduceN(t, srv, "log", "old", 30)
	cl, _ := groupConsumer(t, srv, "reader", "log")
	groupConsume(t, cl, 30)
	groupCommitMarked(t, cl)
	// A commit with metadata through kadm (the group is still active: it
	// must come from the member, so commit an explicit offset instead).
	cl.Close()
	adm, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "log", Partition: 0, At: 10, LeaderEpoch: -1, Metadata: "hello"})
	if err := kadm.NewClient(adm).CommitAllOffsets(ctx, "admin-set", os); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	srv = groupServer(t, dir)
	info, err := serverhook.Broker(srv).DescribeSubscription("log", "reader")
	if err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 {
		t.Fatalf("after restart the subscription has lag %d", info.Lag)
	}
	groupProduceN(t, srv, "log", "new", 30)
	cl, _ = groupConsumer(t, srv, "reader", "log")
	for _, r := range groupConsume(t, cl, 30) {
		if string(r.Value[:3]) != "new" {
			t.Fatalf("after restart consumed %q: resumed before the committed offsets", r.Value)
		}
	}
	// Metadata and offsets of the admin commit survived too; partitions it
	// did not commit have no offset.
	ac, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	fetched, err := kadm.NewClient(ac).FetchOffsets(ctx, "admin-set")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := fetched.Lookup("log", 0)
	if !ok || o.At != 10 || o.Metadata != "hello" {
		t.Fatalf("admin commit after restart: %+v %v", o, ok)
	}
	if _, ok := fetched.Lookup("log", 1); ok {
		t.Fatalf("partition 1 has an offset: %+v", fetched)
	}
	resp, err := kadm.NewClient(ac).FetchOffsetsForTopics(ctx, "admin-set", "log")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := resp.Lookup("log", 2); o.At != -1 {
		t.Fatalf("uncommitted partition: %+v", o)
	}
}

func TestGroupStaticMembershipRejoinWithoutRebalance(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "st", 2)
	groupProduceN(t, srv, "st", "a", 10)
	c1, _ := groupConsumer(t, srv, "static", "st", kgo.InstanceID("inst-1"))
	groupConsume(t, c1, 10)
	groupCommitMarked(t, c1)
	_, gen1 := c1.GroupMetadata()
	c1.Close() // a static member does not leave
	groupProduceN(t, srv, "st", "b", 10)
	c2, t2 := groupConsumer(t, srv, "static", "st", kgo.InstanceID("inst-1"))
	for _, r := range groupConsume(t, c2, 10) {
		if r.Value[0] != 'b' {
			t.Fatalf("consumed %q again", r.Value)
		}
	}
	_, gen2 := c2.GroupMetadata()
	if gen2 != gen1 {
		t.Fatalf("generation %d after the static rejoin, was %d: the group rebalanced", gen2, gen1)
	}
	if len(t2.parts()) != 2 {
		t.Fatalf("static member got %v", t2.parts())
	}
}

func TestGroupAdminListDescribeDelete(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "adm", 2)
	groupProduceN(t, srv, "adm", "a", 10)
	cl, _ := groupConsumer(t, srv, "g1", "adm")
	groupConsume(t, cl, 10)
	groupCommitMarked(t, cl)
	// A native subscription is a group too.
	if _, err := serverhook.Broker(srv).CreateSubscription("adm", "native", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	ac, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	adm := kadm.NewClient(ac)
	ctx := context.Background()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := listed["g1"]; !ok || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Fatalf("listed %+v", listed)
	}
	if g, ok := listed["native"]; !ok || g.State != "Empty" {
		t.Fatalf("listed %+v", listed)
	}
	stable, err := adm.ListGroups(ctx, "Stable")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stable["native"]; ok || len(stable) != 1 {
		t.Fatalf("state filter: %+v", stable)
	}
	dg, err := adm.DescribeGroups(ctx, "g1", "native", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if g := dg["g1"]; g.State != "Stable" || len(g.Members) != 1 || g.Members[0].ClientHost == "" {
		t.Fatalf("g1 %+v", g)
	}
	if g := dg["native"]; g.State != "Empty" || g.Err != nil {
		t.Fatalf("native %+v", g)
	}
	if g := dg["missing"]; !errors.Is(g.Err, kerr.GroupIDNotFound) {
		t.Fatalf("missing %+v", g)
	}

	del, err := adm.DeleteGroups(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(del["g1"].Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete active group: %+v", del)
	}
	cl.Close()
	groupWaitFor(t, "g1 to be empty", func() bool {
		dg, err := adm.DescribeGroups(ctx, "g1")
		return err == nil && dg["g1"].State == "Empty"
	})
	del, err = adm.DeleteGroups(ctx, "g1", "native", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if del["g1"].Err != nil || del["native"].Err != nil || !errors.Is(del["missing"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete: %+v", del)
	}
	for _, name := range []string{"g1", "native"} {
		if _, err := serverhook.Broker(srv).DescribeSubscription("adm", name); !errs.Is(err, errs.SubNotFound) {
			t.Fatalf("subscription %s after DeleteGroups: %v", name, err)
		}
	}
}

func TestGroupOffsetCommitErrors(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "e", 1)
	ac, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	adm := kadm.NewClient(ac)
	ctx := context.Background()
	commit := func(group string, o kadm.Offset) error {
		var os kadm.Offsets
		os.Add(o)
		resp, err := adm.CommitOffsets(ctx, group, os)
		if err != nil {
			return err
		}
		return resp.Error()
	}
	if err := commit("bad group", kadm.Offset{Topic: "e", At: 0, LeaderEpoch: -1}); !errors.Is(err, kerr.InvalidGroupID) {
		t.Fatalf("bad group id: %v", err)
	}
	if err := commit("g", kadm.Offset{Topic: "e", At: 5, LeaderEpoch: -1}); !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("beyond the end: %v", err)
	}
	if err := commit("g", kadm.Offset{Topic: "nope", At: 0, LeaderEpoch: -1}); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v", err)
	}
	big := make([]byte, 5000)
	if err := commit("g", kadm.Offset{Topic: "e", At: 0, LeaderEpoch: -1, Metadata: string(big)}); !errors.Is(err, kerr.OffsetMetadataTooLarge) {
		t.Fatalf("large metadata: %v", err)
	}
	// A queue subscription of that name (a share group) is not a consumer group.
	if _, err := serverhook.Broker(srv).CreateSubscription("e", "q", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if err := commit("q", kadm.Offset{Topic: "e", At: 0, LeaderEpoch: -1}); !errors.Is(err, kerr.InconsistentGroupProtocol) {
		t.Fatalf("queue subscription: %v", err)
	}
}
