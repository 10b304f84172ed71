// Package kshare is the Kafka front end's share-group core (KIP-932):
// membership, assignments and share sessions, and what Kafka's
// acquisition and acknowledgement rules mean for the broker's leases. It
// starts no goroutines: the front end calls EvictExpired every
// EvictInterval, and time is passed in.
package kshare

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
// (internal/kafka/group_configs.go): by default the EARLIEST offset. Kafka's default is
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
// timeout (share.session.timeout.ms, default 45 s) is evicted
// (EvictExpired, run by the front end's janitor goroutine); a member that
// leaves, is evicted or closes its share
// session (or whose connection closes) has its leases released in the
// broker at once (redelivered after the subscription's backoff). After a
// restart members rejoin (UNKNOWN_MEMBER_ID makes Kafka clients do that)
// and leases held before it are delivered again, as for any queue
// consumer. The acquisition lock is the group's
// share.record.lock.duration.ms if set, else the subscription's ack
// timeout.
//
// The broker knows the leases a member acquired through one share session
// by the name Holder(member, connection); it does not list Kafka share
// members among the subscription's members.
//
// Share sessions (one per member and connection, sessions.go) follow
// Kafka's fetch-session rules: epoch 0 opens one (replacing any), -1
// closes it (releasing the leases it acquired), and every other request
// must carry the session's current epoch, which each successful ShareFetch
// or ShareAcknowledge advances.
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
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// Share group limits and timings.
const (
	shareMaxGroupSize         = 200    // members per group (Kafka's group.share.max.size)
	shareMaxMembers           = 10_000 // members across all groups
	MaxMemberIDLen            = 36     // Kafka member ids are client-generated UUIDs
	shareMaxSessionPartitions = 20_000 // partitions in one share session
	shareMaxMemberSessions    = 64     // share sessions of one member (one per connection)
	shareMaxAckOffsets        = 1 << 16
	// shareMaxInFlight is the in-flight limit of the queue subscriptions
	// share groups create: Kafka share consumers fetch whole batches (a
	// producer's default batch holds thousands of small records) ahead of
	// their acks, so the queue default (1,000) would split every batch
	// and stall the fetch ahead.
	shareMaxInFlight = 10_000
)

// Timings are the member session timeout and the heartbeat interval
// (Kafka's group.share.session.timeout.ms and
// group.share.heartbeat.interval.ms) of groups that do not set them.
type Timings struct{ Session, Heartbeat time.Duration }

// DefaultTimings are Kafka's defaults.
var DefaultTimings = Timings{Session: 45 * time.Second, Heartbeat: 5 * time.Second}

// Holder is the broker's name for the leases a share member acquired
// through the share session on connection conn (SessionOp.Conn): a prefix
// keeps them apart from Spool's own member ids, and the connection keeps
// one session's leases apart from the member's other sessions', so that
// closing one releases its own only.
func Holder(member string, conn uint64) string {
	return "kafka-share:" + strconv.FormatUint(conn, 10) + ":" + member
}

// Groups holds every share group's membership and share sessions.
type Groups struct {
	b        *broker.Broker
	logger   *slog.Logger
	timings  Timings
	settings func(group string) Settings // a group's configs

	mu      sync.Mutex
	groups  map[string]*shareGroup // groups with members; guarded by mu
	members int                    // across groups; guarded by mu
}

// shareGroup is one share group's membership.
type shareGroup struct {
	id       string
	epoch    int32 // bumped by every join, leave and assignment change
	members  map[string]*shareMember
	settings Settings // the group's configs
}

// shareMember is one member of a share group.
type shareMember struct {
	id        string
	clientID  string
	host      string
	rack      *string
	epoch     int32 // the member epoch; the previous one is accepted too (a lost response)
	prevEpoch int32
	topics    []string            // subscribed topic names, sorted
	assigned  map[string]Assigned // by topic name
	lastSeen  time.Time           // last heartbeat
	// leased names, by the connection whose session acquired them, the
	// topics whose queue subscription this member may hold leases in (it
	// fetched from them): released when the session closes or the member
	// goes.
	leased map[uint64]map[string]bool
	// sessions are the member's share sessions by connection (SessionOp.
	// Conn): one per broker the member fetches from, and on a cluster, where
	// every share fetch is served by the coordinator, one per node the
	// member reached it through.
	sessions map[uint64]*shareSession
}

// Assigned is a topic assigned to a member: all its partitions.
type Assigned struct {
	ID    [16]byte
	Parts int32
}

// shareSession is a member's share session on one connection.
type shareSession struct {
	epoch int32 // the epoch the next request must carry
	parts map[TP]struct{}
}

// TP is a partition of a topic named by id.
type TP struct {
	ID [16]byte
	P  int32
}

// Settings are a share group's configs (internal/kafka/group_configs.go)
// as the share-group core uses them.
type Settings struct {
	Start     catalog.Position // of a queue subscription made for the group
	Lock      time.Duration    // 0: the subscription's ack timeout
	Session   time.Duration
	Heartbeat time.Duration
}

