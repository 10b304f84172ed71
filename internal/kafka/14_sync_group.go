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

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registrations = append(registrations, func(s *Server) { s.register(14, 0, 5, s.syncGroup) })
}

func (s *Server) syncGroup(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	r := syncRequest{
		version:     req.Version,
		group:       req.Group,
		generation:  req.Generation,
		memberID:    req.MemberID,
		assignments: req.GroupAssignment,
	}
	if req.Version >= 3 {
		r.instanceID = req.InstanceID
	}
	if req.Version >= 5 {
		r.protocolType, r.protocol = req.ProtocolType, req.Protocol
	}
	res, wait := s.groups.sync(r)
	if wait != nil {
		select {
		case res = <-wait:
		case <-ctx.Done():
			return nil, errClose
		}
	}
	resp.ErrorCode = res.code
	if res.code == 0 {
		resp.ProtocolType = kmsg.StringPtr(res.protocolType)
		resp.Protocol = kmsg.StringPtr(res.protocol)
		resp.MemberAssignment = res.assignment
	}
	return resp, nil
}
