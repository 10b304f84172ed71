package broker

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/group"
	"github.com/spoolmq/spool/internal/seglog"
)

// Limits of a consumer session.
const (
	maxCredits        = 1 << 20 // credits a session may accumulate
	maxEventBytes     = 1 << 20 // payload bytes per Deliveries event
	maxEventMessages  = 4096    // messages per Deliveries event
	sessionReadChunk  = 256 << 10
	defaultJoinCredit = 0
)

// JoinRequest asks to join a subscription as a member.
type JoinRequest struct {
	Topic, Subscription string
	ClientID            string
	MemberID            string // rejoin as this member; "" = new member
	InstanceID          string // static membership
	SessionTimeout      time.Duration
	Credits             int
	MaxInFlight         int // queue mode: leases this member may hold; 0 = no limit beyond credits
}

// Session is one member's connection to a stream-mode subscription: the
// broker assigns it partitions and, as far as its credits allow, hands it
// their messages in offset order. A Session is driven by two goroutines of
// the protocol front end: one calls Next and sends what it returns, the
// other feeds it the client's requests (credits, commits, revocations,
// heartbeats). Close it with Leave.
type Session struct {
	sub     *subscription
	id      string
	timeout time.Duration
	wake    chan struct{} // capacity 1: something changed

	// Guarded by sub.mu.
	gen           int64
	cursors       map[int32]int64 // owned partition -> next offset to deliver
	order         []int32         // owned partitions, ascending
	revoking      []int32
	assignPending bool
	resetPending  bool    // the pending assignment announces a reset
	resetParts    []int32 // ... of these partitions
	epoch         uint64  // bumped when cursors are replaced, to discard reads in flight
	credits       int
	results       []CommitOutcome
	rr            int
	closed        bool
	err           error

	failedResults []FailedOutcome

	// Used only by the goroutine calling Next (stream mode).
	rc readCache // the rest of the read the last event stopped in

	// Queue mode (guarded by sub.mu).
	maxInflight  int // leases this member may hold; 0 = no limit beyond credits
	leaseResults []LeaseOutcome
}

// Event is the next thing to send to the member: one of Assignment,
// Deliveries (with Next), Commit, Lease or Heartbeat is set.
type Event struct {
	Assignment *SessionAssignment
	Deliveries []Delivered
	Next       []PartitionStart // with Deliveries (stream mode): each partition read and its next offset
	Commit     *CommitOutcome
	Lease      *LeaseOutcome  // queue mode: the answer to an ack, nack, extend or reject
	Failed     *FailedOutcome // stream mode: the answer to a Failed request
	Heartbeat  bool           // the session was idle for a third of its timeout
}

// SessionAssignment tells a member what it owns now.
type SessionAssignment struct {
	MemberID        string
	Generation      int64
	Partitions      []PartitionStart // owned partitions and where delivery resumes
	Revoke          []int32          // stop processing these, commit, then call Revoked
	SessionTimeout  time.Duration
	Reset           bool    // the offsets come from a reset, not a rebalance
	ResetPartitions []int32 // with Reset: the partitions reset (never empty)
	// Failure is the subscription's stream failure policy.
	Failure catalog.StreamFailure
}

// PartitionStart is an owned partition and the offset delivery starts at.
type PartitionStart struct {
	Partition int32
	Offset    int64
}

// CommitOutcome answers a commit.
type CommitOutcome struct {
	ID  uint64
	Err error
}

