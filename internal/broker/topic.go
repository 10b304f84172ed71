package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// topic is a live topic: its partition logs, de-duplication window and
// subscriptions.
type topic struct {
	b *Broker
	// meta is the topic's definition; its Assignment is the one it opened
	// with (the catalog record has the current replicas: Broker.assignment).
	meta  catalog.Topic
	dir   string
	parts atomic.Pointer[[]*seglog.Log] // replaced (never changed in place) when partitions are added
	repl  atomic.Pointer[[]*replica]    // a cluster's: the partitions' groups, as parts
	dedup *dedup
	rr    atomic.Uint32 // round-robin cursor for keyless publishes
	stats *topicStats   // counters and publish latency since the server started

	// life is held shared by every operation that uses the logs and
	// exclusively by delete/close, so logs are never closed under a user.
	life    sync.RWMutex
	deleted bool          // guarded by life
	gone    chan struct{} // closed when the topic is deleted or closed

	notifyMu sync.Mutex
	notifyCh chan struct{} // closed and replaced whenever a partition's readable end moves

	subsMu sync.Mutex
	subs   map[string]*subscription // guarded by subsMu
}

// logOptions returns the partition log options for a topic.
func (b *Broker) logOptions(meta catalog.Topic) seglog.Options {
	o := b.cfg.Log
	o.Sync = meta.Config.Durability
	o.RetentionAge = meta.Config.Retention
	o.RetentionBytes = meta.Config.RetentionBytes
	// A bounded topic drops or counts whole segments; keep them small
	// enough that the bound is honoured to within about an eighth, but
	// never below 1 MiB nor below the largest batch the log stores.
	if mb := meta.Config.MaxBytes; mb > 0 {
		per := mb / int64(meta.Config.Partitions) / 8
		o.SegmentBytes = min(o.SegmentBytes, max(per, 1<<20, int64(o.Limits.MaxBatchBytes)))
	}
	o.Replicated = b.cfg.Replicator != nil
	return o
}

func (b *Broker) openTopic(meta catalog.Topic) (*topic, error) {
	t := &topic{
		b:        b,
		meta:     meta,
		dir:      b.topicDir(meta),
		dedup:    newDedup(meta.Config.DedupWindow, b.cfg.DedupMaxEntries),
		stats:    newTopicStats(),
		gone:     make(chan struct{}),
		notifyCh: make(chan struct{}),
		subs:     map[string]*subscription{},
	}
	opts := b.logOptions(meta)
	opts.OnAdvance = t.notify
	for p := range meta.Config.Partitions {
		dir := filepath.Join(t.dir, strconv.Itoa(int(p)))
		l, rep, err := seglog.Open(b.fs, dir, opts)
		if err != nil {
			t.closeLogs()
			return nil, fmt.Errorf("broker: open %s/%d: %w", meta.Name, p, err)
		}
		b.recovery.partitions++
		b.recovery.segments += rep.Segments
		b.recovery.scanned += len(rep.Scanned)
		b.recovery.scannedBytes += rep.ScannedBytes
		if rep.Torn != nil {
			b.recovery.torn++
			b.recovered.torn.Add(1)
			b.recovered.tornBytes.Add(rep.Torn.Dropped)
		}
		b.recovered.partitions.Add(1)
		b.recovered.scanned.Add(int64(len(rep.Scanned)))
		b.recovered.scannedBytes.Add(rep.ScannedBytes)
		if rep.Torn != nil || len(rep.Scanned) > 0 || len(rep.Removed) > 0 {
			attrs := []any{"topic", meta.Name, "partition", p, "segments", rep.Segments, "scanned", len(rep.Scanned),
				"scanned_bytes", rep.ScannedBytes, "start", rep.StartOffset, "end", rep.EndOffset, "took", rep.Duration}
			if rep.Torn != nil {
				attrs = append(attrs, "torn_segment", rep.Torn.Segment, "torn_position", rep.Torn.Position,
					"torn_offset", rep.Torn.Offset, "torn_bytes_dropped", rep.Torn.Dropped, "torn_reason", rep.Torn.Reason)
			}
			b.logger.Info("recovered partition", attrs...)
		}
		ls := append(t.logs(), l)
		t.parts.Store(&ls)
		if b.cfg.Replicator != nil {
			r, err := t.startReplica(p, l, meta.AssignmentOf(p))
			if err != nil {
				t.closeLogs()
				return nil, fmt.Errorf("broker: start the group of %s/%d: %w", meta.Name, p, err)
			}
			rs := append(t.replicas(), r)
			t.repl.Store(&rs)
		}
	}
	if err := t.replayDedup(); err != nil {
		t.closeLogs()
		return nil, err
	}
	return t, nil
}

