package broker

import (
	"errors"
	"github.com/spoolmq/spool/internal/crashpoint"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/group"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/subject"
)

// subscription is a live stream-mode subscription: its consumer group, its
// committed offsets and its members' sessions.
type subscription struct {
	t *topic
	// meta is the definition. Its changeable settings (AlterSubscription)
	// are written under mu: read them under mu or with config().
	meta   catalog.Subscription
	filter atomic.Pointer[subject.Filter] // replaced by AlterSubscription

	commitMu sync.Mutex // serializes offset writes, so the stored order is the applied order

	mu        sync.Mutex
	coord     *group.Coordinator  // guarded by mu
	committed []int64             // next offset to consume, per partition; guarded by mu
	sessions  map[string]*Session // by member id; guarded by mu
	deleted   bool                // guarded by mu
	// resetEpoch counts resets; the generation members see is the
	// coordinator's plus resetEpoch, so that commits from before a reset
	// are refused as stale. Guarded by mu.
	resetEpoch int64
	// halts are the partitions halted by a failed message (stream mode,
	// failure action stop), until reset. Guarded by mu.
	halts map[int32]Halt
	// deadLettered counts stream messages dead-lettered since the server
	// started.
	deadLettered atomic.Int64
	stats        *subStats // counters and latencies since the server started
	// sentTo is, per partition, the offset after the highest a stream
	// session delivered since the server started: a delivery below it is
	// a redelivery (after a rebalance or a reset). Guarded by mu.
	sentTo map[int32]int64
	// watched is what the maintenance pass remembers for the stalled and
	// unattended events (events.go).
	watchMu sync.Mutex
	watched watchState
	// tracedLeases are the trace contexts of leased messages, kept (with
	// a Tracer only) to report their settling; bounded by
	// maxTracedLeases. Guarded by mu.
	tracedLeases map[leaseKey]TraceContext

	q *queueState // queue mode only; nil for stream subscriptions
}

func (t *topic) newSub(meta catalog.Subscription, committed []int64) (*subscription, error) {
	f, err := subject.Compile(meta.Config.Filter)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidArgument, err, "filter")
	}
	nparts := len(t.logs())
	if meta.Config.Mode == catalog.ModeQueue {
		nparts = 0 // queue members share every partition: the group only tracks membership
	}
	coord, err := group.New(group.Config{IDNonce: t.b.nonce}, nparts)
	if err != nil {
		return nil, err
	}
	s := &subscription{t: t, meta: meta, coord: coord, committed: committed, sessions: map[string]*Session{}, stats: newSubStats()}
	s.filter.Store(f)
	if meta.Config.Mode == catalog.ModeQueue {
		if s.q, err = s.newQueueState(committed); err != nil {
			return nil, err
		}
	} else if s.halts, err = t.b.loadHalts(meta.Topic, meta.Name, len(t.logs())); err != nil {
		return nil, err
	}
	return s, nil
}

// loadSubs creates the live subscriptions of a topic from the catalog.
func (t *topic) loadSubs() error {
	for _, meta := range t.b.catalog.Subs(t.meta.Name) {
		offs, err := t.b.catalog.Offsets(t.meta.Name, meta.Name)
		if err != nil {
			return err
		}
		committed := make([]int64, len(t.logs()))
		for p := range committed {
			committed[p] = offs[int32(p)] // a partition without a record starts at 0
		}
		s, err := t.newSub(meta, committed)
		if err != nil {
			return err
		}
		t.subsMu.Lock()
		t.subs[meta.Name] = s
		t.subsMu.Unlock()
	}
	return nil
}

// resolve turns a position into one offset per partition.
func (t *topic) resolve(pos catalog.Position) ([]int64, error) {
	out := make([]int64, len(t.logs()))
	for p, l := range t.logs() {
		off, err := resolveIn(l, int32(p), pos)
		if err != nil {
			return nil, err
		}
		out[p] = off
	}
	return out, nil
}

