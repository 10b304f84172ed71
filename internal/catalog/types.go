// Package catalog holds the definitions of topics and subscriptions, kept in
// the state store and cached in memory. It validates names and configs; it
// does not open logs or deliver messages (internal/broker does).
package catalog

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/queue"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/subject"
)

// Discard is what a full topic does.
type Discard int

const (
	DiscardOld Discard = iota // drop the oldest segments (default)
	DiscardNew                // reject publishes with a retriable topic_full error
)

// String returns "old" or "new".
func (d Discard) String() string {
	if d == DiscardNew {
		return "new"
	}
	return "old"
}

// ParseDiscard parses "old" or "new".
func ParseDiscard(s string) (Discard, error) {
	switch s {
	case "old", "":
		return DiscardOld, nil
	case "new":
		return DiscardNew, nil
	}
	return 0, errs.New(errs.InvalidArgument, "discard policy %q: want old or new", s)
}

// TopicConfig is a topic's configuration. Zero values mean "use the default"
// until Defaults.Fill replaces them. Topics are stored by record.go, which
// must learn every new field (docs/format/state.md).
type TopicConfig struct {
	Partitions      int32
	Retention       time.Duration // 0 = forever
	RetentionBytes  int64         // per partition; 0 = unlimited
	MaxMessages     int64         // per topic; 0 = unlimited
	MaxBytes        int64         // per topic; 0 = unlimited
	Discard         Discard
	DedupWindow     time.Duration
	MessageTTL      time.Duration // 0 = none
	Durability      seglog.Policy
	MaxMessageBytes int32
	// WorkQueue deletes whole segments once every queue subscription of the
	// topic has finished (acked, dead-lettered or dropped) all their
	// messages, on top of the age and byte retention.
	WorkQueue bool
	// Replicas is the replication factor on a cluster: how many nodes'
	// copies of each partition count towards its quorum (1, 3 or 5); 0 on
	// a single node, and for topics created before replication factors
	// (all the nodes of the cluster at their creation). Fixed at creation.
	Replicas int32
	// SchemaSubject binds the topic to a schema registry subject: every
	// message's value must be in the registry's wire format (or name its
	// schema in a spool.schema-id header) with a schema of that subject,
	// and decode and validate against it. "": not validated.
	SchemaSubject string
	// SchemaMode is what happens to a message that fails validation.
	SchemaMode SchemaMode
	// The event catalog's description of the topic: the team that owns
	// it, what its events mean, and labels (at most MaxLabels, keys and
	// values bounded as ValidateCatalogInfo says).
	Owner       string
	Description string
	Labels      map[string]string
}

// Equal reports whether two configs are the same (no labels and empty
// labels are the same).
func (c TopicConfig) Equal(o TopicConfig) bool {
	cl, ol := c.Labels, o.Labels
	c.Labels, o.Labels = nil, nil
	return reflect.DeepEqual(c, o) && maps.Equal(cl, ol)
}

// SchemaMode is what a topic bound to a schema subject does with a
// message that fails validation.
type SchemaMode int

const (
	SchemaReject     SchemaMode = iota // refuse it, with the reason (default)
	SchemaDeadLetter                   // write it to the topic's dead-letter topic instead
)

// String returns "reject" or "dead-letter".
func (m SchemaMode) String() string {
	if m == SchemaDeadLetter {
		return "dead-letter"
	}
	return "reject"
}

// ParseSchemaMode reads "reject" or "dead-letter" ("" is reject).
func ParseSchemaMode(s string) (SchemaMode, error) {
	switch s {
	case "", "reject":
		return SchemaReject, nil
	case "dead-letter":
		return SchemaDeadLetter, nil
	}
	return 0, fmt.Errorf("schema mode %q: want reject or dead-letter", s)
}

// Bounds of a topic's catalog description.
const (
	MaxLabels           = 64
	MaxLabelBytes       = 256 // a label's key or value
	MaxOwnerBytes       = 256
	MaxDescriptionBytes = 16 << 10
	MaxSubjectBytes     = 255
)

