package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// Share groups (KIP-932) with franz-go's share consumer against a real
// server: the share group is a Spool queue subscription.

func startShareServer(t *testing.T) *server.Server {
	t.Helper()
	return spooltest.StartServer(t).Server()
}

func shareCreateTopic(t *testing.T, srv *server.Server, name string, partitions int32) {
	t.Helper()
	if _, err := serverhook.Broker(srv).CreateTopic(name, catalog.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

// shareProduce produces n records with a Kafka producer, values prefix-i.
func shareProduce(t *testing.T, srv *server.Server, topic, prefix string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DisableIdempotentWrite(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs := make([]*kgo.Record, n)
	for i := range rs {
		rs[i] = &kgo.Record{Key: []byte(fmt.Sprint(i % 13)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func shareConsumer(t *testing.T, srv *server.Server, group, topic string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr()), kgo.ShareGroup(group), kgo.ConsumeTopics(topic)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type shareKey struct {
	p   int32
	off int64
}

// sharePoll polls until fn says stop or the deadline passes.
func sharePoll(t *testing.T, cl *kgo.Client, d time.Duration, fn func(r *kgo.Record) (stop bool)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out polling")
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch error %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if !stop && fn(r) {
				stop = true
			}
		})
		if stop {
			return
		}
	}
}

func shareFlushAcks(t *testing.T, cl *kgo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.FlushAcks(ctx); err != nil {
		t.Fatalf("flush acks: %v", err)
	}
}

// shareWaitFor polls cond until it holds or fails the test after d.
func shareWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shareQueueSettled reports whether no message of the queue subscription is
// ready, waiting or leased.
func shareQueueSettled(t *testing.T, b *broker.Broker, topic, sub string) bool {
	t.Helper()
	info, err := b.DescribeSubscription(topic, sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if q := p.Queue; q == nil || q.Ready+q.Waiting+q.Leased+q.Blocked > 0 || q.Floor < p.End {
			return false
		}
	}
	return true
}

func TestShareGroupConsumesEverythingOnce(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "orders", 3)
	shareProduce(t, srv, "orders", "o", 300) // before the group exists: it starts at the earliest offset
	cl := shareConsumer(t, srv, "billing", "orders")
	seen := map[shareKey]int{}
	sharePoll(t, cl, 30*time.Second, func(r *kgo.Record) bool {
		if r.DeliveryCount() != 1 {
			t.Errorf("record %d/%d delivered %d times", r.Partition, r.Offset, r.DeliveryCount())
		}
		seen[shareKey{r.Partition, r.Offset}]++
		r.Ack(kgo.AckAccept)
		return len(seen) == 300
	})
	shareFlushAcks(t, cl)
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%v seen %d times", k, n)
		}
	}
	b := serverhook.Broker(srv)
	shareWaitFor(t, 5*time.Second, "every message acked", func() bool { return shareQueueSettled(t, b, "orders", "billing") })
	info, _ := b.DescribeSubscription("orders", "billing")
	if info.Sub.Config.Mode != catalog.ModeQueue || info.Sub.Config.Start.Kind != catalog.Earliest {
		t.Fatalf("subscription created as %+v", info.Sub.Config)
	}

	// ShareGroupDescribe: one member, assigned all three partitions.
	raw := shareRawClient(t, srv)
	desc := describeShareGroup(t, raw, "billing")
	if desc.ErrorCode != 0 || desc.GroupState != "Stable" || len(desc.Members) != 1 {
		t.Fatalf("describe %+v", desc)
	}
	m := desc.Members[0]
	if len(m.SubscribedTopicNames) != 1 || m.SubscribedTopicNames[0] != "orders" || m.MemberEpoch <= 0 ||
		len(m.Assignment.TopicPartitions) != 1 || m.Assignment.TopicPartitions[0].Topic != "orders" ||
		len(m.Assignment.TopicPartitions[0].Partitions) != 3 {
		t.Fatalf("member %+v", m)
	}

	// Closing leaves the group; the group lives on in its subscription.
	cl.Close()
	if d := describeShareGroup(t, raw, "billing"); d.ErrorCode != 0 || d.GroupState != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after close %+v", d)
	}
	// Nothing is delivered again to a new member.
	shareProduce(t, srv, "orders", "late", 1)
	cl2 := shareConsumer(t, srv, "billing", "orders")
	sharePoll(t, cl2, 20*time.Second, func(r *kgo.Record) bool {
		if string(r.Value) != "late-0" {
			t.Fatalf("delivered again: %s", r.Value)
		}
		return true
	})
}