// resolveIn turns a position into an offset of partition p's log l,
// within what the log retains.
func resolveIn(l *seglog.Log, p int32, pos catalog.Position) (int64, error) {
	start, end := l.StartOffset(), l.EndOffset()
	switch pos.Kind {
	case catalog.Earliest:
		return start, nil
	case catalog.Latest:
		return end, nil
	case catalog.AtOffset:
		return min(max(pos.Offset, start), end), nil
	case catalog.AtTime:
		off, _, err := l.OffsetForTime(pos.Time.UnixMilli())
		if err != nil {
			return 0, errs.Wrap(errs.CorruptData, err, "find time in partition %d", p)
		}
		return max(off, start), nil
	}
	return 0, errs.New(errs.InvalidArgument, "unknown position")
}

// CreateSubscription creates a subscription on a topic. Its committed
// offsets start at cfg.Start (resolved now, so a "latest" subscription sees
// everything published after this call). Everything is validated before
// anything is created, and creation is all or nothing: a queue
// subscription's dead-letter topic that this call created is removed again
// if the subscription is not created.
func (b *Broker) CreateSubscription(topicName, name string, cfg catalog.SubConfig) (catalog.Subscription, error) {
	if err := catalog.ValidateName("subscription", name); err != nil {
		return catalog.Subscription{}, err
	}
	if err := cfg.Validate(); err != nil {
		return catalog.Subscription{}, err
	}
	t, err := b.topic(topicName)
	if err != nil {
		return catalog.Subscription{}, err
	}
	if _, _, err := b.sub(topicName, name); err == nil {
		return catalog.Subscription{}, errs.New(errs.SubExists, "subscription %q on topic %q already exists", name, topicName)
	}
	created := false // a dead-letter topic, by this call: removed unless the subscription is created
	if cfg.Mode == catalog.ModeStream && cfg.Queue.DeadLetterTopic == topicName {
		// A stream subscription's dead-letter topic is created with its first dead letter.
		return catalog.Subscription{}, errs.New(errs.InvalidArgument, "a subscription cannot dead-letter into its own topic")
	}
	if cfg.Mode == catalog.ModeQueue {
		dlq := cfg.Queue.DeadLetterTopic
		if dlq == "" {
			dlq = catalog.DeadLetterTopicName(topicName, name)
		}
		if dlq == topicName {
			return catalog.Subscription{}, errs.New(errs.InvalidArgument, "a subscription cannot dead-letter into its own topic")
		}
		if err := catalog.ValidateName("dead-letter topic", dlq); err != nil {
			return catalog.Subscription{}, err
		}
		b.deadLetterMu.Lock()
		defer b.deadLetterMu.Unlock()
		if created, err = b.createDeadLetterTopic(dlq); err != nil {
			return catalog.Subscription{}, err
		}
		defer func() {
			if created {
				b.undoDeadLetterTopic(dlq)
			}
		}()
	}
	offsets, err := t.startOffsets(name, cfg.Start)
	if err != nil {
		return catalog.Subscription{}, err
	}
	meta := catalog.Subscription{Topic: topicName, Name: name, Config: cfg, Created: b.clock.Now().UTC()}
	if err := b.decide(change{kind: changeCreateSub, sub: meta, offsets: offsets}); err != nil {
		return catalog.Subscription{}, err
	}
	created = false
	return meta, nil
}

// startOffsets resolves a new subscription's start in every partition.
func (t *topic) startOffsets(name string, start catalog.Position) ([]int64, error) {
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", t.meta.Name)
	}
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	if _, ok := t.subs[name]; ok {
		return nil, errs.New(errs.SubExists, "subscription %q on topic %q already exists", name, t.meta.Name)
	}
	return t.resolve(start)
}