func (t *topic) closeLogs() error {
	t.stopReplicas()
	var errList []error
	for _, l := range t.logs() {
		if err := l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
			errList = append(errList, err)
		}
	}
	return errors.Join(errList...)
}

// close ends sessions and closes the logs (broker shutdown).
func (t *topic) close() error {
	t.endSessions(errs.New(errs.Unavailable, "server is shutting down"), false)
	t.life.Lock()
	defer t.life.Unlock()
	if t.deleted {
		return nil
	}
	t.deleted = true
	close(t.gone)
	return t.closeLogs()
}

// endSessions ends every session of the topic's subscriptions with err
// (their Next returns it); with deleted, the subscriptions are marked
// deleted too, so that no member joins them any more and the queue loop
// leaves them alone.
func (t *topic) endSessions(err error, deleted bool) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	for _, s := range t.subs {
		s.mu.Lock()
		if deleted {
			s.deleted = true
		}
		for _, sess := range s.sessions {
			sess.closeLocked(err)
		}
		s.mu.Unlock()
	}
}

// goneErr is what Next returns when the topic went away under a session:
// why the session was ended (topic deleted, server shutting down), or, for
// a session that was not ended, that the topic is gone.
func (sess *Session) goneErr() error {
	s := sess.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closed {
		return sess.err
	}
	return errs.New(errs.TopicNotFound, "topic %q was deleted or the broker is shutting down", s.t.meta.Name)
}

// notify wakes everyone waiting for new data in the topic.
func (t *topic) notify() {
	t.notifyMu.Lock()
	close(t.notifyCh)
	t.notifyCh = make(chan struct{})
	t.notifyMu.Unlock()
}

// changed returns a channel closed at the next publish.
func (t *topic) changed() <-chan struct{} {
	t.notifyMu.Lock()
	defer t.notifyMu.Unlock()
	return t.notifyCh
}

// CreateTopic creates a topic: partition logs first, then the catalog
// record (a crash in between leaves only a directory that the next start
// removes).
func (b *Broker) CreateTopic(name string, cfg catalog.TopicConfig) (catalog.Topic, error) {
	if err := catalog.ValidateName("topic", name); err != nil {
		return catalog.Topic{}, err
	}
	if err := b.checkMessageLimit(catalog.TopicConfig{}, cfg); err != nil {
		return catalog.Topic{}, err
	}
	explicitMax := cfg.MaxMessageBytes != 0
	cfg = b.cfg.Defaults.Fill(cfg)
	if lim := b.MaxStorableMessageBytes(); !explicitMax && cfg.MaxMessageBytes > lim {
		// The server default is capped by what the logs store; an explicit
		// value above it is refused (above).
		cfg.MaxMessageBytes = lim
	}
	if err := validateTopicConfig(cfg); err != nil {
		return catalog.Topic{}, err
	}
	if _, err := b.topic(name); err == nil {
		return catalog.Topic{}, errs.New(errs.TopicExists, "topic %q already exists", name)
	}
	meta := catalog.Topic{Name: name, ID: newUUID(), Config: cfg, Created: b.clock.Now().UTC()}
	if b.cfg.Replicator == nil {
		// A single node holds the one replica of each partition.
		if cfg.Replicas != 0 && cfg.Replicas != 1 {
			return catalog.Topic{}, errs.New(errs.InvalidArgument, "replication factor %d: a single node has one replica of each partition", cfg.Replicas)
		}
		meta.Config.Replicas = 0
	} else {
		rf, asg, err := b.cfg.Replicator.Place(meta.ID, cfg.Replicas, 0, cfg.Partitions)
		if err != nil {
			return catalog.Topic{}, err
		}
		meta.Config.Replicas, meta.Assignment = rf, asg
	}
	if err := b.decide(change{kind: changeCreateTopic, topic: meta}); err != nil {
		return catalog.Topic{}, err
	}
	return meta, nil
}

