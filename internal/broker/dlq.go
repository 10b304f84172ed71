package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// dlqDedupWindow is the de-duplication window of dead-letter topics: a
// message dead-lettered again after a crash (its snapshot was not yet
// saved) is recognized by its id and stored once.
const dlqDedupWindow = 7 * 24 * time.Hour

// ensureDeadLetterTopic creates a subscription's dead-letter topic if it
// does not exist.
func (b *Broker) ensureDeadLetterTopic(name string) error {
	_, err := b.createDeadLetterTopic(name)
	return err
}

// createDeadLetterTopic is ensureDeadLetterTopic, reporting whether this
// call created the topic.
func (b *Broker) createDeadLetterTopic(name string) (bool, error) {
	if _, err := b.topic(name); err == nil {
		return false, nil
	}
	_, err := b.CreateTopic(name, catalog.TopicConfig{Partitions: 1, DedupWindow: dlqDedupWindow, Durability: catalog.DurabilityDefault})
	if errs.Is(err, errs.TopicExists) {
		return false, nil
	}
	return err == nil, err
}

// undoDeadLetterTopic removes a dead-letter topic that a failed
// CreateSubscription created, unless something uses it meanwhile: a
// subscription names it, or it holds a message. Called with deadLetterMu
// held.
func (b *Broker) undoDeadLetterTopic(name string) {
	for _, tm := range b.catalog.Topics() {
		for _, sm := range b.catalog.Subs(tm.Name) {
			if dlq := sm.Config.Queue.DeadLetterTopic; dlq == name || (dlq == "" && catalog.DeadLetterTopicName(sm.Topic, sm.Name) == name) {
				return
			}
		}
	}
	t, err := b.topic(name)
	if err != nil {
		return
	}
	t.life.RLock()
	empty := !t.deleted
	for _, l := range t.logs() {
		empty = empty && l.EndOffset() == 0
	}
	t.life.RUnlock()
	if !empty {
		return
	}
	if err := b.DeleteTopic(name); err != nil && !errs.Is(err, errs.TopicNotFound) {
		b.logger.Warn("removing the dead-letter topic of a subscription that was not created", "topic", name, "err", err)
	}
}

// readRecord returns the record at offset in partition p.
func (t *topic) readRecord(p int32, offset int64) (batch.Header, batch.Record, bool) {
	bt, ok := t.batchAt(p, offset)
	if !ok {
		return batch.Header{}, batch.Record{}, false
	}
	r, ok := t.recordFrom(bt, offset)
	if !ok || bt.RecordOffset(r) != offset {
		return batch.Header{}, batch.Record{}, false
	}
	return bt.Header, r, true
}

// publishDeadLetters copies dead-lettered messages to the subscription's
// dead-letter topic with headers saying where they came from and why, and
// returns once the copies are durable.
func (s *subscription) publishDeadLetters(ops []outboxOp) error {
	b := s.t.b
	if err := b.ensureDeadLetterTopic(s.q.dlq); err != nil {
		return err
	}
	now := b.clock.Now()
	msgs := make([]Message, 0, len(ops))
	for _, op := range ops {
		dl := op.dl
		msgs = append(msgs, s.deadLetterCopy(op.part, dl.Offset, dl.DeliveryCount, string(dl.Reason), dl.LastError, now))
	}
	if _, err := b.publishOwn(s.q.dlq, msgs); err != nil {
		return fmt.Errorf("write to dead-letter topic %q: %w", s.q.dlq, err)
	}
	s.q.deadLettered.Add(int64(len(msgs)))
	reasons := map[string]int{}
	ev := SystemEvent{Kind: EventDeadLettered, Topic: s.meta.Topic, Subscription: s.meta.Name, Count: int64(len(ops)), Detail: "dead-letter topic " + s.q.dlq}
	var traces [][]byte
	for i, op := range ops {
		s.stats.deadLettered[deadLetterIndex(op.dl.Reason)].Add(1)
		reasons[string(op.dl.Reason)]++
		if len(ev.Offsets) < maxEventOffsets {
			ev.Offsets = append(ev.Offsets, op.dl.Offset)
		}
		if tp := headerValue(msgs[i].Headers, HeaderTraceparent); tp != nil {
			traces = append(traces, tp)
		}
	}
	ev.Reason = reasonOf(reasons)
	if tr := b.cfg.Tracer; tr != nil {
		for i, op := range ops {
			if tc, ok := traceOf(tr, msgs[i].Headers); ok {
				tr.DeadLettered(s.meta.Topic, s.meta.Name, tc, string(op.dl.Reason), s.q.dlq, now)
			}
		}
	}
	ev.TraceIDs = traceIDs(traces...)
	b.emit(ev, "", slog.LevelInfo, "messages dead-lettered", "count", len(ops), "reasons", reasons, "offsets", ev.Offsets, "dlq", s.q.dlq)
	return nil
}

