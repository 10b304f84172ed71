package kafka

// DescribeGroups (key 15), v0–v6. A group the coordinator has (it has
// members, or member ids outstanding) is described with its state,
// protocol type, protocol and members; members' metadata (for the selected
// protocol) and assignments only when the group is Stable, as Kafka does.
// A group known only by its committed offsets — stream subscriptions of
// that name — is "Empty" with protocol type "consumer", or, while native
// Spool consumers are connected to one of them, "Stable" with protocol type
// "spool" and no members listed. Anything else is "Dead" (v6+:
// GROUP_ID_NOT_FOUND, KIP-1043). Each group needs describe on it
// (GROUP_AUTHORIZATION_FAILED); with IncludeAuthorizedOperations (v3+) the
// group operations the principal's rules give are reported (all of them
// with authorization off).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) describeGroups(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		if !s.can(ctx, acl.Group, id, acl.Describe) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = s.authorizedOps(ctx, acl.Group, id)
		}
		if gi, ok := s.groups.Describe(id); ok {
			rg.State, rg.ProtocolType, rg.Protocol = gi.State.String(), gi.ProtocolType, gi.Protocol
			for _, m := range gi.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
				rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
				rg.Members = append(rg.Members, rm)
			}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		state, ptype := kgroup.Dead.String(), ""
		if kgroup.ValidID(id) {
			stream, members := 0, 0
			for _, gs := range s.b.SubsNamed(id) {
				if gs.Mode == catalog.ModeStream {
					stream++
					members += gs.Members
				}
			}
			switch {
			case members > 0:
				state, ptype = kgroup.Stable.String(), "spool"
			case stream > 0:
				state, ptype = kgroup.Empty.String(), "consumer"
			}
		}
		rg.State, rg.ProtocolType = state, ptype
		if state == kgroup.Dead.String() && req.Version >= 6 {
			rg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "group " + id + " not found"
			rg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
