package kafka

// Share groups (KIP-932) on Spool queue subscriptions.
//
// Mapping. Share group "g" consuming topic "T" is queue subscription "g" on
// "T": ShareFetch acquires records as queue leases, ShareAcknowledge (or
// acks riding on ShareFetch) acks, nacks, rejects or extends them, so a
// Kafka share consumer gets the subscription's ack timeout (Kafka's
// acquisition lock), backoff, max deliveries and dead-letter topic, and
// shares the work with Spool's own queue consumers of that subscription.
//
// The subscription is created on first use — when the topic enters a
// member's assignment (at its heartbeat) — with default queue settings,
// starting where the group's share.auto.offset.reset config says
// (group_configs.go): by default the EARLIEST offset. Kafka's default is
// latest; Spool's queue subscriptions are work queues, and losing what was
// published before the first consumer arrived would surprise more than it
// helps. A queue subscription created natively beforehand is used as it is.
// Topics named "__…" and dead-letter topics ("dlq.…") are never given a
// subscription automatically (a share group subscribed by regex would
// otherwise create dead-letter topics of dead-letter topics without end):
// they are assigned only if the queue subscription already exists.
//
// Membership lives here, in memory: members, member epochs, subscribed
// topics and assignments. Every member is assigned every partition of the
// topics it subscribes to (queue semantics: any member may lease any
// message), so one member's arrival or departure never changes another's
// assignment. A member that does not heartbeat within the group's session
// timeout (share.session.timeout.ms, default 45 s) is evicted by the
// janitor goroutine; a member that leaves, is evicted or closes its share
// session (or whose connection closes) has its leases released in the
// broker at once (redelivered after the subscription's backoff). After a
// restart members rejoin (UNKNOWN_MEMBER_ID makes Kafka clients do that)
// and leases held before it are delivered again, as for any queue
// consumer. The acquisition lock is the group's
// share.record.lock.duration.ms if set, else the subscription's ack
// timeout.
//
// The broker knows a member's leases by the name leaseHolder(member); it
// does not list Kafka share members among the subscription's members.
//
// Share sessions (one per member: this is a single broker) follow Kafka's
// fetch-session rules: epoch 0 opens one (replacing any), -1 closes it
// (releasing the member's leases), and every other request must carry the
// session's current epoch, which each successful ShareFetch or
// ShareAcknowledge advances.
//
// Departures from Kafka:
//   - Acknowledgements of one partition are applied as far as they are
//     valid: offsets the member does not hold (expired, finished, someone
//     else's) change nothing and make the partition's answer
//     INVALID_RECORD_STATE, but the others stand (Kafka refuses the whole
//     partition).
//   - Leases are per record. In the batch-optimized acquire mode a fetch
//     rounds MaxRecords up to the end of the last batch it read (not of
//     every batch), and BatchSize does not split the acquired ranges.
//   - A record whose lock expires is redelivered after the subscription's
//     backoff, as a released one is (Kafka makes it available at once).
//   - ShareFetch and ShareAcknowledge require the member to be in the group
//     (UNKNOWN_MEMBER_ID otherwise), so that every lease holder is one the
//     janitor can evict.

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// Share group limits and timings.
const (
	shareMaxGroupSize         = 200    // members per group (Kafka's group.share.max.size)
	shareMaxMembers           = 10_000 // members across all groups
	shareMaxMemberIDLen       = 36     // Kafka member ids are client-generated UUIDs
	shareMaxSessionPartitions = 20_000 // partitions in one share session
	shareDefaultMaxRecords    = 500    // a ShareFetch without MaxRecords (v0)
	shareMaxAckOffsets        = 1 << 16
	// shareMaxInFlight is the in-flight limit of the queue subscriptions
	// share groups create: Kafka share consumers fetch whole batches (a
	// producer's default batch holds thousands of small records) ahead of
	// their acks, so the queue default (1,000) would split every batch
	// and stall the fetch ahead.
	shareMaxInFlight = 10_000
)

// shareTimings are the member session timeout and the heartbeat interval
// (Kafka's group.share.session.timeout.ms and
// group.share.heartbeat.interval.ms). A Server copies them when it is
// created; tests shorten them.
var shareTimings = struct{ session, heartbeat time.Duration }{45 * time.Second, 5 * time.Second}

