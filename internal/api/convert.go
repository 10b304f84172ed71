package api

import (
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
)

func dur(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid("bad duration: %v", err)
	}
	return d.AsDuration(), nil
}

func optDur(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func ts(t *timestamppb.Timestamp) (time.Time, error) {
	if t == nil {
		return time.Time{}, nil
	}
	if err := t.CheckValid(); err != nil {
		return time.Time{}, invalid("bad timestamp: %v", err)
	}
	return t.AsTime(), nil
}

func topicConfigFromProto(c *spoolv1.TopicConfig) (catalog.TopicConfig, error) {
	var out catalog.TopicConfig
	if c == nil {
		return out, nil
	}
	var err error
	out.Partitions = c.Partitions
	if out.Retention, err = dur(c.Retention); err != nil {
		return out, err
	}
	out.RetentionBytes = c.RetentionBytes
	out.MaxMessages = c.MaxMessages
	out.MaxBytes = c.MaxBytes
	switch c.Discard {
	case spoolv1.Discard_DISCARD_UNSPECIFIED, spoolv1.Discard_DISCARD_OLD:
		out.Discard = catalog.DiscardOld
	case spoolv1.Discard_DISCARD_NEW:
		out.Discard = catalog.DiscardNew
	default:
		return out, invalid("unknown discard policy %d", c.Discard)
	}
	if out.DedupWindow, err = dur(c.DedupWindow); err != nil {
		return out, err
	}
	if out.MessageTTL, err = dur(c.MessageTtl); err != nil {
		return out, err
	}
	switch c.Durability {
	case spoolv1.Durability_DURABILITY_UNSPECIFIED:
		out.Durability = catalog.DurabilityDefault
	case spoolv1.Durability_DURABILITY_ALWAYS:
		out.Durability = seglog.SyncAlways
	case spoolv1.Durability_DURABILITY_INTERVAL:
		out.Durability = seglog.SyncInterval
	case spoolv1.Durability_DURABILITY_NONE:
		out.Durability = seglog.SyncNone
	default:
		return out, invalid("unknown durability %d", c.Durability)
	}
	out.MaxMessageBytes = c.MaxMessageBytes
	out.WorkQueue = c.WorkQueue
	out.Replicas = c.Replicas
	out.SchemaSubject = c.SchemaSubject
	switch c.SchemaMode {
	case spoolv1.SchemaMode_SCHEMA_MODE_UNSPECIFIED, spoolv1.SchemaMode_SCHEMA_MODE_REJECT:
		out.SchemaMode = catalog.SchemaReject
	case spoolv1.SchemaMode_SCHEMA_MODE_DEAD_LETTER:
		out.SchemaMode = catalog.SchemaDeadLetter
	default:
		return out, invalid("unknown schema mode %d: want SCHEMA_MODE_REJECT or SCHEMA_MODE_DEAD_LETTER", c.SchemaMode)
	}
	out.Owner = c.Owner
	out.Description = c.Description
	if len(c.Labels) > 0 {
		out.Labels = make(map[string]string, len(c.Labels))
		for _, l := range c.Labels {
			if _, dup := out.Labels[l.GetKey()]; dup {
				return out, invalid("label %q given twice", l.GetKey())
			}
			out.Labels[l.GetKey()] = l.GetValue()
		}
	}
	if err := catalog.ValidateCatalogInfo(out); err != nil {
		return out, invalid("%v", err)
	}
	return out, nil
}

func topicToProto(t catalog.Topic) *spoolv1.Topic {
	c := t.Config
	pc := &spoolv1.TopicConfig{
		Partitions:      c.Partitions,
		Retention:       optDur(c.Retention),
		RetentionBytes:  c.RetentionBytes,
		MaxMessages:     c.MaxMessages,
		MaxBytes:        c.MaxBytes,
		Discard:         spoolv1.Discard_DISCARD_OLD,
		DedupWindow:     optDur(c.DedupWindow),
		MessageTtl:      optDur(c.MessageTTL),
		MaxMessageBytes: c.MaxMessageBytes,
		WorkQueue:       c.WorkQueue,
		Replicas:        c.Replicas,
		SchemaSubject:   c.SchemaSubject,
		SchemaMode:      spoolv1.SchemaMode_SCHEMA_MODE_REJECT,
		Owner:           c.Owner,
		Description:     c.Description,
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		pc.Labels = append(pc.Labels, &spoolv1.Label{Key: k, Value: c.Labels[k]})
	}
	if c.SchemaMode == catalog.SchemaDeadLetter {
		pc.SchemaMode = spoolv1.SchemaMode_SCHEMA_MODE_DEAD_LETTER
	}
	if c.Discard == catalog.DiscardNew {
		pc.Discard = spoolv1.Discard_DISCARD_NEW
	}
	switch c.Durability {
	case seglog.SyncInterval:
		pc.Durability = spoolv1.Durability_DURABILITY_INTERVAL
	case seglog.SyncNone:
		pc.Durability = spoolv1.Durability_DURABILITY_NONE
	default:
		pc.Durability = spoolv1.Durability_DURABILITY_ALWAYS
	}
	return &spoolv1.Topic{Name: t.Name, Config: pc, Created: timestamppb.New(t.Created), Id: t.ID}
}

func positionFromProto(p *spoolv1.Position) (catalog.Position, error) {
	if p == nil {
		return catalog.Position{Kind: catalog.Earliest}, nil
	}
	switch v := p.Position.(type) {
	case nil, *spoolv1.Position_Earliest:
		return catalog.Position{Kind: catalog.Earliest}, nil
	case *spoolv1.Position_Latest:
		return catalog.Position{Kind: catalog.Latest}, nil
	case *spoolv1.Position_Time:
		t, err := ts(v.Time)
		return catalog.Position{Kind: catalog.AtTime, Time: t}, err
	case *spoolv1.Position_Offset:
		if v.Offset < 0 {
			return catalog.Position{}, invalid("offset must not be negative")
		}
		return catalog.Position{Kind: catalog.AtOffset, Offset: v.Offset}, nil
	}
	return catalog.Position{}, invalid("unknown position")
}

func positionToProto(p catalog.Position) *spoolv1.Position {
	switch p.Kind {
	case catalog.Latest:
		return &spoolv1.Position{Position: &spoolv1.Position_Latest{Latest: true}}
	case catalog.AtTime:
		return &spoolv1.Position{Position: &spoolv1.Position_Time{Time: timestamppb.New(p.Time)}}
	case catalog.AtOffset:
		return &spoolv1.Position{Position: &spoolv1.Position_Offset{Offset: p.Offset}}
	}
	return &spoolv1.Position{Position: &spoolv1.Position_Earliest{Earliest: true}}
}

func subConfigFromProto(c *spoolv1.SubscriptionConfig) (catalog.SubConfig, error) {
	var out catalog.SubConfig
	if c == nil {
		return out, nil
	}
	switch c.Mode {
	case spoolv1.Mode_MODE_UNSPECIFIED, spoolv1.Mode_MODE_STREAM:
		out.Mode = catalog.ModeStream
	case spoolv1.Mode_MODE_QUEUE:
		out.Mode = catalog.ModeQueue
	default:
		return out, invalid("unknown mode %d", c.Mode)
	}
	out.Filter = c.Filter
	var err error
	if out.Start, err = positionFromProto(c.Start); err != nil {
		return out, err
	}
	q := &out.Queue
	if q.AckTimeout, err = dur(c.AckTimeout); err != nil {
		return out, err
	}
	q.MaxDeliveries = int(c.MaxDeliveries)
	if b := c.Backoff; b != nil {
		if q.Backoff.Initial, err = dur(b.Initial); err != nil {
			return out, err
		}
		if q.Backoff.Max, err = dur(b.Max); err != nil {
			return out, err
		}
		q.Backoff.Multiplier = b.Multiplier
		switch b.Jitter {
		case spoolv1.Jitter_JITTER_UNSPECIFIED, spoolv1.Jitter_JITTER_FULL:
			q.Backoff.Jitter = queue.JitterFull
		case spoolv1.Jitter_JITTER_EQUAL:
			q.Backoff.Jitter = queue.JitterEqual
		case spoolv1.Jitter_JITTER_NONE:
			q.Backoff.Jitter = queue.JitterNone
		default:
			return out, invalid("unknown jitter %d", b.Jitter)
		}
		if len(b.Delays) > 100 {
			return out, invalid("at most 100 backoff delays")
		}
		for _, d := range b.Delays {
			dd, err := dur(d)
			if err != nil {
				return out, err
			}
			q.Backoff.Delays = append(q.Backoff.Delays, dd)
		}
	}
	switch c.Ordering {
	case spoolv1.Ordering_ORDERING_UNSPECIFIED, spoolv1.Ordering_ORDERING_NONE:
		q.Ordering = queue.OrderNone
	case spoolv1.Ordering_ORDERING_KEY:
		q.Ordering = queue.OrderKey
	default:
		return out, invalid("unknown ordering %d", c.Ordering)
	}
	q.DeadLetterTopic = c.DeadLetterTopic
	switch c.OnExpired {
	case spoolv1.ExpiredAction_EXPIRED_ACTION_UNSPECIFIED, spoolv1.ExpiredAction_EXPIRED_ACTION_DEAD_LETTER:
		q.OnExpired = queue.ExpireDeadLetter
	case spoolv1.ExpiredAction_EXPIRED_ACTION_DROP:
		q.OnExpired = queue.ExpireDrop
	default:
		return out, invalid("unknown expired action %d", c.OnExpired)
	}
	q.MaxInFlight = int(c.MaxInFlight)
	q.RateLimit = c.RateLimit
	q.RateBurst = int(c.RateBurst)
	if q.ProcessedKey = c.ProcessedKey; q.ProcessedKey == "off" {
		q.ProcessedKey = ""
	}
	if q.ProcessedTTL, err = dur(c.ProcessedTtl); err != nil {
		return out, err
	}
	switch c.OnFailure {
	case spoolv1.FailureAction_FAILURE_ACTION_UNSPECIFIED:
	case spoolv1.FailureAction_FAILURE_ACTION_DEAD_LETTER:
		out.OnFailure = catalog.FailDeadLetter
	case spoolv1.FailureAction_FAILURE_ACTION_STOP:
		out.OnFailure = catalog.FailStop
	default:
		return out, invalid("unknown failure action %d", c.OnFailure)
	}
	return out, nil
}

// failureActionToProto maps a stream failure action.
func failureActionToProto(a catalog.FailureAction) spoolv1.FailureAction {
	if a == catalog.FailStop {
		return spoolv1.FailureAction_FAILURE_ACTION_STOP
	}
	return spoolv1.FailureAction_FAILURE_ACTION_DEAD_LETTER
}

// backoffToProto returns a filled-in backoff policy.
func backoffToProto(b queue.Backoff) *spoolv1.Backoff {
	out := &spoolv1.Backoff{Initial: durationpb.New(b.Initial), Max: durationpb.New(b.Max),
		Multiplier: b.Multiplier, Jitter: spoolv1.Jitter(int(b.Jitter) + 1)}
	for _, d := range b.Delays {
		out.Delays = append(out.Delays, durationpb.New(d))
	}
	return out
}

// failurePolicyToProto is the stream failure policy members receive.
func failurePolicyToProto(f catalog.StreamFailure) *spoolv1.FailurePolicy {
	return &spoolv1.FailurePolicy{Action: failureActionToProto(f.Action), MaxAttempts: int32(f.MaxAttempts), Backoff: backoffToProto(f.Backoff)}
}

func subToProto(s catalog.Subscription) *spoolv1.Subscription {
	mode := spoolv1.Mode_MODE_STREAM
	if s.Config.Mode == catalog.ModeQueue {
		mode = spoolv1.Mode_MODE_QUEUE
	}
	pc := &spoolv1.SubscriptionConfig{
		Mode:   mode,
		Filter: s.Config.Filter,
		Start:  positionToProto(s.Config.Start),
	}
	if s.Config.Mode == catalog.ModeQueue {
		q := s.Config.Queue
		cc, _ := q.CoreConfig()
		pc.AckTimeout = durationpb.New(cc.AckTimeout)
		pc.MaxDeliveries = int32(cc.MaxDeliveries)
		pc.Backoff = backoffToProto(cc.Backoff)
		pc.Ordering = spoolv1.Ordering(int(cc.Ordering) + 1)
		pc.DeadLetterTopic = q.DeadLetterTopic
		if pc.DeadLetterTopic == "" {
			pc.DeadLetterTopic = catalog.DeadLetterTopicName(s.Topic, s.Name)
		}
		pc.OnExpired = spoolv1.ExpiredAction(int(cc.OnExpired) + 1)
		pc.MaxInFlight = int32(q.MaxInFlight)
		pc.RateLimit = q.RateLimit
		pc.RateBurst = int32(q.RateBurst)
		if q.RateLimit > 0 && q.RateBurst == 0 {
			pc.RateBurst = int32(max(1, int(q.RateLimit)))
		}
		pc.OnFailure = spoolv1.FailureAction_FAILURE_ACTION_DEAD_LETTER
		if q.ProcessedKey != "" {
			pc.ProcessedKey = q.ProcessedKey
			pc.ProcessedTtl = durationpb.New(q.ProcessedTTLOrDefault())
		}
	} else {
		f := s.StreamFailure()
		pc.MaxDeliveries = int32(f.MaxAttempts)
		pc.Backoff = backoffToProto(f.Backoff)
		pc.DeadLetterTopic = f.DeadLetter
		pc.OnFailure = failureActionToProto(f.Action)
	}
	return &spoolv1.Subscription{
		Topic:   s.Topic,
		Name:    s.Name,
		Config:  pc,
		Created: timestamppb.New(s.Created),
	}
}

func messageFromProto(m *spoolv1.Message) (broker.Message, error) {
	out := broker.Message{Key: m.Key, Value: m.Value, ID: m.Id, Subject: m.Subject, Partition: -1}
	if m.Partition != nil {
		if *m.Partition < 0 {
			return out, invalid("partition must not be negative")
		}
		out.Partition = *m.Partition
	}
	if len(m.Headers) > 0 {
		out.Headers = make([]batch.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = batch.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	var err error
	if out.DeliverAt, err = ts(m.DeliverAt); err != nil {
		return out, err
	}
	if out.Delay, err = dur(m.Delay); err != nil {
		return out, err
	}
	if out.TTL, err = dur(m.Ttl); err != nil {
		return out, err
	}
	if out.Timestamp, err = ts(m.Timestamp); err != nil {
		return out, err
	}
	return out, nil
}

// deliveriesToProto converts one event's messages, allocating the protos in
// a few shared arrays rather than several objects per message (the consume
// path's allocation rate is what bounds its throughput).
func deliveriesToProto(ds []broker.Delivered) []*spoolv1.Delivery {
	nh := 0
	for i := range ds {
		nh += len(ds[i].Headers)
	}
	msgs := make([]spoolv1.Delivery, len(ds))
	tss := make([]timestamppb.Timestamp, len(ds))
	hdrs := make([]spoolv1.Header, nh)
	hptrs := make([]*spoolv1.Header, nh)
	out := make([]*spoolv1.Delivery, len(ds))
	for i := range ds {
		d := &ds[i]
		m := &msgs[i]
		m.Partition, m.Offset = d.Partition, d.Offset
		tss[i].Seconds, tss[i].Nanos = d.Timestamp.Unix(), int32(d.Timestamp.Nanosecond())
		m.Timestamp = &tss[i]
		m.Key, m.Value = d.Key, d.Value
		m.Id, m.Subject, m.DeliveryCount = d.ID, d.Subject, d.DeliveryCount
		if !d.LeaseDeadline.IsZero() {
			m.FirstDeliveredAt = timestamppb.New(d.FirstDeliveredAt)
			m.LeaseDeadline = timestamppb.New(d.LeaseDeadline)
		}
		if n := len(d.Headers); n > 0 {
			hp := hptrs[:n:n]
			for j, h := range d.Headers {
				hdrs[j].Key, hdrs[j].Value = h.Key, h.Value
				hp[j] = &hdrs[j]
			}
			m.Headers = hp
			hdrs, hptrs = hdrs[n:], hptrs[n:]
		}
		out[i] = m
	}
	return out
}
