package kafka

// Authorization (Config.Authz; docs/security.md, "What each request
// needs"): each handler asks can() for what its request touches and
// answers Kafka's error for what is refused — TOPIC_AUTHORIZATION_FAILED
// per topic, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED —
// as Kafka's brokers do. Lists (Metadata without topics, ListGroups,
// OffsetFetch of every topic) leave out what the principal may not
// describe. Spool's operations stand for Kafka's: consume is READ,
// publish WRITE (and IDEMPOTENT_WRITE on the cluster), describe DESCRIBE
// and DESCRIBE_CONFIGS, admin CREATE, DELETE, ALTER, ALTER_CONFIGS and
// CLUSTER_ACTION.

import (
	"context"
	"strconv"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// reqCtx returns the context requests of c are handled with: the
// server's, carrying the connection's principal and client address when
// authorization is on.
func (c *conn) reqCtx() context.Context {
	if c.s.cfg.Authz == nil {
		return c.s.ctx
	}
	if c.authCtx == nil || c.authCtxFor != c.principal {
		c.authCtx = auth.WithHost(auth.WithPrincipal(c.s.ctx, c.principal), acl.HostOf(c.nc.RemoteAddr().String()))
		c.authCtxFor = c.principal
	}
	return c.authCtx
}

// can reports whether the principal ctx carries may do op on a resource.
func (s *Server) can(ctx context.Context, res acl.Resource, name string, op acl.Operation) bool {
	az := s.cfg.Authz
	if az == nil {
		return true
	}
	return az.Allowed(acl.Request{Principal: auth.Principal(ctx), Host: auth.Host(ctx), Resource: res, Name: name, Operation: op})
}

// canCreateTopic: admin on the topic, or on the cluster (Kafka's CREATE
// on either).
func (s *Server) canCreateTopic(ctx context.Context, name string) bool {
	return s.can(ctx, acl.Topic, name, acl.Admin) || s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin)
}

// canIdempotentWrite: publish on the cluster, or on some topic (Kafka's
// IDEMPOTENT_WRITE, or WRITE on any topic since Kafka 3.0).
func (s *Server) canIdempotentWrite(ctx context.Context) bool {
	az := s.cfg.Authz
	return az == nil || s.can(ctx, acl.Cluster, acl.ClusterName, acl.Publish) ||
		az.AllowedOnSome(auth.Principal(ctx), auth.Host(ctx), acl.Topic, acl.Publish)
}

// Kafka's ACL operation codes, the bits of authorized-operations fields.
const (
	opRead            = 3
	opWrite           = 4
	opCreate          = 5
	opDelete          = 6
	opAlter           = 7
	opDescribe        = 8
	opClusterAction   = 9
	opDescribeConfigs = 10
	opAlterConfigs    = 11
	opIdempotentWrite = 12
)

// kafkaOpsOf are the Kafka operations each Spool operation stands for, by
// resource type (only those Kafka defines for the type).
func kafkaOpsOf(res acl.Resource, op acl.Operation) []int {
	switch res {
	case acl.Topic:
		switch op {
		case acl.Consume:
			return []int{opRead}
		case acl.Publish:
			return []int{opWrite}
		case acl.Describe:
			return []int{opDescribe, opDescribeConfigs}
		case acl.Admin:
			return []int{opCreate, opDelete, opAlter, opAlterConfigs}
		}
	case acl.Group:
		switch op {
		case acl.Consume:
			return []int{opRead}
		case acl.Describe:
			return []int{opDescribe}
		case acl.Admin:
			return []int{opDelete}
		}
	case acl.Cluster:
		switch op {
		case acl.Publish:
			return []int{opIdempotentWrite}
		case acl.Describe:
			return []int{opDescribe, opDescribeConfigs}
		case acl.Admin:
			return []int{opCreate, opAlter, opAlterConfigs, opClusterAction}
		}
	}
	return nil
}

// authorizedOps returns the authorized-operations bit field of a resource
// for the principal ctx carries: every operation Kafka defines for the
// type when authorization is off.
func (s *Server) authorizedOps(ctx context.Context, res acl.Resource, name string) int32 {
	var bits int32
	for _, op := range acl.Operations {
		if res == acl.Group && op == acl.Publish {
			continue
		}
		if s.can(ctx, res, name, op) {
			for _, k := range kafkaOpsOf(res, op) {
				bits |= 1 << k
			}
		}
	}
	return bits
}

// configAuthz checks op on a config resource: a topic's, a group's, or a
// broker's (the cluster). It returns Kafka's error code, 0 when allowed
// or for a resource type of no ACL resource (refused later as
// unsupported).
func (s *Server) configAuthz(ctx context.Context, typ kmsg.ConfigResourceType, name string, op acl.Operation) int16 {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !s.can(ctx, acl.Topic, name, op) {
			return kerr.TopicAuthorizationFailed.Code
		}
	case kmsg.ConfigResourceTypeGroupConfig:
		if !s.can(ctx, acl.Group, name, op) {
			return kerr.GroupAuthorizationFailed.Code
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if !s.can(ctx, acl.Cluster, acl.ClusterName, op) {
			return kerr.ClusterAuthorizationFailed.Code
		}
	}
	return 0
}

// shareTopicIDs returns the topic ids a ShareFetch or ShareAcknowledge
// names.
func shareTopicIDs(req kmsg.Request) [][16]byte {
	var ids [][16]byte
	switch r := req.(type) {
	case *kmsg.ShareFetchRequest:
		for _, t := range r.Topics {
			ids = append(ids, t.TopicID)
		}
	case *kmsg.ShareAcknowledgeRequest:
		for _, t := range r.Topics {
			ids = append(ids, t.TopicID)
		}
	}
	return ids
}

// shareAuthz checks a share group's data request: consume on the group
// and on every topic it names (an unknown id is left to the handler).
func (s *Server) shareAuthz(ctx context.Context, group string, topics [][16]byte) (int16, string) {
	if s.cfg.Authz == nil {
		return 0, ""
	}
	if !s.can(ctx, acl.Group, group, acl.Consume) {
		return kerr.GroupAuthorizationFailed.Code, "not authorized to consume as the group"
	}
	for _, id := range topics {
		if t, ok := s.b.TopicByID(kwire.UUIDString(id)); ok && !s.can(ctx, acl.Topic, t.Name, acl.Consume) {
			return kerr.TopicAuthorizationFailed.Code, "not authorized to consume topic " + t.Name
		}
	}
	return 0, ""
}

// schemaSubjectAuthz: binding a topic to a schema subject
// (spool.schema.subject; its messages are checked against the subject's
// schemas) needs describe on the subject, TOPIC_AUTHORIZATION_FAILED
// otherwise (Kafka has no subject resource).
func (s *Server) schemaSubjectAuthz(ctx context.Context, subject string) (int16, string) {
	if subject == "" || s.can(ctx, acl.Subject, subject, acl.Describe) {
		return 0, ""
	}
	return kerr.TopicAuthorizationFailed.Code, "not authorized to bind the topic to schema subject " + strconv.Quote(subject) + ": describe on it is needed"
}

// schemaSubjectOpsAuthz is schemaSubjectAuthz of the subject config
// changes set.
func (s *Server) schemaSubjectOpsAuthz(ctx context.Context, ops []alterOp) (int16, string) {
	for _, o := range ops {
		if o.name == cfgSchemaSubject && o.op == kmsg.IncrementalAlterConfigOpSet && o.value != nil {
			if code, msg := s.schemaSubjectAuthz(ctx, *o.value); code != 0 {
				return code, msg
			}
		}
	}
	return 0, ""
}
