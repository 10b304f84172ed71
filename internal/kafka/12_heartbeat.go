package kafka

// Heartbeat (key 12), v0–v4. Keeps a classic group member's session alive
// (kgroup). Answers REBALANCE_IN_PROGRESS while the group prepares a
// rebalance (the member must rejoin), ILLEGAL_GENERATION for another
// generation, UNKNOWN_MEMBER_ID for a member the group does not have (also
// after a server restart), FENCED_INSTANCE_ID (v3+) for a static member
// replaced by a newer incarnation.

import (
	"context"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) heartbeat(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !s.can(ctx, acl.Group, req.Group, acl.Consume) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	inst := req.InstanceID
	if req.Version < 3 {
		inst = nil
	}
	resp.ErrorCode = s.groups.Heartbeat(req.Group, req.MemberID, inst, req.Generation)
	return resp, nil
}
