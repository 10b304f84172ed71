package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// Validation on publish. A topic bound to a schema registry subject
// (TopicConfig.SchemaSubject) has every message's value checked by the
// registry (SetSchemaValidator), on every publish path: messages (Publish),
// the native batch form (AppendBatch) and Kafka's record batches
// (AppendRaw). A message that fails is refused (schema_invalid, Kafka
// INVALID_RECORD, naming the message's index and the reason), or, in
// dead-letter mode, written to the topic's dead-letter topic
// (catalog.TopicDeadLetterName) with reason schema-invalid instead of to
// the topic. The topic's other messages are stored as usual.

// HeaderSchemaID names the schema of a message value that is not in the
// registry's wire format: the schema id, decimal.
const HeaderSchemaID = "spool.schema-id"

// ReasonSchemaInvalid is the dead-letter reason of a message that failed
// its topic's schema validation.
const ReasonSchemaInvalid = "schema-invalid"

// SchemaValidator checks message values against a registry subject.
type SchemaValidator interface {
	// ValidateValue checks value against subject's schemas: value is in
	// the registry's wire format, or, when schemaID (the spool.schema-id
	// header's value) is not nil, the payload of that schema. The error
	// says why it does not match.
	ValidateValue(subject string, value, schemaID []byte) error
}

// schemaValidator holds the registry's validator (a pointer to an
// interface value: atomic.Pointer needs a concrete type).
type schemaValidator struct {
	v atomic.Pointer[SchemaValidator]
}

// SetSchemaValidator makes v validate the messages of topics bound to a
// schema subject. Until it is set, publishing to such a topic is refused
// (unavailable).
func (b *Broker) SetSchemaValidator(v SchemaValidator) { b.schemas.v.Store(&v) }

// validateValue checks one message value of a bound topic.
func (b *Broker) validateValue(subject string, value []byte, headers []batch.RecordHeader) error {
	vp := b.schemas.v.Load()
	if vp == nil {
		return errs.New(errs.Unavailable, "the schema registry is not running on this node")
	}
	var id []byte
	for _, h := range headers {
		if h.Key == HeaderSchemaID {
			id = h.Value
			if id == nil {
				id = []byte{}
			}
		}
	}
	return (*vp).ValidateValue(subject, value, id)
}

// invalidMessage is a message of a publish that failed validation.
type invalidMessage struct {
	index int
	err   error
}

// schemaRefusal is the error refusing a publish with invalid messages:
// the first's index and reason, and how many there are.
func schemaRefusal(topicName string, bad []invalidMessage, what string) error {
	first := bad[0]
	more := ""
	if len(bad) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(bad)-1)
	}
	var unavail *errs.Error
	if errors.As(first.err, &unavail) && unavail.Code == errs.Unavailable {
		return first.err
	}
	return errs.Wrap(errs.SchemaInvalid, &RecordError{Index: first.index, Err: first.err},
		"%s %d of topic %q does not match its schema subject%s", what, first.index, topicName, more)
}

// RecordError is the first invalid record of a refused batch (Kafka's
// ProduceResponse record errors name it).
type RecordError struct {
	Index int // the record's index in its batch, or the message's in its request
	Err   error
}

