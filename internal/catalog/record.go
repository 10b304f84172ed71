package catalog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
)

// The catalog's records in the state store (docs/format/state.md): topics
// (t/), subscriptions (s/) and committed offsets (o/). This file is their
// only encoder and decoder; the structs of types.go are the in-memory form
// and may change freely, the wire structs below may not.
//
// Topic and subscription records are version 1: the byte 0x01, then a JSON
// object of the wire struct, every field present. Enums are strings,
// durations Go duration strings ("1h30m0s", "250ms", "0s": exact to the
// nanosecond, with their units), times RFC 3339 in UTC with up to nine
// fractional digits. A version-1 decoder refuses missing and unknown
// fields, unknown enum names and trailing bytes: a record that needs
// anything else is a new version. Records written before versions existed
// (JSON objects, first byte '{') are version 0 and decoded with their
// meaning then (record_v0.go).
//
// Committed offsets are a fixed layout without a version byte (version 0):
// 8 bytes, the offset big-endian. A later version will have another length
// and start with its version byte.

// recordVersion is the version of the subscription records this server
// writes for subscriptions without a processed-key ledger, and of the
// topic records it writes for topics without replicas (a single node's,
// and those of older clusters).
const recordVersion = 1

// subRecordVersion is the newest subscription record version this server
// reads: version 2 is version 1 with the processed-key ledger's settings
// in the queue config (processed_key, processed_ttl), written only for
// subscriptions that have a ledger, so that a server without it still
// reads every other record.
const subRecordVersion = 2

// topicRecordVersion is the newest topic record version this server
// reads: version 2 is version 1 with the replication factor in the config
// and the partitions' replicas (Topic.Assignment), written for the topics
// that have them (a cluster's).
//
// Version 3 is version 2 with the schema binding and the event catalog's
// description of the topic, written for the topics that have one of them.
const topicRecordVersion = 3

// topicV1 is a topic record, version 1.
type topicV1 struct {
	Name    string        `json:"name"`
	ID      string        `json:"id"`
	Created time.Time     `json:"created"`
	Config  topicConfigV1 `json:"config"`
}

type topicConfigV1 struct {
	Partitions      int32    `json:"partitions"`
	Retention       duration `json:"retention"`       // 0s: forever
	RetentionBytes  int64    `json:"retention_bytes"` // per partition; 0: unlimited
	MaxMessages     int64    `json:"max_messages"`    // 0: unlimited
	MaxBytes        int64    `json:"max_bytes"`       // 0: unlimited
	Discard         string   `json:"discard"`         // old, new
	DedupWindow     duration `json:"dedup_window"`
	MessageTTL      duration `json:"message_ttl"` // 0s: none
	Durability      string   `json:"durability"`  // always, interval, none
	MaxMessageBytes int32    `json:"max_message_bytes"`
	WorkQueue       bool     `json:"work_queue"`
}

// topicV2 is a topic record, version 2: version 1's fields, the
// replication factor in the config, and the partitions' replicas.
type topicV2 struct {
	Name       string         `json:"name"`
	ID         string         `json:"id"`
	Created    time.Time      `json:"created"`
	Config     topicConfigV2  `json:"config"`
	Assignment []assignmentV2 `json:"assignment"` // [] or one per partition
}

type topicConfigV2 struct {
	Partitions      int32    `json:"partitions"`
	Retention       duration `json:"retention"`
	RetentionBytes  int64    `json:"retention_bytes"`
	MaxMessages     int64    `json:"max_messages"`
	MaxBytes        int64    `json:"max_bytes"`
	Discard         string   `json:"discard"`
	DedupWindow     duration `json:"dedup_window"`
	MessageTTL      duration `json:"message_ttl"`
	Durability      string   `json:"durability"`
	MaxMessageBytes int32    `json:"max_message_bytes"`
	WorkQueue       bool     `json:"work_queue"`
	Replicas        int32    `json:"replicas"` // 0: all the nodes at creation
}

// topicV3 is a topic record, version 3: version 2's fields, the schema
// binding in the config, and the catalog description.
type topicV3 struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Created     time.Time         `json:"created"`
	Config      topicConfigV3     `json:"config"`
	Assignment  []assignmentV2    `json:"assignment"`
	Owner       string            `json:"owner"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"` // {} when none
}

