package kafka

// DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31), v0–v3:
// the rules of Spool's authorizer (internal/auth/acl), so that kafka-acls
// and franz-go's kadm manage them. Kafka's resource types TOPIC, GROUP and
// CLUSTER are Spool's topic, group and cluster (schema subjects are managed
// natively only and are not listed here); TRANSACTIONAL_ID,
// DELEGATION_TOKEN and USER are refused (Spool has no transactional ids or
// delegation tokens). Kafka's operations map onto Spool's (authz.go); a
// rule keeps the Kafka operation it was created with, and is shown and
// matched by it. Describing needs describe on the cluster, creating and
// deleting admin on it (CLUSTER_AUTHORIZATION_FAILED). Rules may be
// managed while authorization is off, to prepare them before it is
// turned on; without a rule store (no broker) the answer is
// SECURITY_DISABLED.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

var aclResources = map[kmsg.ACLResourceType]acl.Resource{
	kmsg.ACLResourceTypeTopic: acl.Topic, kmsg.ACLResourceTypeGroup: acl.Group, kmsg.ACLResourceTypeCluster: acl.Cluster,
}

func kafkaResource(r acl.Resource) (kmsg.ACLResourceType, bool) {
	for k, v := range aclResources {
		if v == r {
			return k, true
		}
	}
	return 0, false
}

func kafkaPattern(p acl.Pattern) kmsg.ACLResourcePatternType {
	if p == acl.Prefixed {
		return kmsg.ACLResourcePatternTypePrefixed
	}
	return kmsg.ACLResourcePatternTypeLiteral
}

func kafkaPermission(p acl.Permission) kmsg.ACLPermissionType {
	if p == acl.Deny {
		return kmsg.ACLPermissionTypeDeny
	}
	return kmsg.ACLPermissionTypeAllow
}

// aclFilter converts a Kafka ACL filter; ok false for one that selects
// nothing Spool keeps (a resource type it has no rules of); an error for
// an invalid filter.
func aclFilter(typ kmsg.ACLResourceType, name *string, pattern kmsg.ACLResourcePatternType,
	principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) (f acl.Filter, ok bool, err error) {
	switch typ {
	case kmsg.ACLResourceTypeAny:
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster:
		f.Resource = aclResources[typ]
	case kmsg.ACLResourceTypeTransactionalId, kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
		return f, false, nil
	default:
		return f, false, fmt.Errorf("unknown resource type %d", typ)
	}
	if name != nil {
		f.Name = *name
	}
	switch pattern {
	case kmsg.ACLResourcePatternTypeAny:
	case kmsg.ACLResourcePatternTypeMatch:
		f.Pattern = "match"
	case kmsg.ACLResourcePatternTypeLiteral:
		f.Pattern = string(acl.Literal)
	case kmsg.ACLResourcePatternTypePrefixed:
		f.Pattern = string(acl.Prefixed)
	default:
		return f, false, fmt.Errorf("unknown pattern type %d", pattern)
	}
	if principal != nil {
		f.Principal = *principal
	}
	if host != nil {
		f.Host = *host
	}
	switch op {
	case kmsg.ACLOperationAny:
	case kmsg.ACLOperationUnknown:
		return f, false, errors.New("unknown operation")
	default:
		if _, known := acl.KafkaOperation(op.String()); !known {
			return f, false, fmt.Errorf("operation %s is not supported", op)
		}
		f.KafkaOperation = op.String()
	}
	switch perm {
	case kmsg.ACLPermissionTypeAny:
	case kmsg.ACLPermissionTypeAllow:
		f.Permission = acl.Allow
	case kmsg.ACLPermissionTypeDeny:
		f.Permission = acl.Deny
	default:
		return f, false, fmt.Errorf("unknown permission type %d", perm)
	}
	return f, true, nil
}

// kafkaRules lists rules Kafka can show: not those of subjects.
func kafkaRules(rs []acl.Rule) []acl.Rule {
	out := rs[:0:0]
	for _, r := range rs {
		if _, ok := kafkaResource(r.Resource); ok {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) describeACLs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp, nil
	}
	switch {
	case s.cfg.ACLs == nil:
		return fail(kerr.SecurityDisabled.Code, "no authorizer is configured")
	case !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Describe):
		return fail(kerr.ClusterAuthorizationFailed.Code, "describing ACLs needs describe on the cluster")
	}
	f, ok, err := aclFilter(req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if err != nil {
		return fail(kerr.InvalidRequest.Code, err.Error())
	}
	if !ok {
		return resp, nil
	}
	type resKey struct {
		typ     acl.Resource
		name    string
		pattern acl.Pattern
	}
	at := map[resKey]int{}
	for _, r := range kafkaRules(s.cfg.ACLs.Rules(f)) {
		k := resKey{r.Resource, r.Name, r.Pattern}
		i, seen := at[k]
		if !seen {
			rr := kmsg.NewDescribeACLsResponseResource()
			rr.ResourceType, _ = kafkaResource(r.Resource)
			rr.ResourceName, rr.ResourcePatternType = r.Name, kafkaPattern(r.Pattern)
			resp.Resources = append(resp.Resources, rr)
			i = len(resp.Resources) - 1
			at[k] = i
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.PermissionType = r.Principal, r.Host, kafkaPermission(r.Permission)
		a.Operation, _ = kmsg.ParseACLOperation(r.ShownKafkaOperation())
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, a)
	}
	return resp, nil
}