// applyCreateTopic creates a topic: partition logs first, then the catalog
// record (a crash in between leaves only a directory that the next start
// removes).
func (b *Broker) applyCreateTopic(meta catalog.Topic, stamps []catalog.Stamp) error {
	name := meta.Name
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errs.New(errs.Unavailable, "broker is shutting down")
	}
	if cur, ok := b.topics[name]; ok {
		if cur.meta.ID == meta.ID {
			return nil // applied before
		}
		return errs.New(errs.TopicExists, "topic %q already exists", name)
	}
	t, err := b.openTopic(meta)
	if err != nil {
		b.fs.RemoveAll(b.topicDir(meta))
		return errs.Wrap(errs.StorageFailed, err, "create topic %q", name)
	}
	if err := b.catalog.PutTopic(meta, true, stamps...); err != nil {
		t.closeLogs()
		b.fs.RemoveAll(b.topicDir(meta))
		return err
	}
	b.topics[name] = t
	b.logger.Info("topic created", "topic", name, "id", meta.ID, "partitions", meta.Config.Partitions)
	return nil
}

// DeleteTopic deletes a topic, its subscriptions and its data. Sessions on
// it end; in-flight publishes finish first.
func (b *Broker) DeleteTopic(name string) error {
	t, err := b.topic(name)
	if err != nil {
		return err
	}
	return b.decide(change{kind: changeDeleteTopic, topic: catalog.Topic{Name: name, ID: t.meta.ID}})
}

// applyDeleteTopic deletes topic name if it is still the topic of that id.
func (b *Broker) applyDeleteTopic(name, id string, stamps []catalog.Stamp) error {
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok || t.meta.ID != id {
		b.mu.Unlock()
		return errs.New(errs.TopicNotFound, "topic %q not found", name)
	}
	if err := b.catalog.DeleteTopic(name, stamps...); err != nil {
		b.mu.Unlock()
		return err
	}
	delete(b.topics, name)
	b.mu.Unlock()

	t.endSessions(errs.New(errs.TopicNotFound, "topic %q was deleted", name), true)
	closeErr := t.close()
	if closeErr != nil {
		b.logger.Warn("closing deleted topic", "topic", name, "err", closeErr)
	}
	if err := b.fs.RemoveAll(t.dir); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "remove data of topic %q (it is deleted; the files are removed at the next start)", name)
	}
	if err := vfs.SyncDir(b.fs, b.topicsDir()); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "sync topics directory")
	}
	b.logger.Info("topic deleted", "topic", name)
	return nil
}

// Topics lists the topics.
func (b *Broker) Topics() []catalog.Topic { return b.catalog.Topics() }

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition   int32
	StartOffset int64
	EndOffset   int64
	Bytes       int64
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Topic         catalog.Topic
	Partitions    []PartitionInfo
	Messages      int64
	Bytes         int64
	Subscriptions []string
	Stats         TopicStats
}

// DescribeTopic returns a topic's partitions, sizes and subscriptions.
func (b *Broker) DescribeTopic(name string) (TopicInfo, error) {
	t, err := b.topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	t.life.RLock() // partitions and configs change under life
	defer t.life.RUnlock()
	info := TopicInfo{Topic: t.meta, Stats: t.statsSnapshot()}
	info.Topic.Assignment = b.assignment(name, t.meta.ID)
	for p, l := range t.logs() {
		pi := PartitionInfo{Partition: int32(p), StartOffset: l.StartOffset(), EndOffset: l.EndOffset(), Bytes: l.Size()}
		info.Partitions = append(info.Partitions, pi)
		info.Messages += pi.EndOffset - pi.StartOffset
		info.Bytes += pi.Bytes
	}
	for _, s := range b.catalog.Subs(name) {
		info.Subscriptions = append(info.Subscriptions, s.Name)
	}
	return info, nil
}

// usage returns the topic's stored messages and bytes.
func (t *topic) usage() (msgs, bytes int64) {
	for _, l := range t.logs() {
		msgs += l.EndOffset() - l.StartOffset()
		bytes += l.Size()
	}
	return msgs, bytes
}

