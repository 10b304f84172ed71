package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestClusterStaleMemberFencedAfterCoordinatorReturns: a group member
// joins on the coordinator, the coordination moves to another node and
// back, and the member — which never heard of either move — commits with
// the member id and generation it holds. The node that coordinates again
// must not take that commit: between its two terms the group could have
// rebalanced elsewhere (another member owning the partition and committing
// further), so the stale commit would move the group's offset backwards.
func TestClusterStaleMemberFencedAfterCoordinatorReturns(t *testing.T) {
	const topic, group = "fence", "stale"
	c := newTestCluster(t, 3)
	c.createTopic(topic, 1)
	a, _ := c.leaderOf("metadata")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.node(a).kafka), kgo.MaxVersions(kversion.V3_8_0())) // OffsetCommit by topic name
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	coord := cl.Broker(a) // the Kafka node id is the node id

	memberID, gen := joinAlone(ctx, t, coord, group)
	if code := commitAs(ctx, t, coord, group, topic, memberID, gen, 5); code != 0 {
		t.Fatalf("commit as the group's member: %v", kerr.ErrorForCode(code))
	}

	b := a%3 + 1
	c.transferMeta(b)
	c.transferMeta(a)
	// The commit reaches the node coordinating again, with what the member
	// held before the moves.
	var code int16
	waitFor(t, 20*time.Second, "node coordinating again answers", func() error {
		code = commitAs(ctx, t, coord, group, topic, memberID, gen, 3)
		if code == kerr.NotCoordinator.Code || code == kerr.CoordinatorNotAvailable.Code || code == kerr.CoordinatorLoadInProgress.Code {
			return kerr.ErrorForCode(code)
		}
		return nil
	})
	if code != kerr.UnknownMemberID.Code {
		t.Fatalf("stale member's commit after the coordinator moved away and back: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	// The member joins again and commits; the group is served as before.
	memberID, gen = joinAlone(ctx, t, coord, group)
	if code := commitAs(ctx, t, coord, group, topic, memberID, gen, 7); code != 0 {
		t.Fatalf("commit after joining again: %v", kerr.ErrorForCode(code))
	}
}

// joinAlone joins group as its only member through JoinGroup and SyncGroup
// and returns the member id and generation.
func joinAlone(ctx context.Context, t *testing.T, br *kgo.Broker, group string) (string, int32) {
	t.Helper()
	var memberID string
	for range 20 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, memberID, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte{0, 0}
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, br)
		if err != nil {
			t.Fatal(err)
		}
		switch resp.ErrorCode {
		case kerr.MemberIDRequired.Code:
			memberID = resp.MemberID
			continue
		case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code:
			time.Sleep(200 * time.Millisecond)
			continue
		case 0:
		default:
			t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.MemberID, sync.Generation = group, resp.MemberID, resp.Generation
		sresp, err := sync.RequestWith(ctx, br)
		if err != nil {
			t.Fatal(err)
		}
		if sresp.ErrorCode != 0 {
			t.Fatalf("SyncGroup: %v", kerr.ErrorForCode(sresp.ErrorCode))
		}
		return resp.MemberID, resp.Generation
	}
	t.Fatal("JoinGroup did not complete")
	return "", 0
}

// commitAs commits offset of topic's partition 0 as member memberID of
// generation gen, returning the partition's error code.
func commitAs(ctx context.Context, t *testing.T, br *kgo.Broker, group, topic, memberID string, gen int32, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, br)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetCommit answered %d topics", len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}