func TestShareGroupReleaseRedelivers(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 1)
	b := serverhook.Broker(srv)
	if _, err := b.CreateSubscription("jobs", "w", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{
		Backoff: queue.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: queue.JitterNone},
	}}); err != nil {
		t.Fatal(err)
	}
	shareProduce(t, srv, "jobs", "j", 1)
	cl := shareConsumer(t, srv, "w", "jobs")
	var counts []int32
	sharePoll(t, cl, 20*time.Second, func(r *kgo.Record) bool {
		counts = append(counts, r.DeliveryCount())
		if len(counts) < 3 {
			r.Ack(kgo.AckRelease)
			return false
		}
		r.Ack(kgo.AckAccept)
		return true
	})
	if fmt.Sprint(counts) != "[1 2 3]" {
		t.Fatalf("delivery counts %v, want [1 2 3]", counts)
	}
	shareFlushAcks(t, cl)
	shareWaitFor(t, 5*time.Second, "the message acked", func() bool { return shareQueueSettled(t, b, "jobs", "w") })
}

func TestShareGroupRejectDeadLetters(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 2)
	shareProduce(t, srv, "jobs", "j", 10)
	cl := shareConsumer(t, srv, "w", "jobs")
	seen := map[string]bool{}
	sharePoll(t, cl, 20*time.Second, func(r *kgo.Record) bool {
		seen[string(r.Value)] = true
		if string(r.Value) == "j-3" {
			r.Ack(kgo.AckReject)
		} else {
			r.Ack(kgo.AckAccept)
		}
		return len(seen) == 10
	})
	shareFlushAcks(t, cl)
	b := serverhook.Broker(srv)
	var dls []broker.DeadLetterInfo
	shareWaitFor(t, 5*time.Second, "the dead letter", func() bool {
		dls, _, _ = b.ListDeadLetters("jobs", "w", 0, 10)
		return len(dls) > 0
	})
	if len(dls) != 1 || string(dls[0].Message.Value) != "j-3" || dls[0].Reason != "rejected" || dls[0].DeliveryCount != 1 || dls[0].OriginSub != "w" {
		t.Fatalf("dead letters %+v", dls)
	}
	shareWaitFor(t, 5*time.Second, "the queue settled", func() bool { return shareQueueSettled(t, b, "jobs", "w") })
}

func TestShareGroupTwoConsumersSplitWork(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "work", 2)
	a := shareConsumer(t, srv, "crew", "work", kgo.ShareMaxRecords(5))
	c := shareConsumer(t, srv, "crew", "work", kgo.ShareMaxRecords(5))
	raw := shareRawClient(t, srv)
	shareWaitFor(t, 20*time.Second, "two members", func() bool {
		a.PollFetches(shareCanceledCtx()) // nothing to fetch yet; starts the clients
		c.PollFetches(shareCanceledCtx())
		return len(describeShareGroup(t, raw, "crew").Members) == 2
	})
	const total = 400
	var (
		mu    sync.Mutex
		seen  = map[shareKey]string{}
		dup   []string
		perCl = map[string]int{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for name, cl := range map[string]*kgo.Client{"a": a, "c": c} {
		wg.Go(func() {
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					k := shareKey{r.Partition, r.Offset}
					if prev, ok := seen[k]; ok {
						dup = append(dup, fmt.Sprintf("%v by %s and %s", k, prev, name))
					}
					seen[k] = name
					perCl[name]++
					done := len(seen) == total
					mu.Unlock()
					r.Ack(kgo.AckAccept)
					if done {
						cancel()
					}
				})
				time.Sleep(2 * time.Millisecond) // "processing"
			}
		})
	}
	for i := range 20 {
		shareProduce(t, srv, "work", fmt.Sprintf("r%d", i), total/20)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total {
		t.Fatalf("consumed %d of %d", len(seen), total)
	}
	if len(dup) > 0 {
		t.Fatalf("delivered twice while both accepted: %v", dup)
	}
	if perCl["a"] == 0 || perCl["c"] == 0 {
		t.Fatalf("work not shared: %v", perCl)
	}
	t.Logf("split %v", perCl)
}

