package client

import (
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
	case c.Discard < DiscardDefault || c.Discard > DiscardNew:
		return invalidArgument("topic config: unknown Discard %d", c.Discard)
	case c.Durability < DurabilityDefault || c.Durability > DurabilityNone:
		return invalidArgument("topic config: unknown Durability %d", c.Durability)
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
	}
}

func topicConfigFromProto(c *spoolv1.TopicConfig) TopicConfig {
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

func (c SubscriptionConfig) toProto() (*spoolv1.SubscriptionConfig, error) {
	if c.Mode < ModeDefault || c.Mode > ModeQueue {
		return nil, invalidArgument("subscription config: unknown Mode %d", c.Mode)
	}
	start, err := c.Start.toProto()
	if err != nil {
		return nil, err
	}
	return &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode(c.Mode), Filter: c.Filter, Start: start}, nil
}

func subscriptionFromProto(s *spoolv1.Subscription) Subscription {
	cfg := s.GetConfig()
	return Subscription{
		Topic: s.GetTopic(),
		Name:  s.GetName(),
		Config: SubscriptionConfig{
			Mode:   Mode(cfg.GetMode()),
			Filter: cfg.GetFilter(),
			Start:  positionFromProto(cfg.GetStart()),
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
		})
	}
	return out
}

func subscriptionInfoFromProto(r *spoolv1.DescribeSubscriptionResponse) *SubscriptionInfo {
	info := &SubscriptionInfo{
		Subscription: subscriptionFromProto(r.GetSubscription()),
		Generation:   r.GetGeneration(),
		Partitions:   subscriptionPartitionsFromProto(r.GetPartitions()),
		Lag:          r.GetLag(),
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
