package client

import (
	"context"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// Changing topics and subscriptions while they are in use. A change names
// the settings it changes (TopicField, SubField); each takes its value
// from the config passed along, a zero value meaning the server's default.
// Settings not named stay as they are. The server checks the whole change
// before applying any of it.

// TopicField names a topic setting AlterTopic changes.
type TopicField string

// The topic settings AlterTopic changes. The partition count grows with
// AddPartitions. Durability cannot change: the server refuses a value
// other than the topic's with ErrInvalidArgument.
const (
	TopicFieldRetention       TopicField = "retention"
	TopicFieldRetentionBytes  TopicField = "retention_bytes"
	TopicFieldMaxMessages     TopicField = "max_messages"
	TopicFieldMaxBytes        TopicField = "max_bytes"
	TopicFieldDiscard         TopicField = "discard"
	TopicFieldDedupWindow     TopicField = "dedup_window"
	TopicFieldMessageTTL      TopicField = "message_ttl"
	TopicFieldDurability      TopicField = "durability"
	TopicFieldMaxMessageBytes TopicField = "max_message_bytes"
	TopicFieldWorkQueue       TopicField = "work_queue"
	TopicFieldSchemaSubject   TopicField = "schema_subject" // "" unbinds the topic
	TopicFieldSchemaMode      TopicField = "schema_mode"
	TopicFieldOwner           TopicField = "owner"
	TopicFieldDescription     TopicField = "description"
	TopicFieldLabels          TopicField = "labels" // replaces the whole set; empty removes them all
)

// AlterTopic sets the fields of topic name's config to their values in cfg
// and returns the topic with its effective config. The change applies at
// once: limits to the next publish, retention and work-queue retention to
// the next maintenance pass (within a second), the de-duplication window
// to the ids the topic remembers, the message TTL to messages queue
// subscriptions read from then on. A field set to zero takes the server's
// default (Retention 0: the server's default retention, keep forever unless
// configured otherwise). No fields, an unknown field or a bad value is
// ErrInvalidArgument and changes nothing; ErrTopicNotFound if there is no
// such topic.
func (c *Client) AlterTopic(ctx context.Context, name string, cfg TopicConfig, fields ...TopicField) (Topic, error) {
	if len(fields) == 0 {
		return Topic{}, invalidArgument("AlterTopic: no fields to change")
	}
	if err := cfg.validate(); err != nil {
		return Topic{}, err
	}
	mask := &fieldmaskpb.FieldMask{}
	for _, f := range fields {
		mask.Paths = append(mask.Paths, string(f))
	}
	resp, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.AlterTopic), &spoolv1.AlterTopicRequest{Name: name, Config: cfg.toProto(), UpdateMask: mask})
	if err != nil {
		return Topic{}, err
	}
	return topicFromProto(resp.GetTopic()), nil
}

// AddPartitions grows topic name to partitions partitions (the new total)
// and returns the topic. Partitions only grow: a count not above the
// current one, or above 1024, is ErrInvalidArgument. Keyed messages go to
// murmur2(key) mod partitions, so a key's later messages may land in
// another partition than its earlier ones. Every subscription receives the
// new partitions from their first message.
func (c *Client) AddPartitions(ctx context.Context, name string, partitions int32) (Topic, error) {
	resp, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.AddPartitions), &spoolv1.AddPartitionsRequest{Name: name, Partitions: partitions})
	if err != nil {
		return Topic{}, err
	}
	return topicFromProto(resp.GetTopic()), nil
}

// ReassignPartition moves, on a cluster, partition p of topic to the
// replicas given (node ids, as many as the topic's replication factor; the
// first is the preferred leader). It returns once the catalog records them;
// the partition's leader then moves the replicas, which DescribeTopic
// shows (PartitionInfo.Replicas reaching Assigned).
func (c *Client) ReassignPartition(ctx context.Context, topic string, p int32, replicas []uint64) error {
	_, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.ReassignPartition), &spoolv1.ReassignPartitionRequest{Topic: topic, Partition: p, Replicas: replicas})
	return err
}

// SubField names a subscription setting AlterSubscription changes.
type SubField string

// The subscription settings AlterSubscription changes. SubFieldBackoff
// replaces the whole backoff; SubFieldBackoffInitial and the others change
// one part of it. AckTimeout, OnExpired, MaxInFlight, RateLimit,
// RateBurst, ProcessedKey and ProcessedTTL apply to queue subscriptions only, OnFailure to stream
// subscriptions only. Mode, Start, Ordering and DeadLetterTopic cannot
// change: reset a subscription with ResetSubscription, or create a new one.
const (
	SubFieldFilter            SubField = "filter"
	SubFieldAckTimeout        SubField = "ack_timeout"
	SubFieldMaxDeliveries     SubField = "max_deliveries"
	SubFieldBackoff           SubField = "backoff"
	SubFieldBackoffInitial    SubField = "backoff.initial"
	SubFieldBackoffMax        SubField = "backoff.max"
	SubFieldBackoffMultiplier SubField = "backoff.multiplier"
	SubFieldBackoffJitter     SubField = "backoff.jitter"
	SubFieldBackoffDelays     SubField = "backoff.delays"
	SubFieldOnExpired         SubField = "on_expired"
	SubFieldMaxInFlight       SubField = "max_in_flight"
	SubFieldRateLimit         SubField = "rate_limit"
	SubFieldRateBurst         SubField = "rate_burst"
	SubFieldOnFailure         SubField = "on_failure"
	SubFieldProcessedKey      SubField = "processed_key"
	SubFieldProcessedTTL      SubField = "processed_ttl"
)

// AlterSubscription sets the fields of subscription name's config to their
// values in cfg (zero: the default) and returns the subscription with its
// effective config. Running consumers keep their sessions and leases and
// continue under the new settings: a new filter applies to messages read
// from then on (messages already read keep their fate); new queue settings
// to later decisions (leases keep their deadlines, redeliveries already
// scheduled their times); max in flight and the rate limit to the next
// delivery. No fields, an unknown field, a field that cannot change or
// does not apply to the subscription's mode, or a bad value is
// ErrInvalidArgument and changes nothing.
func (c *Client) AlterSubscription(ctx context.Context, topic, name string, cfg SubscriptionConfig, fields ...SubField) (Subscription, error) {
	if len(fields) == 0 {
		return Subscription{}, invalidArgument("AlterSubscription: no fields to change")
	}
	pcfg, err := cfg.toProto()
	if err != nil {
		return Subscription{}, err
	}
	mask := &fieldmaskpb.FieldMask{}
	for _, f := range fields {
		mask.Paths = append(mask.Paths, string(f))
	}
	resp, err := call(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.AlterSubscription), &spoolv1.AlterSubscriptionRequest{Topic: topic, Name: name, Config: pcfg, UpdateMask: mask})
	if err != nil {
		return Subscription{}, err
	}
	return subscriptionFromProto(resp.GetSubscription()), nil
}
