package broker

import (
	"strconv"
	"time"

	"github.com/spoolmq/spool/internal/batch"
)

// Header keys under which Spool stores its message attributes. They travel
// with the message through every protocol (a Kafka consumer sees them as
// ordinary headers; a Kafka producer can set them).
const (
	HeaderID          = "spool.id"         // idempotency key
	HeaderSubject     = "spool.subject"    // routing key
	HeaderDeliverAt   = "spool.deliver-at" // Unix milliseconds, decimal
	HeaderTTL         = "spool.ttl"        // milliseconds, decimal
	HeaderTraceparent = "traceparent"      // W3C trace context

	// HeaderRedriveTo marks a message redriven from a dead-letter topic to
	// one subscription: every other subscription skips it.
	HeaderRedriveTo = "spool.redrive-to"
	// HeaderOriginalID carries a message's original id on its dead-letter
	// copy and on a redriven copy (which get ids of their own, so that
	// writing them is idempotent).
	HeaderOriginalID = "spool.original-id"

	// Headers a dead-letter copy carries.
	HeaderDLQTopic        = "spool.dlq.topic"
	HeaderDLQSubscription = "spool.dlq.subscription"
	HeaderDLQPartition    = "spool.dlq.partition"
	HeaderDLQOffset       = "spool.dlq.offset"
	HeaderDLQDeliveries   = "spool.dlq.deliveries"
	HeaderDLQReason       = "spool.dlq.reason"
	HeaderDLQError        = "spool.dlq.error"
	HeaderDLQTime         = "spool.dlq.time" // Unix ms
)

// MaxIDLen bounds idempotency keys and subjects.
const MaxIDLen = 1024

// Message is a message to publish.
type Message struct {
	Key, Value []byte
	Headers    []batch.RecordHeader // user headers (Spool's own are added from the fields below)
	ID         string               // idempotency key; "" = none
	Subject    string               // routing key; "" = none
	DeliverAt  time.Time            // zero = deliver at once
	Delay      time.Duration        // relative alternative to DeliverAt
	TTL        time.Duration        // 0 = the topic's default
	Partition  int32                // explicit partition, or -1
	Timestamp  time.Time            // zero = the broker's time of acceptance
}

// size is the message's size as counted against MaxMessageBytes.
func (m *Message) size() int {
	n := len(m.Key) + len(m.Value) + len(m.ID) + len(m.Subject)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Result says where a published message landed.
type Result struct {
	Partition int32
	Offset    int64
	Duplicate bool // the ID was seen within the window; Partition/Offset are the original's
	// DeadLettered: the message failed its topic's schema validation and
	// was written to the topic's dead-letter topic, at Partition/Offset
	// there.
	DeadLettered bool
	stored       bool // internal: appended by this request
}

// Delivered is a stored message as read back for a consumer.
type Delivered struct {
	Partition     int32
	Offset        int64
	Timestamp     time.Time
	Key, Value    []byte
	Headers       []batch.RecordHeader // all stored headers, Spool's included
	ID, Subject   string
	DeliveryCount int32
	// Queue mode: first delivery to the subscription and the lease's end.
	FirstDeliveredAt time.Time
	LeaseDeadline    time.Time
}

// record builds the stored record for m, with Spool's attributes first.
func (m *Message) record(now time.Time) batch.Record {
	var hs []batch.RecordHeader
	if m.ID != "" || m.Subject != "" || !m.DeliverAt.IsZero() || m.TTL > 0 {
		hs = make([]batch.RecordHeader, 0, len(m.Headers)+4)
		if m.ID != "" {
			hs = append(hs, batch.RecordHeader{Key: HeaderID, Value: []byte(m.ID)})
		}
		if m.Subject != "" {
			hs = append(hs, batch.RecordHeader{Key: HeaderSubject, Value: []byte(m.Subject)})
		}
		if !m.DeliverAt.IsZero() {
			hs = append(hs, batch.RecordHeader{Key: HeaderDeliverAt, Value: strconv.AppendInt(nil, m.DeliverAt.UnixMilli(), 10)})
		}
		if m.TTL > 0 {
			hs = append(hs, batch.RecordHeader{Key: HeaderTTL, Value: strconv.AppendInt(nil, m.TTL.Milliseconds(), 10)})
		}
		hs = append(hs, m.Headers...)
	} else {
		hs = m.Headers
	}
	return batch.Record{Key: m.Key, Value: m.Value, Headers: hs}
}

// attrs extracts Spool's attributes from stored headers.
func attrs(hs []batch.RecordHeader) (id, subject string) {
	for _, h := range hs {
		switch h.Key {
		case HeaderID:
			id = string(h.Value)
		case HeaderSubject:
			subject = string(h.Value)
		}
	}
	return id, subject
}

// redrivenElsewhere reports whether a message was redriven to a subscription
// other than sub (every other subscription skips it).
func redrivenElsewhere(hs []batch.RecordHeader, sub string) bool {
	for _, h := range hs {
		if h.Key == HeaderRedriveTo {
			return string(h.Value) != sub
		}
	}
	return false
}