type topicConfigV3 struct {
	topicConfigV2
	SchemaSubject string `json:"schema_subject"` // "": none
	SchemaMode    string `json:"schema_mode"`    // reject, dead-letter
}

var schemaModeNames = map[SchemaMode]string{SchemaReject: "reject", SchemaDeadLetter: "dead-letter"}

// assignmentV2 is a partition's replicas ([] each when unknown).
type assignmentV2 struct {
	Voters  []uint64 `json:"voters"`
	Initial []uint64 `json:"initial"`
}

// subV1 is a subscription record, version 1.
type subV1 struct {
	Topic   string      `json:"topic"`
	Name    string      `json:"name"`
	Created time.Time   `json:"created"`
	Config  subConfigV1 `json:"config"`
}

type subConfigV1 struct {
	Mode      string        `json:"mode"` // stream, queue
	Filter    string        `json:"filter"`
	Start     positionV1    `json:"start"`
	Queue     queueConfigV1 `json:"queue"`
	OnFailure string        `json:"on_failure"` // "" (the default), dead-letter, stop
}

type positionV1 struct {
	Kind   string     `json:"kind"`           // earliest, latest, time, offset
	Time   *time.Time `json:"time,omitempty"` // absent when zero
	Offset int64      `json:"offset"`
}

// queueConfigV1: zero values mean the defaults, as in QueueConfig.
type queueConfigV1 struct {
	AckTimeout      duration  `json:"ack_timeout"`
	MaxDeliveries   int       `json:"max_deliveries"`
	Backoff         backoffV1 `json:"backoff"`
	Ordering        string    `json:"ordering"` // none, key
	DeadLetterTopic string    `json:"dead_letter_topic"`
	OnExpired       string    `json:"on_expired"` // dead-letter, drop
	MaxInFlight     int       `json:"max_in_flight"`
	RateLimit       float64   `json:"rate_limit"` // deliveries per second
	RateBurst       int       `json:"rate_burst"`
}

// subV2 is a subscription record, version 2.
type subV2 struct {
	Topic   string      `json:"topic"`
	Name    string      `json:"name"`
	Created time.Time   `json:"created"`
	Config  subConfigV2 `json:"config"`
}

type subConfigV2 struct {
	Mode      string        `json:"mode"`
	Filter    string        `json:"filter"`
	Start     positionV1    `json:"start"`
	Queue     queueConfigV2 `json:"queue"`
	OnFailure string        `json:"on_failure"`
}

// queueConfigV2 is queueConfigV1 with the processed-key ledger.
type queueConfigV2 struct {
	queueConfigV1
	ProcessedKey string   `json:"processed_key"` // off, id, key, header:NAME
	ProcessedTTL duration `json:"processed_ttl"` // 0s: the default
}

type backoffV1 struct {
	Initial    duration   `json:"initial"`
	Max        duration   `json:"max"`
	Multiplier float64    `json:"multiplier"`
	Jitter     string     `json:"jitter"` // full, equal, none
	Delays     []duration `json:"delays"` // [] when unset
}

// The names of the enums in version-1 records. Never change a name: add a
// version instead.
var (
	discardNames    = map[Discard]string{DiscardOld: "old", DiscardNew: "new"}
	durabilityNames = map[seglog.Policy]string{seglog.SyncAlways: "always", seglog.SyncInterval: "interval", seglog.SyncNone: "none"}
	modeNames       = map[Mode]string{ModeStream: "stream", ModeQueue: "queue"}
	positionNames   = map[PositionKind]string{Earliest: "earliest", Latest: "latest", AtTime: "time", AtOffset: "offset"}
	orderingNames   = map[queue.Ordering]string{queue.OrderNone: "none", queue.OrderKey: "key"}
	expiredNames    = map[queue.ExpiredAction]string{queue.ExpireDeadLetter: "dead-letter", queue.ExpireDrop: "drop"}
	jitterNames     = map[queue.Jitter]string{queue.JitterFull: "full", queue.JitterEqual: "equal", queue.JitterNone: "none"}
	failureNames    = map[FailureAction]string{"": "", FailDeadLetter: "dead-letter", FailStop: "stop"}
)

