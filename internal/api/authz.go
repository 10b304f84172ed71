package api

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/auth/acl"
)

// Authorization of the native API (docs/security.md, "What each request
// needs"): one table, procedure → the checks its request needs, applied
// by an interceptor before the handler runs — to every unary request, to
// a ReadTopic's request, and to each ConsumeStart of a Consume stream.
// Publish and PublishStream are checked where their requests are decoded
// (publish.admit): their bodies reach the handler still encoded. Lists
// (ListTopics, ListSubscriptions, and a DescribeTopic's subscriptions)
// leave out what the principal may not describe.

// SetAuthorizer turns authorization on (nil: off). Call it before
// serving.
func (h *Handler) SetAuthorizer(a *acl.Authorizer) { h.authz = a }

// check is one authorization a request needs.
type check struct {
	res  acl.Resource
	name string
	op   acl.Operation
}

func topicCheck(name string, op acl.Operation) check { return check{acl.Topic, name, op} }
func groupCheck(name string, op acl.Operation) check { return check{acl.Group, name, op} }
func clusterCheck(op acl.Operation) check            { return check{acl.Cluster, acl.ClusterName, op} }

// subjectChecks: binding a topic to a schema subject (its messages are
// checked against the subject's schemas) needs describe on the subject.
func subjectChecks(subject string) []check {
	if subject == "" {
		return nil
	}
	return []check{{acl.Subject, subject, acl.Describe}}
}

// anyTopicPublish stands for "publish on the cluster, or on some topic"
// (InitProducer, as Kafka's InitProducerId without a transactional id).
var anyTopicPublish = check{res: acl.Topic, op: acl.Publish}

// requestChecks returns what a request of procedure needs; ok false for a
// procedure the table does not know (refused: a new RPC must be added).
func requestChecks(procedure string, msg any) (checks []check, ok bool) {
	switch procedure {
	case spoolv1connect.TopicServiceCreateTopicProcedure:
		m := msg.(*spoolv1.CreateTopicRequest)
		return append([]check{topicCheck(m.GetName(), acl.Admin)}, subjectChecks(m.GetConfig().GetSchemaSubject())...), true
	case spoolv1connect.TopicServiceDeleteTopicProcedure:
		return []check{topicCheck(msg.(*spoolv1.DeleteTopicRequest).GetName(), acl.Admin)}, true
	case spoolv1connect.TopicServiceListTopicsProcedure:
		return nil, true // filtered
	case spoolv1connect.TopicServiceDescribeTopicProcedure:
		return []check{topicCheck(msg.(*spoolv1.DescribeTopicRequest).GetName(), acl.Describe)}, true
	case spoolv1connect.TopicServiceAlterTopicProcedure:
		m := msg.(*spoolv1.AlterTopicRequest)
		checks := []check{topicCheck(m.GetName(), acl.Admin)}
		if slices.Contains(m.GetUpdateMask().GetPaths(), "schema_subject") {
			checks = append(checks, subjectChecks(m.GetConfig().GetSchemaSubject())...)
		}
		return checks, true
	case spoolv1connect.TopicServiceAddPartitionsProcedure:
		return []check{topicCheck(msg.(*spoolv1.AddPartitionsRequest).GetName(), acl.Admin)}, true
	case spoolv1connect.TopicServiceReassignPartitionProcedure:
		return []check{clusterCheck(acl.Admin)}, true
	case spoolv1connect.TopicServiceReadTopicProcedure:
		return []check{topicCheck(msg.(*spoolv1.ReadTopicRequest).GetTopic(), acl.Consume)}, true

	case spoolv1connect.SubscriptionServiceCreateSubscriptionProcedure:
		m := msg.(*spoolv1.CreateSubscriptionRequest)
		checks := []check{topicCheck(m.GetTopic(), acl.Consume), groupCheck(m.GetName(), acl.Admin)}
		if dlt := m.GetConfig().GetDeadLetterTopic(); dlt != "" {
			checks = append(checks, topicCheck(dlt, acl.Publish)) // dead letters are published to it
		}
		return checks, true
	case spoolv1connect.SubscriptionServiceDeleteSubscriptionProcedure:
		m := msg.(*spoolv1.DeleteSubscriptionRequest)
		return []check{groupCheck(m.GetName(), acl.Admin)}, true
	case spoolv1connect.SubscriptionServiceListSubscriptionsProcedure:
		return []check{topicCheck(msg.(*spoolv1.ListSubscriptionsRequest).GetTopic(), acl.Describe)}, true // and filtered
	case spoolv1connect.SubscriptionServiceDescribeSubscriptionProcedure:
		m := msg.(*spoolv1.DescribeSubscriptionRequest)
		return []check{groupCheck(m.GetName(), acl.Describe)}, true
	case spoolv1connect.SubscriptionServiceAlterSubscriptionProcedure:
		m := msg.(*spoolv1.AlterSubscriptionRequest)
		return []check{groupCheck(m.GetName(), acl.Admin)}, true
	case spoolv1connect.SubscriptionServiceResetSubscriptionProcedure:
		m := msg.(*spoolv1.ResetSubscriptionRequest)
		return []check{groupCheck(m.GetName(), acl.Admin)}, true
	case spoolv1connect.SubscriptionServicePurgeSubscriptionProcedure:
		m := msg.(*spoolv1.PurgeSubscriptionRequest)
		return []check{groupCheck(m.GetName(), acl.Admin)}, true
	case spoolv1connect.SubscriptionServiceListDeadLettersProcedure:
		m := msg.(*spoolv1.ListDeadLettersRequest)
		// Dead letters are the topic's messages: consume on both, as
		// consuming them through the subscription needs.
		return []check{topicCheck(m.GetTopic(), acl.Consume), groupCheck(m.GetSubscription(), acl.Consume)}, true
	case spoolv1connect.SubscriptionServiceRedriveProcedure:
		m := msg.(*spoolv1.RedriveRequest)
		checks := []check{groupCheck(m.GetSubscription(), acl.Admin)}
		if m.GetTarget() == spoolv1.RedriveTarget_REDRIVE_TARGET_TOPIC {
			checks = append(checks, topicCheck(m.GetTopic(), acl.Publish)) // republished to every subscription
		}
		return checks, true

	case spoolv1connect.PublishServiceInitProducerProcedure:
		return []check{anyTopicPublish}, true
	case spoolv1connect.ConsumeServiceConsumeProcedure:
		if st := msg.(*spoolv1.ConsumeRequest).GetStart(); st != nil {
			return []check{topicCheck(st.GetTopic(), acl.Consume), groupCheck(st.GetSubscription(), acl.Consume)}, true
		}
		return nil, true // within a started session

	case spoolv1connect.ClusterServiceClusterStatusProcedure:
		return []check{clusterCheck(acl.Describe)}, true
	case spoolv1connect.ClusterServiceAddNodeProcedure,
		spoolv1connect.ClusterServiceRemoveNodeProcedure,
		spoolv1connect.ClusterServiceTransferLeadershipProcedure:
		return []check{clusterCheck(acl.Admin)}, true
	}
	return nil, false
}