// deadLetterCopy returns the dead-letter copy of the message at offset in
// partition p: its key, value, timestamp and headers (the original
// spool.id moved to spool.original-id) and the spool.dlq.* headers. Its id
// is the same every time for one message of one subscription, so writing
// it again (after a crash, or a retry) stores it once within the
// dead-letter topic's window.
func (s *subscription) deadLetterCopy(p int32, offset int64, deliveries int, reason, errText string, now time.Time) Message {
	m := Message{
		ID:        fmt.Sprintf("dlq:%s/%s/%d/%d", s.meta.Topic, s.meta.Name, p, offset),
		Partition: -1,
	}
	h, rec, ok := s.t.readRecord(p, offset)
	if ok {
		m.Key, m.Value = rec.Key, rec.Value
		m.Timestamp = time.UnixMilli(h.RecordTimestamp(rec))
		for _, hd := range rec.Headers {
			switch hd.Key {
			case HeaderID:
				m.Headers = append(m.Headers, batch.RecordHeader{Key: HeaderOriginalID, Value: hd.Value})
			case HeaderRedriveTo:
			default:
				m.Headers = append(m.Headers, hd)
			}
		}
	} else {
		s.t.b.logger.Warn("dead-lettered message is no longer in the log; writing its metadata only",
			"topic", s.meta.Topic, "partition", p, "offset", offset)
	}
	add := func(k, v string) { m.Headers = append(m.Headers, batch.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQTopic, s.meta.Topic)
	add(HeaderDLQSubscription, s.meta.Name)
	add(HeaderDLQPartition, strconv.Itoa(int(p)))
	add(HeaderDLQOffset, strconv.FormatInt(offset, 10))
	add(HeaderDLQDeliveries, strconv.Itoa(deliveries))
	add(HeaderDLQReason, reason)
	if errText != "" {
		add(HeaderDLQError, errText)
	}
	add(HeaderDLQTime, strconv.FormatInt(now.UnixMilli(), 10))
	return m
}

// DeadLetterInfo is one message of a dead-letter topic.
type DeadLetterInfo struct {
	Offset          int64
	Message         Delivered
	Reason          string
	DeliveryCount   int
	Error           string
	OriginTopic     string
	OriginSub       string
	OriginPartition int32
	OriginOffset    int64
	Redriven        bool
}

// queueSub returns a live queue subscription.
func (b *Broker) queueSub(topicName, name string) (*subscription, error) {
	_, s, err := b.sub(topicName, name)
	if err != nil {
		return nil, err
	}
	if s.q == nil {
		return nil, errs.New(errs.FailedPrecondition, "subscription %q is not a queue subscription", name)
	}
	return s, nil
}

// deadLetterTopic returns the name of a subscription's dead-letter topic.
func (s *subscription) deadLetterTopic() string {
	if s.q != nil {
		return s.q.dlq
	}
	if d := s.meta.Config.Queue.DeadLetterTopic; d != "" { // never changes: read without a lock
		return d
	}
	return catalog.DeadLetterTopicName(s.meta.Topic, s.meta.Name)
}

// Bounds on one ListDeadLetters answer: messages, and their bytes (keys,
// values and headers; the message that crosses the bound is the last).
const (
	maxListDeadLetters     = 1000
	maxListDeadLetterBytes = 4 << 20
)

// ListDeadLetters returns up to limit messages (at most 1000, and about
// 4 MiB of them: see maxListDeadLetterBytes) of a subscription's
// dead-letter topic from offset from, and the offset to continue from.
func (b *Broker) ListDeadLetters(topicName, name string, from int64, limit int) ([]DeadLetterInfo, int64, error) {
	_, s, err := b.sub(topicName, name)
	if err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, maxListDeadLetters)
	dlq := s.deadLetterTopic()
	dt, err := b.topic(dlq)
	if err != nil {
		return nil, 0, nil // nothing dead-lettered yet
	}
	var out []DeadLetterInfo
	var infoErr error
	bytes := 0
	next := max(from, dt.logs()[0].StartOffset())
	err = dt.scan(0, next, func(d Delivered) bool {
		if len(out) >= limit || bytes >= maxListDeadLetterBytes {
			return false
		}
		info, err := b.deadLetterInfo(dlq, d)
		if err != nil {
			infoErr = err
			return false
		}
		next = d.Offset + 1
		// A dead-letter topic may be shared: list only this subscription's.
		if info.OriginTopic == topicName && info.OriginSub == name {
			out = append(out, info)
			bytes += len(d.Key) + len(d.Value)
			for _, h := range d.Headers {
				bytes += len(h.Key) + len(h.Value)
			}
		}
		return true
	})
	if err == nil {
		err = infoErr
	}
	return out, next, err
}

