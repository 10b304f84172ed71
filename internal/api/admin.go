package api

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// topics implements TopicService.
type topics struct {
	b       *broker.Broker
	streams *consume // ReadTopic streams take the slots of consumer sessions
}

func (h topics) CreateTopic(ctx context.Context, req *connect.Request[spoolv1.CreateTopicRequest]) (*connect.Response[spoolv1.CreateTopicResponse], error) {
	cfg, err := topicConfigFromProto(req.Msg.Config)
	if err != nil {
		return nil, err
	}
	t, err := h.b.CreateTopic(req.Msg.Name, cfg)
	if err != nil {
		return nil, toConnect(err)
	}
	h.b.AwaitLeaders(ctx, t.Name, 0, t.Config.Partitions, time.Now().Add(broker.LeaderWait))
	return connect.NewResponse(&spoolv1.CreateTopicResponse{Topic: topicToProto(t)}), nil
}

func (h topics) DeleteTopic(_ context.Context, req *connect.Request[spoolv1.DeleteTopicRequest]) (*connect.Response[spoolv1.DeleteTopicResponse], error) {
	if err := h.b.DeleteTopic(req.Msg.Name); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.DeleteTopicResponse{}), nil
}

func (h topics) ListTopics(context.Context, *connect.Request[spoolv1.ListTopicsRequest]) (*connect.Response[spoolv1.ListTopicsResponse], error) {
	out := &spoolv1.ListTopicsResponse{}
	for _, t := range h.b.Topics() {
		out.Topics = append(out.Topics, topicToProto(t))
	}
	return connect.NewResponse(out), nil
}

func (h topics) DescribeTopic(_ context.Context, req *connect.Request[spoolv1.DescribeTopicRequest]) (*connect.Response[spoolv1.DescribeTopicResponse], error) {
	info, err := h.b.DescribeTopic(req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &spoolv1.DescribeTopicResponse{
		Topic:         topicToProto(info.Topic),
		Messages:      info.Messages,
		Bytes:         info.Bytes,
		Subscriptions: info.Subscriptions,
	}
	leaders, err := h.b.PartitionLeaders(req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	for _, p := range info.Partitions {
		pi := &spoolv1.PartitionInfo{
			Partition: p.Partition, StartOffset: p.StartOffset, EndOffset: p.EndOffset, Bytes: p.Bytes,
		}
		if i := int(p.Partition); i >= 0 && i < len(leaders) {
			l := leaders[i]
			pi.Leader, pi.LeaderAddr = l.Node, l.Addr
			pi.Replicas, pi.InSync, pi.Learners = l.Replicas, l.InSync, l.Learners
			pi.Assigned = info.Topic.AssignmentOf(p.Partition).Voters
		}
		out.Partitions = append(out.Partitions, pi)
	}
	return connect.NewResponse(out), nil
}

func (h topics) ReassignPartition(_ context.Context, req *connect.Request[spoolv1.ReassignPartitionRequest]) (*connect.Response[spoolv1.ReassignPartitionResponse], error) {
	err := h.b.ReassignPartitions(req.Msg.Topic, []broker.Reassignment{{Partition: req.Msg.Partition, Voters: req.Msg.Replicas}})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.ReassignPartitionResponse{}), nil
}

// subs implements SubscriptionService.
type subs struct {
	b *broker.Broker
	h *Handler // its cluster node, if any
}

func (h subs) CreateSubscription(_ context.Context, req *connect.Request[spoolv1.CreateSubscriptionRequest]) (*connect.Response[spoolv1.CreateSubscriptionResponse], error) {
	cfg, err := subConfigFromProto(req.Msg.Config)
	if err != nil {
		return nil, err
	}
	s, err := h.b.CreateSubscription(req.Msg.Topic, req.Msg.Name, cfg)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.CreateSubscriptionResponse{Subscription: subToProto(s)}), nil
}

func (h subs) DeleteSubscription(_ context.Context, req *connect.Request[spoolv1.DeleteSubscriptionRequest]) (*connect.Response[spoolv1.DeleteSubscriptionResponse], error) {
	if err := h.b.DeleteSubscription(req.Msg.Topic, req.Msg.Name); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.DeleteSubscriptionResponse{}), nil
}

func (h subs) ListSubscriptions(_ context.Context, req *connect.Request[spoolv1.ListSubscriptionsRequest]) (*connect.Response[spoolv1.ListSubscriptionsResponse], error) {
	list, err := h.b.Subscriptions(req.Msg.Topic)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &spoolv1.ListSubscriptionsResponse{}
	for _, s := range list {
		out.Subscriptions = append(out.Subscriptions, subToProto(s))
	}
	return connect.NewResponse(out), nil
}