// authorize runs a request's checks against the principal ctx carries.
func (h *Handler) authorize(ctx context.Context, procedure string, msg any) error {
	checks, ok := requestChecks(procedure, msg)
	if !ok {
		return toConnect(acl.Denied(acl.Request{Principal: auth.Principal(ctx), Resource: acl.Cluster, Operation: acl.Admin}))
	}
	for _, c := range checks {
		if err := h.checkOne(ctx, c); err != nil {
			return toConnect(err)
		}
	}
	return nil
}

func (h *Handler) checkOne(ctx context.Context, c check) error {
	if c == anyTopicPublish {
		q := acl.Request{Principal: auth.Principal(ctx), Host: auth.Host(ctx), Resource: acl.Cluster, Name: acl.ClusterName, Operation: acl.Publish}
		if h.authz.Allowed(q) || h.authz.AllowedOnSome(q.Principal, q.Host, acl.Topic, acl.Publish) {
			return nil
		}
		return acl.Denied(q)
	}
	return h.authz.Check(ctx, c.res, c.name, c.op)
}

// filterResponse leaves out of a list what the principal may not describe.
func (h *Handler) filterResponse(ctx context.Context, procedure string, resp any) {
	allowed := func(res acl.Resource, name string) bool { return h.authz.Check(ctx, res, name, acl.Describe) == nil }
	switch procedure {
	case spoolv1connect.TopicServiceListTopicsProcedure:
		m := resp.(*spoolv1.ListTopicsResponse)
		m.Topics = slices.DeleteFunc(m.Topics, func(t *spoolv1.Topic) bool { return !allowed(acl.Topic, t.GetName()) })
	case spoolv1connect.TopicServiceDescribeTopicProcedure:
		m := resp.(*spoolv1.DescribeTopicResponse)
		kept := m.Subscriptions[:0]
		for _, s := range m.Subscriptions {
			if allowed(acl.Group, s) {
				kept = append(kept, s)
			}
		}
		m.Subscriptions = kept
	case spoolv1connect.SubscriptionServiceListSubscriptionsProcedure:
		m := resp.(*spoolv1.ListSubscriptionsResponse)
		m.Subscriptions = slices.DeleteFunc(m.Subscriptions, func(s *spoolv1.Subscription) bool { return !allowed(acl.Group, s.GetName()) })
	}
}

// authzInterceptor applies the table.
type authzInterceptor struct{ h *Handler }

func (i authzInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if i.h.authz == nil {
			return next(ctx, req)
		}
		proc := req.Spec().Procedure
		if proc != spoolv1connect.PublishServicePublishProcedure {
			if err := i.h.authorize(ctx, proc, req.Any()); err != nil {
				return nil, err
			}
		}
		resp, err := next(ctx, req)
		if err == nil && resp != nil {
			i.h.filterResponse(ctx, proc, resp.Any())
		}
		return resp, err
	}
}

func (authzInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i authzInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if i.h.authz == nil || conn.Spec().Procedure == spoolv1connect.PublishServicePublishStreamProcedure {
			return next(ctx, conn)
		}
		return next(ctx, &authzConn{StreamingHandlerConn: conn, h: i.h, ctx: ctx})
	}
}

// authzConn authorizes each message a stream receives.
type authzConn struct {
	connect.StreamingHandlerConn
	h   *Handler
	ctx context.Context
}

func (c *authzConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if err := c.h.authorize(c.ctx, c.Spec().Procedure, msg); err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return ce
		}
		return err
	}
	return nil
}
