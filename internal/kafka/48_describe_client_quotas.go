package kafka

// DescribeClientQuotas (key 48), v0–v1 (KIP-546). Spool's quotas are set
// for user entities only: a user by name, or the default of every user
// (name null). A filter component of type user matches exactly (match
// type 0, a name), the default (1), or any user and the default (2, as
// kadm documents it); a component of type client-id or ip matches no
// entity (there are none of those), and another type is INVALID_REQUEST.
// strict leaves out entities with a component type the filter does not
// name. Without a quota store the answer is empty.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/quota"
)

// Kafka's quota entity types; Spool sets quotas for users only.
const (
	entityUser     = "user"
	entityClientID = "client-id"
	entityIP       = "ip"
)

func (s *Server) describeClientQuotas(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Describe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		msg := "describing quotas needs describe on the cluster"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	for _, c := range req.Components {
		switch c.EntityType {
		case entityUser, entityClientID, entityIP:
		default:
			resp.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("unknown quota entity type %q", c.EntityType)
			resp.ErrorMessage = &msg
			return resp, nil
		}
		if c.MatchType < 0 || c.MatchType > 2 || (c.MatchType == 0) != (c.Match != nil) {
			resp.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("quota filter of %s: match type %d with match %v", c.EntityType, c.MatchType, c.Match != nil)
			resp.ErrorMessage = &msg
			return resp, nil
		}
	}
	resp.Entries = []kmsg.DescribeClientQuotasResponseEntry{}
	if s.cfg.Quotas == nil {
		return resp, nil
	}
	for _, q := range s.cfg.Quotas.List() {
		if !quotaMatches(q.Entity, req.Components, req.Strict) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		ent := kmsg.NewDescribeClientQuotasResponseEntryEntity()
		ent.Type = entityUser
		if !q.Default {
			ent.Name = kmsg.StringPtr(q.User)
		}
		e.Entity = append(e.Entity, ent)
		for _, k := range quota.Kinds() {
			if v, ok := q.Values()[k.Key()]; ok {
				val := kmsg.NewDescribeClientQuotasResponseEntryValue()
				val.Key, val.Value = k.Key(), v
				e.Values = append(e.Values, val)
			}
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

// quotaMatches reports whether a user entity passes a filter.
func quotaMatches(e quota.Entity, comps []kmsg.DescribeClientQuotasRequestComponent, strict bool) bool {
	named := false
	for _, c := range comps {
		if c.EntityType != entityUser {
			return false // our entities have no other component
		}
		named = true
		switch c.MatchType {
		case 0:
			if e.Default || c.Match == nil || *c.Match != e.User {
				return false
			}
		case 1:
			if !e.Default {
				return false
			}
		}
	}
	return !strict || named
}
