package kafka

// ListOffsets (key 2), v0–v10. Timestamp −2 is the log start offset (−4,
// the earliest local offset, is the same: all data is local), −1 the high
// watermark (also for isolation level read_committed: there are no
// transactions), −3 the largest record timestamp with the offset of the
// first record carrying it, and any other timestamp the first offset whose
// record timestamp is at or after it (−1/−1 when there is none, or an
// empty partition for −3). v0 answers in OldStyleOffsets, at most
// MaxNumOffsets of them (one offset: Spool does not list segment bases).
// On a cluster, a partition this node does not lead is
// NOT_LEADER_OR_FOLLOWER (leader_cluster.go).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) listOffsets(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset = -1, -1
			if !s.can(ctx, acl.Topic, rt.Topic, acl.Describe) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			start, end, err := s.b.Offsets(rt.Topic, rp.Partition)
			if err != nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if s.notLeaderOf(rt.Topic, rp.Partition) {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			switch rp.Timestamp {
			case -2, -4:
				sp.Offset = start
			case -1:
				sp.Offset = end
			case -3:
				off, ts, ok, err := s.b.OffsetOfMaxTimestamp(rt.Topic, rp.Partition)
				if err != nil {
					sp.ErrorCode = kwire.ErrCode(err)
				} else if ok {
					sp.Offset, sp.Timestamp = off, ts
				}
			default:
				off, ok, err := s.b.OffsetForTime(rt.Topic, rp.Partition, rp.Timestamp)
				if err != nil {
					sp.ErrorCode = kwire.ErrCode(err)
				} else if ok {
					sp.Offset, sp.Timestamp = off, rp.Timestamp
				}
			}
			if req.Version == 0 && sp.ErrorCode == 0 && sp.Offset >= 0 && rp.MaxNumOffsets > 0 {
				sp.OldStyleOffsets = []int64{sp.Offset}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
