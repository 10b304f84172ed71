package kafka_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/serverhook"
)

func shareHeartbeatReq(group, member string, epoch int32, topics ...string) *kmsg.ShareGroupHeartbeatRequest {
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch = group, member, epoch
	if topics != nil {
		req.SubscribedTopicNames = topics
	}
	return req
}

func TestShareGroupRequestErrors(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 1)
	shareCreateTopic(t, srv, "streamy", 1)
	if _, err := serverhook.Broker(srv).CreateSubscription("streamy", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	shareProduce(t, srv, "jobs", "j", 3)
	cl := shareRawClient(t, srv)
	hb := func(req *kmsg.ShareGroupHeartbeatRequest) *kmsg.ShareGroupHeartbeatResponse {
		return shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, req)
	}
	for _, c := range []struct {
		name string
		req  *kmsg.ShareGroupHeartbeatRequest
		code int16
	}{
		{"empty group", shareHeartbeatReq("", "m", 0, "jobs"), kerr.InvalidRequest.Code},
		{"group not a subscription name", shareHeartbeatReq("bad group!", "m", 0, "jobs"), kerr.InvalidGroupID.Code},
		{"empty member", shareHeartbeatReq("g", "", 0, "jobs"), kerr.InvalidRequest.Code},
		{"long member", shareHeartbeatReq("g", strings.Repeat("m", 37), 0, "jobs"), kerr.InvalidRequest.Code},
		{"bad epoch", shareHeartbeatReq("g", "m", -2, "jobs"), kerr.InvalidRequest.Code},
		{"join without topics", shareHeartbeatReq("g", "m", 0), kerr.InvalidRequest.Code},
		{"unknown member", shareHeartbeatReq("g", "m", 3), kerr.UnknownMemberID.Code},
		{"unknown member leaves", shareHeartbeatReq("g", "m", -1), kerr.UnknownMemberID.Code},
		{"stream subscription", shareHeartbeatReq("g", "m", 0, "streamy"), kerr.InconsistentGroupProtocol.Code},
	} {
		if r := hb(c.req); r.ErrorCode != c.code {
			t.Errorf("heartbeat, %s: error %d, want %d (%v)", c.name, r.ErrorCode, c.code, r.ErrorMessage)
		}
	}
	if d := describeShareGroup(t, cl, "nope"); d.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("describe unknown group: %d", d.ErrorCode)
	}

	j := joinShare(t, cl, "g", "m1", "jobs")
	if r := hb(shareHeartbeatReq("g", "m1", j.epoch+5)); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Errorf("wrong member epoch: %d", r.ErrorCode)
	}
	if r := hb(shareHeartbeatReq("g", "m1", j.epoch)); r.ErrorCode != 0 || r.MemberEpoch != j.epoch || r.Assignment != nil {
		t.Errorf("plain heartbeat: %+v", r)
	}

	fetch := func(member string, epoch int32, mut func(*kmsg.ShareFetchRequest)) *kmsg.ShareFetchResponse {
		g := "g"
		req := kmsg.NewPtrShareFetchRequest()
		req.GroupID, req.MemberID, req.ShareSessionEpoch = &g, &member, epoch
		req.MaxWaitMillis, req.MaxRecords = 100, 10
		rt := kmsg.NewShareFetchRequestTopic()
		rt.TopicID = j.topicID
		rt.Partitions = []kmsg.ShareFetchRequestTopicPartition{{Partition: 0}}
		req.Topics = []kmsg.ShareFetchRequestTopic{rt}
		if mut != nil {
			mut(req)
		}
		return shareRawRequest[*kmsg.ShareFetchResponse](t, cl, req)
	}
	withAck := func(first, last int64, types ...int8) func(*kmsg.ShareFetchRequest) {
		return func(req *kmsg.ShareFetchRequest) {
			req.Topics[0].Partitions[0].AcknowledgementBatches = []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{{FirstOffset: first, LastOffset: last, AcknowledgeTypes: types}}
		}
	}
	if r := fetch("m1", 0, func(r *kmsg.ShareFetchRequest) { r.GroupID = nil }); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("fetch without group: %d", r.ErrorCode)
	}
	if r := fetch("stranger", 0, nil); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("fetch by a non-member: %d", r.ErrorCode)
	}
	if r := fetch("m1", 0, withAck(0, 0, 1)); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("acks on a new session: %d", r.ErrorCode)
	}
	if r := fetch("m1", 4, nil); r.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Errorf("fetch without a session: %d", r.ErrorCode)
	}
	r := fetch("m1", 0, nil)
	if r.ErrorCode != 0 || shareAcquired(r) != "[0-2x1]" {
		t.Fatalf("first fetch: %d %s", r.ErrorCode, shareAcquired(r))
	}
	if r := fetch("m1", 7, nil); r.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("wrong session epoch: %d", r.ErrorCode)
	}
	ackCode := func(r *kmsg.ShareFetchResponse) int16 {
		if r.ErrorCode != 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch with acks: %+v", r)
		}
		return r.Topics[0].Partitions[0].AcknowledgeErrorCode
	}
	epoch := int32(1)
	for _, c := range []struct {
		name string
		mut  func(*kmsg.ShareFetchRequest)
		code int16
	}{
		{"inverted range", withAck(2, 1, 1), kerr.InvalidRequest.Code},
		{"no types", withAck(0, 1), kerr.InvalidRequest.Code},
		{"types not matching the range", withAck(0, 2, 1, 1), kerr.InvalidRequest.Code},
		{"unknown type", withAck(0, 0, 9), kerr.InvalidRequest.Code},
		{"renew without IsRenewAck", withAck(0, 0, 4), kerr.InvalidRequest.Code},
		{"not acquired", withAck(5, 6, 1), kerr.InvalidRecordState.Code},
		{"accept 0, release 1", withAck(0, 1, 1, 2), 0},
		{"accept 0 again", withAck(0, 0, 1), kerr.InvalidRecordState.Code},
	} {
		if got := ackCode(fetch("m1", epoch, c.mut)); got != c.code {
			t.Errorf("fetch ack, %s: %d, want %d", c.name, got, c.code)
		}
		epoch++
	}
	if r := fetch("m1", epoch, func(r *kmsg.ShareFetchRequest) { r.IsRenewAck = true; withAck(2, 2, 4)(r) }); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("renew-only fetch asking for records: %d", r.ErrorCode)
	}
	r = fetch("m1", epoch, func(r *kmsg.ShareFetchRequest) { r.Topics[0].TopicID = [16]byte{1} })
	epoch++
	unknown := false
	for _, rt := range r.Topics {
		for _, rp := range rt.Partitions {
			unknown = unknown || (rt.TopicID == [16]byte{1} && rp.ErrorCode == kerr.UnknownTopicID.Code)
		}
	}
	if !unknown {
		t.Errorf("unknown topic id: %+v", r)
	}

	// ShareAcknowledge.
	if a := shareAck(t, cl, "g", "m1", 0, j.topicID, 0, 2, 2, 1); a.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("ack at epoch 0: %d", a.ErrorCode)
	}
	if a := shareAck(t, cl, "g", "stranger", 1, j.topicID, 0, 2, 2, 1); a.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("ack by a non-member: %d", a.ErrorCode)
	}
	if a := shareAck(t, cl, "g", "m1", epoch+3, j.topicID, 0, 2, 2, 1); a.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("ack at a wrong epoch: %d", a.ErrorCode)
	}
	if a := shareAck(t, cl, "g", "m1", epoch, [16]byte{2}, 0, 2, 2, 1); a.ErrorCode != 0 || a.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("ack of an unknown topic: %+v", a)
	}
	epoch++
	if a := shareAck(t, cl, "g", "m1", epoch, j.topicID, 0, 2, 2, 1); a.ErrorCode != 0 || a.Topics[0].Partitions[0].ErrorCode != 0 || a.AcquisitionLockTimeoutMillis != 30000 {
		t.Errorf("good ack: %+v", a)
	}
	epoch++
	// Close the session; then there is none.
	if a := shareAck(t, cl, "g", "m1", -1, j.topicID, 0, 2, 2, 1); a.ErrorCode != 0 || a.Topics[0].Partitions[0].ErrorCode != kerr.InvalidRecordState.Code {
		t.Errorf("close with a stale ack: %+v", a)
	}
	if a := shareAck(t, cl, "g", "m1", epoch, j.topicID, 0, 2, 2, 1); a.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Errorf("ack after close: %d", a.ErrorCode)
	}
	if r := hb(shareHeartbeatReq("g", "m1", -1)); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Errorf("leave: %+v", r)
	}
	if d := describeShareGroup(t, cl, "g"); d.ErrorCode != 0 || d.GroupState != "Empty" {
		t.Errorf("describe after leave: %+v", d)
	}
}