// Join adds a member to a stream-mode subscription and returns its
// session. The first event the session yields is its assignment.
func (b *Broker) Join(req JoinRequest) (*Session, error) {
	if err := b.checkCoordinator(); err != nil {
		return nil, err
	}
	_, s, err := b.sub(req.Topic, req.Subscription)
	if err != nil {
		return nil, err
	}
	if req.MaxInFlight < 0 {
		return nil, errs.New(errs.InvalidArgument, "max in flight must not be negative")
	}
	now := b.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil, errs.New(errs.SubNotFound, "subscription %q was deleted", req.Subscription)
	}
	id, eff, err := s.coord.Join(now, req.MemberID, group.JoinOptions{
		ClientID: req.ClientID, InstanceID: req.InstanceID, SessionTimeout: req.SessionTimeout,
	})
	if err != nil {
		s.applyLocked(eff)
		return nil, groupError(err)
	}
	timeout := req.SessionTimeout
	if timeout == 0 {
		timeout = s.coord.Config().SessionTimeout
	}
	sess := &Session{
		sub:         s,
		id:          id,
		timeout:     timeout,
		wake:        make(chan struct{}, 1),
		cursors:     map[int32]int64{},
		credits:     min(max(req.Credits, defaultJoinCredit), maxCredits),
		maxInflight: req.MaxInFlight,
	}
	if old := s.sessions[id]; old != nil {
		old.closeLocked(errs.New(errs.UnknownMember, "member %q reconnected on another stream", id))
	}
	s.sessions[id] = sess
	s.applyLocked(eff)
	if s.q != nil {
		sess.assignPending = true // queue mode: the assignment only names the member
	} else if !sess.assignPending {
		if a, err := s.coord.Assignment(id); err == nil {
			a.Generation += s.resetEpoch
			sess.assignLocked(a, s.committed)
		}
	}
	return sess, nil
}

// MemberID returns the session's member id.
func (sess *Session) MemberID() string { return sess.id }

// signal wakes Next.
func (sess *Session) signal() {
	select {
	case sess.wake <- struct{}{}:
	default:
	}
}

// assignLocked installs a new assignment from the coordinator.
func (sess *Session) assignLocked(a group.Assignment, committed []int64) {
	owned := map[int32]bool{}
	for _, p := range a.Owned {
		owned[p] = true
		if _, ok := sess.cursors[p]; !ok {
			sess.cursors[p] = committed[p]
		}
	}
	for p := range sess.cursors {
		if !owned[p] {
			delete(sess.cursors, p)
		}
	}
	sess.order = append(sess.order[:0], a.Owned...)
	sort.Slice(sess.order, func(i, j int) bool { return sess.order[i] < sess.order[j] })
	sess.revoking = append([]int32(nil), a.Revoking...)
	sess.gen = a.Generation
	sess.epoch++
	sess.assignPending = true
	sess.signal()
}

// resetCursorsLocked moves the cursors of the owned partitions among
// moved (a reset) and announces it in the next assignment.
func (sess *Session) resetCursorsLocked(moved map[int32]int64) {
	for p, off := range moved {
		if _, ok := sess.cursors[p]; ok {
			sess.cursors[p] = off
			if !slices.Contains(sess.resetParts, p) {
				sess.resetParts = append(sess.resetParts, p)
			}
		}
	}
	sess.epoch++
	sess.assignPending = true // with the new generation, even if none of ours moved
	sess.resetPending = len(sess.resetParts) > 0
	sess.signal()
}

// closeLocked ends the session with err (returned by Next).
func (sess *Session) closeLocked(err error) {
	if sess.closed {
		return
	}
	sess.closed = true
	sess.err = err
	if sess.sub.sessions[sess.id] == sess {
		delete(sess.sub.sessions, sess.id)
	}
	sess.signal()
}

// AddCredits lets the session send n more messages.
func (sess *Session) AddCredits(n int) {
	if n <= 0 {
		return
	}
	s := sess.sub
	s.mu.Lock()
	sess.credits = min(sess.credits+n, maxCredits)
	s.mu.Unlock()
	sess.signal()
}

// Heartbeat keeps the member's session alive.
func (sess *Session) Heartbeat() {
	s := sess.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closed {
		return
	}
	eff, err := s.coord.Heartbeat(s.t.b.clock.Now(), sess.id, sess.gen-s.resetEpoch)
	s.applyLocked(eff)
	if errors.Is(err, group.ErrUnknownMember) {
		sess.closeLocked(groupError(err))
	}
}

// Commit stores committed offsets (next offset to consume, per partition)
// and queues the outcome for Next to send.
func (sess *Session) Commit(id uint64, gen int64, offsets map[int32]int64) error {
	sess.Heartbeat()
	err := sess.sub.commit(sess.id, gen, offsets)
	s := sess.sub
	s.mu.Lock()
	sess.results = append(sess.results, CommitOutcome{ID: id, Err: err})
	s.mu.Unlock()
	sess.signal()
	return err
}