// leaseHolder is the broker's name for a share member's leases (a prefix
// keeps them apart from Spool's own member ids).
func leaseHolder(member string) string { return "kafka-share:" + member }

// shareGroups holds every share group's membership and share sessions.
type shareGroups struct {
	s                 *Server
	sessionTimeout    time.Duration
	heartbeatInterval time.Duration

	mu      sync.Mutex
	groups  map[string]*shareGroup // groups with members; guarded by mu
	members int                    // across groups; guarded by mu
	janitor bool                   // the eviction goroutine runs; guarded by mu
	stopped bool                   // close was called; guarded by mu
	stop    chan struct{}
	done    chan struct{}
}

// shareGroup is one share group's membership.
type shareGroup struct {
	id       string
	epoch    int32 // bumped by every join, leave and assignment change
	members  map[string]*shareMember
	settings shareSettings // the group's configs (group_configs.go)
}

// shareMember is one member of a share group.
type shareMember struct {
	id        string
	clientID  string
	host      string
	rack      *string
	epoch     int32 // the member epoch; the previous one is accepted too (a lost response)
	prevEpoch int32
	topics    []string                 // subscribed topic names, sorted
	assigned  map[string]shareAssigned // by topic name
	lastSeen  time.Time                // last heartbeat
	// leased names the topics whose queue subscription this member may
	// hold leases in (it fetched from them): released when it goes.
	leased  map[string]bool
	session *shareSession
}

// shareAssigned is a topic assigned to a member: all its partitions.
type shareAssigned struct {
	id    [16]byte
	parts int32
}

// shareSession is a member's share session.
type shareSession struct {
	epoch int32 // the epoch the next request must carry
	parts map[shareTP]struct{}
}

// shareTP is a partition of a topic named by id.
type shareTP struct {
	id [16]byte
	p  int32
}

func newShareGroups(s *Server) *shareGroups {
	return &shareGroups{
		s:                 s,
		sessionTimeout:    shareTimings.session,
		heartbeatInterval: shareTimings.heartbeat,
		groups:            map[string]*shareGroup{},
		stop:              make(chan struct{}),
		done:              make(chan struct{}),
	}
}

// close stops the janitor.
func (sg *shareGroups) close() {
	sg.mu.Lock()
	started := sg.janitor
	if !sg.stopped {
		sg.stopped = true
		close(sg.stop)
	}
	sg.mu.Unlock()
	if started {
		<-sg.done
	}
}

// startJanitorLocked starts the eviction goroutine on first use.
func (sg *shareGroups) startJanitorLocked() {
	if sg.janitor || sg.stopped {
		return
	}
	sg.janitor = true
	go sg.runJanitor()
}

// runJanitor evicts members whose session timed out.
func (sg *shareGroups) runJanitor() {
	defer close(sg.done)
	tick := time.NewTicker(min(time.Second, max(sg.sessionTimeout/4, 10*time.Millisecond)))
	defer tick.Stop()
	for {
		select {
		case <-sg.stop:
			return
		case now := <-tick.C:
			sg.evictExpired(now)
		}
	}
}

// evictExpired removes members that missed their session timeout and
// releases their leases.
func (sg *shareGroups) evictExpired(now time.Time) {
	type gone struct {
		group string
		m     *shareMember
	}
	var out []gone
	sg.mu.Lock()
	for _, g := range sg.groups {
		for _, m := range g.members {
			if now.Sub(m.lastSeen) > g.settings.session {
				sg.removeLocked(g, m)
				out = append(out, gone{g.id, m})
			}
		}
	}
	sg.mu.Unlock()
	for _, e := range out {
		sg.s.logger.Info("share group member evicted: no heartbeat within the session timeout", "group", e.group, "member", e.m.id)
		sg.release(e.group, e.m.id, e.m.leased)
	}
}

// removeLocked removes a member (its leases must then be released).
func (sg *shareGroups) removeLocked(g *shareGroup, m *shareMember) {
	delete(g.members, m.id)
	sg.members--
	g.epoch++
	if len(g.members) == 0 {
		delete(sg.groups, g.id)
	}
}