// RENEW keeps records past the ack timeout; closing the share session
// releases what the member still holds.
func TestShareGroupRenewAndSessionClose(t *testing.T) {
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 1)
	if _, err := serverhook.Broker(srv).CreateSubscription("jobs", "w", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{
		AckTimeout: time.Second,
		Backoff:    queue.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: queue.JitterNone},
	}}); err != nil {
		t.Fatal(err)
	}
	shareProduce(t, srv, "jobs", "j", 3)
	cl := shareRawClient(t, srv)
	a := joinShare(t, cl, "w", "a", "jobs")
	joinShare(t, cl, "w", "b", "jobs")
	if r := shareFetch(t, cl, "w", "a", 0, a.topicID, 0); shareAcquired(r) != "[0-2x1]" {
		t.Fatalf("a acquired %s", shareAcquired(r))
	}
	time.Sleep(600 * time.Millisecond)
	if r := shareAck(t, cl, "w", "a", 1, a.topicID, 0, 0, 2, 4); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("renew: %+v", r)
	}
	time.Sleep(600 * time.Millisecond) // past the first lock; within the renewed one
	if r := shareFetchWait(t, cl, "w", "b", 0, a.topicID, 0, 0); shareAcquired(r) != "[]" {
		t.Fatalf("b acquired renewed records: %s", shareAcquired(r))
	}
	// a accepts offset 0 and closes its session: 1 and 2 go back.
	if r := shareAck(t, cl, "w", "a", -1, a.topicID, 0, 0, 0, 1); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("close: %+v", r)
	}
	if r := shareFetch(t, cl, "w", "b", 1, a.topicID, 0); shareAcquired(r) != "[1-2x2]" {
		t.Fatalf("b acquired %s after a closed its session", shareAcquired(r))
	}
}

