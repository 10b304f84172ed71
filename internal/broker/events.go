package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// SystemTopic is the topic the broker publishes its structured events to
// (docs/operations.md, "System events"): created with the first event,
// consumed like any topic.
const SystemTopic = "spool.events"

// The kinds of system events.
const (
	EventDeadLettered       = "message.dead_lettered"   // messages written to a dead-letter topic (one event per batch)
	EventStalled            = "subscription.stalled"    // delivery held back at max in flight for StallAfter
	EventResumed            = "subscription.resumed"    // a stalled subscription delivers again
	EventUnattended         = "subscription.unattended" // no live consumer while the backlog grows, for UnattendedAfter
	EventConsumerLost       = "consumer.lost"           // a member missed its session timeout and was removed
	EventTopicFull          = "topic.full"              // a publish was refused by a discard=new bound
	EventSchemaRejected     = "schema.rejected"         // messages refused by the topic's schema validation
	EventStorageError       = "storage.error"           // a partition log holds a sticky storage error
	EventDiskFull           = "disk.full"               // the data directory's free space fell below the watermark: publishes refused
	EventDiskOK             = "disk.ok"                 // free space is back above the resume threshold: publishes accepted
	eventsSuppressedWarning = "system events dropped: the queue of events to publish is full"
)

// SystemEvent is one message of SystemTopic, JSON-encoded; its key is the
// topic it concerns (so one topic's events keep their order).
type SystemEvent struct {
	Kind         string    `json:"kind"`
	Time         time.Time `json:"time"`
	Topic        string    `json:"topic,omitempty"`
	Subscription string    `json:"subscription,omitempty"`
	Partition    *int32    `json:"partition,omitempty"`
	Member       string    `json:"member,omitempty"`
	Count        int64     `json:"count,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	Offsets      []int64   `json:"offsets,omitempty"` // at most maxEventOffsets
	Detail       string    `json:"detail,omitempty"`
	TraceIDs     []string  `json:"trace_ids,omitempty"` // of the messages concerned that carried a traceparent, at most maxEventOffsets
}

const (
	maxQueuedEvents = 1024 // events waiting to be published; beyond, dropped and counted
	maxEventOffsets = 32
	// StallAfter is how long delivery must be held back at max in flight
	// before a subscription is reported stalled.
	StallAfter = 30 * time.Second
	// UnattendedAfter is how long a subscription's backlog must grow with
	// no member connected before it is reported.
	UnattendedAfter = time.Minute
	// eventEvery bounds repeated events of one kind and topic (topic full,
	// schema rejections) to one per this interval.
	eventEvery = 10 * time.Second
)

// eventQueue holds events until the maintenance pass publishes them.
type eventQueue struct {
	mu      sync.Mutex
	q       []SystemEvent
	dropped int64                // since the last publish
	last    map[string]time.Time // rate-limited event key → last emitted
	failed  map[string]bool      // partitions reported with a storage error
}

// emit logs an event and queues it for SystemTopic. A non-empty key
// rate-limits: an event whose key was emitted within eventEvery is
// dropped (its log line too).
func (b *Broker) emit(ev SystemEvent, key string, level slog.Level, msg string, attrs ...any) {
	if ev.Topic == SystemTopic {
		return // events about the events topic would feed themselves
	}
	ev.Time = b.clock.Now().UTC()
	e := &b.events
	e.mu.Lock()
	if key != "" {
		if e.last == nil {
			e.last = map[string]time.Time{}
		}
		if at, ok := e.last[key]; ok && ev.Time.Sub(at) < eventEvery {
			e.mu.Unlock()
			return
		}
		e.last[key] = ev.Time
	}
	if len(e.q) < maxQueuedEvents {
		e.q = append(e.q, ev)
	} else {
		e.dropped++
	}
	e.mu.Unlock()
	base := []any{"event", ev.Kind}
	if ev.Topic != "" {
		base = append(base, "topic", ev.Topic)
	}
	if ev.Subscription != "" {
		base = append(base, "subscription", ev.Subscription)
	}
	if len(ev.TraceIDs) > 0 {
		base = append(base, "trace_ids", ev.TraceIDs)
	}
	b.logger.Log(context.Background(), level, msg, append(base, attrs...)...)
}

// publishEvents writes the queued events to SystemTopic (creating it),
// oldest first; on failure they are kept for the next pass (up to the
// bound). Called by Maintain.
func (b *Broker) publishEvents() {
	e := &b.events
	e.mu.Lock()
	evs, dropped := e.q, e.dropped
	e.q, e.dropped = nil, 0
	for k, at := range e.last {
		if b.clock.Now().Sub(at) > eventEvery {
			delete(e.last, k)
		}
	}
	e.mu.Unlock()
	if dropped > 0 {
		b.logger.Warn(eventsSuppressedWarning, "dropped", dropped)
	}
	if len(evs) == 0 {
		return
	}
	msgs := make([]Message, 0, len(evs))
	for _, ev := range evs {
		v, err := json.Marshal(ev)
		if err != nil {
			continue
		}
		msgs = append(msgs, Message{Key: []byte(ev.Topic), Value: v, Partition: -1, Headers: nil})
	}
	err := b.ensureSystemTopic()
	if err == nil {
		_, err = b.publishOwn(SystemTopic, msgs)
	}
	if err != nil {
		if !errs.Is(err, errs.Unavailable) {
			b.logger.Warn("publishing system events failed; kept for the next pass", "topic", SystemTopic, "events", len(evs), "err", err)
		}
		e.mu.Lock()
		e.q = append(evs[:min(len(evs), maxQueuedEvents-len(e.q))], e.q...)
		e.mu.Unlock()
	}
}

// ensureSystemTopic creates SystemTopic: one partition, a week's
// retention, bounded to 64 MiB dropping the oldest.
func (b *Broker) ensureSystemTopic() error {
	if _, err := b.topic(SystemTopic); err == nil {
		return nil
	}
	_, err := b.CreateTopic(SystemTopic, catalog.TopicConfig{Partitions: 1, Retention: 7 * 24 * time.Hour,
		MaxBytes: 64 << 20, Discard: catalog.DiscardOld, Durability: catalog.DurabilityDefault})
	if errs.Is(err, errs.TopicExists) {
		return nil
	}
	return err
}

// watchState is what the maintenance pass remembers about a subscription
// between passes, for the stalled and unattended events. Guarded by
// subscription.watchMu.
type watchState struct {
	limitedSince time.Time // zero: not held back at max in flight
	stalled      bool
	lastLag      int64
	growingSince time.Time // zero: not growing without a member
	unattended   bool
}

// watchSubs checks the topic's subscriptions for the stalled and
// unattended conditions and reports their changes. Called by Maintain
// (with t.life held shared).
func (t *topic) watchSubs(now time.Time) {
	t.subsMu.Lock()
	subs := make([]*subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.subsMu.Unlock()
	logs := t.logs()
	for _, s := range subs {
		s.mu.Lock()
		members := len(s.sessions)
		limited := false
		var lag int64
		if s.q != nil {
			for _, qp := range s.q.parts {
				l, floor := qp.core.Limited()
				limited = limited || l
				if int(qp.id) < len(logs) {
					lag += max(logs[qp.id].EndOffset()-floor, 0)
				}
			}
			members = max(members, len(s.q.leasesBy))
		} else {
			for p, c := range s.committed {
				if p < len(logs) {
					lag += max(logs[p].EndOffset()-c, 0)
				}
			}
		}
		s.mu.Unlock()
		s.watch(now, limited, members, lag)
	}
}

func (s *subscription) watch(now time.Time, limited bool, members int, lag int64) {
	b := s.t.b
	s.watchMu.Lock()
	w := &s.watched
	var emits []func()
	ev := SystemEvent{Topic: s.meta.Topic, Subscription: s.meta.Name}
	switch {
	case limited && w.limitedSince.IsZero():
		w.limitedSince = now
		emits = append(emits, func() {
			b.logger.Info("backpressure engaged: delivery held back at max in flight", "topic", ev.Topic, "subscription", ev.Subscription)
		})
	case limited && !w.stalled && now.Sub(w.limitedSince) >= StallAfter:
		w.stalled = true
		e := ev
		e.Kind, e.Detail = EventStalled, fmt.Sprintf("delivery held back at max in flight since %s", w.limitedSince.UTC().Format(time.RFC3339))
		emits = append(emits, func() {
			b.emit(e, "", slog.LevelWarn, "subscription stalled at max in flight", "since", w.limitedSince)
		})
	case !limited && !w.limitedSince.IsZero():
		stalled := w.stalled
		w.limitedSince, w.stalled = time.Time{}, false
		emits = append(emits, func() {
			b.logger.Info("backpressure released", "topic", ev.Topic, "subscription", ev.Subscription)
			if stalled {
				e := ev
				e.Kind = EventResumed
				b.emit(e, "", slog.LevelInfo, "subscription resumed")
			}
		})
	}
	growing := members == 0 && lag > 0 && lag > w.lastLag
	switch {
	case members > 0 || lag == 0:
		w.growingSince, w.unattended = time.Time{}, false
	case growing && w.growingSince.IsZero():
		w.growingSince = now
	case !w.growingSince.IsZero() && !w.unattended && now.Sub(w.growingSince) >= UnattendedAfter && lag > 0:
		w.unattended = true
		e := ev
		e.Kind, e.Count = EventUnattended, lag
		e.Detail = fmt.Sprintf("no consumer connected and the backlog grew since %s", w.growingSince.UTC().Format(time.RFC3339))
		emits = append(emits, func() {
			b.emit(e, "", slog.LevelWarn, "no live consumer and a growing backlog", "lag", lag)
		})
	}
	w.lastLag = lag
	s.watchMu.Unlock()
	for _, f := range emits {
		f()
	}
}

// watchStorage reports partition logs that newly hold a sticky error.
func (b *Broker) watchStorage() {
	b.eachFailedLog(func(t *topic, p int, err error) {
		key := fmt.Sprintf("%s/%d", t.meta.Name, p)
		b.events.mu.Lock()
		if b.events.failed == nil {
			b.events.failed = map[string]bool{}
		}
		seen := b.events.failed[key]
		b.events.failed[key] = true
		b.events.mu.Unlock()
		if !seen {
			part := int32(p)
			b.emit(SystemEvent{Kind: EventStorageError, Topic: t.meta.Name, Partition: &part, Detail: err.Error()}, "",
				slog.LevelError, "partition log refuses writes after a storage error", "partition", p, "err", err)
		}
	})
}

// traceIDs returns the trace ids of the headers' traceparent values
// (W3C: version-traceid-spanid-flags), at most maxEventOffsets, each once.
func traceIDs(headers ...[]byte) []string {
	var out []string
	for _, h := range headers {
		if len(h) >= 55 && h[2] == '-' && h[35] == '-' {
			id := string(h[3:35])
			if !slices.Contains(out, id) && len(out) < maxEventOffsets {
				out = append(out, id)
			}
		}
	}
	return out
}

// headerValue returns the value of the first header named key, nil if none.
func headerValue(hs []batch.RecordHeader, key string) []byte {
	for _, h := range hs {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// reasonOf names a batch's reason: the one reason, or "mixed".
func reasonOf(counts map[string]int) string {
	if len(counts) == 1 {
		for r := range counts {
			return r
		}
	}
	return "mixed"
}
