package kafka

// ShareGroupHeartbeat (key 76), v0–v1 (v1 changes nothing on the wire):
// membership of KIP-932 share groups, whose consumption runs on Spool
// queue subscriptions (see kshare for the mapping).
//
//   - MemberEpoch 0 joins (or rejoins) with the client-generated member id
//     and the subscribed topic names (required); the answer carries the
//     member epoch and the assignment.
//   - MemberEpoch -1 leaves: the member's leases are released (redelivered
//     after the subscription's backoff).
//   - Any other epoch is a heartbeat: it must be the member's current or
//     previous epoch (FENCED_MEMBER_EPOCH otherwise; UNKNOWN_MEMBER_ID if
//     the member is not known, e.g. evicted or the broker restarted — the
//     client then rejoins). SubscribedTopicNames null means unchanged.
//
// Assignment: every partition of every subscribed topic that exists, to
// every member (queue semantics: any member may lease any message). The
// member epoch moves when its assignment changes (a topic created,
// deleted or grown), and the new assignment goes out with that
// heartbeat's answer; a full request (topic names given) always gets it.
// Topic names are resolved at each heartbeat, so a topic created after
// the member joined is assigned at its next heartbeat.
//
// The group id must be a valid Spool subscription name (letters, digits,
// '.', '_', '-'; INVALID_GROUP_ID otherwise). A topic whose subscription
// of that name is a stream subscription (a classic consumer group's)
// makes the heartbeat fail with INCONSISTENT_GROUP_PROTOCOL.
//
// Members that do not heartbeat within 45 s (HeartbeatIntervalMillis is
// 5 s) are evicted and their leases released. Membership is not
// persisted.

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kshare"
)

func (s *Server) shareGroupHeartbeat(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ShareGroupHeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp, nil
	}
	switch {
	case strings.TrimSpace(req.GroupID) == "":
		return fail(kerr.InvalidRequest.Code, "group id is empty")
	case req.MemberID == "" || len(req.MemberID) > kshare.MaxMemberIDLen:
		return fail(kerr.InvalidRequest.Code, "member id must be 1 to 36 characters (a client-generated UUID)")
	case req.MemberEpoch < -1:
		return fail(kerr.InvalidRequest.Code, "member epoch must be -1, 0 or positive")
	case req.RackID != nil && strings.TrimSpace(*req.RackID) == "":
		return fail(kerr.InvalidRequest.Code, "rack id is empty")
	case req.MemberEpoch == 0 && len(req.SubscribedTopicNames) == 0:
		return fail(kerr.InvalidRequest.Code, "joining needs subscribed topic names")
	}
	if err := catalog.ValidateName("share group", req.GroupID); err != nil {
		return fail(kerr.InvalidGroupID.Code, err.Error()+" (share groups are Spool queue subscriptions)")
	}
	if !s.can(ctx, acl.Group, req.GroupID, acl.Consume) {
		return fail(kerr.GroupAuthorizationFailed.Code, "not authorized to consume as the group")
	}
	for _, t := range req.SubscribedTopicNames {
		if !s.can(ctx, acl.Topic, t, acl.Consume) {
			return fail(kerr.TopicAuthorizationFailed.Code, "not authorized to consume topic "+t)
		}
	}
	if herr := s.shares.Heartbeat(time.Now(), c.clientID, c.remoteHost(), req, resp); herr != nil {
		return fail(herr.Code, herr.Msg)
	}
	return resp, nil
}
