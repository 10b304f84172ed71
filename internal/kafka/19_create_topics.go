package kafka

// CreateTopics (key 19), v0–v7. NumPartitions −1 means the server default;
// the replication factor must be −1 (or 0) or the number of replicas every
// partition has: 1 on a single node, the cluster's size on a cluster
// (every node holds every partition). Configs understood:
// retention.ms, retention.bytes, max.message.bytes, cleanup.policy=delete
// (see configs.go); others are INVALID_CONFIG. ValidateOnly checks without
// creating.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) createTopics(_ context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		msg := func(code int16, text string) {
			st.ErrorCode = code
			st.ErrorMessage = &text
		}
		cfg := catalog.TopicConfig{Durability: catalog.DurabilityDefault}
		if rt.NumPartitions > 0 {
			cfg.Partitions = rt.NumPartitions
		}
		rf := s.replicationFactor()
		switch {
		case rt.ReplicationFactor > 0 && int32(rt.ReplicationFactor) != rf:
			if rf == 1 {
				msg(kerr.InvalidReplicationFactor.Code, "this Spool node has one replica per partition")
			} else {
				msg(kerr.InvalidReplicationFactor.Code, fmt.Sprintf("every partition of this Spool cluster has one replica on each of its %d nodes: give -1 or %d", rf, rf))
			}
		case len(rt.ReplicaAssignment) > 0:
			msg(kerr.InvalidReplicaAssignment.Code, "replica assignment is not supported")
		default:
			if err := applyConfigs(&cfg, rt.Configs); err != nil {
				msg(kerr.InvalidConfig.Code, err.Error())
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
			st.ReplicationFactor = int16(rf)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// replicationFactor is the number of replicas of a partition created now:
// 1 on a single node, the cluster's size on a cluster.
func (s *Server) replicationFactor() int32 {
	if s.cfg.Cluster == nil {
		return 1
	}
	return max(1, s.cfg.Cluster.ReplicationFactor())
}
