package kafka

// AlterConfigs (key 33), v0–v2: the legacy, non-incremental form. The
// configs named replace the resource's whole set: every changeable topic
// config not named returns to the server default (for a group: every
// config not named is unset), Spool's spool.* configs included (an
// AlterConfigs without spool.schema.subject unbinds the topic). Otherwise
// as IncrementalAlterConfigs (44_incremental_alter_configs.go).

import (
	"context"
	"fmt"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) alterConfigs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if c := s.configAuthz(ctx, rr.ResourceType, rr.ResourceName, acl.Admin); c != 0 {
			m := "not authorized to alter these configs"
			sr.ErrorCode, sr.ErrorMessage = c, &m
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		var code int16
		var msg string
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			ops := make([]alterOp, 0, len(rr.Configs))
			for _, c := range rr.Configs {
				op := kmsg.IncrementalAlterConfigOpSet
				if c.Value == nil {
					op = kmsg.IncrementalAlterConfigOpDelete
				}
				ops = append(ops, alterOp{name: c.Name, op: op, value: c.Value})
			}
			if code, msg = s.schemaSubjectOpsAuthz(ctx, ops); code == 0 {
				code, msg = s.alterTopicConfigs(rr.ResourceName, ops, true, req.ValidateOnly)
			}
		case kmsg.ConfigResourceTypeGroupConfig:
			ops := make([]alterOp, 0, len(rr.Configs))
			for _, c := range rr.Configs {
				if c.Value != nil { // the rest are unset by the reset
					ops = append(ops, alterOp{name: c.Name, op: kmsg.IncrementalAlterConfigOpSet, value: c.Value})
				}
			}
			code, msg = s.alterGroupConfigs(rr.ResourceName, ops, true, req.ValidateOnly)
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