// maintain enforces retention and, for discard=old, the topic's bounds;
// then runs consumer-group timeouts.
func (t *topic) maintain() {
	t.life.RLock()
	if t.deleted {
		t.life.RUnlock()
		return
	}
	for p, l := range t.logs() {
		if _, err := l.EnforceRetention(); err != nil {
			t.b.logger.Error("retention failed", "topic", t.meta.Name, "partition", p, "err", err)
		}
	}
	t.enforceBoundsLocked()
	if t.meta.Config.WorkQueue {
		t.workQueueRetentionLocked()
	}
	t.life.RUnlock()
	t.tickSubs(t.b.clock.Now())
}

// enforceBoundsLocked drops the oldest segments while a discard=old topic
// is over its message or byte bound. Called with life held shared.
func (t *topic) enforceBoundsLocked() {
	c := t.meta.Config
	if c.Discard != catalog.DiscardOld || (c.MaxMessages == 0 && c.MaxBytes == 0) {
		return
	}
	for {
		msgs, bytes := t.usage()
		if (c.MaxMessages == 0 || msgs <= c.MaxMessages) && (c.MaxBytes == 0 || bytes <= c.MaxBytes) {
			return
		}
		// Drop from the largest partition, keeping partitions balanced.
		var victim *seglog.Log
		for _, l := range t.logs() {
			if len(l.Segments()) > 1 && (victim == nil || l.Size() > victim.Size()) {
				victim = l
			}
		}
		if victim == nil {
			return // only active segments left: the bound is approximate by one segment per partition
		}
		if ok, err := victim.DropOldestSegment(); err != nil || !ok {
			if err != nil {
				t.b.logger.Error("dropping oldest segment failed", "topic", t.meta.Name, "err", err)
			}
			return
		}
	}
}

// checkCapacity rejects a publish of n messages and size bytes into a full
// discard=new topic.
func (t *topic) checkCapacity(n, size int) error {
	c := t.meta.Config
	if c.Discard != catalog.DiscardNew || (c.MaxMessages == 0 && c.MaxBytes == 0) {
		return nil
	}
	msgs, bytes := t.usage()
	if (c.MaxMessages > 0 && msgs+int64(n) > c.MaxMessages) || (c.MaxBytes > 0 && bytes+int64(size) > c.MaxBytes) {
		e := errs.New(errs.TopicFull, "topic %q is full (%d of %d messages, %d of %d bytes) and its discard policy is new",
			t.meta.Name, msgs, c.MaxMessages, bytes, c.MaxBytes)
		e.RetryAfter = t.b.cfg.TopicFullRetryAfter
		if c.Retention > 0 {
			e.RetryAfter = max(e.RetryAfter, min(c.Retention/10, time.Minute))
		}
		t.b.emit(SystemEvent{Kind: EventTopicFull, Topic: t.meta.Name, Count: int64(n), Detail: e.Error()},
			"full/"+t.meta.Name, slog.LevelWarn, "topic full: publishes refused", "messages", msgs, "bytes", bytes,
			"max_messages", c.MaxMessages, "max_bytes", c.MaxBytes)
		return e
	}
	return nil
}

// workQueueRetentionLocked deletes segments that every queue subscription
// has finished. Called with life held shared.
func (t *topic) workQueueRetentionLocked() {
	t.subsMu.Lock()
	var subs []*subscription
	for _, s := range t.subs {
		if s.q != nil {
			subs = append(subs, s)
		}
	}
	t.subsMu.Unlock()
	if len(subs) == 0 {
		return // nobody consumes as a queue yet: keep everything
	}
	for p, l := range t.logs() {
		floor := int64(-1)
		for _, s := range subs {
			s.mu.Lock()
			f := s.committed[p] // the persisted ack floor
			s.mu.Unlock()
			if floor < 0 || f < floor {
				floor = f
			}
		}
		if _, err := l.DropSegmentsBefore(floor); err != nil {
			t.b.logger.Error("work-queue retention failed", "topic", t.meta.Name, "partition", p, "err", err)
		}
	}
}

// logs returns the topic's partition logs. The slice is never modified in
// place: AddPartitions stores a new one.
func (t *topic) logs() []*seglog.Log {
	if p := t.parts.Load(); p != nil {
		return *p
	}
	return nil
}