func (e *RecordError) Error() string { return e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// deadLetterFirst is publish's answer for a publish to a topic bound in
// dead-letter mode with invalid messages: screened writes their copies,
// then publishes the others.
type deadLetterFirst struct{ bad []invalidMessage }

func (*deadLetterFirst) Error() string { return "broker: invalid messages to dead-letter first" }

// validateMessages checks a publish's messages against the topic's schema
// subject, if it has one: nil when all are valid, a refusal (reject
// mode), or a *deadLetterFirst (dead-letter mode).
func (b *Broker) validateMessages(topicName string, st *topicStats, cfg catalog.TopicConfig, msgs []Message) error {
	if cfg.SchemaSubject == "" {
		return nil
	}
	var bad []invalidMessage
	for i := range msgs {
		if err := b.validateValue(cfg.SchemaSubject, msgs[i].Value, msgs[i].Headers); err != nil {
			bad = append(bad, invalidMessage{i, err})
		}
	}
	if len(bad) == 0 {
		return nil
	}
	st.schemaInvalid.Add(uint64(len(bad)))
	if cfg.SchemaMode != catalog.SchemaDeadLetter {
		b.schemaRejected(topicName, bad)
		return schemaRefusal(topicName, bad, "message")
	}
	st.schemaDead.Add(uint64(len(bad)))
	return &deadLetterFirst{bad}
}

// deadLetterMessages writes the invalid messages of a publish to the
// topic's dead-letter topic and returns the messages to publish and the
// dead-lettered ones' results, by request index.
func (b *Broker) deadLetterMessages(topicName string, msgs []Message, bad []invalidMessage) ([]Message, map[int]Result, error) {
	dlq := catalog.TopicDeadLetterName(topicName)
	now := b.clock.Now().UnixMilli()
	copies := make([]Message, len(bad))
	for k, m := range bad {
		copies[k] = schemaDeadLetter(topicName, msgs[m.index], m.err, now)
	}
	res, err := b.writeSchemaDeadLetters(dlq, copies)
	if err != nil {
		return nil, nil, err
	}
	dead := make(map[int]Result, len(bad))
	for k, m := range bad {
		dead[m.index] = Result{Partition: res[k].Partition, Offset: res[k].Offset, DeadLettered: true}
	}
	b.schemaDeadLettered(topicName, bad)
	return withoutInvalid(msgs, bad), dead, nil
}

// schemaRejected reports a refusal by schema validation (at most one
// event per topic every eventEvery).
func (b *Broker) schemaRejected(topicName string, bad []invalidMessage) {
	b.emit(SystemEvent{Kind: EventSchemaRejected, Topic: topicName, Count: int64(len(bad)), Reason: ReasonSchemaInvalid, Detail: bad[0].err.Error()},
		"schema/"+topicName, slog.LevelWarn, "messages refused by schema validation", "count", len(bad), "first_error", bad[0].err)
}

// schemaDeadLettered reports invalid messages written to the topic's
// dead-letter topic.
func (b *Broker) schemaDeadLettered(topicName string, bad []invalidMessage) {
	dlq := catalog.TopicDeadLetterName(topicName)
	b.emit(SystemEvent{Kind: EventDeadLettered, Topic: topicName, Count: int64(len(bad)), Reason: ReasonSchemaInvalid, Detail: "dead-letter topic " + dlq},
		"", slog.LevelInfo, "messages dead-lettered", "count", len(bad), "reasons", map[string]int{ReasonSchemaInvalid: len(bad)}, "dlq", dlq, "first_error", bad[0].err)
}

// withoutInvalid returns items without those at bad's indexes (ascending).
func withoutInvalid[T any](items []T, bad []invalidMessage) []T {
	out := make([]T, 0, len(items)-len(bad))
	k := 0
	for i := range items {
		if k < len(bad) && bad[k].index == i {
			k++
			continue
		}
		out = append(out, items[i])
	}
	return out
}

// schemaBinding returns a topic's schema subject and mode, read under its
// life lock.
func (t *topic) schemaBinding() (string, catalog.SchemaMode) {
	t.life.RLock()
	defer t.life.RUnlock()
	return t.meta.Config.SchemaSubject, t.meta.Config.SchemaMode
}

// writeSchemaDeadLetters stores dead-letter copies in a topic's
// dead-letter topic, creating it if needed.
func (b *Broker) writeSchemaDeadLetters(dlq string, copies []Message) ([]Result, error) {
	if err := b.ensureDeadLetterTopic(dlq); err != nil {
		return nil, err
	}
	res, err := b.publishOwn(dlq, copies)
	if err != nil {
		return nil, fmt.Errorf("write to dead-letter topic %q: %w", dlq, err)
	}
	return res, nil
}

// schemaDeadLetter is the dead-letter copy of a message that failed its
// topic's validation: its key, value and headers, its id moved to
// spool.original-id (the copy's id derives from it, so that a retried
// publish stores one copy), and the spool.dlq.* headers.
func schemaDeadLetter(topicName string, m Message, cause error, nowMs int64) Message {
	c := Message{Key: m.Key, Value: m.Value, Partition: -1, Timestamp: m.Timestamp}
	c.Headers = make([]batch.RecordHeader, 0, len(m.Headers)+5)
	for _, h := range m.Headers {
		if h.Key != HeaderID {
			c.Headers = append(c.Headers, h)
		}
	}
	if m.ID != "" {
		c.ID = "schema:" + topicName + "/" + m.ID
		c.Headers = append(c.Headers, batch.RecordHeader{Key: HeaderOriginalID, Value: []byte(m.ID)})
	}
	add := func(k, v string) { c.Headers = append(c.Headers, batch.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQTopic, topicName)
	add(HeaderDLQReason, ReasonSchemaInvalid)
	add(HeaderDLQError, cause.Error())
	add(HeaderDLQTime, strconv.FormatInt(nowMs, 10))
	return c
}

// screenBatches validates the records of client-built batches for a bound
// topic, with t's life lock held (read). It returns the batches to store
// and their record count. In dead-letter mode a batch with invalid
// records is rebuilt without them after their copies are written to the
// dead-letter topic; an idempotent producer's batch keeps its last
// sequence number (its base sequence moves up by the records removed), so
// that the producer's next batch follows on. All of a batch's records
// invalid: the batch is refused (there is nothing to store, and the
// producer must learn its sequence numbers were not used).
func (b *Broker) screenBatches(t *topic, batches []byte, n int) ([]byte, int, error) {
	cfg := t.meta.Config
	if cfg.SchemaSubject == "" {
		return batches, n, nil
	}
	lim := b.cfg.Log.Limits
	var out []byte // nil while no batch changed
	count, off := 0, 0
	for bt, err := range batch.Batches(batches) {
		if err != nil {
			return nil, 0, errs.Wrap(errs.InvalidArgument, err, "record batch")
		}
		start := off
		off += len(bt.Bytes)
		// Validated as the records are walked, without a slice of them
		// (most batches are valid); the slice is built only for a batch
		// with invalid records.
		var bad []invalidMessage
		nrecs := 0
		for r, err := range bt.Records(lim.MaxDecompressedBytes) {
			if err != nil {
				return nil, 0, errs.Wrap(errs.InvalidArgument, err, "record batch")
			}
			if err := b.validateValue(cfg.SchemaSubject, r.Value, r.Headers); err != nil {
				bad = append(bad, invalidMessage{nrecs, err})
			}
			nrecs++
		}
		if len(bad) == 0 {
			if out != nil {
				out = append(out, bt.Bytes...)
			}
			count += nrecs
			continue
		}
		recs, err := batch.Records(bt.Bytes, lim.MaxDecompressedBytes)
		if err != nil {
			return nil, 0, errs.Wrap(errs.InvalidArgument, err, "record batch")
		}
		t.stats.schemaInvalid.Add(uint64(len(bad)))
		if cfg.SchemaMode != catalog.SchemaDeadLetter {
			b.schemaRejected(t.meta.Name, bad)
			return nil, 0, schemaRefusal(t.meta.Name, bad, "record")
		}
		if err := b.deadLetterRecords(t.meta.Name, bt.Header, recs, bad); err != nil {
			return nil, 0, err
		}
		t.stats.schemaDead.Add(uint64(len(bad)))
		b.schemaDeadLettered(t.meta.Name, bad)
		if len(bad) == len(recs) {
			return nil, 0, schemaRefusal(t.meta.Name, bad, "record")
		}
		if out == nil {
			out = append([]byte(nil), batches[:start]...)
		}
		kept := withoutInvalid(recs, bad)
		h := bt.Header
		if h.ProducerID >= 0 && h.BaseSequence >= 0 {
			h.BaseSequence += int32(len(bad))
		}
		if out, err = batch.Encode(out, h, kept); err != nil {
			return nil, 0, errs.Wrap(errs.InvalidArgument, err, "record batch without its invalid records")
		}
		count += len(kept)
	}
	if out == nil {
		return batches, count, nil
	}
	return out, count, nil
}

// deadLetterRecords writes the invalid records of a batch to the topic's
// dead-letter topic. An idempotent producer's records get ids from their
// producer and sequence, so that a retried batch stores them once.
func (b *Broker) deadLetterRecords(topicName string, h batch.Header, recs []batch.Record, bad []invalidMessage) error {
	now := b.clock.Now().UnixMilli()
	copies := make([]Message, len(bad))
	for k, m := range bad {
		r := recs[m.index]
		msg := Message{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: time.UnixMilli(h.RecordTimestamp(r))}
		for _, hd := range r.Headers {
			if hd.Key == HeaderID {
				msg.ID = string(hd.Value)
			}
		}
		if msg.ID == "" && h.ProducerID >= 0 && h.BaseSequence >= 0 {
			msg.ID = fmt.Sprintf("producer:%d/%d/%d", h.ProducerID, h.ProducerEpoch, int64(h.BaseSequence)+int64(m.index))
		}
		copies[k] = schemaDeadLetter(topicName, msg, m.err, now)
	}
	_, err := b.writeSchemaDeadLetters(catalog.TopicDeadLetterName(topicName), copies)
	if err == nil {
		b.logger.Info("messages dead-lettered", "topic", topicName, "reason", ReasonSchemaInvalid, "count", len(bad), "first_error", bad[0].err)
	}
	return err
}
