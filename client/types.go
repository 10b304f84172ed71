package client

import (
	"strconv"
	"time"
)

// Discard says what a bounded topic does when it is full.
type Discard int

const (
	// DiscardDefault leaves the choice to the server (DiscardOld).
	DiscardDefault Discard = iota
	// DiscardOld drops the oldest whole segments to make room.
	DiscardOld
	// DiscardNew rejects publishes with a retriable ErrTopicFull.
	DiscardNew
)

// String returns "default", "old" or "new".
func (d Discard) String() string {
	switch d {
	case DiscardDefault:
		return "default"
	case DiscardOld:
		return "old"
	case DiscardNew:
		return "new"
	}
	return "Discard(" + strconv.Itoa(int(d)) + ")"
}

// Durability says when a publish to a topic is acknowledged.
type Durability int

const (
	// DurabilityDefault leaves the choice to the server (DurabilityAlways).
	DurabilityDefault Durability = iota
	// DurabilityAlways acknowledges after fsync (group commit).
	DurabilityAlways
	// DurabilityInterval acknowledges after the write and fsyncs on an
	// interval: acknowledged data can be lost on power loss.
	DurabilityInterval
	// DurabilityNone acknowledges after the write and fsyncs only at segment
	// roll: acknowledged data can be lost on power loss.
	DurabilityNone
)

// String returns "default", "always", "interval" or "none".
func (d Durability) String() string {
	switch d {
	case DurabilityDefault:
		return "default"
	case DurabilityAlways:
		return "always"
	case DurabilityInterval:
		return "interval"
	case DurabilityNone:
		return "none"
	}
	return "Durability(" + strconv.Itoa(int(d)) + ")"
}

// TopicConfig configures a topic; every zero field means the server's
// default, and Describe/List return the effective values.
type TopicConfig struct {
	// Partitions is the partition count (1–1024); it can only grow.
	Partitions int32
	// Retention deletes whole segments older than this; 0 keeps forever.
	Retention time.Duration
	// RetentionBytes keeps at most this many bytes per partition; 0 = no
	// limit.
	RetentionBytes int64
	// MaxMessages bounds the messages stored in the topic; 0 = no limit.
	MaxMessages int64
	// MaxBytes bounds the bytes stored in the topic; 0 = no limit.
	MaxBytes int64
	// Discard is what a full topic does.
	Discard Discard
	// DedupWindow is how long message IDs are remembered; 0 = server
	// default (2 minutes). Producer retries must finish within it.
	DedupWindow time.Duration
	// MessageTTL expires messages this long after publishing; 0 = never.
	MessageTTL time.Duration
	// Durability is when publishes are acknowledged.
	Durability Durability
	// MaxMessageBytes is the largest key + value + headers accepted.
	MaxMessageBytes int32
}

// Topic is a topic as the server reports it.
type Topic struct {
	Name string // the topic's name
	// Config is the effective configuration (defaults filled in).
	Config TopicConfig
	// Created is when the topic was created; zero if the server did not say.
	Created time.Time
	// ID is the topic's stable UUID (also its Kafka topic id).
	ID string
}

// PartitionInfo describes one partition of a topic.
type PartitionInfo struct {
	Partition int32 // the partition number, from 0
	// StartOffset is the offset of the oldest retained message.
	StartOffset int64
	// EndOffset is the offset the next message will get.
	EndOffset int64
	// Bytes is the partition's stored size.
	Bytes int64
}

// TopicInfo is DescribeTopic's answer.
type TopicInfo struct {
	Topic      Topic           // the topic and its effective config
	Partitions []PartitionInfo // one per partition, in partition order
	// Messages is the number stored (end − start summed over partitions).
	Messages int64
	Bytes    int64 // total stored bytes
	// Subscriptions names the topic's subscriptions.
	Subscriptions []string
}

// Mode is how a subscription delivers messages.
type Mode int

