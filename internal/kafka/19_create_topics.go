package kafka

// CreateTopics (key 19), v0–v7. NumPartitions −1 means the server default;
// the replication factor −1 (or 0) means the default: 1 on a single node,
// 3 on a cluster of three nodes or more (else its size); on a cluster 1, 3
// or 5 are accepted, up to the number of nodes; anything else is
// INVALID_REPLICATION_FACTOR. Configs understood:
// retention.ms, retention.bytes, max.message.bytes, cleanup.policy=delete,
// and Spool's spool.schema.subject, spool.schema.mode, spool.owner,
// spool.description and spool.labels (see configs.go); others are
// INVALID_CONFIG. ValidateOnly checks without
// creating. On a cluster, the answer waits (up to TimeoutMillis, at most
// 30 s) until this node knows a leader for every partition created, as
// Kafka's does: a client that produces at once then finds the leaders in
// Metadata (kafka-go's Writer fails records of a partition without a
// leader at once). Past the timeout the topics are reported created all the
// same: they are, and their leaders follow.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) createTopics(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	var created []newPartitions
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		msg := func(code int16, text string) {
			st.ErrorCode = code
			st.ErrorMessage = &text
		}
		if !s.canCreateTopic(ctx, rt.Topic) {
			msg(kerr.TopicAuthorizationFailed.Code, "not authorized to create the topic")
			resp.Topics = append(resp.Topics, st)
			continue
		}
		cfg := catalog.TopicConfig{Durability: catalog.DurabilityDefault}
		if rt.NumPartitions > 0 {
			cfg.Partitions = rt.NumPartitions
		}
		rf := s.replicationFactor()
		if rt.ReplicationFactor > 0 {
			rf = int32(rt.ReplicationFactor)
			cfg.Replicas = rf
		}
		switch {
		case rt.ReplicationFactor > 0 && s.cfg.Cluster == nil && rf != 1:
			msg(kerr.InvalidReplicationFactor.Code, "this Spool node has one replica per partition: give -1 or 1")
		case rt.ReplicationFactor > 0 && s.cfg.Cluster != nil && catalog.ValidateReplicationFactor(rf, s.cfg.Cluster.Nodes()) != nil:
			msg(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor %d: this Spool cluster of %d nodes takes 1, 3 or 5 replicas, at most one per node (or -1: %d)",
				rf, s.cfg.Cluster.Nodes(), s.replicationFactor()))
		case rt.ReplicationFactor < -1:
			msg(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor %d: give -1 for the default", rt.ReplicationFactor))
		case len(rt.ReplicaAssignment) > 0:
			msg(kerr.InvalidReplicaAssignment.Code, "replica assignment is not supported")
		default:
			if err := applyConfigs(&cfg, rt.Configs); err != nil {
				msg(kerr.InvalidConfig.Code, err.Error())
				break
			}
			if code, text := s.schemaSubjectAuthz(ctx, cfg.SchemaSubject); code != 0 {
				msg(code, text)
				break
			}
			if lim := s.b.MaxStorableMessageBytes(); cfg.MaxMessageBytes > lim {
				msg(kerr.InvalidConfig.Code, fmt.Sprintf("max.message.bytes %d exceeds this server's largest storable batch, %d bytes (storage.max-batch-bytes)", cfg.MaxMessageBytes, lim))
				break
			}
			if req.ValidateOnly {
				if err := catalog.ValidateName("topic", rt.Topic); err != nil {
					msg(kerr.InvalidTopicException.Code, err.Error())
				}
				break
			}
			t, err := s.b.CreateTopic(rt.Topic, cfg)
			if err != nil {
				code := kwire.ErrCode(err)
				if code == kerr.InvalidRequest.Code {
					code = kerr.InvalidTopicException.Code
				}
				msg(code, err.Error())
				break
			}
			st.TopicID = kwire.UUIDBytes(t.ID)
			st.NumPartitions = t.Config.Partitions
			st.ReplicationFactor = int16(s.topicReplicationFactor(t))
			created = append(created, newPartitions{topicID: t.ID, from: 0, to: t.Config.Partitions})
		}
		resp.Topics = append(resp.Topics, st)
	}
	s.waitForLeaders(ctx, created, time.Duration(req.TimeoutMillis)*time.Millisecond)
	return resp, nil
}

// newPartitions are partitions [from, to) of a topic, just created.
type newPartitions struct {
	topicID  string
	from, to int32
}

// maxLeaderWait bounds how long CreateTopics and CreatePartitions wait for
// the new partitions' leaders.
const maxLeaderWait = 30 * time.Second

// waitForLeaders waits, on a cluster, until this node knows a leader of
// each of the partitions, for at most timeout (and maxLeaderWait), or
// until ctx ends. A single node leads every partition: it returns at once.
func (s *Server) waitForLeaders(ctx context.Context, parts []newPartitions, timeout time.Duration) {
	c := s.cfg.Cluster
	if c == nil || len(parts) == 0 || timeout <= 0 {
		return
	}
	deadline := time.Now().Add(min(timeout, maxLeaderWait))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := false
		for _, np := range parts {
			for p := np.from; p < np.to && !missing; p++ {
				lead, _, _ := c.PartitionLeader(np.topicID, p)
				missing = lead == 0
			}
		}
		if !missing || !time.Now().Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// replicationFactor is the number of replicas of a partition of a topic
// created without one: 1 on a single node, the cluster's default on a
// cluster.
func (s *Server) replicationFactor() int32 {
	if s.cfg.Cluster == nil {
		return 1
	}
	return max(1, s.cfg.Cluster.ReplicationFactor())
}

// topicReplicationFactor is a topic's replication factor: 1 on a single
// node; on a cluster the topic's, or for a topic created before
// replication factors the number of replicas of its first partition.
func (s *Server) topicReplicationFactor(t catalog.Topic) int32 {
	c := s.cfg.Cluster
	switch {
	case c == nil:
		return 1
	case t.Config.Replicas > 0:
		return t.Config.Replicas
	}
	if _, _, replicas := c.PartitionLeader(t.ID, 0); len(replicas) > 0 {
		return int32(len(replicas))
	}
	return s.replicationFactor()
}