// Revoked confirms that the member stopped processing partitions.
func (sess *Session) Revoked(partitions []int32) error {
	s := sess.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closed {
		return sess.err
	}
	eff, err := s.coord.Revoked(s.t.b.clock.Now(), sess.id, partitions)
	s.applyLocked(eff)
	if err != nil {
		return groupError(err)
	}
	return nil
}

// Leave removes the member (the stream ended). Safe to call more than once.
func (sess *Session) Leave() {
	s := sess.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	wasMember := s.sessions[sess.id] == sess
	sess.closeLocked(errs.New(errs.Canceled, "session left"))
	if wasMember {
		eff, _ := s.coord.Leave(s.t.b.clock.Now(), sess.id)
		s.applyLocked(eff)
		if s.q != nil {
			s.releaseMemberLocked(sess.id)
		}
	}
}

// Next blocks until there is something to send to the member, the session
// ends (its error), or ctx is done.
func (sess *Session) Next(ctx context.Context) (Event, error) {
	if sess.sub.q != nil {
		return sess.nextQueue(ctx)
	}
	s := sess.sub
	t := s.t
	var idle *time.Timer
	for {
		changed := t.changed()
		s.mu.Lock()
		if sess.closed {
			s.mu.Unlock()
			return Event{}, sess.err
		}
		if sess.assignPending {
			a := &SessionAssignment{MemberID: sess.id, Generation: sess.gen, Revoke: sess.revoking,
				SessionTimeout: sess.timeout, Reset: sess.resetPending, Failure: s.meta.StreamFailure()}
			if sess.resetPending {
				a.ResetPartitions = sess.resetParts
				slices.Sort(a.ResetPartitions)
			}
			sess.assignPending, sess.resetPending, sess.resetParts = false, false, nil
			for _, p := range sess.order {
				a.Partitions = append(a.Partitions, PartitionStart{Partition: p, Offset: sess.cursors[p]})
			}
			s.mu.Unlock()
			return Event{Assignment: a}, nil
		}
		if len(sess.results) > 0 {
			r := sess.results[0]
			sess.results = sess.results[1:]
			s.mu.Unlock()
			return Event{Commit: &r}, nil
		}
		if len(sess.failedResults) > 0 {
			r := sess.failedResults[0]
			sess.failedResults = sess.failedResults[1:]
			s.mu.Unlock()
			return Event{Failed: &r}, nil
		}
		// Snapshot the cursors of partitions not halted, read outside the
		// lock, then apply the advance only if nothing replaced the cursors
		// meanwhile.
		var parts []PartitionStart
		if sess.credits > 0 {
			n := len(sess.order)
			for i := range n {
				p := sess.order[(sess.rr+i)%n]
				if _, halted := s.halts[p]; !halted {
					parts = append(parts, PartitionStart{Partition: p, Offset: sess.cursors[p]})
				}
			}
			sess.rr++
		}
		if len(parts) > 0 {
			epoch, credits := sess.epoch, sess.credits
			s.mu.Unlock()
			before := make([]int64, len(parts))
			for i, ps := range parts {
				before[i] = ps.Offset
			}
			out, advanced := sess.fetch(parts, credits)
			s.mu.Lock()
			if sess.epoch == epoch && !sess.closed {
				for _, ps := range parts {
					if _, ok := sess.cursors[ps.Partition]; ok {
						sess.cursors[ps.Partition] = ps.Offset
					}
				}
				sess.credits -= len(out)
				s.countStreamLocked(out)
				s.mu.Unlock()
				if len(out) > 0 && t.b.cfg.Tracer != nil {
					s.traceDelivered(out)
				}
				if len(out) > 0 {
					return Event{Deliveries: out, Next: moved(parts, before)}, nil
				}
				if advanced {
					continue // everything read was filtered out; look further
				}
			} else {
				s.mu.Unlock()
				continue
			}
		} else {
			s.mu.Unlock()
		}
		if idle == nil {
			idle = time.NewTimer(sess.timeout / 3)
			defer idle.Stop()
		}
		select {
		case <-idle.C:
			return Event{Heartbeat: true}, nil
		case <-changed:
		case <-sess.wake:
		case <-t.gone:
			return Event{}, sess.goneErr()
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// fetch reads messages from the partitions in order, starting at each one's
// offset, up to credits messages and maxEventBytes; it updates the offsets
// in parts to the next undelivered message and reports whether any cursor
// moved.
func (sess *Session) fetch(parts []PartitionStart, credits int) ([]Delivered, bool) {
	t := sess.sub.t
	t.life.RLock() // t.logs() grows under life (AddPartitions)
	defer t.life.RUnlock()
	filter := sess.sub.filter.Load() // a filter changed meanwhile applies from the next read
	credits = min(credits, maxEventMessages)
	var out []Delivered
	var hbuf []batch.RecordHeader // one backing array for the event's headers
	bytes := 0
	advanced := false
	full := func() bool { return len(out) >= credits || bytes >= maxEventBytes }
	for i := range parts {
		if full() {
			break
		}
		ps := &parts[i]
		l := t.logs()[ps.Partition]
	read:
		for !full() && ps.Offset < l.EndOffset() {
			err := t.eachRecordCached(l, ps.Offset, &sess.rc, func(off int64, ts time.Time, r batch.Record) bool {
				if full() {
					return false
				}
				id, subj := attrs(r.Headers)
				ps.Offset = off + 1
				advanced = true
				if !filter.Match(subj) || redrivenElsewhere(r.Headers, sess.sub.meta.Name) {
					return true
				}
				out = append(out, Delivered{
					Partition:     ps.Partition,
					Offset:        off,
					Timestamp:     ts,
					Key:           r.Key,
					Value:         r.Value,
					Headers:       appendHeaders(&hbuf, r.Headers),
					ID:            id,
					Subject:       subj,
					DeliveryCount: 1,
				})
				bytes += len(r.Key) + len(r.Value) + 64
				return true
			})
			var bad *badBatchError
			switch {
			case err == nil:
				break read // full, or the end reached
			case errors.Is(err, seglog.ErrOffsetOutOfRange) && ps.Offset < l.StartOffset():
				// Retention removed what the subscription had not read yet.
				t.b.logger.Warn("subscription fell behind retention; skipping to the oldest retained message",
					"topic", t.meta.Name, "subscription", sess.sub.meta.Name, "partition", ps.Partition,
					"from", ps.Offset, "to", l.StartOffset())
				ps.Offset = l.StartOffset()
				advanced = true
			case errors.As(err, &bad) && bad.next >= 0:
				t.b.logger.Error("decode for subscription failed", "topic", t.meta.Name, "partition", ps.Partition, "offset", bad.offset, "err", err)
				ps.Offset = max(ps.Offset, bad.next) // skip what cannot be decoded rather than stall
				advanced = true
			default:
				t.b.logger.Error("read for subscription failed", "topic", t.meta.Name, "partition", ps.Partition, "offset", ps.Offset, "err", err)
				break read
			}
		}
	}
	return out, advanced
}

// appendHeaders copies a header slice that the decoder will reuse into buf
// (shared by the whole event, to allocate once rather than per message) and
// returns the copy.
func appendHeaders(buf *[]batch.RecordHeader, hs []batch.RecordHeader) []batch.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	if cap(*buf)-len(*buf) < len(hs) {
		// Grow geometrically from a small start: an event following the
		// tail of a topic often carries one message, and a fixed 256
		// headers (12 KiB) per event was most of what a consumer's
		// session allocated.
		*buf = make([]batch.RecordHeader, 0, max(8, 2*cap(*buf), 2*len(hs)))
	}
	start := len(*buf)
	*buf = append(*buf, hs...)
	return (*buf)[start:len(*buf):len(*buf)]
}

// moved returns the partitions whose offset changed during a fetch.
func moved(parts []PartitionStart, before []int64) []PartitionStart {
	var out []PartitionStart
	for i, ps := range parts {
		if ps.Offset != before[i] {
			out = append(out, ps)
		}
	}
	return out
}