func (b *Broker) deadLetterInfo(dlq string, d Delivered) (DeadLetterInfo, error) {
	info := DeadLetterInfo{Offset: d.Offset, Message: d}
	for _, h := range d.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderDLQReason:
			info.Reason = v
		case HeaderDLQDeliveries:
			info.DeliveryCount, _ = strconv.Atoi(v)
		case HeaderDLQError:
			info.Error = v
		case HeaderDLQTopic:
			info.OriginTopic = v
		case HeaderDLQSubscription:
			info.OriginSub = v
		case HeaderDLQPartition:
			p, _ := strconv.Atoi(v)
			info.OriginPartition = int32(p)
		case HeaderDLQOffset:
			info.OriginOffset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	var err error
	info.Redriven, err = b.redriven(dlq, d.Offset)
	return info, err
}

// scan calls fn for every message of partition p from offset from until fn
// returns false or the end is reached.
func (t *topic) scan(p int32, from int64, fn func(Delivered) bool) error {
	return t.eachRecord(t.logs()[p], from, func(off int64, ts time.Time, r batch.Record) bool {
		id, subj := attrs(r.Headers)
		return fn(Delivered{Partition: p, Offset: off, Timestamp: ts, Key: r.Key, Value: r.Value,
			Headers: append([]batch.RecordHeader(nil), r.Headers...), ID: id, Subject: subj, DeliveryCount: 1})
	})
}

// RedriveTarget says where redriven messages go.
type RedriveTarget int

const (
	RedriveToSubscription RedriveTarget = iota // only the subscription that dead-lettered them sees them again
	RedriveToTopic                             // every subscription of the topic sees them again
)

// RedriveRequest selects dead-lettered messages to move back.
type RedriveRequest struct {
	Topic, Subscription string
	Target              RedriveTarget
	Reason              string // "" = any
	Limit               int64  // 0 = all
	RateLimit           float64
	DryRun              bool
}

// RedriveReport says what a redrive did.
type RedriveReport struct {
	Moved, Skipped, Already int64
	Offsets                 []int64 // dead-letter offsets moved (the first maxRedriveOffsets)
}

// maxRedriveOffsets bounds the offsets a redrive reports.
const maxRedriveOffsets = 1000

