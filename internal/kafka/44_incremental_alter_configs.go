package kafka

// IncrementalAlterConfigs (key 44), v0–v1. Topic configs (resource type 2)
// change through broker.UpdateTopicConfig, which stores the new config in
// the catalog and applies it to the open partition logs at once:
// retention.ms and retention.bytes (enforced by the next maintenance pass,
// within a second), max.message.bytes and the schema binding
// (spool.schema.subject, spool.schema.mode: checked on every append), and
// the event catalog's spool.owner, spool.description and spool.labels. SET
// sets, DELETE returns to the server default; APPEND of "delete" to
// cleanup.policy is accepted (it is already delete), other list operations
// are INVALID_CONFIG. Configs that a single node fixes (segment.bytes,
// segment.ms, min.insync.replicas, compression.type,
// message.timestamp.type, unclean.leader.election.enable) are accepted and
// ignored, as CreateTopics does; unknown configs are INVALID_CONFIG. All
// changes of a resource apply together or not at all. max.message.bytes
// cannot be raised above the largest batch the partition logs store (the
// server's storage.max-batch-bytes, default 16 MiB): INVALID_CONFIG.
// ValidateOnly checks without applying. Group configs (type 32) are the
// share-group configs of group_configs.go: SET and DELETE (back to the
// default); list operations are INVALID_CONFIG. Broker configs are
// read-only (INVALID_REQUEST).

import (
	"context"
	"fmt"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) incrementalAlterConfigs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if c := s.configAuthz(ctx, rr.ResourceType, rr.ResourceName, acl.Admin); c != 0 {
			m := "not authorized to alter these configs"
			sr.ErrorCode, sr.ErrorMessage = c, &m
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		var code int16
		var msg string
		ops := make([]alterOp, 0, len(rr.Configs))
		for _, c := range rr.Configs {
			ops = append(ops, alterOp{name: c.Name, op: c.Op, value: c.Value})
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if code, msg = s.schemaSubjectOpsAuthz(ctx, ops); code == 0 {
				code, msg = s.alterTopicConfigs(rr.ResourceName, ops, false, req.ValidateOnly)
			}
		case kmsg.ConfigResourceTypeGroupConfig:
			code, msg = s.alterGroupConfigs(rr.ResourceName, ops, false, req.ValidateOnly)
		case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
			code, msg = kerr.InvalidRequest.Code, "broker configs are read-only"
		default:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("configs of resource type %d are not supported", rr.ResourceType)
		}
		if code != 0 {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
