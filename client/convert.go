package client

import (
	"maps"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// Conversions between the SDK's Go types and the generated protobuf types;
// nothing proto-typed appears in the public API.

func durationOrNil(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func (c TopicConfig) validate() error {
	switch {
	case c.Partitions < 0:
		return invalidArgument("topic config: negative Partitions %d", c.Partitions)
	case c.Retention < 0, c.DedupWindow < 0, c.MessageTTL < 0:
		return invalidArgument("topic config: negative duration")
	case c.RetentionBytes < 0, c.MaxMessages < 0, c.MaxBytes < 0, c.MaxMessageBytes < 0:
		return invalidArgument("topic config: negative limit")
	case c.Replicas < 0:
		return invalidArgument("topic config: negative Replicas %d", c.Replicas)
	case c.Discard < DiscardDefault || c.Discard > DiscardNew:
		return invalidArgument("topic config: unknown Discard %d", c.Discard)
	case c.Durability < DurabilityDefault || c.Durability > DurabilityNone:
		return invalidArgument("topic config: unknown Durability %d", c.Durability)
	case c.SchemaMode < SchemaModeDefault || c.SchemaMode > SchemaModeDeadLetter:
		return invalidArgument("topic config: unknown SchemaMode %d", c.SchemaMode)
	}
	return nil
}

func (c TopicConfig) toProto() *spoolv1.TopicConfig {
	return &spoolv1.TopicConfig{
		Partitions:      c.Partitions,
		Retention:       durationOrNil(c.Retention),
		RetentionBytes:  c.RetentionBytes,
		MaxMessages:     c.MaxMessages,
		MaxBytes:        c.MaxBytes,
		Discard:         spoolv1.Discard(c.Discard),
		DedupWindow:     durationOrNil(c.DedupWindow),
		MessageTtl:      durationOrNil(c.MessageTTL),
		Durability:      spoolv1.Durability(c.Durability),
		MaxMessageBytes: c.MaxMessageBytes,
		WorkQueue:       c.WorkQueue,
		Replicas:        c.Replicas,
		SchemaSubject:   c.SchemaSubject,
		SchemaMode:      spoolv1.SchemaMode(c.SchemaMode),
		Owner:           c.Owner,
		Description:     c.Description,
		Labels:          labelsToProto(c.Labels),
	}
}

// labelsToProto lists labels in key order.
func labelsToProto(m map[string]string) []*spoolv1.Label {
	var out []*spoolv1.Label
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &spoolv1.Label{Key: k, Value: m[k]})
	}
	return out
}

func topicConfigFromProto(c *spoolv1.TopicConfig) TopicConfig {
	var labels map[string]string
	if len(c.GetLabels()) > 0 {
		labels = make(map[string]string, len(c.GetLabels()))
		for _, l := range c.GetLabels() {
			labels[l.GetKey()] = l.GetValue()
		}
	}
	return TopicConfig{
		Partitions:      c.GetPartitions(),
		Retention:       c.GetRetention().AsDuration(),
		RetentionBytes:  c.GetRetentionBytes(),
		MaxMessages:     c.GetMaxMessages(),
		MaxBytes:        c.GetMaxBytes(),
		Discard:         Discard(c.GetDiscard()),
		DedupWindow:     c.GetDedupWindow().AsDuration(),
		MessageTTL:      c.GetMessageTtl().AsDuration(),
		Durability:      Durability(c.GetDurability()),
		MaxMessageBytes: c.GetMaxMessageBytes(),
		WorkQueue:       c.GetWorkQueue(),
		Replicas:        c.GetReplicas(),
		SchemaSubject:   c.GetSchemaSubject(),
		SchemaMode:      SchemaMode(c.GetSchemaMode()),
		Owner:           c.GetOwner(),
		Description:     c.GetDescription(),
		Labels:          labels,
	}
}