// release returns every lease a member holds in the given topics'
// subscriptions.
func (sg *shareGroups) release(group, member string, topics map[string]bool) {
	for topic := range topics {
		if err := sg.s.b.ShareRelease(topic, group, leaseHolder(member)); err != nil && !errs.Is(err, errs.TopicNotFound) && !errs.Is(err, errs.SubNotFound) {
			sg.s.logger.Warn("releasing a share member's leases failed", "group", group, "topic", topic, "member", member, "err", err)
		}
	}
}

// heartbeatError is a ShareGroupHeartbeat refused with a code and message.
type heartbeatError struct {
	code int16
	msg  string
}

// heartbeat runs a validated ShareGroupHeartbeat: join (epoch 0), leave
// (-1) or a regular heartbeat, and fills resp.
func (sg *shareGroups) heartbeat(c *conn, req *kmsg.ShareGroupHeartbeatRequest, resp *kmsg.ShareGroupHeartbeatResponse) *heartbeatError {
	if req.MemberEpoch == -1 {
		return sg.leave(req, resp)
	}
	now := time.Now()
	sg.mu.Lock()
	m := sg.memberLocked(req.GroupID, req.MemberID)
	switch {
	case req.MemberEpoch > 0 && m == nil:
		sg.mu.Unlock()
		return &heartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group (evicted, or the broker restarted): rejoin"}
	case req.MemberEpoch > 0 && req.MemberEpoch != m.epoch && req.MemberEpoch != m.prevEpoch:
		sg.mu.Unlock()
		return &heartbeatError{kerr.FencedMemberEpoch.Code, "member epoch is not the current one: rejoin"}
	case m == nil:
		if err := sg.roomLocked(req.GroupID); err != nil {
			sg.mu.Unlock()
			return err
		}
	}
	topics := shareNormalizeTopics(req.SubscribedTopicNames)
	var prev map[string]shareAssigned
	if m != nil {
		if req.SubscribedTopicNames == nil {
			topics = m.topics
		}
		prev = m.assigned
		m.lastSeen = now
	}
	sg.mu.Unlock()

	// Subscriptions are created outside the lock (catalog writes), where
	// the group's share.auto.offset.reset says.
	start := sg.s.loadShareSettings(req.GroupID).start
	assigned, herr := sg.assignment(req.GroupID, topics, prev, req.SubscribedTopicNames != nil, start)
	if herr != nil {
		return herr
	}

	sg.mu.Lock()
	defer sg.mu.Unlock()
	g := sg.groups[req.GroupID]
	m = sg.memberLocked(req.GroupID, req.MemberID)
	changed := false
	if req.MemberEpoch == 0 {
		if m == nil {
			if err := sg.roomLocked(req.GroupID); err != nil {
				return err
			}
			if g == nil {
				// Read under the lock, so that a config change stored
				// meanwhile is not lost (applySettings takes the lock
				// after storing).
				g = &shareGroup{id: req.GroupID, members: map[string]*shareMember{}, settings: sg.s.loadShareSettings(req.GroupID)}
				sg.groups[g.id] = g
			}
			m = &shareMember{id: req.MemberID, leased: map[string]bool{}}
			g.members[m.id] = m
			sg.members++
			sg.startJanitorLocked()
		}
		g.epoch++
		m.prevEpoch, m.epoch = m.epoch, g.epoch
		m.clientID = c.clientID
		m.host = "/" + shareClientHost(c)
		changed = true
	} else if m == nil {
		return &heartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group: rejoin"}
	}
	if req.RackID != nil {
		m.rack = req.RackID
	}
	if req.SubscribedTopicNames != nil {
		m.topics = topics
	}
	if !shareSameAssignment(m.assigned, assigned) {
		if req.MemberEpoch != 0 {
			g.epoch++
			m.prevEpoch, m.epoch = m.epoch, g.epoch
		}
		m.assigned = assigned
		changed = true
	}
	m.lastSeen = now
	id := m.id
	resp.MemberID = &id
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = int32(g.settings.heartbeat.Milliseconds())
	// Like Kafka: the assignment goes to a full request (one naming the
	// topics) and whenever it changed.
	if changed || req.SubscribedTopicNames != nil {
		resp.Assignment = m.assignment()
	}
	return nil
}

