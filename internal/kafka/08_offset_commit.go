package kafka

// OffsetCommit (key 8), v0–v10. A consumer group's committed offsets are a
// Spool stream subscription's: group "g" committing topic "T" commits to
// the subscription "g" on "T", created (start earliest) by the first commit
// (kgroup/offsets.go). Commits are durable (synced) when
// answered. The leader epoch (v6+) and the metadata string are kept with
// the offset and returned by OffsetFetch.
//
// Membership checks, as Kafka's: a commit with member id and generation
// must come from a current member of the current generation
// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID (v7+),
// REBALANCE_IN_PROGRESS while the group waits for SyncGroup); one with
// neither (generation -1, e.g. an admin or a consumer assigning partitions
// itself) is only allowed while the group has no members. v0 has no
// member or generation. v1's timestamp and v2–v4's retention time are
// ignored (offsets never expire; delete them with DeleteGroups or
// OffsetDelete). v10 names topics by id (the Spool topic's UUID;
// UNKNOWN_TOPIC_ID).
//
// Per-partition errors: INVALID_GROUP_ID (the group id is not a valid
// Spool subscription name), UNKNOWN_TOPIC_OR_PARTITION,
// OFFSET_METADATA_TOO_LARGE (metadata over 4,096 bytes, Kafka's
// offset.metadata.max.bytes), OFFSET_OUT_OF_RANGE (an offset beyond the
// partition's end; Kafka would store it, Spool's subscriptions cannot),
// INCONSISTENT_GROUP_PROTOCOL (the subscription of that name is a queue
// subscription — a share group — or has native Spool consumers: Kafka and
// native members of one subscription at once are not supported, so Kafka
// commits are refused while native members are connected). A negative
// offset commits "no offset": it reads back as -1.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// maxCommitMetadata bounds an offset commit's metadata string (Kafka's
// offset.metadata.max.bytes default).
const maxCommitMetadata = 4096

func (s *Server) offsetCommit(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	fillAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	memberID, gen, inst := req.MemberID, req.Generation, req.InstanceID
	if req.Version < 1 {
		memberID, gen = "", -1
	}
	if req.Version < 7 {
		inst = nil
	}
	if !kgroup.ValidID(req.Group) {
		fillAll(kerr.InvalidGroupID.Code)
		return resp, nil
	}
	if !s.can(ctx, acl.Group, req.Group, acl.Consume) {
		fillAll(kerr.GroupAuthorizationFailed.Code)
		return resp, nil
	}
	if code := s.groups.ValidateCommit(req.Group, memberID, inst, gen); code != 0 {
		fillAll(code)
		return resp, nil
	}
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		setCode := func(p int32, code int16) {
			for j := range st.Partitions {
				if st.Partitions[j].Partition == p {
					st.Partitions[j].ErrorCode = code
				}
			}
		}
		name := rt.Topic
		if req.Version >= 10 {
			t, ok := s.b.TopicByID(kwire.UUIDString(rt.TopicID))
			if !ok {
				for j := range st.Partitions {
					st.Partitions[j].ErrorCode = kerr.UnknownTopicID.Code
				}
				continue
			}
			name = t.Name
		}
		if !s.can(ctx, acl.Topic, name, acl.Consume) {
			for j := range st.Partitions {
				st.Partitions[j].ErrorCode = kerr.TopicAuthorizationFailed.Code
			}
			continue
		}
		offsets := map[int32]kgroup.Offset{}
		for j, rp := range rt.Partitions {
			if gen >= 0 && s.groups.OwnedElsewhere(req.Group, memberID, inst, name, rp.Partition) {
				st.Partitions[j].ErrorCode = kerr.IllegalGeneration.Code
				continue
			}
			meta := ""
			if rp.Metadata != nil {
				meta = *rp.Metadata
			}
			if len(meta) > maxCommitMetadata {
				st.Partitions[j].ErrorCode = kerr.OffsetMetadataTooLarge.Code
				delete(offsets, rp.Partition)
				continue
			}
			epoch := rp.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			offsets[rp.Partition] = kgroup.Offset{Offset: rp.Offset, LeaderEpoch: epoch, Metadata: meta}
		}
		if len(offsets) == 0 {
			continue
		}
		perr, err := s.offsets.CommitInTerm(groupsTermOf(ctx), req.Group, name, offsets)
		if err != nil {
			code := groupCommitErrCode(err)
			for p := range offsets {
				setCode(p, code)
			}
			continue
		}
		for p, e := range perr {
			setCode(p, groupCommitErrCode(e))
		}
	}
	return resp, nil
}

// groupCommitErrCode maps a broker error of a group offset operation.
func groupCommitErrCode(err error) int16 {
	switch errs.CodeOf(err) {
	case errs.TopicNotFound, errs.SubNotFound:
		return kerr.UnknownTopicOrPartition.Code
	case errs.InvalidArgument:
		return kerr.InvalidGroupID.Code
	case errs.FailedPrecondition:
		return kerr.InconsistentGroupProtocol.Code
	case errs.OffsetOutOfRange:
		return kerr.OffsetOutOfRange.Code
	case errs.Unavailable:
		return kerr.CoordinatorNotAvailable.Code
	}
	return kwire.ErrCode(err)
}
