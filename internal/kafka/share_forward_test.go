package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/serverhook"
)

// On a cluster, share groups are coordinated by one node while clients
// send ShareFetch and ShareAcknowledge to each partition's leader: the
// leader forwards them to the coordinator. A franz-go share consumer that
// knows only the leader consumes every record once; share heartbeats sent
// to the leader are answered NOT_COORDINATOR; a member has a session of
// its own on each connection, so fetching from both nodes at once works.
func TestShareForwardedToCoordinator(t *testing.T) {
	srv := startShareServer(t)
	b := serverhook.Broker(srv)
	addr := startFakeCluster(t, srv)

	shareCreateTopic(t, srv, "jobs", 2)
	shareProduce(t, srv, "jobs", "j", 200)

	// A consumer seeded with the leader only: heartbeats go to node 1
	// (FindCoordinator), fetches and acks to node 2, which forwards them.
	cl := shareConsumer(t, srv, "workers", "jobs", kgo.SeedBrokers(addr(2)))
	seen := map[shareKey]int{}
	sharePoll(t, cl, 30*time.Second, func(r *kgo.Record) bool {
		seen[shareKey{r.Partition, r.Offset}]++
		r.Ack(kgo.AckAccept)
		return len(seen) == 200
	})
	shareFlushAcks(t, cl)
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("record %v delivered %d times", k, n)
		}
	}
	shareWaitFor(t, 10*time.Second, "every record acknowledged", func() bool { return shareQueueSettled(t, b, "jobs", "workers") })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := kgo.NewClient(kgo.SeedBrokers(addr(1), addr(2)))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	request := func(node int, req kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := raw.Broker(node).Request(ctx, req)
		if err != nil {
			t.Fatalf("%s to node %d: %v", kmsg.NameForKey(req.Key()), node, err)
		}
		return resp
	}
	shareCreateTopic(t, srv, "tasks", 2)
	hb := kmsg.NewPtrShareGroupHeartbeatRequest()
	hb.GroupID, hb.MemberID, hb.MemberEpoch, hb.SubscribedTopicNames = "raw", "member-r", 0, []string{"tasks"}
	if r := request(2, hb).(*kmsg.ShareGroupHeartbeatResponse); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("share heartbeat to node 2: %+v", r)
	}
	desc := kmsg.NewPtrShareGroupDescribeRequest()
	desc.GroupIDs = []string{"workers"}
	if r := request(2, desc).(*kmsg.ShareGroupDescribeResponse); len(r.Groups) != 1 || r.Groups[0].ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("share group describe to node 2: %+v", r)
	}
	r := request(1, hb).(*kmsg.ShareGroupHeartbeatResponse)
	if r.ErrorCode != 0 || r.Assignment == nil || len(r.Assignment.TopicPartitions) != 1 {
		t.Fatalf("share heartbeat to node 1: %+v", r)
	}
	topicID := r.Assignment.TopicPartitions[0].TopicID

	// One member, one session through node 2 (forwarded) and one on node
	// 1 itself: both open at epoch 0 and go on with their own epochs.
	shareProduce(t, srv, "tasks", "k", 10)
	fetch := func(node int, epoch int32) *kmsg.ShareFetchResponse {
		t.Helper()
		group, member := "raw", "member-r"
		req := kmsg.NewPtrShareFetchRequest()
		req.GroupID, req.MemberID, req.ShareSessionEpoch = &group, &member, epoch
		req.MaxWaitMillis, req.MaxBytes, req.MaxRecords, req.BatchSize = 500, 1<<20, 100, 100
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = topicID
		for p := range int32(2) {
			rp := kmsg.NewShareFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = []kmsg.ShareFetchRequestTopic{rt}
		resp := request(node, req).(*kmsg.ShareFetchResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("share fetch to node %d at epoch %d: %d %v", node, epoch, resp.ErrorCode, resp.ErrorMessage)
		}
		return resp
	}
	acquired := 0
	count := func(resp *kmsg.ShareFetchResponse) {
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				for _, a := range rp.AcquiredRecords {
					acquired += int(a.LastOffset - a.FirstOffset + 1)
				}
			}
		}
	}
	count(fetch(2, 0))
	count(fetch(1, 0))
	count(fetch(2, 1))
	count(fetch(1, 1))
	if acquired != 10 {
		t.Fatalf("the member's two sessions acquired %d records, want the topic's 10", acquired)
	}

	// A request forwarded once is not forwarded again (two nodes that each
	// took the other for the coordinator would pass it back and forth).
	fwd, err := kgo.NewClient(kgo.SeedBrokers(addr(2)), kgo.ClientID("spool-forwarded:kgo"))
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	group, member := "raw", "member-r"
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch, req.MaxWaitMillis = &group, &member, 0, 100
	resp, err := fwd.Broker(2).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.(*kmsg.ShareFetchResponse); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("a forwarded share fetch reaching a node that does not coordinate: %+v", r)
	}
}
