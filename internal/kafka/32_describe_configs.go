package kafka

// DescribeConfigs (key 32), v0–v4. Topics (resource type 2) report the
// configs in configs.go: retention.ms, retention.bytes, max.message.bytes,
// cleanup.policy and Spool's spool.* configs (schema binding, event
// catalog) from the topic's Spool config (source DEFAULT_CONFIG when equal
// to the server default, else DYNAMIC_TOPIC_CONFIG), plus
// read-only facts (compression.type, min.insync.replicas — 1 on a single
// node, a majority of the replicas on a cluster — message.timestamp.type,
// unclean.leader.election.enable). The broker
// (type 4; name "" or this node's id) reports a few read-only settings.
// ConfigNames selects configs; unknown names are left out. v1+ synonyms
// (IncludeSynonyms) name the topic value and the broker default behind it;
// v3+ types and, with IncludeDocumentation, a line of documentation. Groups
// (type 32) report the share-group configs of group_configs.go. Other
// resource types are INVALID_REQUEST.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) describeConfigs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		fail := func(code int16, msg string) {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		var cs []describedConfig
		if code := s.configAuthz(ctx, rr.ResourceType, rr.ResourceName, acl.Describe); code != 0 {
			fail(code, "not authorized to describe these configs")
		} else {
			switch rr.ResourceType {
			case kmsg.ConfigResourceTypeTopic:
				meta, ok := s.b.Topic(rr.ResourceName)
				if !ok {
					fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q not found", rr.ResourceName))
					break
				}
				cs = describeTopicConfigs(meta.Config, s.b.TopicDefaults(), rr.ConfigNames, s.topicReplicationFactor(meta))
			case kmsg.ConfigResourceTypeBroker:
				if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
					fail(kerr.InvalidRequest.Code, fmt.Sprintf("this is broker %d, not %s", s.cfg.NodeID, rr.ResourceName))
					break
				}
				cs = s.describeBrokerConfigs(rr.ConfigNames)
			case kmsg.ConfigResourceTypeGroupConfig:
				if !kgroup.ValidID(rr.ResourceName) {
					fail(kerr.InvalidGroupID.Code, fmt.Sprintf("%q is not a valid group name", rr.ResourceName))
					break
				}
				var err error
				if cs, err = s.describeGroupConfigs(rr.ResourceName, rr.ConfigNames); err != nil {
					fail(kwire.ErrCode(err), err.Error())
				}
			default:
				fail(kerr.InvalidRequest.Code, fmt.Sprintf("configs of resource type %d are not supported", rr.ResourceType))
			}
		}
		for _, c := range cs {
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			v := c.value
			rc.Name, rc.Value, rc.ReadOnly = c.name, &v, c.readOnly
			rc.IsDefault = c.source == kmsg.ConfigSourceDefaultConfig
			rc.Source = c.source
			if req.IncludeSynonyms {
				rc.ConfigSynonyms = c.synonyms
			}
			rc.ConfigType = c.typ
			if req.IncludeDocumentation && c.doc != "" {
				d := c.doc
				rc.Documentation = &d
			}
			sr.Configs = append(sr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