// applyCreateSub creates subscription meta starting at offsets (a
// partition added meanwhile starts at 0).
func (b *Broker) applyCreateSub(meta catalog.Subscription, offsets []int64, stamps []catalog.Stamp) error {
	topicName, name := meta.Topic, meta.Name
	t, err := b.topic(topicName)
	if err != nil {
		return err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	if cur, ok := t.subs[name]; ok {
		if cur.meta.Created.Equal(meta.Created) {
			return nil // applied before
		}
		return errs.New(errs.SubExists, "subscription %q on topic %q already exists", name, topicName)
	}
	if n := len(t.logs()); len(offsets) < n {
		offsets = append(offsets, make([]int64, n-len(offsets))...)
	} else {
		offsets = offsets[:n]
	}
	s, err := t.newSub(meta, offsets)
	if err != nil {
		return err
	}
	if err := b.catalog.CreateSub(meta, offsets, stamps...); err != nil {
		return err
	}
	t.subs[name] = s
	b.logger.Info("subscription created", "topic", topicName, "subscription", name, "mode", meta.Config.Mode,
		"filter", meta.Config.Filter, "start", meta.Config.Start)
	return nil
}

// sub returns a live subscription.
func (b *Broker) sub(topicName, name string) (*topic, *subscription, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, nil, err
	}
	t.subsMu.Lock()
	s, ok := t.subs[name]
	t.subsMu.Unlock()
	if !ok {
		return nil, nil, errs.New(errs.SubNotFound, "subscription %q on topic %q not found", name, topicName)
	}
	return t, s, nil
}

// DeleteSubscription deletes a subscription and its offsets; its members'
// sessions end.
func (b *Broker) DeleteSubscription(topicName, name string) error {
	_, s, err := b.sub(topicName, name)
	if err != nil {
		return err
	}
	return b.decide(change{kind: changeDeleteSub, sub: catalog.Subscription{Topic: topicName, Name: name, Created: s.meta.Created}})
}

// applyDeleteSub deletes a subscription if it is still the one created at
// id.Created.
func (b *Broker) applyDeleteSub(id catalog.Subscription, stamps []catalog.Stamp) error {
	topicName, name := id.Topic, id.Name
	t, err := b.topic(topicName)
	if err != nil {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", name, topicName)
	}
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	s, ok := t.subs[name]
	if !ok || !s.meta.Created.Equal(id.Created) {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", name, topicName)
	}
	if err := b.catalog.DeleteSub(topicName, name, stamps...); err != nil {
		return err
	}
	delete(t.subs, name)
	s.mu.Lock()
	s.deleted = true
	for _, sess := range s.sessions {
		sess.closeLocked(errs.New(errs.SubNotFound, "subscription %q was deleted", name))
	}
	s.mu.Unlock()
	b.logger.Info("subscription deleted", "topic", topicName, "subscription", name)
	return nil
}

// Subscriptions lists a topic's subscriptions.
func (b *Broker) Subscriptions(topicName string) ([]catalog.Subscription, error) {
	if _, err := b.topic(topicName); err != nil {
		return nil, err
	}
	return b.catalog.Subs(topicName), nil
}

// QueuePartition is a queue subscription's state in one partition.
type QueuePartition struct {
	queue.Stats
	Parked int64
}

// SubPartition is a subscription's state in one partition.
type SubPartition struct {
	Partition        int32
	Committed        int64
	End              int64
	Lag              int64
	OldestUnconsumed time.Duration // age of the message at Committed; 0 without lag
	Member           string
	Queue            *QueuePartition // queue mode only
	Halt             *Halt           // stream mode: the partition is halted
}

// SubInfo describes a subscription.
type SubInfo struct {
	Sub          catalog.Subscription
	Group        group.Description
	Partitions   []SubPartition
	Lag          int64
	DeadLettered int64 // since the server started
	Dropped      int64
	Stats        SubStats
}

