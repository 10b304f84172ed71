package broker

// Commits to a stream subscription from outside its sessions, for a front
// end that runs consumer groups of its own (Kafka's classic groups commit
// to the stream subscription named after the group: one data model, so
// `spool sub describe` shows their progress and a native consumer resumes
// where they stopped). Beside the offsets the front end keeps records of
// its space with the subscription (Kafka: each partition's commit
// metadata), written in the same synced batch as the offsets, read under
// the same lock, and deleted with the subscription and with its topic:
//
//	<space kind>/<topic>\x00<subscription>\x00<front end's key>
//
// The broker does not read them. A subscription deleted and created again
// under the same name does not meet its predecessor's records (they are
// deleted with it); its creation time, in StreamView, lets a front end
// stamp its records anyway.

import (
	"github.com/spoolmq/spool/internal/crashpoint"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// StreamCommit is what CommitStream writes.
type StreamCommit struct {
	// Offsets are the new committed offsets by partition. A negative
	// offset leaves the partition's offset as it is: the partition is
	// checked and listed in StreamView.Commit (so that Records can write
	// a record for it) but not moved.
	Offsets map[int32]int64
	// Records, if set, is called once the offsets are checked, under the
	// subscription's commit lock (commits, resets and ReadStream are
	// ordered by it), and returns records of the space to write in the
	// same synced batch as the offsets; a nil Value deletes a record. An
	// error stops the commit: nothing is written.
	Records func(StreamView) ([]Record, error)
	// Create, if set, creates the subscription with this config (stream
	// mode) when it does not exist, unless no partition passes the checks.
	Create *catalog.SubConfig
	// Alone refuses the commit (FailedPrecondition) while members consume
	// the subscription through sessions, whose positions it would move
	// under them.
	Alone bool
	// Term, if nonzero, is the cluster coordination term whose state
	// authorized the commit (a front end's group generations belong to
	// one): the commit is refused as not coordinator unless this node
	// coordinates in that term, and its write is refused if appended to
	// the metadata log in another (a deposed coordinator's, or one
	// checked just before this node's term changed).
	Term uint64
}

// StreamView is a stream subscription as a commit or ReadStream sees it,
// under its commit lock.
type StreamView struct {
	Created   time.Time // the subscription's creation
	Fresh     bool      // CommitStream created the subscription
	Committed []int64   // committed offsets by partition (before the commit)
	// Commit are the partitions being committed, with their offsets
	// (CommitStream only): those of StreamCommit.Offsets that passed the
	// checks.
	Commit map[int32]int64

	sp          *Space
	topic, name string
}

// ScanRecords calls fn for each of the subscription's records of the
// space, in key order; key and value are valid only during the call.
func (v StreamView) ScanRecords(fn func(key, value []byte) error) error {
	return v.sp.scanSub(v.topic, v.name, fn)
}

// subKey is the store key of a record kept with a subscription.
func (sp *Space) subKey(topic, sub string, k []byte) []byte {
	return append(state.SpaceSubPrefix(sp.sp, topic, sub), k...)
}

// SubKey returns the state-store key of a record kept with a subscription,
// for error messages (state.RecordError).
func (sp *Space) SubKey(topic, sub string, k []byte) []byte { return sp.subKey(topic, sub, k) }

func (sp *Space) scanSub(topic, sub string, fn func(key, value []byte) error) error {
	prefix := state.SpaceSubPrefix(sp.sp, topic, sub)
	return sp.scan(prefix, len(prefix), fn)
}

// streamSub returns stream subscription name of a topic, creating it with
// create (mode stream) if that is set and it does not exist; created
// reports whether this call created it. A queue subscription of that name
// is FailedPrecondition.
func (b *Broker) streamSub(topicName, name string, create *catalog.SubConfig) (t *topic, s *subscription, created bool, err error) {
	t, s, err = b.sub(topicName, name)
	if errs.Is(err, errs.SubNotFound) && create != nil {
		cfg := *create
		cfg.Mode = catalog.ModeStream
		_, err = b.CreateSubscription(topicName, name, cfg)
		switch {
		case err == nil:
			created = true
		case errs.Is(err, errs.SubExists):
		default:
			return nil, nil, false, err
		}
		t, s, err = b.sub(topicName, name)
	}
	if err != nil {
		return nil, nil, false, err
	}
	if s.q != nil {
		return nil, nil, false, errs.New(errs.FailedPrecondition, "subscription %q on topic %q is a queue subscription, not a stream subscription", name, topicName)
	}
	return t, s, created, nil
}

// CommitStream commits offsets of stream subscription name of a topic with
// records of the space, in one synced batch: durable when it returns.
//
// Per-partition problems are returned by partition, and those partitions
// are left out: no such partition (TopicNotFound), an offset beyond the
// partition's end (OffsetOutOfRange) or past a halt (FailedPrecondition).
// An error for the whole commit is returned as err: no such topic or
// subscription, a queue subscription of that name or members consuming it
// (Alone; FailedPrecondition), an error of Records, or a storage failure.
func (sp *Space) CommitStream(topicName, name string, c StreamCommit) (map[int32]error, error) {
	b := sp.b
	if err := b.checkCoordinator(); err != nil {
		return nil, err
	}
	if c.Term != 0 && b.cfg.Meta != nil && b.coordTerm.Load() != c.Term {
		return nil, b.notCoordinator()
	}
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	// check validates the partitions and offsets; t.life is held shared.
	check := func() (perr map[int32]error, valid map[int32]int64) {
		perr, valid = map[int32]error{}, map[int32]int64{}
		for p, off := range c.Offsets {
			if p < 0 || int(p) >= len(t.logs()) {
				perr[p] = errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
				continue
			}
			// A cluster's coordinator reads its own replica, which may
			// lag the leader that served the consumer's fetches: there
			// the end bounds nothing (Kafka does not check it either).
			if end := t.logs()[p].EndOffset(); off > end && t.replicas() == nil {
				perr[p] = errs.New(errs.OffsetOutOfRange, "commit offset %d for partition %d is beyond its end %d", off, p, end)
				continue
			}
			valid[p] = off
		}
		return perr, valid
	}
	t.life.RLock()
	perr, valid := check()
	t.life.RUnlock()
	if len(valid) == 0 {
		return perr, nil
	}
	if c.Create != nil {
		if _, _, err := b.sub(topicName, name); errs.Is(err, errs.SubNotFound) {
			// This commit may create the subscription: until it has
			// written its records, ReadStream waits (it would otherwise
			// see a fresh subscription without them).
			defer b.creating.enter(topicName, name)()
		}
	}
	t, s, created, err := b.streamSub(topicName, name, c.Create)
	if err != nil {
		return nil, err
	}
	if created && testHookStreamCreated != nil {
		testHookStreamCreated()
	}
	t.life.RLock()
	unlock := sync.OnceFunc(t.life.RUnlock) // not held while the write waits (sub_state.go)
	defer unlock()
	if t.deleted {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if perr, valid = check(); len(valid) == 0 {
		return perr, nil
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return nil, errs.New(errs.SubNotFound, "subscription %q was deleted", name)
	}
	if c.Alone {
		s.applyLocked(s.coord.Tick(b.clock.Now()))
		if n := s.coord.Len(); n > 0 {
			s.mu.Unlock()
			return nil, errs.New(errs.FailedPrecondition, "subscription %q on topic %q has %d native consumers; commits from outside its sessions are not supported while they consume", name, topicName, n)
		}
	}
	committed := append([]int64(nil), s.committed...)
	halts := s.haltsLocked()
	s.mu.Unlock()
	for p, off := range valid {
		switch h, halted := halts[p]; {
		case int(p) >= len(committed):
			perr[p] = errs.New(errs.TopicNotFound, "partition %d of topic %q does not exist", p, topicName)
			delete(valid, p)
		case halted && off > h.Offset:
			perr[p] = errs.New(errs.FailedPrecondition, "partition %d is halted at offset %d (a failed message); reset it to go on", p, h.Offset)
			delete(valid, p)
		}
	}
	var recs []Record
	if c.Records != nil {
		v := StreamView{Created: s.meta.Created, Fresh: created, Committed: committed, Commit: valid, sp: sp, topic: topicName, name: name}
		if recs, err = c.Records(v); err != nil {
			return nil, err
		}
	}
	w := s.newWrite()
	w.term = c.Term
	for p, off := range valid {
		if off >= 0 {
			w.set(state.OffsetKey(topicName, name, p), catalog.EncodeOffset(off))
		}
	}
	for _, r := range recs {
		w.ops = append(w.ops, subOp{key: sp.subKey(topicName, name, r.Key), value: r.Value})
	}
	unlock()
	crashpoint.Hit(crashpoint.OffsetCommit)
	if err := b.writeSub(w); err != nil {
		return nil, err
	}
	if len(valid) > 0 {
		s.stats.commits.Add(1)
	}
	return perr, nil
}

// ReadStream calls fn with stream subscription name of a topic under its
// commit lock, so that the offsets and the records fn reads belong to the
// same commits. Errors: no such topic or subscription, a queue
// subscription of that name (FailedPrecondition), or fn's.
func (sp *Space) ReadStream(topicName, name string, fn func(StreamView) error) error {
	_, s, _, err := sp.b.streamSub(topicName, name, nil)
	if err != nil {
		return err
	}
	sp.b.creating.wait(topicName, name)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return errs.New(errs.SubNotFound, "subscription %q was deleted", name)
	}
	committed := append([]int64(nil), s.committed...)
	s.mu.Unlock()
	return fn(StreamView{Created: s.meta.Created, Committed: committed, sp: sp, topic: topicName, name: name})
}

// testHookStreamCreated, set by a test, runs when CommitStream has created
// a subscription, before it takes the subscription's commit lock.
var testHookStreamCreated func()

// createGates let a commit that creates a stream subscription finish
// writing before anyone reads the subscription's records: between the
// subscription's creation and its commit lock a reader would find it
// without them (Kafka: a fresh group's partitions without their "no
// offset" marks, read as the subscription's start).
type createGates struct {
	mu sync.Mutex
	m  map[string]chan struct{} // topic\x00name → closed when the commit ends
}

// enter waits for a commit creating the same subscription to end, then
// registers this one; the function returned ends it.
func (g *createGates) enter(topic, name string) (leave func()) {
	k := topic + "\x00" + name
	for {
		g.mu.Lock()
		ch, busy := g.m[k]
		if !busy {
			if g.m == nil {
				g.m = map[string]chan struct{}{}
			}
			ch = make(chan struct{})
			g.m[k] = ch
			g.mu.Unlock()
			return func() {
				g.mu.Lock()
				delete(g.m, k)
				g.mu.Unlock()
				close(ch)
			}
		}
		g.mu.Unlock()
		<-ch
	}
}

// wait returns once no commit is creating the subscription.
func (g *createGates) wait(topic, name string) {
	g.mu.Lock()
	ch := g.m[topic+"\x00"+name]
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}