// Redrive publishes dead-lettered messages back to their origin topic —
// to the subscription only (other subscriptions skip them) or to the whole
// topic — with their key, value and headers (without Spool's dead-letter
// headers), rate-limited, and marks them redriven. Each copy gets the id
// "redrive:<dead-letter topic>/<offset>", so a redrive interrupted and run
// again never publishes a message twice within the origin's window.
func (b *Broker) Redrive(ctx context.Context, req RedriveRequest) (RedriveReport, error) {
	var rep RedriveReport
	if err := b.checkCoordinator(); err != nil {
		return rep, err
	}
	if err := catalog.ValidateRate("redrive rate limit", req.RateLimit); err != nil {
		return rep, err
	}
	if req.Limit < 0 {
		return rep, errs.New(errs.InvalidArgument, "redrive limit must not be negative")
	}
	_, s, err := b.sub(req.Topic, req.Subscription)
	if err != nil {
		return rep, err
	}
	if _, err := b.topic(req.Topic); err != nil {
		return rep, errs.New(errs.FailedPrecondition, "origin topic %q no longer exists; nothing was moved", req.Topic)
	}
	dlq := s.deadLetterTopic()
	dt, err := b.topic(dlq)
	if err != nil {
		return rep, nil // nothing dead-lettered
	}
	var lim *rate.Limiter
	if req.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(req.RateLimit), max(1, int(req.RateLimit)))
	}
	var scanErr error
	err = dt.scan(0, dt.logs()[0].StartOffset(), func(d Delivered) bool {
		if req.Limit > 0 && rep.Moved >= req.Limit {
			return false
		}
		info, err := b.deadLetterInfo(dlq, d)
		if err != nil {
			scanErr = err
			return false
		}
		if info.Redriven {
			rep.Already++
			return true
		}
		if info.OriginTopic != req.Topic || info.OriginSub != req.Subscription {
			return true // another subscription's dead letter (shared dead-letter topic)
		}
		if req.Reason != "" && info.Reason != req.Reason {
			rep.Skipped++
			return true
		}
		if req.DryRun {
			rep.Moved++
			if len(rep.Offsets) < maxRedriveOffsets {
				rep.Offsets = append(rep.Offsets, d.Offset)
			}
			return true
		}
		if lim != nil {
			r := lim.Reserve()
			select {
			case <-time.After(r.Delay()):
			case <-ctx.Done():
				scanErr = errs.New(errs.Canceled, "redrive cancelled after %d messages", rep.Moved)
				return false
			}
		}
		m := Message{ID: fmt.Sprintf("redrive:%s/%d", dlq, d.Offset), Key: d.Key, Value: d.Value, Partition: -1, Timestamp: d.Timestamp}
		for _, h := range d.Headers {
			if strings.HasPrefix(h.Key, "spool.dlq.") || h.Key == HeaderID || h.Key == HeaderRedriveTo {
				continue
			}
			m.Headers = append(m.Headers, h)
		}
		if orig := originalPositionID(d.Headers); orig != nil {
			m.Headers = append(m.Headers, batch.RecordHeader{Key: HeaderOriginalID, Value: orig})
		}
		if req.Target == RedriveToSubscription {
			m.Headers = append(m.Headers, batch.RecordHeader{Key: HeaderRedriveTo, Value: []byte(req.Subscription)})
		}
		// A redrive is a user's bulk copy: the free-space gate refuses it
		// as it refuses publishes (dead-letter copies are not refused).
		if err := b.disk.admit(); err != nil {
			scanErr = err
			return false
		}
		if _, err := b.publishOwn(req.Topic, []Message{m}); err != nil {
			scanErr = err
			return false
		}
		mark := s.newWrite()
		mark.set(state.RedrivenKey(dlq, d.Offset), redrivenMark())
		if err := b.writeSub(mark); err != nil {
			scanErr = err
			return false
		}
		rep.Moved++
		if len(rep.Offsets) < maxRedriveOffsets {
			rep.Offsets = append(rep.Offsets, d.Offset)
		}
		return true
	})
	if scanErr != nil {
		return rep, scanErr
	}
	if err == nil && rep.Moved > 0 && !req.DryRun {
		b.logger.Info("redrive", "topic", req.Topic, "subscription", req.Subscription, "moved", rep.Moved, "skipped", rep.Skipped)
	}
	return rep, err
}

// originalPositionID returns, for a dead letter whose original had no id
// (no spool.original-id), the original's id by position
// ("spool:<topic>/<partition>/<offset>", from its spool.dlq.* headers),
// which redrive gives the copy as its spool.original-id: a processed-key
// ledger by id then knows the redriven message as the original. It returns
// nil when the dead letter has an original id or lacks those headers.
func originalPositionID(hs []batch.RecordHeader) []byte {
	if headerValue(hs, HeaderOriginalID) != nil {
		return nil
	}
	topic := headerValue(hs, HeaderDLQTopic)
	p, err1 := strconv.ParseInt(string(headerValue(hs, HeaderDLQPartition)), 10, 32)
	off, err2 := strconv.ParseInt(string(headerValue(hs, HeaderDLQOffset)), 10, 64)
	if len(topic) == 0 || err1 != nil || err2 != nil {
		return nil
	}
	return positionID(string(topic), int32(p), off)
}
