package kafka

// LeaveGroup (key 13), v0–v5. v0–v2 name one member (MemberID) and answer
// with one top-level error; v3+ batch members, each by member id and/or
// group.instance.id (KIP-345), with an error per member (the top level is
// then NONE). Leaving members are removed at once and the group
// rebalances. A member id handed out with MEMBER_ID_REQUIRED that never
// joined may leave too. UNKNOWN_MEMBER_ID for members (or instance ids) the
// group does not have, FENCED_INSTANCE_ID when an instance id belongs to
// another member id.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) leaveGroup(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !s.can(ctx, acl.Group, req.Group, acl.Consume) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	var members []kgroup.LeaveMember
	if req.Version < 3 {
		members = []kgroup.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, kgroup.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID})
		}
	}
	codes := s.groups.Leave(req.Group, members)
	if req.Version < 3 {
		resp.ErrorCode = codes[0]
		return resp, nil
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
