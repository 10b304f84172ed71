package client

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// Header is one message header; keys need not be unique and keep their
// order. Spool's own headers start with "spool." (and "traceparent").
type Header struct {
	Key   string // need not be unique
	Value []byte // nil and empty are the same on the wire
}

// Message is a message to publish and, with the delivery fields filled in,
// a message delivered to a consumer. The zero value (plus a Value) is a
// valid message: no key, server-chosen partition, broker timestamp.
type Message struct {
	// ID is the idempotency id: a publish whose ID the topic has seen within
	// its de-duplication window is not stored again. Producers and Publish
	// fill in a random 128-bit hex id when it is empty; set your own (an
	// event id, say) to make publishes idempotent across process restarts.
	ID string
	// Key chooses the partition (same key, same partition) and, within one
	// producer, the publish order; empty means no key.
	Key []byte
	// Value is the payload; it may be empty.
	Value []byte
	// Headers are published as given; delivered messages carry all stored
	// headers, Spool's own "spool.*" ones included.
	Headers []Header
	// Subject is the routing key matched by subscription filters, as
	// dot-separated tokens ("orders.eu.created"); empty means none.
	Subject string
	// Timestamp is the producer's timestamp; zero means the broker's time of
	// acceptance. Delivered messages always carry it.
	Timestamp time.Time
	// DeliverAt holds the message back from queue subscriptions until then;
	// zero means no delay. At most one of DeliverAt and Delay may be set.
	DeliverAt time.Time
	// Delay is DeliverAt relative to the broker's clock at acceptance; must
	// not be negative.
	Delay time.Duration
	// TTL expires the message this long after it is published, overriding
	// the topic's MessageTTL; 0 means the topic's default; must not be
	// negative.
	TTL time.Duration

	// Topic is the topic a delivered message came from; ignored on publish.
	Topic string
	// Partition is the partition a delivered message came from. On publish
	// it is ignored unless set through ToPartition, so forwarding a
	// delivered message does not pin it to its old partition number.
	Partition int32
	// Offset is a delivered message's offset in its partition; ignored on
	// publish.
	Offset int64
	// DeliveryCount is how many times the message was delivered to this
	// subscription, this delivery included (always 1 in stream mode).
	DeliveryCount int32
	// FirstDeliveredAt is, in queue mode, when the message was first
	// delivered to the subscription; zero in stream mode.
	FirstDeliveredAt time.Time
	// LeaseDeadline is, in queue mode, when this delivery's lease ends
	// unless the message is finished or the lease extended (the Consumer
	// extends it while it holds the message); zero in stream mode.
	LeaseDeadline time.Time

	partitionSet bool   // Partition was chosen with ToPartition
	epoch        uint64 // consumer: the partition epoch it was delivered in
}

// ToPartition returns a copy of m that is published to partition p instead
// of the partition its key (or round-robin) would choose; a negative p is
// rejected with ErrInvalidArgument when the message is sent.
func (m Message) ToPartition(p int32) Message {
	m.Partition = p
	m.partitionSet = true
	return m
}

