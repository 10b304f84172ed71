package kafka

// AlterClientQuotas (key 49), v0–v1 (KIP-546). An entry's entity must be
// one user component: a user by name, or the default of every user (name
// null). Client-id and ip entities are refused with INVALID_REQUEST (Spool
// keys quotas by principal only), as are unknown keys and
// request_percentage (Spool's request quota is request_rate, requests per
// second), values not in (0, 1e15], and a key named twice. Each entry is
// one change of the quota store, applied in order; validate_only checks
// without changing anything. Without a quota store every entry is
// INVALID_REQUEST.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/spoolmq/spool/internal/quota"
)

func (s *Server) alterClientQuotas(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, re := range req.Entries {
		out := kmsg.NewAlterClientQuotasResponseEntry()
		for _, c := range re.Entity {
			oc := kmsg.NewAlterClientQuotasResponseEntryEntity()
			oc.Type, oc.Name = c.Type, c.Name
			out.Entity = append(out.Entity, oc)
		}
		if !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin) {
			out.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			msg := "altering quotas needs admin on the cluster"
			out.ErrorMessage = &msg
		} else if err := s.alterClientQuota(re, req.ValidateOnly); err != nil {
			out.ErrorCode = kwire.ErrCode(err)
			if errs.CodeOf(err) == errs.InvalidArgument {
				out.ErrorCode = kerr.InvalidRequest.Code
			}
			msg := err.Error()
			out.ErrorMessage = &msg
		}
		resp.Entries = append(resp.Entries, out)
	}
	return resp, nil
}

func (s *Server) alterClientQuota(re kmsg.AlterClientQuotasRequestEntry, validateOnly bool) error {
	if s.cfg.Quotas == nil {
		return errs.New(errs.InvalidArgument, "this server has no quota store")
	}
	var e quota.Entity
	switch {
	case len(re.Entity) != 1:
		for _, c := range re.Entity {
			if c.Type != entityUser {
				return errs.New(errs.InvalidArgument, "quotas of %s entities are not supported: Spool sets quotas per user (or the default user)", c.Type)
			}
		}
		return errs.New(errs.InvalidArgument, "a quota entity is one user component, got %d components", len(re.Entity))
	case re.Entity[0].Type != entityUser:
		return errs.New(errs.InvalidArgument, "quotas of %s entities are not supported: Spool sets quotas per user (or the default user)", re.Entity[0].Type)
	case re.Entity[0].Name == nil:
		e.Default = true
	default:
		e.User = *re.Entity[0].Name
	}
	set := map[string]float64{}
	var remove []string
	seen := map[string]bool{}
	for _, op := range re.Ops {
		if seen[op.Key] {
			return errs.New(errs.InvalidArgument, "quota %s named twice", op.Key)
		}
		seen[op.Key] = true
		if op.Remove {
			remove = append(remove, op.Key)
		} else {
			set[op.Key] = op.Value
		}
	}
	if validateOnly {
		return quota.CheckAlter(e, set, remove)
	}
	return s.cfg.Quotas.Alter(e, set, remove)
}