func topicFromProto(t *spoolv1.Topic) Topic {
	return Topic{
		Name:    t.GetName(),
		Config:  topicConfigFromProto(t.GetConfig()),
		Created: timeOf(t.GetCreated()),
		ID:      t.GetId(),
	}
}

func topicInfoFromProto(r *spoolv1.DescribeTopicResponse) *TopicInfo {
	info := &TopicInfo{
		Topic:         topicFromProto(r.GetTopic()),
		Messages:      r.GetMessages(),
		Bytes:         r.GetBytes(),
		Subscriptions: r.GetSubscriptions(),
	}
	for _, p := range r.GetPartitions() {
		info.Partitions = append(info.Partitions, PartitionInfo{
			Partition:   p.GetPartition(),
			StartOffset: p.GetStartOffset(),
			EndOffset:   p.GetEndOffset(),
			Bytes:       p.GetBytes(),
			Leader:      p.GetLeader(),
			LeaderAddr:  p.GetLeaderAddr(),
			Replicas:    p.GetReplicas(),
			InSync:      p.GetInSync(),
			Learners:    p.GetLearners(),
			Assigned:    p.GetAssigned(),
		})
	}
	return info
}

// toProto converts p; the zero Position becomes nil (server default).
func (p Position) toProto() (*spoolv1.Position, error) {
	switch p.kind {
	case posEarliest:
		return &spoolv1.Position{Position: &spoolv1.Position_Earliest{Earliest: true}}, nil
	case posLatest:
		return &spoolv1.Position{Position: &spoolv1.Position_Latest{Latest: true}}, nil
	case posTime:
		return &spoolv1.Position{Position: &spoolv1.Position_Time{Time: timestamppb.New(p.time)}}, nil
	case posOffset:
		if p.offset < 0 {
			return nil, invalidArgument("position: negative offset %d", p.offset)
		}
		return &spoolv1.Position{Position: &spoolv1.Position_Offset{Offset: p.offset}}, nil
	}
	return nil, nil
}

func positionFromProto(p *spoolv1.Position) Position {
	switch v := p.GetPosition().(type) {
	case *spoolv1.Position_Earliest:
		return Earliest()
	case *spoolv1.Position_Latest:
		return Latest()
	case *spoolv1.Position_Time:
		return AtTime(v.Time.AsTime())
	case *spoolv1.Position_Offset:
		return AtOffset(v.Offset)
	}
	return Position{}
}

func (c SubscriptionConfig) validate() error {
	b := c.Backoff
	switch {
	case c.Mode < ModeDefault || c.Mode > ModeQueue:
		return invalidArgument("subscription config: unknown Mode %d", c.Mode)
	case c.Ordering < OrderingDefault || c.Ordering > OrderingKey:
		return invalidArgument("subscription config: unknown Ordering %d", c.Ordering)
	case c.OnExpired < ExpiredDefault || c.OnExpired > ExpiredDrop:
		return invalidArgument("subscription config: unknown OnExpired %d", c.OnExpired)
	case c.OnFailure < FailureDefault || c.OnFailure > FailureStop:
		return invalidArgument("subscription config: unknown OnFailure %d", c.OnFailure)
	case b.Jitter < JitterDefault || b.Jitter > JitterNone:
		return invalidArgument("subscription config: unknown Backoff.Jitter %d", b.Jitter)
	case c.AckTimeout < 0, c.ProcessedTTL < 0, b.Initial < 0, b.Max < 0, slices.ContainsFunc(b.Delays, func(d time.Duration) bool { return d < 0 }):
		return invalidArgument("subscription config: negative duration")
	case c.MaxDeliveries < 0, c.MaxInFlight < 0, c.RateBurst < 0:
		return invalidArgument("subscription config: negative limit")
	case !(c.RateLimit >= 0) || math.IsInf(c.RateLimit, 1):
		return invalidArgument("subscription config: RateLimit %v is not a finite non-negative number", c.RateLimit)
	case !(b.Multiplier >= 0) || math.IsInf(b.Multiplier, 1):
		return invalidArgument("subscription config: Backoff.Multiplier %v is not a finite non-negative number", b.Multiplier)
	}
	return nil
}