// A member that stops heartbeating is evicted and its records go to others
// long before their ack timeout.
func TestShareGroupEviction(t *testing.T) {
	defer kafka.SetShareTimings(500*time.Millisecond, 100*time.Millisecond)()
	srv := startShareServer(t)
	shareCreateTopic(t, srv, "jobs", 1)
	shareProduce(t, srv, "jobs", "j", 4)
	cl := shareRawClient(t, srv)
	a := joinShare(t, cl, "w", "a", "jobs")
	if r := shareFetch(t, cl, "w", "a", 0, a.topicID, 0); shareAcquired(r) != "[0-3x1]" || r.AcquisitionLockTimeoutMillis != 30000 {
		t.Fatalf("a acquired %s, lock %d", shareAcquired(r), r.AcquisitionLockTimeoutMillis)
	}
	shareWaitFor(t, 5*time.Second, "a evicted", func() bool {
		return describeShareGroup(t, cl, "w").GroupState == "Empty"
	})
	if r := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, shareHeartbeatReq("w", "a", a.epoch)); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat of an evicted member: %d", r.ErrorCode)
	}
	if r := shareFetch(t, cl, "w", "a", 1, a.topicID, 0); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("fetch of an evicted member: %d", r.ErrorCode)
	}
	b := joinShare(t, cl, "w", "b", "jobs")
	start := time.Now()
	// Released: each comes back after the default backoff (jittered, at
	// most 1 s), with its delivery count.
	counts := map[int64]int16{}
	for epoch := int32(0); len(counts) < 4 && time.Since(start) < 5*time.Second; epoch++ {
		if r := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, shareHeartbeatReq("w", "b", b.epoch)); r.ErrorCode != 0 {
			t.Fatalf("b's heartbeat: %d", r.ErrorCode)
		}
		r := shareFetchWait(t, cl, "w", "b", epoch, b.topicID, 0, 200)
		if r.ErrorCode != 0 {
			t.Fatalf("b's fetch: %d", r.ErrorCode)
		}
		for _, rt := range r.Topics {
			for _, rp := range rt.Partitions {
				for _, ar := range rp.AcquiredRecords {
					for o := ar.FirstOffset; o <= ar.LastOffset; o++ {
						counts[o] = ar.DeliveryCount
					}
				}
			}
		}
	}
	if len(counts) != 4 || time.Since(start) > 5*time.Second {
		t.Fatalf("b acquired %v in %s", counts, time.Since(start))
	}
	for o, n := range counts {
		if n != 2 {
			t.Errorf("offset %d delivery count %d, want 2", o, n)
		}
	}
}

