package kafka

// ShareGroupDescribe (key 77), v0–v1 (v1 changes nothing on the wire):
// the members of share groups, their epochs, subscribed topics and
// assignments (see kshare). A group with members is "Stable"; a group
// without members but with a queue subscription of its name on some topic
// is "Empty" (its state lives on in the subscription); any other group id
// is GROUP_ID_NOT_FOUND. The assignor is "simple": every member gets every
// partition of its topics. Each group needs describe on it; with
// IncludeAuthorizedOperations the principal's group operations are
// reported.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kshare"
)

func (s *Server) shareGroupDescribe(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ShareGroupDescribeRequest)
	resp := req.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
	for _, id := range req.GroupIDs {
		rg := kmsg.NewShareGroupDescribeResponseGroup()
		rg.GroupID = id
		rg.Assignor = "simple"
		if !s.can(ctx, acl.Group, id, acl.Describe) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = s.authorizedOps(ctx, acl.Group, id)
		}
		v, ok := s.shares.Describe(id)
		switch {
		case ok:
			rg.GroupState = "Stable"
			rg.GroupEpoch, rg.AssignmentEpoch = v.Epoch, v.Epoch
			for _, m := range v.Members {
				rm := kmsg.NewShareGroupDescribeResponseGroupMember()
				rm.MemberID, rm.RackID, rm.MemberEpoch = m.ID, m.Rack, m.Epoch
				rm.ClientID, rm.ClientHost = m.ClientID, m.Host
				rm.SubscribedTopicNames = m.Topics
				for _, name := range kshare.SortedKeys(m.Assigned) {
					ta := m.Assigned[name]
					tp := kmsg.NewShareGroupDescribeResponseGroupMemberAssignmentTopicPartition()
					tp.TopicID, tp.Topic, tp.Partitions = ta.ID, name, kshare.AllPartitions(ta.Parts)
					rm.Assignment.TopicPartitions = append(rm.Assignment.TopicPartitions, tp)
				}
				rg.Members = append(rg.Members, rm)
			}
		case s.hasQueueSub(id):
			rg.GroupState = "Empty"
		default:
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "no share group or queue subscription of that name"
			rg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

// hasQueueSub reports whether some topic has a queue subscription named
// name.
func (s *Server) hasQueueSub(name string) bool {
	if catalog.ValidateName("subscription", name) != nil {
		return false
	}
	for _, t := range s.b.Topics() {
		subs, err := s.b.Subscriptions(t.Name)
		if err != nil {
			continue
		}
		for _, sub := range subs {
			if sub.Name == name && sub.Config.Mode == catalog.ModeQueue {
				return true
			}
		}
	}
	return false
}