// DescribeSubscription returns members, assignment, committed offsets and
// lag per partition (messages, and age of the oldest unconsumed message).
func (b *Broker) DescribeSubscription(topicName, name string) (SubInfo, error) {
	t, s, err := b.sub(topicName, name)
	if err != nil {
		return SubInfo{}, err
	}
	t.life.RLock() // partitions are added under life (committed grows with t.logs())
	defer t.life.RUnlock()
	now := b.clock.Now()
	s.mu.Lock()
	s.applyLocked(s.coord.Tick(now))
	desc := s.coord.Describe()
	committed := append([]int64(nil), s.committed...)
	halts := s.haltsLocked()
	var qstats []*QueuePartition
	if s.q != nil {
		for _, qp := range s.q.parts {
			st := qp.core.Stats(now)
			committed[qp.id] = st.Floor
			qstats = append(qstats, &QueuePartition{Stats: st, Parked: qp.parked})
		}
	}
	s.mu.Unlock()
	owner := map[int32]string{}
	for _, m := range desc.Members {
		for _, p := range m.Owned {
			owner[p] = m.ID
		}
		for _, r := range m.Revoking {
			owner[r.Partition] = m.ID
		}
	}
	info := SubInfo{Sub: s.config(), Group: desc, Stats: s.stats.snapshot()}
	if s.q != nil {
		info.DeadLettered, info.Dropped = s.q.deadLettered.Load(), s.q.dropped.Load()
	} else {
		info.DeadLettered = s.deadLettered.Load()
	}
	for p, l := range t.logs() {
		sp := SubPartition{Partition: int32(p), Committed: committed[p], End: l.EndOffset(), Member: owner[int32(p)]}
		if h, ok := halts[int32(p)]; ok {
			sp.Halt = &h
		}
		if qstats != nil {
			sp.Queue = qstats[p]
		}
		from := max(sp.Committed, l.StartOffset())
		sp.Lag = max(0, sp.End-from)
		if sp.Lag > 0 {
			if ts, ok := t.timestampAt(int32(p), from); ok {
				sp.OldestUnconsumed = max(0, now.Sub(ts))
			}
		}
		info.Lag += sp.Lag
		info.Partitions = append(info.Partitions, sp)
	}
	return info, nil
}

// timestampAt returns the timestamp of the record at offset in partition p
// (of its batch when the record cannot be decoded).
func (t *topic) timestampAt(p int32, offset int64) (time.Time, bool) {
	bt, ok := t.batchAt(p, offset)
	if !ok {
		return time.Time{}, false
	}
	ts := bt.BaseTimestamp
	if r, ok := t.recordFrom(bt, offset); ok {
		ts = bt.RecordTimestamp(r)
	}
	return time.UnixMilli(ts), true
}

func (b *Broker) maxDecompressed() int { return b.cfg.Log.Limits.MaxDecompressedBytes }

// applyLocked carries out a coordinator call's effects on the sessions.
func (s *subscription) applyLocked(e group.Effects) {
	for _, c := range e.Changes {
		switch c.Kind {
		case group.MemberEvicted:
			if sess := s.sessions[c.Member]; sess != nil {
				sess.closeLocked(errs.New(errs.UnknownMember, "member %q missed its session timeout and was removed", c.Member))
			}
			if s.q != nil {
				s.releaseMemberLocked(c.Member)
			}
		case group.MemberReplaced:
			if sess := s.sessions[c.Previous]; sess != nil {
				sess.closeLocked(errs.New(errs.UnknownMember, "member %q was replaced by a new instance", c.Previous))
			}
			if s.q != nil {
				s.releaseMemberLocked(c.Previous)
			}
		}
		switch c.Kind {
		case group.GenerationBumped:
			if s.q == nil {
				s.t.b.logger.Info("subscription rebalanced", "topic", s.t.meta.Name, "subscription", s.meta.Name,
					"generation", e.Generation+s.resetEpoch, "members", len(s.sessions))
			}
		case group.MemberEvicted:
			s.t.b.logger.Debug("group change", "topic", s.t.meta.Name, "subscription", s.meta.Name, "change", c.String())
			ev := SystemEvent{Kind: EventConsumerLost, Topic: s.t.meta.Name, Subscription: s.meta.Name, Member: c.Member,
				Detail: "the member missed its session timeout; its partitions and leases went to the others"}
			s.t.b.emit(ev, "", slog.LevelWarn, "consumer lost", "member", c.Member) // events.mu is a leaf lock
		default:
			s.t.b.logger.Debug("group change", "topic", s.t.meta.Name, "subscription", s.meta.Name, "change", c.String())
		}
	}
	for _, a := range e.Assignments {
		if sess := s.sessions[a.Member]; sess != nil && s.q == nil {
			a.Generation += s.resetEpoch
			sess.assignLocked(a, s.committed)
		}
	}
}