// ValidateCatalogInfo checks a topic config's schema binding and catalog
// description.
func ValidateCatalogInfo(c TopicConfig) error {
	switch {
	case len(c.SchemaSubject) > MaxSubjectBytes:
		return fmt.Errorf("schema subject longer than %d bytes", MaxSubjectBytes)
	case c.SchemaMode != SchemaReject && c.SchemaMode != SchemaDeadLetter:
		return fmt.Errorf("schema mode %d", c.SchemaMode)
	case len(c.Owner) > MaxOwnerBytes:
		return fmt.Errorf("owner longer than %d bytes", MaxOwnerBytes)
	case len(c.Description) > MaxDescriptionBytes:
		return fmt.Errorf("description longer than %d bytes", MaxDescriptionBytes)
	case len(c.Labels) > MaxLabels:
		return fmt.Errorf("%d labels, more than %d", len(c.Labels), MaxLabels)
	}
	for k, v := range c.Labels {
		if k == "" || len(k) > MaxLabelBytes || len(v) > MaxLabelBytes {
			return fmt.Errorf("label %q: keys must be 1 to %d bytes, values at most %d", k, MaxLabelBytes, MaxLabelBytes)
		}
	}
	return nil
}

// Topic is a topic definition.
type Topic struct {
	Name    string
	ID      string // UUID; also the Kafka topic id
	Config  TopicConfig
	Created time.Time
	// Assignment is, on a cluster, each partition's replicas (nil on a
	// single node and for topics created before replication factors;
	// otherwise one per partition).
	Assignment []PartitionAssignment
}

// AssignmentOf returns partition p's replicas (zero when none are
// recorded).
func (t Topic) AssignmentOf(p int32) PartitionAssignment {
	if p < 0 || int(p) >= len(t.Assignment) {
		return PartitionAssignment{}
	}
	return t.Assignment[p]
}

// PartitionAssignment is a partition's replicas: the nodes that vote in
// its raft group. Every other node of the cluster follows it as a learner.
type PartitionAssignment struct {
	// Voters are the replicas the partition's group is to have (its
	// leader changes the group until it has them); the first is the
	// preferred leader. Empty: the voters it was created with (a
	// partition created before replication factors).
	Voters []uint64
	// Initial are the voters the partition was created with: each of them
	// bootstraps the group with this configuration. Empty: a partition
	// created before replication factors.
	Initial []uint64
}

// ValidateReplicas checks a replica list: count nodes (when count > 0),
// none 0, none twice.
func ValidateReplicas(voters []uint64, count int) error {
	if count > 0 && len(voters) != count {
		return errs.New(errs.InvalidArgument, "%d replicas given; the topic's replication factor is %d", len(voters), count)
	}
	if len(voters) == 0 || len(voters) > MaxReplicas {
		return errs.New(errs.InvalidArgument, "a partition has 1 to %d replicas, not %d", MaxReplicas, len(voters))
	}
	seen := map[uint64]bool{}
	for _, v := range voters {
		if v == 0 {
			return errs.New(errs.InvalidArgument, "replica node id 0 is not a node")
		}
		if seen[v] {
			return errs.New(errs.InvalidArgument, "node %d is listed twice among the replicas", v)
		}
		seen[v] = true
	}
	return nil
}

// MaxReplicas is the largest replication factor.
const MaxReplicas = 5

// ValidateReplicationFactor checks a replication factor for a cluster of
// nodes nodes (0: the default): 1, 3 or 5, and no more than the nodes.
func ValidateReplicationFactor(rf int32, nodes int) error {
	switch {
	case rf == 0:
		return nil
	case rf != 1 && rf != 3 && rf != 5:
		return errs.New(errs.InvalidArgument, "replication factor %d: give 1, 3 or 5 (an odd number, so that a majority of the replicas survives the loss of the others)", rf)
	case int(rf) > nodes:
		return errs.New(errs.InvalidArgument, "replication factor %d is more than the cluster's %d nodes", rf, nodes)
	}
	return nil
}

// DefaultReplicationFactor is the replication factor of a topic created
// without one on a cluster of nodes nodes: 3 with at least 3 nodes, else
// the cluster's size.
func DefaultReplicationFactor(nodes int) int32 {
	return int32(max(1, min(nodes, 3)))
}

// Mode is a subscription's delivery mode.
type Mode int

const (
	ModeStream Mode = iota // partitions assigned to members, committed offsets
	ModeQueue              // leases, acks
)

// String returns "stream" or "queue".
func (m Mode) String() string {
	if m == ModeQueue {
		return "queue"
	}
	return "stream"
}

// PositionKind says how a Position is expressed.
type PositionKind int

const (
	Earliest PositionKind = iota
	Latest
	AtTime
	AtOffset
)

// Position is where a subscription starts or is reset to.
type Position struct {
	Kind   PositionKind
	Time   time.Time
	Offset int64
}

// String describes the position as the CLI spells it.
func (p Position) String() string {
	switch p.Kind {
	case Latest:
		return "latest"
	case AtTime:
		return p.Time.UTC().Format(time.RFC3339Nano)
	case AtOffset:
		return fmt.Sprint(p.Offset)
	}
	return "earliest"
}