func (h subs) DescribeSubscription(_ context.Context, req *connect.Request[spoolv1.DescribeSubscriptionRequest]) (*connect.Response[spoolv1.DescribeSubscriptionResponse], error) {
	info, err := h.b.DescribeSubscription(req.Msg.Topic, req.Msg.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &spoolv1.DescribeSubscriptionResponse{
		Subscription: subToProto(info.Sub),
		Generation:   info.Group.Generation,
		Lag:          info.Lag,
		DeadLettered: info.DeadLettered,
		Dropped:      info.Dropped,
	}
	for _, m := range info.Group.Members {
		pm := &spoolv1.Member{
			MemberId:        m.ID,
			ClientId:        m.ClientID,
			InstanceId:      m.InstanceID,
			Partitions:      m.Owned,
			SessionDeadline: timestamppb.New(m.SessionDeadline),
		}
		for _, r := range m.Revoking {
			pm.Revoking = append(pm.Revoking, r.Partition)
		}
		out.Members = append(out.Members, pm)
	}
	out.Partitions = subPartitionsToProto(info.Partitions)
	out.Cluster = h.h.clusterInfo()
	return connect.NewResponse(out), nil
}

func subPartitionsToProto(ps []broker.SubPartition) []*spoolv1.SubscriptionPartition {
	out := make([]*spoolv1.SubscriptionPartition, 0, len(ps))
	for _, p := range ps {
		sp := &spoolv1.SubscriptionPartition{
			Partition:       p.Partition,
			CommittedOffset: p.Committed,
			EndOffset:       p.End,
			Lag:             p.Lag,
			MemberId:        p.Member,
		}
		if p.OldestUnconsumed > 0 {
			sp.OldestUnconsumedAge = durationpb.New(p.OldestUnconsumed)
		}
		if q := p.Queue; q != nil {
			sp.Queue = &spoolv1.QueuePartition{AckFloor: q.Floor, Ready: int32(q.Ready), Waiting: int32(q.Waiting),
				Blocked: int32(q.Blocked), InFlight: int32(q.Leased), InFlightLimited: q.InFlightLimited, Parked: q.Parked}
		}
		if h := p.Halt; h != nil {
			sp.Halted = &spoolv1.PartitionHalt{Offset: h.Offset, Error: h.Error, Attempts: int32(h.Attempts),
				Time: timestamppb.New(h.Time), MemberId: h.Member}
		}
		out = append(out, sp)
	}
	return out
}

func (h subs) ResetSubscription(_ context.Context, req *connect.Request[spoolv1.ResetSubscriptionRequest]) (*connect.Response[spoolv1.ResetSubscriptionResponse], error) {
	if req.Msg.To == nil || req.Msg.To.Position == nil {
		return nil, invalid("a reset needs a position (to)")
	}
	to, err := positionFromProto(req.Msg.To)
	if err != nil {
		return nil, err
	}
	part := broker.AllPartitions
	if req.Msg.Partition != nil {
		if part = req.Msg.GetPartition(); part < 0 {
			return nil, invalid("partition %d is negative", part)
		}
	}
	res, err := h.b.ResetSubscription(req.Msg.Topic, req.Msg.Name, to, part)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.ResetSubscriptionResponse{Partitions: subPartitionsToProto(res.Partitions)}), nil
}

func (h subs) PurgeSubscription(_ context.Context, req *connect.Request[spoolv1.PurgeSubscriptionRequest]) (*connect.Response[spoolv1.PurgeSubscriptionResponse], error) {
	part := broker.AllPartitions
	if req.Msg.Partition != nil {
		if part = req.Msg.GetPartition(); part < 0 {
			return nil, invalid("partition %d is negative", part)
		}
	}
	res, err := h.b.PurgeSubscription(req.Msg.Topic, req.Msg.Name, part)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.PurgeSubscriptionResponse{Partitions: subPartitionsToProto(res.Partitions), Skipped: res.Skipped}), nil
}

func (h subs) ListDeadLetters(_ context.Context, req *connect.Request[spoolv1.ListDeadLettersRequest]) (*connect.Response[spoolv1.ListDeadLettersResponse], error) {
	if req.Msg.Limit < 0 {
		return nil, invalid("limit must not be negative")
	}
	list, next, err := h.b.ListDeadLetters(req.Msg.Topic, req.Msg.Subscription, req.Msg.FromOffset, int(req.Msg.Limit))
	if err != nil {
		return nil, toConnect(err)
	}
	out := &spoolv1.ListDeadLettersResponse{NextOffset: next}
	for i := range list {
		d := &list[i]
		msg := deliveriesToProto([]broker.Delivered{d.Message})[0]
		out.DeadLetters = append(out.DeadLetters, &spoolv1.DeadLetter{
			Offset: d.Offset, Message: msg, Reason: d.Reason, DeliveryCount: int32(d.DeliveryCount), Error: d.Error,
			OriginPartition: d.OriginPartition, OriginOffset: d.OriginOffset, Redriven: d.Redriven,
		})
	}
	return connect.NewResponse(out), nil
}

func (h subs) Redrive(ctx context.Context, req *connect.Request[spoolv1.RedriveRequest]) (*connect.Response[spoolv1.RedriveResponse], error) {
	m := req.Msg
	if m.Limit < 0 {
		return nil, invalid("limit must not be negative")
	}
	if err := catalog.ValidateRate("rate limit", m.RateLimit); err != nil {
		return nil, toConnect(err)
	}
	target := broker.RedriveToSubscription
	switch m.Target {
	case spoolv1.RedriveTarget_REDRIVE_TARGET_UNSPECIFIED, spoolv1.RedriveTarget_REDRIVE_TARGET_SUBSCRIPTION:
	case spoolv1.RedriveTarget_REDRIVE_TARGET_TOPIC:
		target = broker.RedriveToTopic
	default:
		return nil, invalid("unknown redrive target %d", m.Target)
	}
	rep, err := h.b.Redrive(ctx, broker.RedriveRequest{Topic: m.Topic, Subscription: m.Subscription, Target: target,
		Reason: m.Reason, Limit: m.Limit, RateLimit: m.RateLimit, DryRun: m.DryRun})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.RedriveResponse{Moved: rep.Moved, Skipped: rep.Skipped, Already: rep.Already, Offsets: rep.Offsets}), nil
}
