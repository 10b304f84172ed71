package kafka

// Metadata (key 3), v0–v13. On a single node, this broker leads every
// partition with itself as the only replica; on a cluster node, every
// node with a Kafka listener is listed and each partition's leader is its
// raft group's (the leader epoch is 0 there too, for now). Topic ids (v10+) are the Spool topic's
// UUID. Unknown topics are created when the request allows it (v4+
// AllowAutoTopicCreation; always for v0–v3) and the server's
// AutoCreateTopics is on; otherwise UNKNOWN_TOPIC_OR_PARTITION. A null
// topic list (v1+) means all topics.

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) metadata(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: s.cfg.NodeID, Host: s.cfg.AdvertisedHost, Port: s.cfg.AdvertisedPort}}
	cid := s.cfg.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = s.cfg.NodeID
	if c := s.cfg.Cluster; c != nil {
		resp.Brokers = resp.Brokers[:0]
		for _, br := range c.Brokers() {
			resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: br.NodeID, Host: br.Host, Port: br.Port})
		}
		resp.ControllerID = c.Controller()
	}

	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range s.b.Topics() {
			if !strings.HasPrefix(t.Name, "__") && s.can(ctx, acl.Topic, t.Name, acl.Describe) {
				names = append(names, t.Name)
			}
		}
	} else {
		for _, rt := range req.Topics {
			switch {
			case rt.Topic != nil:
				names = append(names, *rt.Topic)
			case rt.TopicID != [16]byte{}:
				if t, ok := s.b.TopicByID(kwire.UUIDString(rt.TopicID)); ok {
					names = append(names, t.Name)
				} else {
					rtp := kmsg.NewMetadataResponseTopic()
					rtp.TopicID = rt.TopicID
					rtp.ErrorCode = kerr.UnknownTopicID.Code
					resp.Topics = append(resp.Topics, rtp)
				}
			}
		}
	}
	allowCreate := *s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, name := range names {
		if !all && !s.can(ctx, acl.Topic, name, acl.Describe) {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic = &name
			rt.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		rt := s.topicMetadata(name, allowCreate && s.canCreateTopic(ctx, name))
		if req.IncludeTopicAuthorizedOperations && req.Version >= 8 {
			rt.AuthorizedOperations = s.authorizedOps(ctx, acl.Topic, name)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if req.IncludeClusterAuthorizedOperations && req.Version >= 8 && req.Version <= 10 {
		resp.AuthorizedOperations = s.authorizedOps(ctx, acl.Cluster, acl.ClusterName)
	}
	if req.Topics == nil && s.can(ctx, acl.Topic, offsetsTopic, acl.Describe) {
		resp.Topics = append(resp.Topics, s.offsetsTopicMetadata())
	}
	return resp, nil
}

// offsetsTopic is Kafka's internal topic of committed offsets. Spool keeps
// committed offsets in its state store, but clients expect the topic to be
// listed as internal (regex subscriptions exclude it by that flag): it is
// reported with one partition and no data, led (as in Kafka) by the node
// that coordinates groups, with every node as a replica.
const offsetsTopic = "__consumer_offsets"

func (s *Server) offsetsTopicMetadata() kmsg.MetadataResponseTopic {
	rt := kmsg.NewMetadataResponseTopic()
	n := offsetsTopic
	rt.Topic = &n
	rt.IsInternal = true
	rt.TopicID = [16]byte{0x5f, 0x5f, 'c', 'o', 'n', 's', 'u', 'm', 'e', 'r', '_', 'o', 'f', 'f', 's', 't'}
	rp := kmsg.NewMetadataResponseTopicPartition()
	rp.Leader = s.cfg.NodeID
	rp.Replicas = []int32{s.cfg.NodeID}
	if c := s.cfg.Cluster; c != nil {
		rp.Replicas = rp.Replicas[:0]
		for _, br := range c.Brokers() {
			rp.Replicas = append(rp.Replicas, br.NodeID)
		}
		if id, _, _, ok := s.coordinator(); ok {
			rp.Leader = id
		} else {
			rp.Leader, rp.ErrorCode = -1, kerr.LeaderNotAvailable.Code
		}
	}
	rp.ISR = rp.Replicas
	rt.Partitions = append(rt.Partitions, rp)
	return rt
}

func (s *Server) topicMetadata(name string, allowCreate bool) kmsg.MetadataResponseTopic {
	if name == offsetsTopic {
		return s.offsetsTopicMetadata()
	}
	rt := kmsg.NewMetadataResponseTopic()
	n := name
	rt.Topic = &n
	t, ok := s.b.Topic(name)
	if !ok && allowCreate {
		var err error
		t, err = s.b.CreateTopic(name, catalog.TopicConfig{Durability: catalog.DurabilityDefault})
		if err != nil && !errs.Is(err, errs.TopicExists) {
			rt.ErrorCode = kerr.InvalidTopicException.Code
			if errs.CodeOf(err) != errs.InvalidArgument {
				rt.ErrorCode = kwire.ErrCode(err)
			}
			return rt
		}
		t, ok = s.b.Topic(name)
	}
	if !ok {
		rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return rt
	}
	rt.TopicID = kwire.UUIDBytes(t.ID)
	for p := range t.Config.Partitions {
		rp := kmsg.NewMetadataResponseTopicPartition()
		rp.Partition = p
		rp.Leader = s.cfg.NodeID
		rp.LeaderEpoch = 0
		rp.Replicas = []int32{s.cfg.NodeID}
		rp.ISR = []int32{s.cfg.NodeID}
		if c := s.cfg.Cluster; c != nil {
			// The leader epoch stays 0 on a cluster too: Fetch, ListOffsets
			// and OffsetForLeaderEpoch know one epoch per partition so far.
			rp.Leader, _, rp.Replicas = c.PartitionLeader(t.ID, p)
			rp.ISR, rp.OfflineReplicas = c.PartitionISR(t.ID, p)
			if rp.Leader == 0 {
				rp.Leader = -1
				rp.ErrorCode = kerr.LeaderNotAvailable.Code
			}
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