// When queue subscriptions are created for a share group, and when not.
func TestShareGroupSubscriptionCreation(t *testing.T) {
	srv := startShareServer(t)
	b := serverhook.Broker(srv)
	shareCreateTopic(t, srv, "jobs", 2)
	shareCreateTopic(t, srv, "dlq.elsewhere", 1)
	cl := shareRawClient(t, srv)
	hb := func(req *kmsg.ShareGroupHeartbeatRequest) *kmsg.ShareGroupHeartbeatResponse {
		return shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, req)
	}
	assignedTopics := func(r *kmsg.ShareGroupHeartbeatResponse) int {
		if r.Assignment == nil {
			return -1
		}
		return len(r.Assignment.TopicPartitions)
	}
	// A dead-letter topic gets no subscription automatically; a missing
	// topic is simply not assigned (yet).
	r := hb(shareHeartbeatReq("g", "m1", 0, "jobs", "dlq.elsewhere", "later"))
	if r.ErrorCode != 0 || assignedTopics(r) != 1 || len(r.Assignment.TopicPartitions[0].Partitions) != 2 {
		t.Fatalf("join: %+v", r)
	}
	if _, err := b.QueueSubscription("jobs", "g"); err != nil {
		t.Fatalf("jobs: %v", err)
	}
	if subs, _ := b.Subscriptions("dlq.elsewhere"); len(subs) != 0 {
		t.Fatalf("dead-letter topic got %+v", subs)
	}
	// A topic created later enters the assignment at the next heartbeat,
	// which moves the member epoch.
	shareCreateTopic(t, srv, "later", 1)
	r2 := hb(shareHeartbeatReq("g", "m1", r.MemberEpoch))
	if r2.ErrorCode != 0 || r2.MemberEpoch <= r.MemberEpoch || assignedTopics(r2) != 2 {
		t.Fatalf("after the topic was created: %+v", r2)
	}
	// Deleted under the member: not re-created, the topic leaves the
	// assignment.
	if err := b.DeleteSubscription("jobs", "g"); err != nil {
		t.Fatal(err)
	}
	r3 := hb(shareHeartbeatReq("g", "m1", r2.MemberEpoch))
	if r3.ErrorCode != 0 || assignedTopics(r3) != 1 {
		t.Fatalf("after the subscription was deleted: %+v", r3)
	}
	if _, err := b.QueueSubscription("jobs", "g"); err == nil {
		t.Fatal("subscription re-created under a running member")
	}
	// A new member's first use creates it again.
	if r := hb(shareHeartbeatReq("g", "m2", 0, "jobs")); r.ErrorCode != 0 || assignedTopics(r) != 1 {
		t.Fatalf("m2 join: %+v", r)
	}
	if _, err := b.QueueSubscription("jobs", "g"); err != nil {
		t.Fatalf("not re-created by a new member: %v", err)
	}
	// The previous epoch is still accepted (a lost response).
	if r := hb(shareHeartbeatReq("g", "m1", r2.MemberEpoch)); r.ErrorCode != 0 {
		t.Fatalf("previous epoch refused: %+v", r)
	}
}
