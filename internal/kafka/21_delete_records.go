package kafka

// DeleteRecords (key 21), v0–v2. Moves a partition's log start offset to
// Offset (−1: the high watermark): the records below it become unreadable
// at once (fetches below get OFFSET_OUT_OF_RANGE, ListOffsets earliest
// answers the new start) and the whole segments below it are deleted. The
// start is recorded durably in the partition's directory before the answer
// (seglog's start file), so it survives restarts and crashes. An offset at
// or below the current start changes nothing and answers the current
// start; one above the high watermark is OFFSET_OUT_OF_RANGE. The answer's
// LowWatermark is the log start offset afterwards.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) deleteRecords(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			if !s.can(ctx, acl.Topic, rt.Topic, acl.Admin) {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			start, err := s.b.DeleteRecords(rt.Topic, rp.Partition, rp.Offset)
			switch {
			case err == nil:
				sp.LowWatermark = start
			case errs.Is(err, errs.TopicNotFound), errs.Is(err, errs.InvalidArgument):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case errs.Is(err, errs.OffsetOutOfRange):
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
			default:
				sp.ErrorCode = kwire.ErrCode(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