func TestShareGroupLeaseExpiryRedelivers(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 1)
	b := serverhook.Broker(srv)
	if _, err := b.CreateSubscription("jobs", "w", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{
		AckTimeout: time.Second,
		Backoff:    queue.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: queue.JitterNone},
	}}); err != nil {
		t.Fatal(err)
	}
	shareProduce(t, srv, "jobs", "j", 5)

	// Member A (raw requests) acquires everything and never acknowledges.
	raw := shareRawClient(t, srv)
	a := joinShare(t, raw, "w", "member-a", "jobs")
	fr := shareFetch(t, raw, "w", "member-a", 0, a.topicID, 0)
	if fr.ErrorCode != 0 || fr.AcquisitionLockTimeoutMillis != 1000 {
		t.Fatalf("fetch: %+v", fr)
	}
	if got := shareAcquired(fr); got != "[0-4x1]" {
		t.Fatalf("acquired %s", got)
	}

	// The locks expire after a second: member B gets the records again.
	start := time.Now()
	cl := shareConsumer(t, srv, "w", "jobs")
	seen := map[int64]int32{}
	sharePoll(t, cl, 20*time.Second, func(r *kgo.Record) bool {
		seen[r.Offset] = r.DeliveryCount()
		r.Ack(kgo.AckAccept)
		return len(seen) == 5
	})
	if time.Since(start) < 900*time.Millisecond {
		t.Fatalf("redelivered after %s, before the lock expired", time.Since(start))
	}
	for off, dc := range seen {
		if dc != 2 {
			t.Errorf("offset %d delivery count %d, want 2", off, dc)
		}
	}
	shareFlushAcks(t, cl)

	// A's late acknowledgement is refused: it no longer holds the records.
	ack := shareAck(t, raw, "w", "member-a", 1, a.topicID, 0, 0, 4, 1)
	if ack.ErrorCode != 0 || len(ack.Topics) != 1 || ack.Topics[0].Partitions[0].ErrorCode != 121 /* INVALID_RECORD_STATE */ {
		t.Fatalf("late ack %+v", ack)
	}
	shareWaitFor(t, 5*time.Second, "the queue settled", func() bool { return shareQueueSettled(t, b, "jobs", "w") })
}

func TestShareGroupWithSpoolQueueConsumer(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "mixed", 2)
	b := serverhook.Broker(srv)
	if _, err := b.CreateSubscription("mixed", "pool", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	const total = 300
	var (
		mu   sync.Mutex
		seen = map[shareKey]string{}
		dup  []string
		per  = map[string]int{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	note := func(who string, p int32, off int64) {
		mu.Lock()
		defer mu.Unlock()
		k := shareKey{p, off}
		if prev, ok := seen[k]; ok {
			dup = append(dup, fmt.Sprintf("%v by %s and %s", k, prev, who))
		}
		seen[k] = who
		per[who]++
		if len(seen) == total {
			cancel()
		}
	}

	// A Spool queue consumer of the same subscription, five at a time.
	sess, err := b.Join(broker.JoinRequest{Topic: "mixed", Subscription: "pool", Credits: 5})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer sess.Leave()
		for id := uint64(1); ctx.Err() == nil; id++ {
			ev, err := sess.Next(ctx)
			if err != nil {
				return
			}
			if len(ev.Deliveries) == 0 {
				continue
			}
			var rs []broker.OffsetRange
			for _, d := range ev.Deliveries {
				note("spool", d.Partition, d.Offset)
				rs = append(rs, broker.OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
			}
			time.Sleep(2 * time.Millisecond)
			if err := sess.Ack(id, rs); err != nil {
				t.Errorf("spool ack: %v", err)
				return
			}
			sess.AddCredits(len(ev.Deliveries))
		}
	})
	cl := shareConsumer(t, srv, "pool", "mixed", kgo.ShareMaxRecords(5))
	wg.Go(func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				note("kafka", r.Partition, r.Offset)
				r.Ack(kgo.AckAccept)
			})
			time.Sleep(2 * time.Millisecond)
		}
	})
	for i := range 15 {
		shareProduce(t, srv, "mixed", fmt.Sprintf("r%d", i), total/15)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total || len(dup) > 0 {
		t.Fatalf("consumed %d of %d; twice: %v", len(seen), total, dup)
	}
	if per["spool"] == 0 || per["kafka"] == 0 {
		t.Fatalf("work not shared: %v", per)
	}
	t.Logf("split %v", per)
}

func shareCanceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// shareRawClient returns a client for hand-made requests to the server.
func shareRawClient(t *testing.T, srv *server.Server) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// shareRawRequest sends req to the (only) broker.
func shareRawRequest[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp.(R)
}

func describeShareGroup(t *testing.T, cl *kgo.Client, group string) kmsg.ShareGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrShareGroupDescribeRequest()
	req.GroupIDs = []string{group}
	resp := shareRawRequest[*kmsg.ShareGroupDescribeResponse](t, cl, req)
	if len(resp.Groups) != 1 {
		t.Fatalf("describe answered %d groups", len(resp.Groups))
	}
	return resp.Groups[0]
}

type shareJoined struct {
	epoch   int32
	topicID [16]byte
}

// joinShare joins a share group with raw requests.
func joinShare(t *testing.T, cl *kgo.Client, group, member, topic string) shareJoined {
	t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = group, member, 0, []string{topic}
	resp := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, req)
	if resp.ErrorCode != 0 || resp.Assignment == nil || len(resp.Assignment.TopicPartitions) != 1 {
		t.Fatalf("join: %+v", resp)
	}
	return shareJoined{epoch: resp.MemberEpoch, topicID: resp.Assignment.TopicPartitions[0].TopicID}
}

// shareFetch sends a ShareFetch for one partition, waiting up to 2 s for
// records.
func shareFetch(t *testing.T, cl *kgo.Client, group, member string, epoch int32, topicID [16]byte, p int32) *kmsg.ShareFetchResponse {
	t.Helper()
	return shareFetchWait(t, cl, group, member, epoch, topicID, p, 2000)
}

// shareFetchWait sends a ShareFetch for one partition, waiting up to wait
// ms for records.
func shareFetchWait(t *testing.T, cl *kgo.Client, group, member string, epoch int32, topicID [16]byte, p int32, wait int32) *kmsg.ShareFetchResponse {
	t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, epoch
	req.MaxWaitMillis, req.MaxBytes, req.MaxRecords, req.BatchSize = wait, 1<<20, 100, 100
	rp := kmsg.NewShareFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = p, 1<<20
	rt := kmsg.NewShareFetchRequestTopic()
	rt.TopicID, rt.Partitions = topicID, []kmsg.ShareFetchRequestTopicPartition{rp}
	req.Topics = []kmsg.ShareFetchRequestTopic{rt}
	return shareRawRequest[*kmsg.ShareFetchResponse](t, cl, req)
}

// shareAck acknowledges offsets [first, last] of one partition with one
// type.
func shareAck(t *testing.T, cl *kgo.Client, group, member string, epoch int32, topicID [16]byte, p int32, first, last int64, typ int8) *kmsg.ShareAcknowledgeResponse {
	t.Helper()
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, epoch
	req.IsRenewAck = typ == 4
	rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
	rp.Partition = p
	rp.AcknowledgementBatches = []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: first, LastOffset: last, AcknowledgeTypes: []int8{typ}}}
	rt := kmsg.NewShareAcknowledgeRequestTopic()
	rt.TopicID, rt.Partitions = topicID, []kmsg.ShareAcknowledgeRequestTopicPartition{rp}
	req.Topics = []kmsg.ShareAcknowledgeRequestTopic{rt}
	return shareRawRequest[*kmsg.ShareAcknowledgeResponse](t, cl, req)
}

// shareAcquired formats a fetch's shareAcquired ranges as [first-lastxcount ...].
func shareAcquired(r *kmsg.ShareFetchResponse) string {
	var out []string
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			for _, a := range rp.AcquiredRecords {
				out = append(out, fmt.Sprintf("%d-%dx%d", a.FirstOffset, a.LastOffset, a.DeliveryCount))
			}
		}
	}
	return fmt.Sprint(out)
}