// SubConfig is a subscription's configuration. Subscriptions are stored by
// record.go, which must learn every new field (docs/format/state.md).
type SubConfig struct {
	Mode   Mode
	Filter string
	Start  Position
	Queue  QueueConfig
	// OnFailure (stream mode) is what happens to a message whose
	// consumer's handler failed Queue.MaxDeliveries times; "" = dead-letter.
	// Stream subscriptions also use Queue.MaxDeliveries (handler attempts),
	// Queue.Backoff (delays between attempts) and Queue.DeadLetterTopic.
	OnFailure FailureAction
}

// FailureAction is what a stream subscription does with a message its
// consumer gave up on.
type FailureAction string

const (
	// FailDeadLetter copies the message to the dead-letter topic; the
	// consumer goes on with the next one. The default.
	FailDeadLetter FailureAction = "dead-letter"
	// FailStop halts the partition at the message until it is reset.
	FailStop FailureAction = "stop"
)

// ParseFailureAction parses "dead-letter" (or "") and "stop".
func ParseFailureAction(s string) (FailureAction, error) {
	switch FailureAction(s) {
	case "", FailDeadLetter:
		return FailDeadLetter, nil
	case FailStop:
		return FailStop, nil
	}
	return "", errs.New(errs.InvalidArgument, "failure action %q: want dead-letter or stop", s)
}

// StreamFailure is how a stream subscription's consumers handle a failing
// message, defaults filled in.
type StreamFailure struct {
	Action      FailureAction
	MaxAttempts int
	Backoff     queue.Backoff
	DeadLetter  string // dead-letter topic
}

// StreamFailure returns the stream failure policy of subscription s.
func (s Subscription) StreamFailure() StreamFailure {
	c := queue.Config{MaxDeliveries: s.Config.Queue.MaxDeliveries, Backoff: s.Config.Queue.Backoff}.WithDefaults()
	f := StreamFailure{Action: s.Config.OnFailure, MaxAttempts: c.MaxDeliveries, Backoff: c.Backoff, DeadLetter: s.Config.Queue.DeadLetterTopic}
	if f.Action == "" {
		f.Action = FailDeadLetter
	}
	if f.DeadLetter == "" {
		f.DeadLetter = DeadLetterTopicName(s.Topic, s.Name)
	}
	return f
}

// QueueConfig is the queue-mode part of a subscription's configuration.
// Zero fields take the defaults (see queue.Config).
type QueueConfig struct {
	AckTimeout      time.Duration
	MaxDeliveries   int
	Backoff         queue.Backoff
	Ordering        queue.Ordering
	DeadLetterTopic string
	OnExpired       queue.ExpiredAction
	MaxInFlight     int     // whole subscription
	RateLimit       float64 // deliveries per second; 0 = unlimited
	RateBurst       int
	// ProcessedKey names what identifies a message in the subscription's
	// processed-key ledger (idempotent consumer): "" (off), "id", "key" or
	// "header:NAME" (ParseProcessedKey). ProcessedTTL is how long a
	// processed key is remembered; 0 takes DefaultProcessedTTL.
	ProcessedKey string
	ProcessedTTL time.Duration
}

// Processed-key ledger settings.
const (
	DefaultProcessedTTL = 24 * time.Hour
	MaxProcessedTTL     = 366 * 24 * time.Hour
	maxHeaderNameLen    = 256
)

// ProcessedKind is what a processed-key ledger keys messages by.
type ProcessedKind int

// The kinds of processed keys.
const (
	ProcessedOff      ProcessedKind = iota
	ProcessedByID                   // the message's id: spool.original-id, else spool.id, else its position
	ProcessedByKey                  // the message key
	ProcessedByHeader               // a header's value
)

// ParseProcessedKey parses a processed-key setting: "" or "off", "id",
// "key", or "header:NAME" (NAME a header key of 1–256 bytes). It returns the
// kind and, for a header, its name.
func ParseProcessedKey(s string) (ProcessedKind, string, error) {
	switch s {
	case "", "off":
		return ProcessedOff, "", nil
	case "id":
		return ProcessedByID, "", nil
	case "key":
		return ProcessedByKey, "", nil
	}
	if name, ok := strings.CutPrefix(s, "header:"); ok {
		if name == "" || len(name) > maxHeaderNameLen {
			return 0, "", errs.New(errs.InvalidArgument, "processed key %q: the header name must be 1 to %d bytes", s, maxHeaderNameLen)
		}
		return ProcessedByHeader, name, nil
	}
	return 0, "", errs.New(errs.InvalidArgument, "processed key %q: want off, id, key or header:NAME", s)
}

