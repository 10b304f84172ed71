package kafka

// JoinGroup (key 11), v0–v9. Classic consumer groups; the state machine is
// kgroup's. The request waits (in its connection's goroutine) until
// the join phase of the rebalance completes.
//
// Version differences: v1 adds the rebalance timeout (v0 uses the session
// timeout); v4 makes a new dynamic member first get MEMBER_ID_REQUIRED with
// its member id and join again with it (KIP-394); v5 adds static
// membership (group.instance.id, KIP-345); v7 returns the protocol type and
// name (null on errors); v8 adds a reason (ignored); v9 adds SkipAssignment
// for a static leader rejoining a Stable group (KIP-814).
//
// Errors: INVALID_GROUP_ID (empty, or not a valid Spool subscription name:
// 1–200 of letters, digits, '.', '_', '-'), INVALID_SESSION_TIMEOUT
// (outside 6 s – 30 min), INCONSISTENT_GROUP_PROTOCOL (no protocol type or
// protocols, or none every member supports, or another protocol type),
// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, GROUP_MAX_SIZE_REACHED (1,000
// members and outstanding member ids per group, 32 MiB of member metadata
// per group), INVALID_REQUEST (more than 1 MiB of metadata or 64 protocols
// for one member).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) joinGroup(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	if !s.can(ctx, acl.Group, req.Group, acl.Consume) {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	r := kgroup.JoinRequest{
		Version:          req.Version,
		Group:            req.Group,
		MemberID:         req.MemberID,
		InstanceID:       req.InstanceID,
		SessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:     req.ProtocolType,
		Protocols:        req.Protocols,
		ClientHost:       groupClientHost(c),
	}
	if c != nil {
		r.ClientID = c.clientID
	}
	if req.Version < 1 {
		r.RebalanceTimeout = 0
	}
	if req.Version < 5 {
		r.InstanceID = nil
	}
	res, wait := s.groups.Join(r)
	if wait != nil {
		select {
		case res = <-wait:
		case <-ctx.Done():
			return nil, errClose
		}
	}
	resp.ErrorCode = res.Code
	resp.MemberID = res.MemberID
	resp.Generation = res.Generation
	if res.Code != 0 {
		resp.Generation = -1
		return resp, nil
	}
	resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
	resp.Protocol = kmsg.StringPtr(res.Protocol)
	resp.LeaderID = res.Leader
	resp.Members = res.Members
	if req.Version < 5 {
		for i := range resp.Members {
			resp.Members[i].InstanceID = nil
		}
	}
	resp.SkipAssignment = res.SkipAssignment && req.Version >= 9
	return resp, nil
}

// groupClientHost is the client host Kafka reports: "/" and the IP.
func groupClientHost(c *conn) string {
	if h := c.remoteHost(); h != "" {
		return "/" + h
	}
	return ""
}
