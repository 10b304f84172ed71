package catalog

import (
	"fmt"
	"time"

	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
)

// Version-0 topic and subscription records: what releases up to 7e44b4f
// wrote, json.Marshal of the in-memory structs of the time. Enums were
// their iota values, durations integer nanoseconds, the backoff's keys its
// Go field names, times RFC 3339 in the server's time zone. The structs
// below reproduce those records field for field (and in the same order, so
// that the tests can re-encode the golden files); the tables give each
// stored integer its meaning then. Nothing writes version 0 any more.

type topicV0 struct {
	Name    string        `json:"name"`
	ID      string        `json:"id"`
	Config  topicConfigV0 `json:"config"`
	Created time.Time     `json:"created"`
}

type topicConfigV0 struct {
	Partitions      int32 `json:"partitions"`
	Retention       int64 `json:"retention,omitempty"` // nanoseconds
	RetentionBytes  int64 `json:"retention_bytes,omitempty"`
	MaxMessages     int64 `json:"max_messages,omitempty"`
	MaxBytes        int64 `json:"max_bytes,omitempty"`
	Discard         int   `json:"discard"`
	DedupWindow     int64 `json:"dedup_window"`          // nanoseconds
	MessageTTL      int64 `json:"message_ttl,omitempty"` // nanoseconds
	Durability      int   `json:"durability"`
	MaxMessageBytes int32 `json:"max_message_bytes"`
	WorkQueue       bool  `json:"work_queue,omitempty"`
}

type subV0 struct {
	Topic   string      `json:"topic"`
	Name    string      `json:"name"`
	Config  subConfigV0 `json:"config"`
	Created time.Time   `json:"created"`
}

type subConfigV0 struct {
	Mode      int           `json:"mode"`
	Filter    string        `json:"filter,omitempty"`
	Start     positionV0    `json:"start"`
	Queue     queueConfigV0 `json:"queue,omitzero"`
	OnFailure string        `json:"on_failure,omitempty"`
}

type positionV0 struct {
	Kind   int       `json:"kind"`
	Time   time.Time `json:"time,omitzero"`
	Offset int64     `json:"offset,omitempty"`
}

type queueConfigV0 struct {
	AckTimeout      int64     `json:"ack_timeout,omitempty"` // nanoseconds
	MaxDeliveries   int       `json:"max_deliveries,omitempty"`
	Backoff         backoffV0 `json:"backoff,omitzero"`
	Ordering        int       `json:"ordering,omitempty"`
	DeadLetterTopic string    `json:"dead_letter_topic,omitempty"`
	OnExpired       int       `json:"on_expired,omitempty"`
	MaxInFlight     int       `json:"max_in_flight,omitempty"`
	RateLimit       float64   `json:"rate_limit,omitempty"`
	RateBurst       int       `json:"rate_burst,omitempty"`
}

// backoffV0 had no tags: its keys are the field names.
type backoffV0 struct {
	Initial    int64 // nanoseconds
	Max        int64 // nanoseconds
	Multiplier float64
	Jitter     int
	Delays     []int64 // nanoseconds
}

// The meaning of the integers of version-0 records.
var (
	discardV0    = []Discard{DiscardOld, DiscardNew}
	durabilityV0 = []seglog.Policy{seglog.SyncAlways, seglog.SyncInterval, seglog.SyncNone}
	modeV0       = []Mode{ModeStream, ModeQueue}
	positionV0s  = []PositionKind{Earliest, Latest, AtTime, AtOffset}
	orderingV0   = []queue.Ordering{queue.OrderNone, queue.OrderKey}
	expiredV0    = []queue.ExpiredAction{queue.ExpireDeadLetter, queue.ExpireDrop}
	jitterV0     = []queue.Jitter{queue.JitterFull, queue.JitterEqual, queue.JitterNone}
)

// v0Enum returns the value stored as n in a version-0 record.
func v0Enum[E any](values []E, what string, n int) (E, error) {
	if n < 0 || n >= len(values) {
		var zero E
		return zero, fmt.Errorf("version-0 record: unknown %s %d", what, n)
	}
	return values[n], nil
}

func decodeTopicV0(payload []byte) (Topic, error) {
	var w topicV0
	if err := state.DecodeJSON(payload, &w, false); err != nil {
		return Topic{}, fmt.Errorf("version-0 record: %w", err)
	}
	c := w.Config
	t := Topic{Name: w.Name, ID: w.ID, Created: w.Created, Config: TopicConfig{
		Partitions: c.Partitions, Retention: time.Duration(c.Retention), RetentionBytes: c.RetentionBytes,
		MaxMessages: c.MaxMessages, MaxBytes: c.MaxBytes, DedupWindow: time.Duration(c.DedupWindow),
		MessageTTL: time.Duration(c.MessageTTL), MaxMessageBytes: c.MaxMessageBytes, WorkQueue: c.WorkQueue,
	}}
	var bad [2]error
	t.Config.Discard, bad[0] = v0Enum(discardV0, "discard policy", c.Discard)
	t.Config.Durability, bad[1] = v0Enum(durabilityV0, "durability policy", c.Durability)
	if err := firstError(bad[:]); err != nil {
		return Topic{}, err
	}
	return t, nil
}

func decodeSubV0(payload []byte) (Subscription, error) {
	var w subV0
	if err := state.DecodeJSON(payload, &w, false); err != nil {
		return Subscription{}, fmt.Errorf("version-0 record: %w", err)
	}
	c, q := w.Config, w.Config.Queue
	s := Subscription{Topic: w.Topic, Name: w.Name, Created: w.Created, Config: SubConfig{
		Filter: c.Filter,
		Start:  Position{Time: c.Start.Time, Offset: c.Start.Offset},
		Queue: QueueConfig{
			AckTimeout: time.Duration(q.AckTimeout), MaxDeliveries: q.MaxDeliveries, DeadLetterTopic: q.DeadLetterTopic,
			MaxInFlight: q.MaxInFlight, RateLimit: q.RateLimit, RateBurst: q.RateBurst,
			Backoff: queue.Backoff{Initial: time.Duration(q.Backoff.Initial), Max: time.Duration(q.Backoff.Max),
				Multiplier: q.Backoff.Multiplier},
		},
	}}
	for _, d := range q.Backoff.Delays {
		s.Config.Queue.Backoff.Delays = append(s.Config.Queue.Backoff.Delays, time.Duration(d))
	}
	var bad [6]error
	s.Config.Mode, bad[0] = v0Enum(modeV0, "mode", c.Mode)
	s.Config.Start.Kind, bad[1] = v0Enum(positionV0s, "start position kind", c.Start.Kind)
	s.Config.Queue.Ordering, bad[2] = v0Enum(orderingV0, "ordering", q.Ordering)
	s.Config.Queue.OnExpired, bad[3] = v0Enum(expiredV0, "on-expired action", q.OnExpired)
	s.Config.Queue.Backoff.Jitter, bad[4] = v0Enum(jitterV0, "jitter", q.Backoff.Jitter)
	// The failure action was already a string.
	s.Config.OnFailure, bad[5] = valueOf(failureNames, "failure action", c.OnFailure)
	if bad[5] != nil {
		bad[5] = fmt.Errorf("version-0 record: %w", bad[5])
	}
	if err := firstError(bad[:]); err != nil {
		return Subscription{}, err
	}
	return s, nil
}