func (c SubscriptionConfig) toProto() (*spoolv1.SubscriptionConfig, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	start, err := c.Start.toProto()
	if err != nil {
		return nil, err
	}
	return &spoolv1.SubscriptionConfig{
		Mode:            spoolv1.Mode(c.Mode),
		Filter:          c.Filter,
		Start:           start,
		AckTimeout:      durationOrNil(c.AckTimeout),
		MaxDeliveries:   c.MaxDeliveries,
		Backoff:         c.Backoff.toProto(),
		Ordering:        spoolv1.Ordering(c.Ordering),
		DeadLetterTopic: c.DeadLetterTopic,
		OnExpired:       spoolv1.ExpiredAction(c.OnExpired),
		MaxInFlight:     c.MaxInFlight,
		RateLimit:       c.RateLimit,
		RateBurst:       c.RateBurst,
		OnFailure:       spoolv1.FailureAction(c.OnFailure),
		ProcessedKey:    c.ProcessedKey,
		ProcessedTtl:    durationOrNil(c.ProcessedTTL),
	}, nil
}

// toProto converts b; the zero Backoff becomes nil (server defaults).
func (b Backoff) toProto() *spoolv1.Backoff {
	if b.Initial == 0 && b.Max == 0 && b.Multiplier == 0 && b.Jitter == JitterDefault && len(b.Delays) == 0 {
		return nil
	}
	pb := &spoolv1.Backoff{
		Initial:    durationOrNil(b.Initial),
		Max:        durationOrNil(b.Max),
		Multiplier: b.Multiplier,
		Jitter:     spoolv1.Jitter(b.Jitter),
	}
	for _, d := range b.Delays {
		pb.Delays = append(pb.Delays, durationpb.New(d))
	}
	return pb
}

func backoffFromProto(b *spoolv1.Backoff) Backoff {
	out := Backoff{
		Initial:    b.GetInitial().AsDuration(),
		Max:        b.GetMax().AsDuration(),
		Multiplier: b.GetMultiplier(),
		Jitter:     Jitter(b.GetJitter()),
	}
	for _, d := range b.GetDelays() {
		out.Delays = append(out.Delays, d.AsDuration())
	}
	return out
}

func subscriptionFromProto(s *spoolv1.Subscription) Subscription {
	cfg := s.GetConfig()
	return Subscription{
		Topic: s.GetTopic(),
		Name:  s.GetName(),
		Config: SubscriptionConfig{
			Mode:            Mode(cfg.GetMode()),
			Filter:          cfg.GetFilter(),
			Start:           positionFromProto(cfg.GetStart()),
			AckTimeout:      cfg.GetAckTimeout().AsDuration(),
			MaxDeliveries:   cfg.GetMaxDeliveries(),
			Backoff:         backoffFromProto(cfg.GetBackoff()),
			Ordering:        Ordering(cfg.GetOrdering()),
			DeadLetterTopic: cfg.GetDeadLetterTopic(),
			OnExpired:       ExpiredAction(cfg.GetOnExpired()),
			MaxInFlight:     cfg.GetMaxInFlight(),
			RateLimit:       cfg.GetRateLimit(),
			RateBurst:       cfg.GetRateBurst(),
			OnFailure:       FailureAction(cfg.GetOnFailure()),
			ProcessedKey:    cfg.GetProcessedKey(),
			ProcessedTTL:    cfg.GetProcessedTtl().AsDuration(),
		},
		Created: timeOf(s.GetCreated()),
	}
}