// ProcessedTTLOrDefault returns the ledger's TTL: ProcessedTTL, or the
// default when it is zero.
func (q QueueConfig) ProcessedTTLOrDefault() time.Duration {
	if q.ProcessedTTL > 0 {
		return q.ProcessedTTL
	}
	return DefaultProcessedTTL
}

// DeadLetterTopicName is the default dead-letter topic of a subscription.
func DeadLetterTopicName(topic, sub string) string { return "dlq." + topic + "." + sub }

// TopicDeadLetterName is the dead-letter topic of a topic bound to a
// schema subject in dead-letter mode: where its messages that fail
// validation go.
func TopicDeadLetterName(topic string) string { return "dlq." + topic }

// Subscription is a subscription definition.
type Subscription struct {
	Topic   string
	Name    string
	Config  SubConfig
	Created time.Time
}

// Limits on configs.
const (
	MaxPartitions  = 1024
	maxNameLen     = 200
	maxDedupWindow = 7 * 24 * time.Hour
	// MaxRateLimit bounds a rate limit, in messages per second.
	MaxRateLimit = 1e9
)

// ValidateRate checks a rate limit (messages per second; 0 = unlimited):
// a finite number in [0, MaxRateLimit]. what names it in the message.
func ValidateRate(what string, r float64) error {
	if !(r >= 0 && r <= MaxRateLimit) { // also false for NaN
		return errs.New(errs.InvalidArgument, "%s must be a number between 0 and %g, not %v", what, float64(MaxRateLimit), r)
	}
	return nil
}

// Defaults fill unset topic config fields.
type Defaults struct {
	Partitions      int32
	DedupWindow     time.Duration
	MaxMessageBytes int32
	Durability      seglog.Policy
	Retention       time.Duration
	RetentionBytes  int64
}

// DefaultDefaults are the server's built-in topic defaults (the topics
// section of the server's configuration): one partition, a 2-minute
// de-duplication window, messages of at most 1 MiB, durability always,
// kept forever whatever their size.
func DefaultDefaults() Defaults { return Defaults{}.Complete() }

// Complete returns d with its unset fields set to the built-in defaults.
// Durability, retention and retention bytes are at theirs when unset
// (always, forever, unlimited).
func (d Defaults) Complete() Defaults {
	if d.Partitions == 0 {
		d.Partitions = 1
	}
	if d.DedupWindow == 0 {
		d.DedupWindow = 2 * time.Minute
	}
	if d.MaxMessageBytes == 0 {
		d.MaxMessageBytes = 1 << 20
	}
	return d
}

// DurabilityDefault in TopicConfig.Durability asks for the server's
// default durability (Defaults.Durability); Fill replaces it. The zero
// value, seglog.SyncAlways, is an explicit choice.
const DurabilityDefault seglog.Policy = -1

// Fill returns c with unset fields set from d.
func (d Defaults) Fill(c TopicConfig) TopicConfig {
	if c.Durability == DurabilityDefault {
		c.Durability = d.Durability
	}
	if c.Partitions == 0 {
		c.Partitions = d.Partitions
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = d.DedupWindow
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = d.RetentionBytes
	}
	return c
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateName checks a topic or subscription name: 1–200 characters of
// letters, digits, '.', '_' and '-', and not "." or "..". what is "topic"
// or "subscription", for the message.
func ValidateName(what, name string) error {
	switch {
	case name == "":
		return errs.New(errs.InvalidArgument, "%s name is empty", what)
	case len(name) > maxNameLen:
		return errs.New(errs.InvalidArgument, "%s name is %d characters long; the limit is %d", what, len(name), maxNameLen)
	case name == "." || name == "..":
		return errs.New(errs.InvalidArgument, "%s name %q is reserved", what, name)
	case !nameRE.MatchString(name):
		return errs.New(errs.InvalidArgument, "%s name %q: use only letters, digits, '.', '_' and '-'", what, name)
	}
	return nil
}

// Validate checks a filled topic config.
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > MaxPartitions:
		return errs.New(errs.InvalidArgument, "partitions must be between 1 and %d, not %d", MaxPartitions, c.Partitions)
	case c.Retention < 0:
		return errs.New(errs.InvalidArgument, "retention must not be negative")
	case c.RetentionBytes < 0:
		return errs.New(errs.InvalidArgument, "retention bytes must not be negative")
	case c.MaxMessages < 0 || c.MaxBytes < 0:
		return errs.New(errs.InvalidArgument, "max messages and max bytes must not be negative")
	case c.Discard != DiscardOld && c.Discard != DiscardNew:
		return errs.New(errs.InvalidArgument, "unknown discard policy %d", c.Discard)
	case c.DedupWindow < time.Millisecond || c.DedupWindow > maxDedupWindow:
		return errs.New(errs.InvalidArgument, "dedup window must be between 1ms and %s, not %s", maxDedupWindow, c.DedupWindow)
	case c.MessageTTL < 0:
		return errs.New(errs.InvalidArgument, "message TTL must not be negative")
	case c.MaxMessageBytes < 1 || c.MaxMessageBytes > 64<<20:
		return errs.New(errs.InvalidArgument, "max message bytes must be between 1 and %d, not %d", 64<<20, c.MaxMessageBytes)
	}
	switch c.Durability {
	case seglog.SyncAlways, seglog.SyncInterval, seglog.SyncNone:
	default:
		return errs.New(errs.InvalidArgument, "unknown durability policy %d", c.Durability)
	}
	return nil
}

