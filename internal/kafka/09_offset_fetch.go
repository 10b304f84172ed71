package kafka

// OffsetFetch (key 9), v0–v10. Returns a group's committed offsets: those
// of the stream subscriptions named after the group (kgroup/offsets.go), with the leader epoch and metadata of
// the Kafka commit that set them (-1 and "" when a native consumer or a
// reset moved the offset since). A partition without an offset — no
// subscription of that name on the topic, no such topic or partition, or a
// partition of a Kafka-created subscription no one has committed — is
// offset -1, so the consumer's auto.offset.reset applies. A native
// subscription's partitions all have offsets (from its start position).
//
// A null topic list (v2+) means every topic with a subscription of that
// name (only partitions with an offset). v0–v7 name one group (v2+ with a
// top-level error code); v8+ batch groups; v9's member id and epoch are
// for KIP-848 groups and ignored here; v10 names topics by id
// (UNKNOWN_TOPIC_ID). RequireStable (v7+) never finds unstable offsets:
// there are no transactions. A group id that is not a valid Spool
// subscription name has no offsets.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) offsetFetch(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		var topics []kmsg.OffsetFetchRequestGroupTopic
		if req.Topics != nil || req.Version < 2 {
			topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
			for _, t := range req.Topics {
				topics = append(topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		g := s.fetchGroupOffsets(ctx, req.Version, req.Group, topics)
		resp.ErrorCode = g.ErrorCode
		for _, t := range g.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	for _, rg := range req.Groups {
		resp.Groups = append(resp.Groups, s.fetchGroupOffsets(ctx, req.Version, rg.Group, rg.Topics))
	}
	return resp, nil
}

// fetchGroupOffsets answers one group; topics nil means all.
func (s *Server) fetchGroupOffsets(ctx context.Context, version int16, group string, topics []kmsg.OffsetFetchRequestGroupTopic) kmsg.OffsetFetchResponseGroup {
	g := kmsg.NewOffsetFetchResponseGroup()
	g.Group = group
	if !s.can(ctx, acl.Group, group, acl.Describe) {
		g.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return g
	}
	valid := kgroup.ValidID(group)
	noMeta := ""
	part := func(p int32, o kgroup.Offset) kmsg.OffsetFetchResponseGroupTopicPartition {
		rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, o.Offset, o.LeaderEpoch
		meta := o.Metadata
		rp.Metadata = &meta
		if o.Offset < 0 {
			rp.Offset, rp.LeaderEpoch, rp.Metadata = -1, -1, &noMeta
		}
		return rp
	}
	none := kgroup.Offset{Offset: -1, LeaderEpoch: -1}
	if topics == nil {
		if !valid {
			return g
		}
		for _, name := range s.offsets.Topics(group) {
			offs, ok, err := s.offsets.Fetch(group, name)
			if err != nil {
				g.ErrorCode = groupCommitErrCode(err)
				return g
			}
			if !ok || !s.can(ctx, acl.Topic, name, acl.Describe) {
				continue
			}
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = name
			if t, ok := s.b.Topic(name); ok {
				rt.TopicID = kwire.UUIDBytes(t.ID)
			}
			for p := int32(0); p < int32(len(offs)); p++ {
				if o := offs[p]; o.Offset >= 0 {
					rt.Partitions = append(rt.Partitions, part(p, o))
				}
			}
			if len(rt.Partitions) > 0 {
				g.Topics = append(g.Topics, rt)
			}
		}
		return g
	}
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		name, code := t.Topic, int16(0)
		if version >= 10 {
			if tp, ok := s.b.TopicByID(kwire.UUIDString(t.TopicID)); ok {
				name = tp.Name
			} else {
				code = kerr.UnknownTopicID.Code
			}
		}
		if code == 0 && !s.can(ctx, acl.Topic, name, acl.Describe) {
			code = kerr.TopicAuthorizationFailed.Code
		}
		var offs map[int32]kgroup.Offset
		if code == 0 && valid {
			var err error
			if offs, _, err = s.offsets.Fetch(group, name); err != nil {
				code = groupCommitErrCode(err)
			}
		}
		for _, p := range t.Partitions {
			o, ok := offs[p]
			if !ok {
				o = none
			}
			rp := part(p, o)
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		g.Topics = append(g.Topics, rt)
	}
	return g
}
