package kafka

// CreatePartitions (key 37), v0–v3. Partitions only grow: Count must be
// above the topic's partition count (INVALID_PARTITIONS otherwise) and at
// most 1024. Manual replica assignments are INVALID_REPLICA_ASSIGNMENT (one
// node). broker.AddPartitions creates the new partition logs, stores the
// count and hands the new partitions to every subscription (stream groups
// rebalance, queue subscriptions start delivering them); Kafka clients see
// them in their next Metadata. A topic named twice is INVALID_REQUEST.
// ValidateOnly checks without changing anything. On a cluster the answer
// waits for the new partitions' leaders, as CreateTopics does.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) createPartitions(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	named := map[string]int{}
	var created []newPartitions
	for _, rt := range req.Topics {
		named[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(code int16, format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			st.ErrorCode, st.ErrorMessage = code, &msg
		}
		meta, ok := s.b.Topic(rt.Topic)
		switch {
		case !s.can(ctx, acl.Topic, rt.Topic, acl.Admin):
			fail(kerr.TopicAuthorizationFailed.Code, "not authorized to alter topic %q", rt.Topic)
		case named[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, "topic %q is named more than once", rt.Topic)
		case !ok:
			fail(kerr.UnknownTopicOrPartition.Code, "topic %q not found", rt.Topic)
		case len(rt.Assignment) > 0:
			fail(kerr.InvalidReplicaAssignment.Code, "a replica assignment is not taken here: Spool places the new partitions' replicas (spool topic reassign moves them)")
		case rt.Count <= meta.Config.Partitions:
			fail(kerr.InvalidPartitions.Code, "topic %q has %d partitions; the count can only grow", rt.Topic, meta.Config.Partitions)
		case rt.Count > catalog.MaxPartitions:
			fail(kerr.InvalidPartitions.Code, "%d partitions is more than the limit of %d", rt.Count, catalog.MaxPartitions)
		case req.ValidateOnly:
		default:
			if _, err := s.b.AddPartitions(rt.Topic, rt.Count); err == nil {
				created = append(created, newPartitions{topicID: meta.ID, from: meta.Config.Partitions, to: rt.Count})
			} else {
				code := kwire.ErrCode(err)
				switch {
				case errs.Is(err, errs.TopicNotFound):
					code = kerr.UnknownTopicOrPartition.Code
				case errs.Is(err, errs.InvalidArgument):
					code = kerr.InvalidPartitions.Code
				}
				fail(code, "%v", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	s.waitForLeaders(ctx, created, time.Duration(req.TimeoutMillis)*time.Millisecond)
	return resp, nil
}