// New returns the share groups of a front end on b (none yet). settings
// reads a group's configs; it is called with the groups' lock held, so
// it must not call back into Groups.
func New(b *broker.Broker, logger *slog.Logger, timings Timings, settings func(group string) Settings) *Groups {
	return &Groups{b: b, logger: logger, timings: timings, settings: settings, groups: map[string]*shareGroup{}}
}

// Timings returns the timings of groups that do not set their own.
func (sg *Groups) Timings() Timings { return sg.timings }

// EvictInterval is how often the front end calls EvictExpired.
func (sg *Groups) EvictInterval() time.Duration {
	return min(time.Second, max(sg.timings.Session/4, 10*time.Millisecond))
}

// EvictExpired removes members that missed their session timeout at now
// and releases their leases.
func (sg *Groups) EvictExpired(now time.Time) {
	type gone struct {
		group string
		m     *shareMember
	}
	var out []gone
	sg.mu.Lock()
	for _, g := range sg.groups {
		for _, m := range g.members {
			if now.Sub(m.lastSeen) > g.settings.Session {
				sg.removeLocked(g, m)
				out = append(out, gone{g.id, m})
			}
		}
	}
	sg.mu.Unlock()
	for _, e := range out {
		sg.logger.Info("share group member evicted: no heartbeat within the session timeout", "group", e.group, "member", e.m.id)
		sg.releaseAll(e.group, e.m)
	}
}

// removeLocked removes a member (its leases must then be released).
func (sg *Groups) removeLocked(g *shareGroup, m *shareMember) {
	delete(g.members, m.id)
	sg.members--
	g.epoch++
	if len(g.members) == 0 {
		delete(sg.groups, g.id)
	}
}

// Release returns every lease a member holds in the given topics'
// subscriptions through its session on connection conn.
func (sg *Groups) Release(group, member string, conn uint64, topics map[string]bool) {
	for topic := range topics {
		if err := sg.b.ReleaseLeases(topic, group, Holder(member, conn)); err != nil && !errs.Is(err, errs.TopicNotFound) && !errs.Is(err, errs.SubNotFound) {
			sg.logger.Warn("releasing a share member's leases failed", "group", group, "topic", topic, "member", member, "err", err)
		}
	}
}

// releaseAll returns every lease of a member that is gone (removed from
// its group, so that no session of it leases again).
func (sg *Groups) releaseAll(group string, m *shareMember) {
	for conn, topics := range m.leased {
		sg.Release(group, m.id, conn, topics)
	}
}

// HeartbeatError is a ShareGroupHeartbeat refused with a code and message.
type HeartbeatError struct {
	Code int16
	Msg  string
}

// Heartbeat runs a validated ShareGroupHeartbeat at now from a client
// (its id and host): join (epoch 0), leave (-1) or a regular heartbeat,
// and fills resp.
func (sg *Groups) Heartbeat(now time.Time, clientID, host string, req *kmsg.ShareGroupHeartbeatRequest, resp *kmsg.ShareGroupHeartbeatResponse) *HeartbeatError {
	if req.MemberEpoch == -1 {
		return sg.leave(req, resp)
	}
	sg.mu.Lock()
	m := sg.memberLocked(req.GroupID, req.MemberID)
	switch {
	case req.MemberEpoch > 0 && m == nil:
		sg.mu.Unlock()
		return &HeartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group (evicted, or the broker restarted): rejoin"}
	case req.MemberEpoch > 0 && req.MemberEpoch != m.epoch && req.MemberEpoch != m.prevEpoch:
		sg.mu.Unlock()
		return &HeartbeatError{kerr.FencedMemberEpoch.Code, "member epoch is not the current one: rejoin"}
	case m == nil:
		if err := sg.roomLocked(req.GroupID); err != nil {
			sg.mu.Unlock()
			return err
		}
	}
	topics := shareNormalizeTopics(req.SubscribedTopicNames)
	var prev map[string]Assigned
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
	start := sg.settings(req.GroupID).Start
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
				g = &shareGroup{id: req.GroupID, members: map[string]*shareMember{}, settings: sg.settings(req.GroupID)}
				sg.groups[g.id] = g
			}
			m = &shareMember{id: req.MemberID, leased: map[uint64]map[string]bool{}}
			g.members[m.id] = m
			sg.members++
		}
		g.epoch++
		m.prevEpoch, m.epoch = m.epoch, g.epoch
		m.clientID = clientID
		m.host = "/" + host
		changed = true
	} else if m == nil {
		return &HeartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group: rejoin"}
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
	resp.HeartbeatIntervalMillis = int32(g.settings.Heartbeat.Milliseconds())
	// Like Kafka: the assignment goes to a full request (one naming the
	// topics) and whenever it changed.
	if changed || req.SubscribedTopicNames != nil {
		resp.Assignment = m.assignment()
	}
	return nil
}