// tickSubs runs session timeouts of every subscription of the topic.
func (t *topic) tickSubs(now time.Time) {
	t.subsMu.Lock()
	subs := make([]*subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	t.subsMu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.applyLocked(s.coord.Tick(now))
		s.mu.Unlock()
	}
}

// commit validates and stores a member's commit.
func (s *subscription) commit(memberID string, gen int64, offsets map[int32]int64) error {
	// t.logs() grows under life (AddPartitions). It is not held while the
	// write waits: applying a cluster's metadata may need it.
	s.t.life.RLock()
	unlock := sync.OnceFunc(s.t.life.RUnlock)
	defer unlock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return errs.New(errs.SubNotFound, "subscription %q was deleted", s.meta.Name)
	}
	s.applyLocked(s.coord.Tick(s.t.b.clock.Now()))
	for p, off := range offsets {
		if err := s.coord.CheckCommit(memberID, gen-s.resetEpoch, p); err != nil {
			s.mu.Unlock()
			return groupError(err)
		}
		// On a cluster the coordinator's replica may lag the leader, so
		// its end bounds nothing there (as in CommitStream).
		if off < 0 || (off > s.t.logs()[p].EndOffset() && s.t.replicas() == nil) {
			s.mu.Unlock()
			return errs.New(errs.InvalidArgument, "commit offset %d for partition %d is beyond its end %d", off, p, s.t.logs()[p].EndOffset())
		}
		if h, ok := s.halts[p]; ok && off > h.Offset {
			s.mu.Unlock()
			return errs.New(errs.FailedPrecondition, "partition %d is halted at offset %d (a failed message); reset it to go on", p, h.Offset)
		}
	}
	s.mu.Unlock()
	unlock()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	w := s.newWrite()
	for p, off := range offsets {
		w.set(state.OffsetKey(s.meta.Topic, s.meta.Name, p), catalog.EncodeOffset(off))
	}
	crashpoint.Hit(crashpoint.OffsetCommit)
	if err := s.t.b.writeSub(w); err != nil {
		return err
	}
	s.stats.commits.Add(1)
	return nil
}

// groupError maps coordinator errors to API errors.
func groupError(err error) error {
	switch {
	case errors.Is(err, group.ErrStaleGeneration):
		return errs.Wrap(errs.StaleGeneration, err, "rebalanced")
	case errors.Is(err, group.ErrUnknownMember):
		return errs.Wrap(errs.UnknownMember, err, "not a member")
	case errors.Is(err, group.ErrNotOwner):
		return errs.Wrap(errs.NotOwner, err, "partition not assigned to this member")
	case errors.Is(err, group.ErrGroupFull):
		return errs.Wrap(errs.GroupFull, err, "too many members")
	case errors.Is(err, group.ErrInvalidPartition):
		return errs.Wrap(errs.InvalidArgument, err, "bad partition")
	case errors.Is(err, group.ErrInvalidSessionTimeout), errors.Is(err, group.ErrInvalidID), errors.Is(err, group.ErrInstanceMismatch):
		return errs.Wrap(errs.InvalidArgument, err, "bad join request")
	}
	return errs.Wrap(errs.Internal, err, "group")
}