// nameOf returns v's name in names.
func nameOf[E comparable](names map[E]string, what string, v E) (string, error) {
	n, ok := names[v]
	if !ok {
		return "", fmt.Errorf("unknown %s %#v", what, v)
	}
	return n, nil
}

// valueOf returns the value named name in names.
func valueOf[E comparable](names map[E]string, what, name string) (E, error) {
	for v, n := range names {
		if n == name {
			return v, nil
		}
	}
	var zero E
	return zero, fmt.Errorf("unknown %s %q", what, name)
}

// firstError returns the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// duration is a time.Duration stored as a Go duration string.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s is not a string such as \"1m30s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = duration(v)
	return nil
}

// encodeTopic encodes a topic record: version 1 unless it has replicas
// (version 2).
func encodeTopic(t Topic) ([]byte, error) {
	c := t.Config
	w := topicV1{Name: t.Name, ID: t.ID, Created: t.Created.UTC(), Config: topicConfigV1{
		Partitions: c.Partitions, Retention: duration(c.Retention), RetentionBytes: c.RetentionBytes,
		MaxMessages: c.MaxMessages, MaxBytes: c.MaxBytes, DedupWindow: duration(c.DedupWindow),
		MessageTTL: duration(c.MessageTTL), MaxMessageBytes: c.MaxMessageBytes, WorkQueue: c.WorkQueue,
	}}
	var err error
	if w.Config.Discard, err = nameOf(discardNames, "discard policy", c.Discard); err != nil {
		return nil, err
	}
	if w.Config.Durability, err = nameOf(durabilityNames, "durability policy", c.Durability); err != nil {
		return nil, err
	}
	v3 := c.SchemaSubject != "" || c.SchemaMode != SchemaReject || c.Owner != "" || c.Description != "" || len(c.Labels) > 0
	if c.Replicas == 0 && t.Assignment == nil && !v3 {
		return marshalV1(w)
	}
	if err := checkAssignment(t); err != nil {
		return nil, err
	}
	wc := w.Config
	w2 := topicV2{Name: w.Name, ID: w.ID, Created: w.Created, Config: topicConfigV2{
		Partitions: wc.Partitions, Retention: wc.Retention, RetentionBytes: wc.RetentionBytes, MaxMessages: wc.MaxMessages,
		MaxBytes: wc.MaxBytes, Discard: wc.Discard, DedupWindow: wc.DedupWindow, MessageTTL: wc.MessageTTL,
		Durability: wc.Durability, MaxMessageBytes: wc.MaxMessageBytes, WorkQueue: wc.WorkQueue, Replicas: c.Replicas,
	}, Assignment: make([]assignmentV2, len(t.Assignment))}
	for i, a := range t.Assignment {
		w2.Assignment[i] = assignmentV2{Voters: append([]uint64{}, a.Voters...), Initial: append([]uint64{}, a.Initial...)}
	}
	if v3 {
		if err := ValidateCatalogInfo(c); err != nil {
			return nil, err
		}
		w3 := topicV3{Name: w2.Name, ID: w2.ID, Created: w2.Created, Assignment: w2.Assignment,
			Config: topicConfigV3{topicConfigV2: w2.Config, SchemaSubject: c.SchemaSubject},
			Owner:  c.Owner, Description: c.Description, Labels: map[string]string{}}
		for k, v := range c.Labels {
			w3.Labels[k] = v
		}
		if w3.Config.SchemaMode, err = nameOf(schemaModeNames, "schema mode", c.SchemaMode); err != nil {
			return nil, err
		}
		b, err := json.Marshal(w3)
		if err != nil {
			return nil, err
		}
		return append([]byte{3}, b...), nil
	}
	b, err := json.Marshal(w2)
	if err != nil {
		return nil, err
	}
	return append([]byte{2}, b...), nil
}