// Validate checks a subscription config.
func (c SubConfig) Validate() error {
	if c.Mode != ModeStream && c.Mode != ModeQueue {
		return errs.New(errs.InvalidArgument, "unknown subscription mode %d", c.Mode)
	}
	if c.Mode == ModeQueue {
		q := c.Queue
		if q.MaxInFlight < 0 || q.RateBurst < 0 {
			return errs.New(errs.InvalidArgument, "max in flight and rate burst must not be negative")
		}
		if err := ValidateRate("rate limit", q.RateLimit); err != nil {
			return err
		}
		if math.IsNaN(q.RateLimit) || math.IsInf(q.RateLimit, 0) {
			return errs.New(errs.InvalidArgument, "rate limit must be a finite number of deliveries per second, not %v", q.RateLimit)
		}
		if q.DeadLetterTopic != "" {
			if err := ValidateName("dead-letter topic", q.DeadLetterTopic); err != nil {
				return err
			}
		}
		if _, err := q.CoreConfig(); err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "queue config")
		}
		if _, _, err := ParseProcessedKey(q.ProcessedKey); err != nil {
			return err
		}
		if q.ProcessedTTL < 0 || q.ProcessedTTL > MaxProcessedTTL {
			return errs.New(errs.InvalidArgument, "processed TTL %v: want 0 (the default, %v) up to %v", q.ProcessedTTL, DefaultProcessedTTL, MaxProcessedTTL)
		}
		if c.OnFailure != "" && c.OnFailure != FailDeadLetter {
			return errs.New(errs.InvalidArgument, "queue subscriptions always dead-letter failed messages (on-failure %q is for stream subscriptions)", c.OnFailure)
		}
	} else {
		q := c.Queue
		if q.AckTimeout != 0 || q.Ordering != queue.OrderNone || q.OnExpired != queue.ExpireDeadLetter ||
			q.MaxInFlight != 0 || q.RateLimit != 0 || q.RateBurst != 0 || q.ProcessedKey != "" || q.ProcessedTTL != 0 {
			return errs.New(errs.InvalidArgument, "queue settings (ack timeout, ordering, on-expired, max in flight, rate limit, processed key) given for a stream subscription")
		}
		if q.DeadLetterTopic != "" {
			if err := ValidateName("dead-letter topic", q.DeadLetterTopic); err != nil {
				return err
			}
		}
		if _, err := ParseFailureAction(string(c.OnFailure)); err != nil {
			return err
		}
		// Attempts and backoff are validated as the queue core would.
		if _, err := (QueueConfig{MaxDeliveries: q.MaxDeliveries, Backoff: q.Backoff}).CoreConfig(); err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "failure policy")
		}
	}
	if _, err := subject.Compile(c.Filter); err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "filter %q", c.Filter)
	}
	switch c.Start.Kind {
	case Earliest, Latest, AtTime:
	case AtOffset:
		if c.Start.Offset < 0 {
			return errs.New(errs.InvalidArgument, "start offset must not be negative")
		}
	default:
		return errs.New(errs.InvalidArgument, "unknown start position kind %d", c.Start.Kind)
	}
	return nil
}

// CoreConfig returns the queue core's configuration (defaults filled in and
// validated). The whole subscription's MaxInFlight is enforced by the
// broker; each partition's core gets the same bound.
func (q QueueConfig) CoreConfig() (queue.Config, error) {
	c := queue.Config{
		AckTimeout:    q.AckTimeout,
		MaxDeliveries: q.MaxDeliveries,
		Backoff:       q.Backoff,
		Ordering:      q.Ordering,
		OnExpired:     q.OnExpired,
		MaxInFlight:   q.MaxInFlight,
	}
	c = c.WithDefaults()
	return c, c.Validate()
}