const (
	// ModeDefault leaves the choice to the server (ModeStream).
	ModeDefault Mode = iota
	// ModeStream assigns partitions to members, delivers in order per
	// partition and tracks a committed offset per partition.
	ModeStream
	// ModeQueue lets any member receive any message, each delivery a lease
	// to acknowledge. (This SDK's Consumer speaks stream mode only for now.)
	ModeQueue
)

// String returns "default", "stream" or "queue".
func (m Mode) String() string {
	switch m {
	case ModeDefault:
		return "default"
	case ModeStream:
		return "stream"
	case ModeQueue:
		return "queue"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// SubscriptionConfig configures a subscription; zero fields mean defaults.
type SubscriptionConfig struct {
	Mode Mode // stream or queue; zero means stream
	// Filter matches message subjects: dot-separated tokens where "*"
	// matches one token and "#" zero or more; empty matches every message.
	Filter string
	// Start is where a new subscription starts; zero means Earliest.
	Start Position
}

// Subscription is a subscription as the server reports it.
type Subscription struct {
	Topic   string             // the topic subscribed to
	Name    string             // unique within the topic
	Config  SubscriptionConfig // the effective configuration
	Created time.Time          // zero if the server did not say
}

// Member is one live member (Consume stream) of a subscription.
type Member struct {
	MemberID   string // assigned by the server at join
	ClientID   string // as given by WithClientID
	InstanceID string // static membership id; empty if none
	// Partitions the member receives messages from.
	Partitions []int32
	// Revoking lists partitions being taken away from it.
	Revoking []int32
	// SessionDeadline is when the member is evicted unless heard from.
	SessionDeadline time.Time
}

// SubscriptionPartition is a subscription's progress on one partition.
type SubscriptionPartition struct {
	Partition int32 // the partition number
	// CommittedOffset is the next offset to consume, or −1 if nothing was
	// committed yet (the subscription then starts at its start position).
	CommittedOffset int64
	EndOffset       int64 // the offset the next published message will get
	// Lag is the number of messages not yet consumed.
	Lag int64
	// OldestUnconsumedAge is the age of the oldest unconsumed message; 0
	// without lag.
	OldestUnconsumedAge time.Duration
	// MemberID is the member owning the partition; empty if none.
	MemberID string
}

// SubscriptionInfo is DescribeSubscription's answer.
type SubscriptionInfo struct {
	Subscription Subscription // the subscription and its config
	// Generation is the membership generation (bumped at every rebalance).
	Generation int64
	Members    []Member                // the live members
	Partitions []SubscriptionPartition // progress per partition, in partition order
	// Lag is the total over partitions.
	Lag int64
}

type positionKind uint8

const (
	posNone positionKind = iota
	posEarliest
	posLatest
	posTime
	posOffset
)

// Position is where a subscription starts or is reset to; build one with
// Earliest, Latest, AtTime or AtOffset. The zero Position means "the
// server's default" where that is allowed (SubscriptionConfig.Start) and is
// rejected by ResetSubscription.
type Position struct {
	kind   positionKind
	time   time.Time
	offset int64
}

// Earliest is the oldest retained message of each partition.
func Earliest() Position { return Position{kind: posEarliest} }

// Latest is the end of each partition: only messages published afterwards.
func Latest() Position { return Position{kind: posLatest} }

// AtTime is, in each partition, the first message with a timestamp at or
// after t (the end if there is none).
func AtTime(t time.Time) Position { return Position{kind: posTime, time: t} }

// AtOffset is offset o in every partition, clamped by the server to what is
// retained; a negative o is rejected with ErrInvalidArgument when used.
func AtOffset(o int64) Position { return Position{kind: posOffset, offset: o} }

// IsZero reports whether p is the zero Position (no position chosen).
func (p Position) IsZero() bool { return p.kind == posNone }

// String returns "earliest", "latest", "time:<RFC 3339>", "offset:<n>" or
// "default" for the zero Position.
func (p Position) String() string {
	switch p.kind {
	case posEarliest:
		return "earliest"
	case posLatest:
		return "latest"
	case posTime:
		return "time:" + p.time.Format(time.RFC3339Nano)
	case posOffset:
		return "offset:" + strconv.FormatInt(p.offset, 10)
	}
	return "default"
}