// checkAssignment checks a topic's replicas: none, or one entry per
// partition, each a valid replica list or empty.
func checkAssignment(t Topic) error {
	if t.Config.Replicas < 0 || t.Config.Replicas > MaxReplicas {
		return fmt.Errorf("replication factor %d", t.Config.Replicas)
	}
	if len(t.Assignment) != 0 && len(t.Assignment) != int(t.Config.Partitions) {
		return fmt.Errorf("replicas of %d partitions for %d partitions", len(t.Assignment), t.Config.Partitions)
	}
	for p, a := range t.Assignment {
		for _, l := range [][]uint64{a.Voters, a.Initial} {
			if len(l) == 0 {
				continue
			}
			if err := ValidateReplicas(l, 0); err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
		}
	}
	return nil
}

// decodeTopic decodes the topic record stored under key.
func decodeTopic(key, v []byte) (Topic, error) {
	t, err := decodeTopicRecord(v)
	if err != nil {
		return Topic{}, &state.RecordError{Kind: "topic", Key: key, Err: err}
	}
	return t, nil
}

func decodeTopicRecord(v []byte) (Topic, error) {
	t, err := decodeTopicVersions(v)
	if err == nil {
		err = state.CheckTime("creation time", t.Created)
	}
	if err != nil {
		return Topic{}, err
	}
	return t, nil
}

func decodeTopicVersions(v []byte) (Topic, error) {
	ver, payload, err := state.Version(v, topicRecordVersion, true)
	if err != nil {
		return Topic{}, err
	}
	switch ver {
	case 0:
		return decodeTopicV0(payload)
	case 1:
		var w topicV1
		if err := state.DecodeJSON(payload, &w, true); err != nil {
			return Topic{}, err
		}
		return topicFromV1(w)
	}
	var w2 topicV2
	var w3 *topicV3
	if ver == 3 {
		w3 = &topicV3{}
		if err := state.DecodeJSON(payload, w3, true); err != nil {
			return Topic{}, err
		}
		w2 = topicV2{Name: w3.Name, ID: w3.ID, Created: w3.Created, Config: w3.Config.topicConfigV2, Assignment: w3.Assignment}
	} else if err := state.DecodeJSON(payload, &w2, true); err != nil {
		return Topic{}, err
	}
	c := w2.Config
	t, err := topicFromV1(topicV1{Name: w2.Name, ID: w2.ID, Created: w2.Created, Config: topicConfigV1{
		Partitions: c.Partitions, Retention: c.Retention, RetentionBytes: c.RetentionBytes, MaxMessages: c.MaxMessages,
		MaxBytes: c.MaxBytes, Discard: c.Discard, DedupWindow: c.DedupWindow, MessageTTL: c.MessageTTL,
		Durability: c.Durability, MaxMessageBytes: c.MaxMessageBytes, WorkQueue: c.WorkQueue,
	}})
	if err != nil {
		return Topic{}, err
	}
	t.Config.Replicas = c.Replicas
	if len(w2.Assignment) > 0 {
		t.Assignment = make([]PartitionAssignment, len(w2.Assignment))
		for i, a := range w2.Assignment {
			if len(a.Voters) > 0 {
				t.Assignment[i].Voters = a.Voters
			}
			if len(a.Initial) > 0 {
				t.Assignment[i].Initial = a.Initial
			}
		}
	}
	if err := checkAssignment(t); err != nil {
		return Topic{}, err
	}
	if w3 != nil {
		t.Config.SchemaSubject = w3.Config.SchemaSubject
		t.Config.Owner, t.Config.Description = w3.Owner, w3.Description
		if len(w3.Labels) > 0 {
			t.Config.Labels = w3.Labels
		}
		if t.Config.SchemaMode, err = valueOf(schemaModeNames, "schema mode", w3.Config.SchemaMode); err != nil {
			return Topic{}, err
		}
		if err := ValidateCatalogInfo(t.Config); err != nil {
			return Topic{}, err
		}
	}
	return t, nil
}

// topicFromV1 is the topic a version-1 record (or version 2's same
// fields) describes.
func topicFromV1(w topicV1) (Topic, error) {
	c := w.Config
	t := Topic{Name: w.Name, ID: w.ID, Created: w.Created, Config: TopicConfig{
		Partitions: c.Partitions, Retention: time.Duration(c.Retention), RetentionBytes: c.RetentionBytes,
		MaxMessages: c.MaxMessages, MaxBytes: c.MaxBytes, DedupWindow: time.Duration(c.DedupWindow),
		MessageTTL: time.Duration(c.MessageTTL), MaxMessageBytes: c.MaxMessageBytes, WorkQueue: c.WorkQueue,
	}}
	var err error
	if t.Config.Discard, err = valueOf(discardNames, "discard policy", c.Discard); err != nil {
		return Topic{}, err
	}
	if t.Config.Durability, err = valueOf(durabilityNames, "durability policy", c.Durability); err != nil {
		return Topic{}, err
	}
	return t, nil
}