func (s *Server) createACLs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	fail := func(i int, code int16, msg string) {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
	}
	var rules []acl.Rule
	var at []int
	for i, c := range req.Creations {
		resp.Results[i] = kmsg.NewCreateACLsResponseResult()
		switch {
		case s.cfg.ACLs == nil:
			fail(i, kerr.SecurityDisabled.Code, "no authorizer is configured")
			continue
		case !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin):
			fail(i, kerr.ClusterAuthorizationFailed.Code, "creating ACLs needs admin on the cluster")
			continue
		}
		r, err := ruleOf(c)
		if err != nil {
			fail(i, kerr.InvalidRequest.Code, err.Error())
			continue
		}
		rules, at = append(rules, r), append(at, i)
	}
	if len(rules) == 0 {
		return resp, nil
	}
	if _, err := s.cfg.ACLs.Add(rules); err != nil {
		code := kwire.ErrCode(err)
		if errs.Is(err, errs.InvalidArgument) {
			code = kerr.InvalidRequest.Code
		}
		for _, i := range at {
			fail(i, code, err.Error())
		}
	}
	return resp, nil
}

// ruleOf converts a creation into a rule.
func ruleOf(c kmsg.CreateACLsRequestCreation) (acl.Rule, error) {
	res, ok := aclResources[c.ResourceType]
	if !ok {
		return acl.Rule{}, fmt.Errorf("resource type %s: Spool authorizes topics, groups and the cluster", c.ResourceType)
	}
	var pattern acl.Pattern
	switch c.ResourcePatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		pattern = acl.Literal
	case kmsg.ACLResourcePatternTypePrefixed:
		pattern = acl.Prefixed
	default:
		return acl.Rule{}, fmt.Errorf("pattern type %s: literal or prefixed", c.ResourcePatternType)
	}
	op, ok := acl.KafkaOperation(c.Operation.String())
	if !ok {
		return acl.Rule{}, fmt.Errorf("operation %s is not supported", c.Operation)
	}
	var perm acl.Permission
	switch c.PermissionType {
	case kmsg.ACLPermissionTypeAllow:
		perm = acl.Allow
	case kmsg.ACLPermissionTypeDeny:
		perm = acl.Deny
	default:
		return acl.Rule{}, fmt.Errorf("permission type %s: allow or deny", c.PermissionType)
	}
	r := acl.Rule{Principal: c.Principal, Host: c.Host, Resource: res, Pattern: pattern, Name: c.ResourceName,
		Operation: op, Permission: perm, KafkaOperation: c.Operation.String()}
	return r.Normalize()
}

func (s *Server) deleteACLs(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	fail := func(i int, code int16, msg string) {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
	}
	var filters []acl.Filter
	var at []int
	for i, rf := range req.Filters {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
		switch {
		case s.cfg.ACLs == nil:
			fail(i, kerr.SecurityDisabled.Code, "no authorizer is configured")
			continue
		case !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin):
			fail(i, kerr.ClusterAuthorizationFailed.Code, "deleting ACLs needs admin on the cluster")
			continue
		}
		f, ok, err := aclFilter(rf.ResourceType, rf.ResourceName, rf.ResourcePatternType, rf.Principal, rf.Host, rf.Operation, rf.PermissionType)
		if err != nil {
			fail(i, kerr.InvalidRequest.Code, err.Error())
			continue
		}
		if !ok {
			continue
		}
		if f.Resource == "" {
			// Kafka's ANY cannot select subject rules: they have no Kafka
			// form.
			for _, r := range []acl.Resource{acl.Topic, acl.Group, acl.Cluster} {
				g := f
				g.Resource = r
				filters, at = append(filters, g), append(at, i)
			}
			continue
		}
		filters, at = append(filters, f), append(at, i)
	}
	if len(filters) == 0 {
		return resp, nil
	}
	per, err := s.cfg.ACLs.Delete(filters)
	for k, i := range at {
		if err != nil {
			fail(i, kwire.ErrCode(err), err.Error())
			continue
		}
		for _, r := range per[k] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, _ = kafkaResource(r.Resource)
			m.ResourceName, m.ResourcePatternType = r.Name, kafkaPattern(r.Pattern)
			m.Principal, m.Host, m.PermissionType = r.Principal, r.Host, kafkaPermission(r.Permission)
			m.Operation, _ = kmsg.ParseACLOperation(r.ShownKafkaOperation())
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
		}
	}
	return resp, nil
}
