package kafka

// OffsetForLeaderEpoch (key 23), v0–v4. A Spool partition has one leader
// epoch, 0, for its whole life (Metadata reports leader epoch 0, and Produce
// stores every batch with partition leader epoch 0). So for any requested
// epoch >= 0 the largest epoch at or below it is 0 and its end offset is the
// high watermark: the answer is (0, high watermark). Kafka answers an epoch
// above its latest with UNDEFINED; Spool cannot have a later leader, and
// older data may carry epochs that clients wrote, so it answers (0, high
// watermark) and consumers resume instead of resetting. A requested epoch
// below 0 answers (−1, −1). A CurrentLeaderEpoch above 0 (v2+) is
// UNKNOWN_LEADER_EPOCH, as when a client has newer metadata than the
// broker. Follower requests (ReplicaID >= 0, v3+) are answered the same.
// On a cluster, a partition this node does not lead is
// NOT_LEADER_OR_FOLLOWER (leader_cluster.go).

import (
	"context"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) offsetForLeaderEpoch(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			if !s.can(ctx, acl.Topic, rt.Topic, acl.Describe) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			_, end, err := s.b.Offsets(rt.Topic, rp.Partition)
			switch {
			case err != nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case s.notLeaderOf(rt.Topic, rp.Partition):
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch > 0:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case rp.LeaderEpoch >= 0:
				sp.LeaderEpoch, sp.EndOffset = 0, end
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