func subscriptionPartitionsFromProto(ps []*spoolv1.SubscriptionPartition) []SubscriptionPartition {
	out := make([]SubscriptionPartition, 0, len(ps))
	for _, p := range ps {
		out = append(out, SubscriptionPartition{
			Partition:           p.GetPartition(),
			CommittedOffset:     p.GetCommittedOffset(),
			EndOffset:           p.GetEndOffset(),
			Lag:                 p.GetLag(),
			OldestUnconsumedAge: p.GetOldestUnconsumedAge().AsDuration(),
			MemberID:            p.GetMemberId(),
			Queue:               queuePartitionFromProto(p.GetQueue()),
			Halted:              haltFromProto(p.GetHalted()),
		})
	}
	return out
}

func queuePartitionFromProto(q *spoolv1.QueuePartition) *QueuePartition {
	if q == nil {
		return nil
	}
	return &QueuePartition{
		AckFloor:        q.GetAckFloor(),
		Ready:           q.GetReady(),
		Waiting:         q.GetWaiting(),
		Blocked:         q.GetBlocked(),
		InFlight:        q.GetInFlight(),
		InFlightLimited: q.GetInFlightLimited(),
		Parked:          q.GetParked(),
	}
}

func subscriptionInfoFromProto(r *spoolv1.DescribeSubscriptionResponse) *SubscriptionInfo {
	info := &SubscriptionInfo{
		Subscription: subscriptionFromProto(r.GetSubscription()),
		Generation:   r.GetGeneration(),
		Partitions:   subscriptionPartitionsFromProto(r.GetPartitions()),
		Lag:          r.GetLag(),
		DeadLettered: r.GetDeadLettered(),
		Dropped:      r.GetDropped(),
	}
	for _, m := range r.GetMembers() {
		info.Members = append(info.Members, Member{
			MemberID:        m.GetMemberId(),
			ClientID:        m.GetClientId(),
			InstanceID:      m.GetInstanceId(),
			Partitions:      m.GetPartitions(),
			Revoking:        m.GetRevoking(),
			SessionDeadline: timeOf(m.GetSessionDeadline()),
		})
	}
	return info
}

func deadLetterFromProto(d *spoolv1.DeadLetter) DeadLetter {
	out := DeadLetter{
		Offset:          d.GetOffset(),
		Reason:          d.GetReason(),
		DeliveryCount:   d.GetDeliveryCount(),
		Error:           d.GetError(),
		OriginPartition: d.GetOriginPartition(),
		OriginOffset:    d.GetOriginOffset(),
		Redriven:        d.GetRedriven(),
	}
	if m := d.GetMessage(); m != nil {
		out.Message = *messagesFromDeliveries("", []*spoolv1.Delivery{m})[0]
	}
	return out
}

func (r RedriveRequest) toProto() (*spoolv1.RedriveRequest, error) {
	switch {
	case r.Limit < 0:
		return nil, invalidArgument("redrive: negative Limit %d", r.Limit)
	case !(r.RateLimit >= 0) || math.IsInf(r.RateLimit, 1):
		return nil, invalidArgument("redrive: RateLimit %v is not a finite non-negative number", r.RateLimit)
	}
	target := spoolv1.RedriveTarget_REDRIVE_TARGET_SUBSCRIPTION
	if r.ToTopic {
		target = spoolv1.RedriveTarget_REDRIVE_TARGET_TOPIC
	}
	return &spoolv1.RedriveRequest{
		Topic:        r.Topic,
		Subscription: r.Subscription,
		Target:       target,
		Reason:       r.Reason,
		Limit:        r.Limit,
		RateLimit:    r.RateLimit,
		DryRun:       r.DryRun,
	}, nil
}

func haltFromProto(h *spoolv1.PartitionHalt) *PartitionHalt {
	if h == nil {
		return nil
	}
	return &PartitionHalt{Offset: h.GetOffset(), Error: h.GetError(), Attempts: h.GetAttempts(), Time: timeOf(h.GetTime()), MemberID: h.GetMemberId()}
}