// HeaderValue returns the value of the first header named key, and whether
// there was one.
func (m *Message) HeaderValue(key string) ([]byte, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// PublishResult is where a published message landed.
type PublishResult struct {
	Partition int32 // the partition the message was stored in
	Offset    int64 // its offset there
	// Duplicate is true when the message's ID had already been published
	// within the topic's de-duplication window: Partition and Offset are the
	// original's, and nothing new was stored.
	Duplicate bool
	// DeadLettered is true when the message failed its topic's schema
	// validation (a topic bound to a schema subject in dead-letter mode)
	// and was stored in the topic's dead-letter topic instead: Partition
	// and Offset are its place there.
	DeadLettered bool
}

// Bounds the server puts on publish requests: messages per request,
// headers per message, and headers per request.
const (
	maxPublishMessages = 10_000
	maxMessageHeaders  = 1_000
	maxRequestHeaders  = 100_000
)

// messageOverhead approximates the per-message framing cost, in bytes, for
// buffer accounting.
const messageOverhead = 64

// size is the message's approximate encoded size in bytes, used for batch
// and buffer limits.
func (m *Message) size() int64 {
	n := len(m.Key) + len(m.Value) + len(m.ID) + len(m.Subject) + messageOverhead
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return int64(n)
}

// orderKey is the token publishes are ordered by: the explicit partition,
// else the key; "" means the message has no ordering constraint.
func (m *Message) orderKey() string {
	if m.partitionSet {
		return "p" + strconv.Itoa(int(m.Partition))
	}
	if len(m.Key) > 0 {
		return "k" + string(m.Key)
	}
	return ""
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// toProto validates m and converts it for publishing, assigning an ID when
// it has none.
func (m *Message) toProto() (*spoolv1.Message, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return m.proto(), nil
}

// check validates m for publishing.
func (m *Message) check() error {
	switch {
	case !m.DeliverAt.IsZero() && m.Delay != 0:
		return invalidArgument("message: DeliverAt and Delay are both set")
	case m.Delay < 0:
		return invalidArgument("message: negative Delay %v", m.Delay)
	case m.TTL < 0:
		return invalidArgument("message: negative TTL %v", m.TTL)
	case m.partitionSet && m.Partition < 0:
		return invalidArgument("message: negative partition %d", m.Partition)
	case len(m.Headers) > maxMessageHeaders:
		return invalidArgument("message: %d headers; the limit is %d", len(m.Headers), maxMessageHeaders)
	}
	return nil
}

// proto converts a checked m for the per-message form, assigning an ID when
// it has none.
func (m *Message) proto() *spoolv1.Message {
	id := m.ID
	if id == "" {
		id = newID()
	}
	pm := &spoolv1.Message{Key: m.Key, Value: m.Value, Id: id, Subject: m.Subject}
	if len(m.Headers) > 0 {
		pm.Headers = make([]*spoolv1.Header, len(m.Headers))
		for i, h := range m.Headers {
			pm.Headers[i] = &spoolv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	if !m.Timestamp.IsZero() {
		pm.Timestamp = timestamppb.New(m.Timestamp)
	}
	if !m.DeliverAt.IsZero() {
		pm.DeliverAt = timestamppb.New(m.DeliverAt)
	}
	if m.Delay > 0 {
		pm.Delay = durationpb.New(m.Delay)
	}
	if m.TTL > 0 {
		pm.Ttl = durationpb.New(m.TTL)
	}
	if m.partitionSet {
		p := m.Partition
		pm.Partition = &p
	}
	return pm
}

// messagesFromDeliveries converts one event's messages, allocating them
// (and their headers) in shared arrays.
func messagesFromDeliveries(topic string, ds []*spoolv1.Delivery) []*Message {
	nh := 0
	for _, d := range ds {
		nh += len(d.GetHeaders())
	}
	msgs := make([]Message, len(ds))
	hdrs := make([]Header, nh)
	out := make([]*Message, len(ds))
	for i, d := range ds {
		m := &msgs[i]
		fillMessage(m, topic, d)
		if hs := d.GetHeaders(); len(hs) > 0 {
			m.Headers = hdrs[:len(hs):len(hs)]
			hdrs = hdrs[len(hs):]
			for j, h := range hs {
				m.Headers[j] = Header{Key: h.GetKey(), Value: h.GetValue()}
			}
		}
		out[i] = m
	}
	return out
}

// fillMessage sets m's fields from d, except Headers.
func fillMessage(m *Message, topic string, d *spoolv1.Delivery) {
	*m = Message{
		ID:            d.GetId(),
		Key:           d.GetKey(),
		Value:         d.GetValue(),
		Subject:       d.GetSubject(),
		Topic:         topic,
		Partition:     d.GetPartition(),
		Offset:        d.GetOffset(),
		DeliveryCount: d.GetDeliveryCount(),
	}
	if ts := d.GetTimestamp(); ts != nil {
		m.Timestamp = ts.AsTime()
	}
	if ts := d.GetFirstDeliveredAt(); ts != nil {
		m.FirstDeliveredAt = ts.AsTime()
	}
	if ts := d.GetLeaseDeadline(); ts != nil {
		m.LeaseDeadline = ts.AsTime()
	}
}

func resultFromProto(r *spoolv1.PublishResult) PublishResult {
	return PublishResult{Partition: r.GetPartition(), Offset: r.GetOffset(), Duplicate: r.GetDuplicate(), DeadLettered: r.GetDeadLettered()}
}