// encodeSub encodes a subscription record.
func encodeSub(s Subscription) ([]byte, error) {
	w, err := subToV1(s)
	if err != nil {
		return nil, err
	}
	q := s.Config.Queue
	if q.ProcessedKey == "" && q.ProcessedTTL == 0 {
		return marshalV1(w)
	}
	if _, _, err := ParseProcessedKey(q.ProcessedKey); err != nil {
		return nil, err
	}
	c := w.Config
	w2 := subV2{Topic: w.Topic, Name: w.Name, Created: w.Created, Config: subConfigV2{
		Mode: c.Mode, Filter: c.Filter, Start: c.Start, OnFailure: c.OnFailure,
		Queue: queueConfigV2{queueConfigV1: c.Queue, ProcessedKey: q.ProcessedKey, ProcessedTTL: duration(q.ProcessedTTL)},
	}}
	if w2.Config.Queue.ProcessedKey == "" {
		w2.Config.Queue.ProcessedKey = "off"
	}
	b, err := json.Marshal(w2)
	if err != nil {
		return nil, err
	}
	return append([]byte{2}, b...), nil
}

func subToV1(s Subscription) (subV1, error) {
	c, q := s.Config, s.Config.Queue
	w := subV1{Topic: s.Topic, Name: s.Name, Created: s.Created.UTC(), Config: subConfigV1{
		Filter: c.Filter,
		Start:  positionV1{Offset: c.Start.Offset},
		Queue: queueConfigV1{
			AckTimeout: duration(q.AckTimeout), MaxDeliveries: q.MaxDeliveries, DeadLetterTopic: q.DeadLetterTopic,
			MaxInFlight: q.MaxInFlight, RateLimit: q.RateLimit, RateBurst: q.RateBurst,
			Backoff: backoffV1{Initial: duration(q.Backoff.Initial), Max: duration(q.Backoff.Max),
				Multiplier: q.Backoff.Multiplier, Delays: make([]duration, len(q.Backoff.Delays))},
		},
	}}
	if !c.Start.Time.IsZero() {
		t := c.Start.Time.UTC()
		w.Config.Start.Time = &t
	}
	for i, d := range q.Backoff.Delays {
		w.Config.Queue.Backoff.Delays[i] = duration(d)
	}
	var bad [6]error
	w.Config.Mode, bad[0] = nameOf(modeNames, "mode", c.Mode)
	w.Config.Start.Kind, bad[1] = nameOf(positionNames, "start position kind", c.Start.Kind)
	w.Config.OnFailure, bad[2] = nameOf(failureNames, "failure action", c.OnFailure)
	w.Config.Queue.Ordering, bad[3] = nameOf(orderingNames, "ordering", q.Ordering)
	w.Config.Queue.OnExpired, bad[4] = nameOf(expiredNames, "on-expired action", q.OnExpired)
	w.Config.Queue.Backoff.Jitter, bad[5] = nameOf(jitterNames, "jitter", q.Backoff.Jitter)
	if err := firstError(bad[:]); err != nil {
		return subV1{}, err
	}
	return w, nil
}

// decodeSub decodes the subscription record stored under key.
func decodeSub(key, v []byte) (Subscription, error) {
	s, err := decodeSubRecord(v)
	if err != nil {
		return Subscription{}, &state.RecordError{Kind: "subscription", Key: key, Err: err}
	}
	return s, nil
}

func decodeSubRecord(v []byte) (Subscription, error) {
	s, err := decodeSubVersions(v)
	if err == nil {
		err = firstError([]error{state.CheckTime("creation time", s.Created), state.CheckTime("start time", s.Config.Start.Time)})
	}
	if err != nil {
		return Subscription{}, err
	}
	return s, nil
}

