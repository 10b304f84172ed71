package kafka

// SyncGroup (key 14), v0–v5. The leader sends every member's assignment;
// every member's SyncGroup waits (in its connection's goroutine) until the
// leader's arrives and then gets its own assignment (members the leader
// left out get an empty one); in a Stable group it is answered at once.
// v3 adds group.instance.id (FENCED_INSTANCE_ID); v5 sends and returns the
// protocol type and name (INCONSISTENT_GROUP_PROTOCOL if they are not the
// group's). REBALANCE_IN_PROGRESS while a rebalance is being prepared (or
// when one starts while waiting), ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) syncGroup(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !s.can(ctx, acl.Group, req.Group, acl.Consume) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	r := kgroup.SyncRequest{
		Version:     req.Version,
		Group:       req.Group,
		Generation:  req.Generation,
		MemberID:    req.MemberID,
		Assignments: req.GroupAssignment,
	}
	if req.Version >= 3 {
		r.InstanceID = req.InstanceID
	}
	if req.Version >= 5 {
		r.ProtocolType, r.Protocol = req.ProtocolType, req.Protocol
	}
	res, wait := s.groups.Sync(r)
	if wait != nil {
		select {
		case res = <-wait:
		case <-ctx.Done():
			return nil, errClose
		}
	}
	resp.ErrorCode = res.Code
	if res.Code == 0 {
		resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
		resp.Protocol = kmsg.StringPtr(res.Protocol)
		resp.MemberAssignment = res.Assignment
	}
	return resp, nil
}
