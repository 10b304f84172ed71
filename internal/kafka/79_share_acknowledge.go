package kafka

// ShareAcknowledge (key 79), v0–v2: a share group member acknowledges
// records it acquired with ShareFetch, outside a fetch (see kshare and
// 78_share_fetch.go for the types: ACCEPT and GAP ack, RELEASE nacks into
// the subscription's backoff, REJECT dead-letters, RENEW extends the lease
// and needs IsRenewAck, v2).
//
// It uses the member's share session: epoch 0 cannot open one
// (INVALID_SHARE_SESSION_EPOCH), -1 applies the acknowledgements, closes
// the session and releases every lease the member still holds, any other
// epoch must be the session's current one and advances it. Each partition
// answers INVALID_REQUEST for malformed batches, INVALID_RECORD_STATE if
// some offsets were not held by the member (the others are applied),
// UNKNOWN_TOPIC_ID for an unknown topic. AcquisitionLockTimeoutMillis (v2)
// is the group's share.record.lock.duration.ms if set, else the
// subscriptions' ack timeout; RENEW extends a lock by as much.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/kafka/kshare"
)

func (s *Server) shareAcknowledge(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ShareAcknowledgeRequest)
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	resp.AcquisitionLockTimeoutMillis = int32(shareDefaultLock.Milliseconds())
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp, nil
	}
	group, member, ok := kshare.ValidMember(req.GroupID, req.MemberID)
	if !ok {
		return fail(kerr.InvalidRequest.Code, "group id and member id (1 to 36 characters) are required")
	}
	if code, msg := s.shareAuthz(ctx, group, shareTopicIDs(req)); code != 0 {
		return fail(code, msg)
	}
	if req.ShareSessionEpoch == 0 || req.ShareSessionEpoch < -1 {
		return fail(kerr.InvalidShareSessionEpoch.Code, "acknowledgements need an open share session (opened by ShareFetch)")
	}
	res, code, msg := s.shares.Session(kshare.SessionOp{Group: group, Member: member, Conn: c.ID(), Epoch: req.ShareSessionEpoch})
	if code != 0 {
		return fail(code, msg)
	}
	renew := req.Version >= 2 && req.IsRenewAck
	tn := kshare.NewTopicNames(s.b)
	lock := res.Lock.Milliseconds() // the group's; else the subscriptions' (the shortest)
	for _, rt := range req.Topics {
		st := kmsg.NewShareAcknowledgeResponseTopic()
		st.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			a := kshare.AckIn{ID: rt.TopicID, P: rp.Partition}
			for _, b := range rp.AcknowledgementBatches {
				a.Batches = append(a.Batches, kshare.AckBatchIn{First: b.FirstOffset, Last: b.LastOffset, Types: b.AcknowledgeTypes})
			}
			sp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = -1, -1 // no leader hint
			code, msg := s.shares.ApplyAcks(tn, group, member, c.ID(), a, renew, res.Lock)
			sp.ErrorCode = code
			if msg != "" {
				sp.ErrorMessage = &msg
			}
			if name, ok := tn.Name(rt.TopicID); ok && code == 0 && res.Lock == 0 { // the subscription exists
				if sub, err := s.b.QueueSubscription(name, group); err == nil && (lock == 0 || sub.AckTimeout.Milliseconds() < lock) {
					lock = sub.AckTimeout.Milliseconds()
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if lock > 0 {
		resp.AcquisitionLockTimeoutMillis = int32(min(lock, math.MaxInt32))
	}
	if req.ShareSessionEpoch == -1 {
		s.shares.Release(group, member, c.ID(), res.Leased)
	}
	return resp, nil
}