func decodeSubVersions(v []byte) (Subscription, error) {
	ver, payload, err := state.Version(v, subRecordVersion, true)
	if err != nil {
		return Subscription{}, err
	}
	if ver == 0 {
		return decodeSubV0(payload)
	}
	var w subV1
	var processedKey string
	var processedTTL time.Duration
	if ver == 2 {
		var w2 subV2
		if err := state.DecodeJSON(payload, &w2, true); err != nil {
			return Subscription{}, err
		}
		c := w2.Config
		w = subV1{Topic: w2.Topic, Name: w2.Name, Created: w2.Created, Config: subConfigV1{
			Mode: c.Mode, Filter: c.Filter, Start: c.Start, Queue: c.Queue.queueConfigV1, OnFailure: c.OnFailure}}
		if processedKey = c.Queue.ProcessedKey; processedKey == "off" {
			processedKey = ""
		}
		if _, _, err := ParseProcessedKey(processedKey); err != nil {
			return Subscription{}, err
		}
		processedTTL = time.Duration(c.Queue.ProcessedTTL)
	} else if err := state.DecodeJSON(payload, &w, true); err != nil {
		return Subscription{}, err
	}
	c, q := w.Config, w.Config.Queue
	s := Subscription{Topic: w.Topic, Name: w.Name, Created: w.Created, Config: SubConfig{
		Filter: c.Filter,
		Start:  Position{Offset: c.Start.Offset},
		Queue: QueueConfig{
			AckTimeout: time.Duration(q.AckTimeout), MaxDeliveries: q.MaxDeliveries, DeadLetterTopic: q.DeadLetterTopic,
			MaxInFlight: q.MaxInFlight, RateLimit: q.RateLimit, RateBurst: q.RateBurst,
			Backoff: queue.Backoff{Initial: time.Duration(q.Backoff.Initial), Max: time.Duration(q.Backoff.Max),
				Multiplier: q.Backoff.Multiplier},
			ProcessedKey: processedKey, ProcessedTTL: processedTTL,
		},
	}}
	if c.Start.Time != nil {
		s.Config.Start.Time = *c.Start.Time
	}
	for _, d := range q.Backoff.Delays {
		s.Config.Queue.Backoff.Delays = append(s.Config.Queue.Backoff.Delays, time.Duration(d))
	}
	var bad [6]error
	s.Config.Mode, bad[0] = valueOf(modeNames, "mode", c.Mode)
	s.Config.Start.Kind, bad[1] = valueOf(positionNames, "start position kind", c.Start.Kind)
	s.Config.OnFailure, bad[2] = valueOf(failureNames, "failure action", c.OnFailure)
	s.Config.Queue.Ordering, bad[3] = valueOf(orderingNames, "ordering", q.Ordering)
	s.Config.Queue.OnExpired, bad[4] = valueOf(expiredNames, "on-expired action", q.OnExpired)
	s.Config.Queue.Backoff.Jitter, bad[5] = valueOf(jitterNames, "jitter", q.Backoff.Jitter)
	if err := firstError(bad[:]); err != nil {
		return Subscription{}, err
	}
	return s, nil
}

// marshalV1 returns the version byte followed by w as JSON.
func marshalV1(w any) ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	return append([]byte{recordVersion}, b...), nil
}

// EncodeOffset encodes a committed offset record: 8 bytes, big-endian.
func EncodeOffset(off int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(off))
}

// DecodeOffset decodes the committed offset record stored under key.
func DecodeOffset(key, v []byte) (int64, error) {
	if err := state.Fixed(v, 8); err != nil {
		return 0, &state.RecordError{Kind: "committed offset", Key: key, Err: err}
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// EncodeTopic encodes a topic as its catalog record (for changes carried
// elsewhere, such as the entries of a cluster's metadata group).
func EncodeTopic(t Topic) ([]byte, error) { return encodeTopic(t) }

// DecodeTopic decodes a record made by EncodeTopic.
func DecodeTopic(v []byte) (Topic, error) { return decodeTopicRecord(v) }

// EncodeSub encodes a subscription as its catalog record.
func EncodeSub(s Subscription) ([]byte, error) { return encodeSub(s) }

// DecodeSub decodes a record made by EncodeSub.
func DecodeSub(v []byte) (Subscription, error) { return decodeSubRecord(v) }
