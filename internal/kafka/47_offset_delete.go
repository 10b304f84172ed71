package kafka

// OffsetDelete (key 47), v0. Deletes a group's committed offsets for some
// partitions: they read as -1 afterwards (OffsetFetch), and when no
// partition of the group's subscription on a topic has an offset left,
// the subscription is deleted. A group with members may only delete
// offsets of topics its members do not subscribe to (consumer protocol;
// GROUP_SUBSCRIBED_TO_TOPIC), and none at all if it does not use the
// consumer protocol (NON_EMPTY_GROUP). GROUP_ID_NOT_FOUND if the group
// neither has members nor offsets; UNKNOWN_TOPIC_OR_PARTITION for a topic
// that does not exist.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) offsetDelete(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	if !s.can(ctx, acl.Group, req.Group, acl.Admin) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	gi, active := s.groups.Describe(req.Group)
	active = active && len(gi.Members) > 0
	if active && gi.ProtocolType != "consumer" {
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp, nil
	}
	if !kgroup.ValidID(req.Group) || (!active && len(s.offsets.Topics(req.Group)) == 0) {
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp, nil
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		code := int16(0)
		switch {
		case !s.can(ctx, acl.Topic, rt.Topic, acl.Consume):
			code = kerr.TopicAuthorizationFailed.Code
		case active && gi.Topics[rt.Topic]:
			code = kerr.GroupSubscribedToTopic.Code
		default:
			if _, ok := s.b.Topic(rt.Topic); !ok {
				code = kerr.UnknownTopicOrPartition.Code
				break
			}
			parts := make([]int32, 0, len(rt.Partitions))
			for _, p := range rt.Partitions {
				parts = append(parts, p.Partition)
			}
			if _, err := s.offsets.Delete(req.Group, rt.Topic, parts); err != nil {
				code = groupCommitErrCode(err)
			}
		}
		for _, p := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition, sp.ErrorCode = p.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
