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

// SchemaMode says what a topic bound to a schema subject does with a
// message whose value fails validation.
type SchemaMode int

const (
	// SchemaModeDefault leaves the choice to the server (SchemaModeReject).
	SchemaModeDefault SchemaMode = iota
	// SchemaModeReject refuses the publish with an error of code
	// CodeSchemaInvalid giving the reason.
	SchemaModeReject
	// SchemaModeDeadLetter accepts the publish but writes the message to
	// the topic's dead-letter topic, "dlq.<topic>", instead.
	SchemaModeDeadLetter
)

// String returns "default", "reject" or "dead-letter".
func (m SchemaMode) String() string {
	switch m {
	case SchemaModeDefault:
		return "default"
	case SchemaModeReject:
		return "reject"
	case SchemaModeDeadLetter:
		return "dead-letter"
	}
	return "SchemaMode(" + strconv.Itoa(int(m)) + ")"
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
	// WorkQueue deletes whole segments once every queue subscription of
	// the topic has finished (acknowledged, dead-lettered or dropped) their
	// messages, on top of the age and byte retention.
	WorkQueue bool
	// Replicas is, on a cluster, the replication factor: how many nodes'
	// copies of each partition count towards its quorum (1, 3 or 5, at
	// most the number of nodes; 0 = the default, 3 with three nodes or
	// more). Fixed at creation; a single node takes 0 or 1.
	Replicas int32
	// SchemaSubject binds the topic to a schema registry subject: every
	// message's value must be in the registry's wire format (or name its
	// schema in a spool.schema-id header) with a schema of that subject,
	// and validate against it. "" = not validated.
	SchemaSubject string
	// SchemaMode is what a message failing validation does.
	SchemaMode SchemaMode
	// Owner, Description and Labels describe the topic in the event
	// catalog: the team that owns it (at most 256 bytes), what its events
	// mean (at most 16 KiB), and up to 64 labels (keys 1–256 bytes, values
	// at most 256 bytes). AlterTopic with TopicFieldLabels replaces the
	// whole set.
	Owner       string
	Description string
	Labels      map[string]string
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
	// Leader is, on a cluster, the node that leads the partition as the
	// answering node knows it (0: none right now, an election), and
	// LeaderAddr its native API address (host:port; "" if unknown): the
	// partition's publishes go there (the client routes them itself).
	// Both are unset on a single node.
	Leader     uint64
	LeaderAddr string
	// Replicas are, on a cluster, the partition's replicas (its raft
	// group's voters), InSync those of them in sync as the leader sees
	// them (elsewhere the replicas), Learners the other nodes, which hold
	// a copy that counts for no quorum, and Assigned the replicas the
	// catalog assigns (they differ from Replicas while a reassignment is
	// in progress).
	Replicas, InSync, Learners, Assigned []uint64
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
	// that is acknowledged, negatively acknowledged (redelivered after a
	// backoff), rejected (dead-lettered) or expires.
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

// Jitter is how a queue subscription randomizes its redelivery delays.
type Jitter int

const (
	// JitterDefault leaves the choice to the server (JitterFull).
	JitterDefault Jitter = iota
	// JitterFull draws each delay uniformly from [0, d].
	JitterFull
	// JitterEqual draws each delay uniformly from [d/2, d].
	JitterEqual
	// JitterNone uses d exactly.
	JitterNone
)

// String returns "default", "full", "equal" or "none".
func (j Jitter) String() string {
	switch j {
	case JitterDefault:
		return "default"
	case JitterFull:
		return "full"
	case JitterEqual:
		return "equal"
	case JitterNone:
		return "none"
	}
	return "Jitter(" + strconv.Itoa(int(j)) + ")"
}

// Ordering is the delivery order of a queue subscription.
type Ordering int

const (
	// OrderingDefault leaves the choice to the server (OrderingNone).
	OrderingDefault Ordering = iota
	// OrderingNone lets any member receive any message at any time.
	OrderingNone
	// OrderingKey never leases two messages with the same key at once and
	// delivers them in offset order; different keys proceed in parallel, and
	// a failing message blocks only its key until it is acked or
	// dead-lettered. Messages without a key are unordered.
	OrderingKey
)

// String returns "default", "none" or "key".
func (o Ordering) String() string {
	switch o {
	case OrderingDefault:
		return "default"
	case OrderingNone:
		return "none"
	case OrderingKey:
		return "key"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// ExpiredAction says what a queue subscription does with a message whose
// TTL passed before it was acknowledged.
type ExpiredAction int

const (
	// ExpiredDefault leaves the choice to the server (ExpiredDeadLetter).
	ExpiredDefault ExpiredAction = iota
	// ExpiredDeadLetter dead-letters it with reason ReasonExpired.
	ExpiredDeadLetter
	// ExpiredDrop drops it (counted in SubscriptionInfo.Dropped).
	ExpiredDrop
)

// String returns "default", "dead-letter" or "drop".
func (a ExpiredAction) String() string {
	switch a {
	case ExpiredDefault:
		return "default"
	case ExpiredDeadLetter:
		return "dead-letter"
	case ExpiredDrop:
		return "drop"
	}
	return "ExpiredAction(" + strconv.Itoa(int(a)) + ")"
}

// FailureAction is what a stream subscription does with a message whose
// handler failed MaxDeliveries times in a consumer.
type FailureAction int

const (
	// FailureDefault leaves the choice to the server (FailureDeadLetter).
	FailureDefault FailureAction = iota
	// FailureDeadLetter copies the message to the subscription's
	// dead-letter topic (with the spool.dlq.* headers, listed and redriven
	// like a queue subscription's) and goes on with the next message.
	FailureDeadLetter
	// FailureStop halts the partition at the message: nothing more is
	// delivered from it until it is reset (ResetSubscription,
	// PurgeSubscription); DescribeSubscription shows the halt.
	FailureStop
)

// String returns "default", "dead-letter" or "stop".
func (a FailureAction) String() string {
	switch a {
	case FailureDefault:
		return "default"
	case FailureDeadLetter:
		return "dead-letter"
	case FailureStop:
		return "stop"
	}
	return "FailureAction(" + strconv.Itoa(int(a)) + ")"
}

// Backoff is a queue subscription's redelivery delay after a nack or a
// lease expiry: the n-th redelivery waits min(Initial × Multiplier^(n−1),
// Max), randomized by Jitter, or Delays[n−1] (the last one repeating) when
// Delays is set. Zero fields mean the server's defaults (1 s, 5 min, 2,
// JitterFull).
type Backoff struct {
	Initial    time.Duration // the first delay
	Max        time.Duration // the cap
	Multiplier float64       // growth per redelivery; at least 1 when set
	Jitter     Jitter        // randomization
	// Delays, when set, lists the delays explicitly instead.
	Delays []time.Duration
}

// Reasons a message is dead-lettered (DeadLetter.Reason, RedriveRequest.Reason).
const (
	ReasonMaxDeliveries = "max-deliveries" // delivered MaxDeliveries times without an ack
	ReasonRejected      = "rejected"       // the handler returned Reject
	ReasonExpired       = "expired"        // its TTL passed (ExpiredDeadLetter)
)

// SubscriptionConfig configures a subscription; zero fields mean defaults.
// The fields after Start apply to queue mode only.
type SubscriptionConfig struct {
	Mode Mode // stream or queue; zero means stream
	// Filter matches message subjects: dot-separated tokens where "*"
	// matches one token and "#" zero or more; empty matches every message.
	Filter string
	// Start is where a new subscription starts; zero means Earliest.
	Start Position

	// AckTimeout is the lease length of a delivery; 0 means 30 s. The
	// Consumer extends the leases of messages it still holds.
	AckTimeout time.Duration
	// MaxDeliveries dead-letters a message delivered this many times
	// without an ack; 0 means 5.
	MaxDeliveries int32
	// Backoff is the redelivery delay after a nack or a lease expiry.
	Backoff Backoff
	// Ordering is the delivery order; zero means OrderingNone.
	Ordering Ordering
	// DeadLetterTopic receives dead-lettered messages; empty means
	// "dlq.<topic>.<subscription>", created with the subscription.
	DeadLetterTopic string
	// OnExpired is what happens to a message whose TTL passed.
	OnExpired ExpiredAction
	// MaxInFlight bounds the leases of the whole subscription; 0 means 1000
	// per partition.
	MaxInFlight int32
	// RateLimit bounds deliveries per second over the subscription; 0 means
	// unlimited.
	RateLimit float64
	// RateBurst is the burst of the rate limit; 0 means max(1, RateLimit).
	RateBurst int32
	// OnFailure (stream mode) is what happens to a message whose handler
	// failed in a consumer MaxDeliveries times (attempts, waiting Backoff
	// between them; defaults 5 and 1 s doubling up to 5 min); zero means
	// FailureDeadLetter. Queue subscriptions always dead-letter.
	OnFailure FailureAction
	// ProcessedKey (queue mode) turns on the broker's processed-key ledger
	// (an idempotent consumer, docs/idempotent-consumer.md): once a member
	// acknowledges a message, a later delivery of a message with the same
	// processed key within ProcessedTTL is acknowledged by the broker
	// instead of reaching a handler. ProcessedKeyID keys messages by id
	// (a redriven dead letter keeps its original's), ProcessedKeyMessageKey
	// by message key, ProcessedKeyHeader(name) by a header's value; empty
	// (or ProcessedKeyOff) means no ledger.
	ProcessedKey string
	// ProcessedTTL is how long a processed key is remembered; 0 means 24 h
	// (at most 366 days).
	ProcessedTTL time.Duration
}

// Processed keys of a subscription's ledger (SubscriptionConfig.ProcessedKey).
const (
	ProcessedKeyOff        = "off"
	ProcessedKeyID         = "id"
	ProcessedKeyMessageKey = "key"
)

// ProcessedKeyHeader keys a subscription's ledger by the value of header
// name.
func ProcessedKeyHeader(name string) string { return "header:" + name }

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
	// Queue is the partition's queue state; nil for stream subscriptions.
	Queue *QueuePartition
	// Halted is set while a stream partition is halted by a message its
	// consumer gave up on (FailureStop); reset the partition to go on.
	Halted *PartitionHalt
}

// PartitionHalt is a stream partition stopped at a failed message.
type PartitionHalt struct {
	Offset   int64     // the message that failed; commits stay at or below it
	Error    string    // the handler's last error
	Attempts int32     // handler calls made
	Time     time.Time // when the consumer gave up
	MemberID string    // the member that reported it
}

// PurgeResult is what PurgeSubscription did.
type PurgeResult struct {
	// Partitions are the purged partitions with their new position (the
	// end) in CommittedOffset.
	Partitions []SubscriptionPartition
	// Skipped is how many offsets the purge moved past, summed over
	// partitions (messages acknowledged above the ack floor count too).
	Skipped int64
}

// QueuePartition is the queue-mode state of one partition of a
// subscription.
type QueuePartition struct {
	// AckFloor is the offset below which every message is acknowledged,
	// dead-lettered, dropped or parked.
	AckFloor int64
	Ready    int32 // deliverable now
	Waiting  int32 // backing off or delayed, held in memory
	Blocked  int32 // waiting behind an earlier message with the same key
	InFlight int32 // leased to members
	// InFlightLimited is true while delivery is held back because the
	// subscription's MaxInFlight is reached.
	InFlightLimited bool
	// Parked counts delayed or backing-off messages kept in the state store
	// until they are due.
	Parked int64
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
	// DeadLettered and Dropped count queue-mode messages dead-lettered and
	// expired-and-dropped since the server started.
	DeadLettered, Dropped int64
}

// DeadLetter is one message of a queue subscription's dead-letter topic.
type DeadLetter struct {
	// Offset is the message's offset in the dead-letter topic.
	Offset int64
	// Message is the copy as stored in the dead-letter topic: the original
	// key, value and headers plus Spool's "spool.dlq.*" headers; its
	// Partition and Offset are in the dead-letter topic and Topic is empty.
	Message Message
	// Reason is ReasonMaxDeliveries, ReasonRejected or ReasonExpired.
	Reason string
	// DeliveryCount is how many times the message had been delivered.
	DeliveryCount int32
	// Error is the error text of the last nack or of the reject; may be
	// empty.
	Error string
	// OriginPartition and OriginOffset are where the message is stored in
	// the origin topic.
	OriginPartition int32
	OriginOffset    int64
	// Redriven is true once the message was published back by Redrive.
	Redriven bool
}

// RedriveRequest selects the dead-lettered messages of a queue subscription
// that Redrive publishes back to the origin topic.
type RedriveRequest struct {
	Topic        string // the origin topic
	Subscription string // the queue subscription that dead-lettered them
	// ToTopic delivers them to every subscription of the topic again;
	// false (the default) delivers them to Subscription only.
	ToTopic bool
	// Reason selects messages dead-lettered for this reason only (see the
	// Reason* constants); empty means any.
	Reason string
	// Limit moves at most this many messages; 0 means all.
	Limit int64
	// RateLimit bounds the messages moved per second; 0 means unlimited.
	RateLimit float64
	// DryRun reports what would move without moving anything.
	DryRun bool
}

// RedriveReport is what Redrive did (or, with DryRun, would do).
type RedriveReport struct {
	Moved   int64 // published back to the origin
	Skipped int64 // left in place: another reason or another origin
	Already int64 // redriven by an earlier Redrive
	// Offsets are the dead-letter offsets of the moved messages (at most
	// the first 1000).
	Offsets []int64
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