// leave removes a member (epoch -1) and releases its leases.
func (sg *shareGroups) leave(req *kmsg.ShareGroupHeartbeatRequest, resp *kmsg.ShareGroupHeartbeatResponse) *heartbeatError {
	sg.mu.Lock()
	g := sg.groups[req.GroupID]
	m := sg.memberLocked(req.GroupID, req.MemberID)
	if m == nil {
		sg.mu.Unlock()
		return &heartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group"}
	}
	sg.removeLocked(g, m)
	sg.mu.Unlock()
	sg.release(req.GroupID, m.id, m.leased)
	id := m.id
	resp.MemberID = &id
	resp.MemberEpoch = -1
	return nil
}

func (sg *shareGroups) memberLocked(group, member string) *shareMember {
	if g := sg.groups[group]; g != nil {
		return g.members[member]
	}
	return nil
}

// roomLocked checks that a member can join group.
func (sg *shareGroups) roomLocked(group string) *heartbeatError {
	if g := sg.groups[group]; g != nil && len(g.members) >= shareMaxGroupSize {
		return &heartbeatError{kerr.GroupMaxSizeReached.Code, "the share group has the maximum number of members"}
	}
	if sg.members >= shareMaxMembers {
		return &heartbeatError{kerr.GroupMaxSizeReached.Code, "this broker has the maximum number of share group members"}
	}
	return nil
}

// assignment computes a member's assignment: every partition of each
// subscribed topic that exists and has queue subscription group. A topic
// entering the member's assignment (not in prev) is given the subscription
// if it has none ("first use"); one already assigned is not, so a
// subscription deleted under running members is not silently re-created
// from the earliest offset (the topic drops out of the assignment). full
// says the member named its topics in this request (problems are logged
// only then).
func (sg *shareGroups) assignment(group string, topics []string, prev map[string]shareAssigned, full bool, start catalog.Position) (map[string]shareAssigned, *heartbeatError) {
	out := map[string]shareAssigned{}
	for _, name := range topics {
		t, ok := sg.s.b.Topic(name)
		if !ok {
			continue
		}
		_, was := prev[name]
		if _, err := sg.s.shareSub(name, group, !was, start); err != nil {
			switch {
			case errs.Is(err, errs.TopicNotFound):
				continue
			case errs.Is(err, errs.SubNotFound):
				if full || was {
					sg.s.logger.Warn("share group not assigned a topic: it has no queue subscription of the group's name", "group", group, "topic", name)
				}
				continue
			}
			code, msg := shareSubError(name, group, err)
			return nil, &heartbeatError{code, msg}
		}
		out[name] = shareAssigned{id: uuidBytes(t.ID), parts: t.Config.Partitions}
	}
	return out, nil
}

// shareSub returns queue subscription group of a topic. With create, it is
// created if missing, starting at start, unless the topic is internal or a
// dead-letter topic (SubNotFound then).
func (s *Server) shareSub(topic, group string, create bool, start catalog.Position) (broker.ShareSub, error) {
	if !create || strings.HasPrefix(topic, "__") || strings.HasPrefix(topic, "dlq.") {
		return s.b.QueueSubscription(topic, group)
	}
	return s.b.EnsureQueueSubscription(topic, group, catalog.SubConfig{Start: start, Queue: catalog.QueueConfig{MaxInFlight: shareMaxInFlight}})
}

// applySettings gives a group with members its changed configs.
func (sg *shareGroups) applySettings(group string, st shareSettings) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if g := sg.groups[group]; g != nil {
		g.settings = st
	}
}

// names lists the share groups with members, sorted.
func (sg *shareGroups) names() []string {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return shareSortedKeys(sg.groups)
}

// hasMembers reports whether a share group has members.
func (sg *shareGroups) hasMembers(group string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.groups[group] != nil
}