// leave removes a member (epoch -1) and releases its leases.
func (sg *Groups) leave(req *kmsg.ShareGroupHeartbeatRequest, resp *kmsg.ShareGroupHeartbeatResponse) *HeartbeatError {
	sg.mu.Lock()
	g := sg.groups[req.GroupID]
	m := sg.memberLocked(req.GroupID, req.MemberID)
	if m == nil {
		sg.mu.Unlock()
		return &HeartbeatError{kerr.UnknownMemberID.Code, "not a member of the share group"}
	}
	sg.removeLocked(g, m)
	sg.mu.Unlock()
	sg.releaseAll(req.GroupID, m)
	id := m.id
	resp.MemberID = &id
	resp.MemberEpoch = -1
	return nil
}

func (sg *Groups) memberLocked(group, member string) *shareMember {
	if g := sg.groups[group]; g != nil {
		return g.members[member]
	}
	return nil
}

// roomLocked checks that a member can join group.
func (sg *Groups) roomLocked(group string) *HeartbeatError {
	if g := sg.groups[group]; g != nil && len(g.members) >= shareMaxGroupSize {
		return &HeartbeatError{kerr.GroupMaxSizeReached.Code, "the share group has the maximum number of members"}
	}
	if sg.members >= shareMaxMembers {
		return &HeartbeatError{kerr.GroupMaxSizeReached.Code, "this broker has the maximum number of share group members"}
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
func (sg *Groups) assignment(group string, topics []string, prev map[string]Assigned, full bool, start catalog.Position) (map[string]Assigned, *HeartbeatError) {
	out := map[string]Assigned{}
	for _, name := range topics {
		t, ok := sg.b.Topic(name)
		if !ok {
			continue
		}
		_, was := prev[name]
		if _, err := sg.sub(name, group, !was, start); err != nil {
			switch {
			case errs.Is(err, errs.TopicNotFound):
				continue
			case errs.Is(err, errs.SubNotFound):
				if full || was {
					sg.logger.Warn("share group not assigned a topic: it has no queue subscription of the group's name", "group", group, "topic", name)
				}
				continue
			}
			code, msg := SubError(name, group, err)
			return nil, &HeartbeatError{code, msg}
		}
		out[name] = Assigned{ID: kwire.UUIDBytes(t.ID), Parts: t.Config.Partitions}
	}
	return out, nil
}

// sub returns queue subscription group of a topic. With create, it is
// created if missing, starting at start, unless the topic is internal or a
// dead-letter topic (SubNotFound then).
func (sg *Groups) sub(topic, group string, create bool, start catalog.Position) (broker.QueueSub, error) {
	if !create || strings.HasPrefix(topic, "__") || strings.HasPrefix(topic, "dlq.") {
		return sg.b.QueueSubscription(topic, group)
	}
	return sg.b.EnsureQueueSubscription(topic, group, catalog.SubConfig{Start: start, Queue: catalog.QueueConfig{MaxInFlight: shareMaxInFlight}})
}

// ApplySettings gives a group with members its changed configs.
func (sg *Groups) ApplySettings(group string, st Settings) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	if g := sg.groups[group]; g != nil {
		g.settings = st
	}
}

// Names lists the share groups with members, sorted.
func (sg *Groups) Names() []string {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return SortedKeys(sg.groups)
}

// HasMembers reports whether a share group has members.
func (sg *Groups) HasMembers(group string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.groups[group] != nil
}

// SubError is the Kafka error of a share group's topic without a usable
// queue subscription.
func SubError(topic, group string, err error) (int16, string) {
	switch {
	case errs.Is(err, errs.TopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, ""
	case errs.Is(err, errs.FailedPrecondition):
		return kerr.InconsistentGroupProtocol.Code, fmt.Sprintf("subscription %q of topic %q is a stream subscription (a consumer group's); a share group needs a queue subscription", group, topic)
	case errs.Is(err, errs.SubNotFound):
		return kerr.InconsistentGroupProtocol.Code, fmt.Sprintf("topic %q has no queue subscription %q for the share group", topic, group)
	}
	return kwire.ErrCode(err), err.Error()
}

// assignment returns the member's assignment for a heartbeat response.
func (m *shareMember) assignment() *kmsg.ShareGroupHeartbeatResponseAssignment {
	a := new(kmsg.ShareGroupHeartbeatResponseAssignment)
	for _, name := range SortedKeys(m.assigned) {
		ta := m.assigned[name]
		tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
		tp.TopicID = ta.ID
		tp.Partitions = AllPartitions(ta.Parts)
		a.TopicPartitions = append(a.TopicPartitions, tp)
	}
	return a
}

// AllPartitions lists partitions 0 … n−1.
func AllPartitions(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// SortedKeys returns a map's keys, sorted.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func shareSameAssignment(a, b map[string]Assigned) bool {
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