// shareSubError is the Kafka error of a share group's topic without a
// usable queue subscription.
func shareSubError(topic, group string, err error) (int16, string) {
	switch {
	case errs.Is(err, errs.TopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, ""
	case errs.Is(err, errs.FailedPrecondition):
		return kerr.InconsistentGroupProtocol.Code, fmt.Sprintf("subscription %q of topic %q is a stream subscription (a consumer group's); a share group needs a queue subscription", group, topic)
	case errs.Is(err, errs.SubNotFound):
		return kerr.InconsistentGroupProtocol.Code, fmt.Sprintf("topic %q has no queue subscription %q for the share group", topic, group)
	}
	return errCode(err), err.Error()
}

// assignment returns the member's assignment for a heartbeat response.
func (m *shareMember) assignment() *kmsg.ShareGroupHeartbeatResponseAssignment {
	a := new(kmsg.ShareGroupHeartbeatResponseAssignment)
	for _, name := range shareSortedKeys(m.assigned) {
		ta := m.assigned[name]
		tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
		tp.TopicID = ta.id
		tp.Partitions = shareAllPartitions(ta.parts)
		a.TopicPartitions = append(a.TopicPartitions, tp)
	}
	return a
}

func shareAllPartitions(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

func shareSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func shareSameAssignment(a, b map[string]shareAssigned) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// shareNormalizeTopics sorts and de-duplicates topic names.
func shareNormalizeTopics(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func shareClientHost(c *conn) string {
	addr := c.nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// shareSessionOp is what a ShareFetch or ShareAcknowledge does to its
// member's share session.
type shareSessionOp struct {
	group, member string
	epoch         int32
	add, forget   []shareTP // ShareFetch only
}

// shareSessionResult is the session after a request's update.
type shareSessionResult struct {
	parts  []shareTP // the session's partitions (at close: those it had)
	epoch  int32     // the session epoch this request used (for rotating partitions)
	leased map[string]bool
	lock   time.Duration // the group's share.record.lock.duration.ms; 0: unset
}

// session validates a request's session epoch and applies it: epoch 0
// opens a session (replacing the member's), -1 closes it, any other must
// be the session's current epoch, which then advances. It returns a Kafka
// error code (0: fine) and message.
func (sg *shareGroups) session(op shareSessionOp) (shareSessionResult, int16, string) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	m := sg.memberLocked(op.group, op.member)
	if m == nil {
		return shareSessionResult{}, kerr.UnknownMemberID.Code, "not a member of the share group: heartbeat first"
	}
	res := shareSessionResult{lock: sg.groups[op.group].settings.lock}
	switch {
	case op.epoch == 0:
		m.session = &shareSession{parts: map[shareTP]struct{}{}}
	case m.session == nil:
		return res, kerr.ShareSessionNotFound.Code, "no share session: open one with epoch 0"
	case op.epoch != -1 && op.epoch != m.session.epoch:
		return res, kerr.InvalidShareSessionEpoch.Code, "share session epoch is not the current one"
	}
	ss := m.session
	res.epoch = ss.epoch
	for _, tp := range op.add {
		ss.parts[tp] = struct{}{}
	}
	for _, tp := range op.forget {
		delete(ss.parts, tp)
	}
	if len(ss.parts) > shareMaxSessionPartitions {
		m.session = nil
		return res, kerr.InvalidRequest.Code, "too many partitions in one share session"
	}
	res.parts = make([]shareTP, 0, len(ss.parts))
	for tp := range ss.parts {
		res.parts = append(res.parts, tp)
	}
	slices.SortFunc(res.parts, func(a, b shareTP) int {
		if c := slices.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(a.p) - int(b.p)
	})
	if op.epoch == -1 {
		m.session = nil
		res.leased = m.leased
		m.leased = map[string]bool{}
	} else if ss.epoch++; ss.epoch <= 0 {
		ss.epoch = 1 // wraps to 1, as in Kafka
	}
	return res, 0, ""
}

// noteLeasing records that a member is about to lease from a topic's
// subscription; false if it is no longer a member.
func (sg *shareGroups) noteLeasing(group, member, topic string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	m := sg.memberLocked(group, member)
	if m == nil {
		return false
	}
	m.leased[topic] = true
	return true
}

// isMember reports whether member is in group.
func (sg *shareGroups) isMember(group, member string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.memberLocked(group, member) != nil
}

// shareGroupView is a copy of a group for ShareGroupDescribe.
type shareGroupView struct {
	epoch   int32
	members []shareMemberView
}

type shareMemberView struct {
	id, clientID, host string
	rack               *string
	epoch              int32
	topics             []string
	assigned           map[string]shareAssigned
}

// describe returns a copy of a group, or false if it has no members.
func (sg *shareGroups) describe(group string) (shareGroupView, bool) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	g := sg.groups[group]
	if g == nil {
		return shareGroupView{}, false
	}
	v := shareGroupView{epoch: g.epoch}
	for _, id := range shareSortedKeys(g.members) {
		m := g.members[id]
		v.members = append(v.members, shareMemberView{
			id: m.id, clientID: m.clientID, host: m.host, rack: m.rack, epoch: m.epoch,
			topics: slices.Clone(m.topics), assigned: m.assigned,
		})
	}
	return v, true
}

// validShareMember checks a ShareFetch/ShareAcknowledge group and member.
func validShareMember(group, member *string) (string, string, bool) {
	if group == nil || member == nil || *group == "" || *member == "" || len(*member) > shareMaxMemberIDLen {
		return "", "", false
	}
	return *group, *member, true
}

// shareTopicNames maps topic ids to names, built once per request.
type shareTopicNames struct {
	s *Server
	m map[[16]byte]string
}

func (tn *shareTopicNames) name(id [16]byte) (string, bool) {
	if tn.m == nil {
		tn.m = map[[16]byte]string{}
		for _, t := range tn.s.b.Topics() {
			tn.m[uuidBytes(t.ID)] = t.Name
		}
	}
	n, ok := tn.m[id]
	return n, ok
}

// shareAckIn is one partition's acknowledgement batches from a request.
type shareAckIn struct {
	id      [16]byte
	p       int32
	batches []shareAckBatchIn
}

type shareAckBatchIn struct {
	first, last int64
	types       []int8
}

// applyShareAcks validates and applies one partition's acknowledgements
// and returns the partition's Kafka error code and message.
func (s *Server) applyShareAcks(tn *shareTopicNames, group, member string, a shareAckIn, allowRenew bool, lock time.Duration) (int16, string) {
	maxType := int8(broker.ShareReject)
	if allowRenew {
		maxType = int8(broker.ShareRenew)
	}
	var acks []broker.ShareAckBatch
	prevEnd := int64(-1)
	total := int64(0)
	for _, b := range a.batches {
		n := b.last - b.first + 1
		if b.first < 0 || b.first > b.last || b.first <= prevEnd || len(b.types) == 0 || (len(b.types) > 1 && int64(len(b.types)) != n) {
			return kerr.InvalidRequest.Code, "malformed acknowledgement batch"
		}
		if total += n; total > shareMaxAckOffsets {
			return kerr.InvalidRequest.Code, "acknowledgement batches cover too many offsets"
		}
		prevEnd = b.last
		for _, t := range b.types {
			if t < 0 || t > maxType {
				if t == int8(broker.ShareRenew) {
					return kerr.InvalidRequest.Code, "renew acknowledgements need IsRenewAck"
				}
				return kerr.InvalidRequest.Code, "unknown acknowledgement type"
			}
		}
		if len(b.types) == 1 {
			acks = append(acks, broker.ShareAckBatch{First: b.first, Last: b.last, Type: broker.ShareAckType(b.types[0])})
			continue
		}
		for i, t := range b.types { // per-offset types: runs of one type
			off := b.first + int64(i)
			if k := len(acks); k > 0 && acks[k-1].Last+1 == off && acks[k-1].Type == broker.ShareAckType(t) {
				acks[k-1].Last = off
				continue
			}
			acks = append(acks, broker.ShareAckBatch{First: off, Last: off, Type: broker.ShareAckType(t)})
		}
	}
	topic, ok := tn.name(a.id)
	if !ok {
		return kerr.UnknownTopicID.Code, ""
	}
	stale, err := s.b.ShareAck(topic, group, leaseHolder(member), a.p, acks, lock)
	switch {
	case err == nil && stale > 0:
		return kerr.InvalidRecordState.Code, "some acknowledged records are not acquired by this member (their lock expired, or they were acknowledged already)"
	case err == nil:
		return 0, ""
	case errs.Is(err, errs.TopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, ""
	case errs.Is(err, errs.SubNotFound), errs.Is(err, errs.FailedPrecondition):
		return kerr.InvalidRecordState.Code, "the records are not acquired by this member"
	case errs.Is(err, errs.InvalidArgument):
		return kerr.InvalidRequest.Code, err.Error()
	}
	return errCode(err), err.Error()
}
