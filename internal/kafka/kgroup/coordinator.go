// Package kgroup is the Kafka front end's classic consumer-group core: the
// group coordinator (this file and ops.go) and the groups' committed
// offsets, kept on the broker's stream subscriptions (offsets.go,
// commit_record.go). It starts no goroutines: the front end calls Tick when
// Wake fires or the deadline Tick returned comes, and time is the injected
// clock's.
package kgroup

// The classic consumer-group coordinator (JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup; the group side of OffsetCommit, DescribeGroups, ListGroups,
// DeleteGroups). This node coordinates every group.
//
// State machine per group id, as Kafka's: Empty → PreparingRebalance →
// CompletingRebalance → Stable, back to PreparingRebalance whenever the
// membership or a member's protocols change, and to Empty when the last
// member goes (Dead is only reported for groups that do not exist).
//
//   - PreparingRebalance waits until every member has (re)joined and no
//     member id handed out with MEMBER_ID_REQUIRED is outstanding, or
//     until the largest rebalance timeout of the members passes; members
//     that did not rejoin are removed. A group leaving Empty first waits
//     initialRebalanceDelay (100 ms; Kafka's group.initial.rebalance.delay.ms
//     is 3 s), extended by each member joining meanwhile up to the
//     rebalance timeout, so consumers starting together share one
//     rebalance.
//   - Completing the join bumps the generation, selects the protocol (of
//     those every member supports, the one most members list first; ties
//     go to the leader's order) and answers every JoinGroup; the leader
//     (kept across generations while it stays) gets every member's
//     metadata. CompletingRebalance waits for the leader's SyncGroup,
//     whose assignments answer every member's SyncGroup (members it leaves
//     out get an empty assignment) and make the group Stable. Members that
//     send no SyncGroup within the rebalance timeout are removed and the
//     group rebalances.
//   - Sessions: a member that neither heartbeats nor commits nor waits in
//     JoinGroup or SyncGroup for its session timeout is removed (and the
//     group rebalances). Heartbeats answer REBALANCE_IN_PROGRESS while the
//     group prepares a rebalance.
//   - Static membership (KIP-345): a member with a group.instance.id that
//     rejoins with an empty member id replaces its previous incarnation
//     (which is fenced: FENCED_INSTANCE_ID) and, if the group is Stable and
//     the selected protocol does not change, keeps its assignment without
//     a rebalance (the leader gets SkipAssignment, KIP-814).
//
// Membership lives in memory: after a restart every member gets
// UNKNOWN_MEMBER_ID and rejoins. Committed offsets are durable (they are
// the broker's stream subscriptions', see offsets.go).
//
// Blocking: JoinGroup and SyncGroup wait in their connection's goroutine
// (Kafka answers a connection's requests in order too) on a channel the
// coordinator answers; every path that ends a wait answers it, and server
// Close cancels the rest. The coordinator never calls the broker while
// holding its lock.
//
// Time: Tick handles every deadline that has passed — session timeouts,
// rebalance and sync timeouts, the initial delay, expiry of member ids
// handed out with MEMBER_ID_REQUIRED — at the clock's time and returns the
// next one; an operation that schedules an earlier deadline signals Wake.
// The front end's timer goroutine (internal/kafka, driveGroups) sleeps until
// the next deadline (at most a second) or the signal; tests with a fake
// clock call Tick directly.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
)

// Limits bound the coordinator.
type Limits struct {
	MinSession, MaxSession time.Duration // session timeouts outside are INVALID_SESSION_TIMEOUT
	MaxRebalance           time.Duration // rebalance timeouts are clamped to this
	InitialDelay           time.Duration // wait of a group leaving Empty
	MaxMembers             int           // per group, members and outstanding member ids
	MaxTotalMembers        int           // all groups
	MaxMemberMetadata      int           // bytes of one member's protocol metadata
	MaxGroupMetadata       int           // bytes of all members' protocol metadata in a group
	MaxProtocols           int           // protocols one member may offer
	// RejoinGrace is how long after Reset (this node coordinating again,
	// every group forgotten) a group it has no members of refuses commits
	// naming no member (COORDINATOR_LOAD_IN_PROGRESS, retriable): until
	// its live members had time to find this coordinator and join, such
	// a commit may come from a member that lost its membership and would
	// move offsets back under them. Kafka's new coordinator loads the
	// group's membership instead; Spool's is not replicated.
	RejoinGrace time.Duration
}

// DefaultInitialDelay is the default wait of a group leaving Empty
// (Kafka's group.initial.rebalance.delay.ms is 3 s).
const DefaultInitialDelay = 100 * time.Millisecond

// DefaultLimits are Kafka's defaults, with an initial rebalance delay of
// DefaultInitialDelay.
func DefaultLimits() Limits {
	return Limits{
		MinSession:        6 * time.Second,  // Kafka's group.min.session.timeout.ms
		MaxSession:        30 * time.Minute, // Kafka's group.max.session.timeout.ms
		MaxRebalance:      30 * time.Minute,
		InitialDelay:      DefaultInitialDelay,
		MaxMembers:        1000,
		MaxTotalMembers:   100_000,
		MaxMemberMetadata: 1 << 20,
		MaxGroupMetadata:  32 << 20,
		MaxProtocols:      64,
		RejoinGrace:       30 * time.Second,
	}
}

// State is a group's state.
type State int8

// The states of a group; Dead is only reported for groups that do not
// exist.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	}
	return "Dead"
}

// Coordinator runs Kafka's classic consumer-group protocol for every
// group; committed offsets are the broker's stream subscriptions'.
type Coordinator struct {
	clock clock.Clock
	lim   Limits

	mu       sync.Mutex
	groups   map[string]*cgroup // guarded by mu
	total    int                // members and outstanding member ids of all groups; guarded by mu
	seq      uint64             // join order; guarded by mu
	nextWake time.Time          // when Tick runs next, as far as the coordinator knows; zero: not scheduled; guarded by mu
	reset    time.Time          // when Reset last forgot the groups (zero: never); guarded by mu

	wake chan struct{} // capacity 1
}

// cgroup is one classic group. Guarded by Coordinator.mu.
type cgroup struct {
	gc           *Coordinator
	id           string
	state        State
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*gmember
	pending      map[string]time.Time // member ids handed out with MEMBER_ID_REQUIRED → expiry
	static       map[string]string    // instance id → member id
	metaBytes    int

	rebalanceDeadline time.Time       // PreparingRebalance: complete the join by then
	delayUntil        time.Time       // PreparingRebalance: not before then (initial delay)
	pendingSync       map[string]bool // members of this generation that have not sent SyncGroup
	syncDeadline      time.Time
	// owners is, in a Stable consumer group, the partitions the
	// generation's assignments give each member (topic → partition →
	// member id); nil otherwise.
	owners map[string]map[int32]string
}

// gmember is a member of a classic group.
type gmember struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []kmsg.JoinGroupRequestProtocol // copied
	metaBytes        int
	assignment       []byte
	deadline         time.Time // session expiry, while not waiting
	seq              uint64
	joinCh           chan JoinResult // waiting in JoinGroup
	syncCh           chan SyncResult // waiting in SyncGroup
}

// JoinResult answers a JoinGroup.
type JoinResult struct {
	Code           int16
	MemberID       string
	Generation     int32
	ProtocolType   string
	Protocol       string
	Leader         string
	Members        []kmsg.JoinGroupResponseMember // the leader's
	SkipAssignment bool
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Code         int16
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// New returns a coordinator with no groups, telling time by clk.
func New(clk clock.Clock, lim Limits) *Coordinator {
	return &Coordinator{
		clock:  clk,
		lim:    lim,
		groups: map[string]*cgroup{},
		wake:   make(chan struct{}, 1),
	}
}

// Close answers every waiting JoinGroup and SyncGroup with
// COORDINATOR_NOT_AVAILABLE (the front end is closing).
func (gc *Coordinator) Close() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, g := range gc.groups {
		for _, m := range g.members {
			g.answer(m, kerr.CoordinatorNotAvailable.Code)
		}
	}
}

// Reset forgets every group, answering their waiting JoinGroups and
// SyncGroups with NOT_COORDINATOR: on a cluster, the node's coordination
// ended and began again in a later term, and the groups it remembers from
// before may have gone on elsewhere meanwhile. Their members hold member
// ids no later group has (member ids are random), so a member that missed
// the rebalances elsewhere cannot commit or heartbeat with what it holds:
// it is told UNKNOWN_MEMBER_ID and joins again.
func (gc *Coordinator) Reset() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, g := range gc.groups {
		for _, m := range g.members {
			g.answer(m, kerr.NotCoordinator.Code)
		}
	}
	clear(gc.groups)
	gc.total = 0
	gc.reset = gc.clock.Now()
}

// genEpoch is the origin of generations after Reset.
var genEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// firstGeneration is a new group's first generation: 1, or after Reset
// the quarter-seconds since genEpoch. A coordinator that forgot its groups
// hands out generations above those its predecessor did (unless a group
// rebalanced there more than four times a second on average): members
// that missed the move still claim their partitions with the old
// generation in their assignor data (KIP-341), and a sticky assignor
// gives a partition claimed twice to the claim of the higher generation —
// were generations to start at 1 again, to a member still holding records
// of a partition another member had since consumed past. Called with mu
// held.
func (gc *Coordinator) firstGeneration() int32 {
	if gc.reset.IsZero() {
		return 1
	}
	q := gc.clock.Now().Sub(genEpoch) / (250 * time.Millisecond)
	if q < 1 || q > math.MaxInt32/2 {
		return 1
	}
	return int32(q)
}

// Wake returns a channel that receives when an operation scheduled a
// deadline earlier than the one Tick last returned: Tick must run by then.
func (gc *Coordinator) Wake() <-chan struct{} { return gc.wake }

// schedule makes Tick run by at (signalling Wake). Called with mu held.
func (gc *Coordinator) schedule(at time.Time) {
	if !gc.nextWake.IsZero() && !at.Before(gc.nextWake) {
		return
	}
	gc.nextWake = at
	select {
	case gc.wake <- struct{}{}:
	default:
	}
}

// Tick handles every deadline that has passed and returns the next one
// (zero: none).
func (gc *Coordinator) Tick() time.Time {
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	var next time.Time
	for id, g := range gc.groups {
		g.tick(now)
		if g.removable() {
			delete(gc.groups, id)
			continue
		}
		if d := g.nextDeadline(now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	gc.nextWake = next
	return next
}

// group returns a group, creating it (Empty) if create is set.
func (gc *Coordinator) group(id string, create bool) *cgroup {
	g := gc.groups[id]
	if g == nil && create {
		g = &cgroup{gc: gc, id: id, members: map[string]*gmember{}, pending: map[string]time.Time{}, static: map[string]string{}}
		gc.groups[id] = g
	}
	return g
}

// dropIfEmpty forgets an Empty group without members (its offsets, if any,
// are the broker's). Called with mu held.
func (gc *Coordinator) dropIfEmpty(g *cgroup) {
	if g.removable() && gc.groups[g.id] == g {
		delete(gc.groups, g.id)
	}
}

func (g *cgroup) removable() bool {
	return g.state == Empty && len(g.members) == 0 && len(g.pending) == 0
}

func (g *cgroup) tick(now time.Time) {
	for id, exp := range g.pending {
		if !now.Before(exp) {
			delete(g.pending, id)
			g.gc.total--
		}
	}
	changed := false
	for _, m := range g.members {
		if m.joinCh == nil && m.syncCh == nil && !now.Before(m.deadline) {
			g.remove(m, kerr.UnknownMemberID.Code)
			changed = true
		}
	}
	if (g.state == CompletingRebalance || g.state == Stable) && len(g.pendingSync) > 0 && !now.Before(g.syncDeadline) {
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.remove(m, kerr.UnknownMemberID.Code)
			}
		}
		g.pendingSync = nil
		changed = true
	}
	if changed {
		g.membersChanged(now)
	}
	g.maybeCompleteJoin(now)
}

// nextDeadline is the group's next deadline after now (zero: none).
func (g *cgroup) nextDeadline(now time.Time) time.Time {
	var next time.Time
	add := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, exp := range g.pending {
		add(exp)
	}
	for _, m := range g.members {
		if m.joinCh == nil && m.syncCh == nil {
			add(m.deadline)
		}
	}
	if len(g.pendingSync) > 0 {
		add(g.syncDeadline)
	}
	if g.state == PreparingRebalance {
		add(g.rebalanceDeadline)
		add(g.delayUntil)
	}
	return next
}

// answer ends m's waits with code.
func (g *cgroup) answer(m *gmember, code int16) {
	if m.joinCh != nil {
		m.joinCh <- JoinResult{Code: code, MemberID: m.id, Generation: -1}
		m.joinCh = nil
	}
	if m.syncCh != nil {
		m.syncCh <- SyncResult{Code: code}
		m.syncCh = nil
	}
}

// remove removes a member, answering its waits with code. The caller
// decides whether the group rebalances (membersChanged).
func (g *cgroup) remove(m *gmember, code int16) {
	g.answer(m, code)
	delete(g.members, m.id)
	g.gc.total--
	g.metaBytes -= m.metaBytes
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	delete(g.pendingSync, m.id)
	if g.leader == m.id {
		g.leader = ""
	}
}

// membersChanged rebalances after members left or were removed.
func (g *cgroup) membersChanged(now time.Time) {
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance(now)
	case PreparingRebalance:
		g.maybeCompleteJoin(now)
	}
}

func (g *cgroup) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// prepareRebalance starts a rebalance: every member must rejoin.
func (g *cgroup) prepareRebalance(now time.Time) {
	if g.state == CompletingRebalance {
		for _, m := range g.members {
			if m.syncCh != nil {
				m.syncCh <- SyncResult{Code: kerr.RebalanceInProgress.Code}
				m.syncCh = nil
			}
		}
	}
	g.rebalanceDeadline = now.Add(g.maxRebalanceTimeout())
	g.delayUntil = time.Time{}
	if g.state == Empty && g.gc.lim.InitialDelay > 0 {
		g.delayUntil = now.Add(g.gc.lim.InitialDelay)
		if g.delayUntil.After(g.rebalanceDeadline) {
			g.delayUntil = g.rebalanceDeadline
		}
		g.gc.schedule(g.delayUntil)
	}
	g.gc.schedule(g.rebalanceDeadline)
	g.state = PreparingRebalance
	g.pendingSync = nil
	g.syncDeadline = time.Time{}
	g.maybeCompleteJoin(now)
}

// maybeCompleteJoin completes the join phase if every member rejoined (and
// the initial delay passed) or the rebalance timeout passed.
func (g *cgroup) maybeCompleteJoin(now time.Time) {
	if g.state != PreparingRebalance {
		return
	}
	all := len(g.pending) == 0
	for _, m := range g.members {
		if m.joinCh == nil {
			all = false
			break
		}
	}
	if (all && !now.Before(g.delayUntil)) || !now.Before(g.rebalanceDeadline) {
		g.completeJoin(now)
	}
}

// sortedMembers returns the members in join order.
func (g *cgroup) sortedMembers() []*gmember {
	ms := make([]*gmember, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].seq < ms[j].seq })
	return ms
}

// completeJoin starts a new generation with the members that rejoined.
func (g *cgroup) completeJoin(now time.Time) {
	for _, m := range g.members {
		if m.joinCh == nil {
			g.remove(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	if g.generation <= 1 {
		g.generation = g.gc.firstGeneration()
	}
	g.owners = nil
	g.rebalanceDeadline, g.delayUntil = time.Time{}, time.Time{}
	if len(g.members) == 0 {
		g.state = Empty
		g.protocol, g.leader = "", ""
		return
	}
	ms := g.sortedMembers()
	if g.members[g.leader] == nil {
		g.leader = ms[0].id
	}
	g.protocol = g.selectProtocol()
	g.state = CompletingRebalance
	g.pendingSync = make(map[string]bool, len(ms))
	g.syncDeadline = now.Add(g.maxRebalanceTimeout())
	g.gc.schedule(g.syncDeadline)
	leaderMembers := g.memberMetadata(ms)
	for _, m := range ms {
		m.assignment = nil
		m.deadline = now.Add(m.sessionTimeout)
		g.pendingSync[m.id] = true
		res := g.joinResultFor(m)
		if m.id == g.leader {
			res.Members = leaderMembers
		}
		m.joinCh <- res
		m.joinCh = nil
	}
}

// joinResultFor is a successful JoinGroup answer for m in the current
// generation (without the leader's member list).
func (g *cgroup) joinResultFor(m *gmember) JoinResult {
	return JoinResult{MemberID: m.id, Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader}
}

// memberMetadata is the member list the leader gets: every member's
// metadata for the selected protocol.
func (g *cgroup) memberMetadata(ms []*gmember) []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = m.instanceID
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

func (m *gmember) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (m *gmember) supports(protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

// selectProtocol picks, among the protocols every member supports, the one
// most members prefer (list first among those candidates); ties go to the
// leader's order.
func (g *cgroup) selectProtocol() string {
	leader := g.members[g.leader]
	if leader == nil {
		return ""
	}
	var candidates []string
	for _, p := range leader.protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all && !slices.Contains(candidates, p.Name) {
			candidates = append(candidates, p.Name)
		}
	}
	if len(candidates) == 0 { // cannot happen: joins keep a common protocol
		if len(leader.protocols) > 0 {
			return leader.protocols[0].Name
		}
		return ""
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := candidates[0]
	for _, c := range candidates[1:] {
		if votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// supportsProtocols reports whether a member (self, nil for a new one)
// offering protocols may be in the group: some protocol it offers is
// supported by every other member.
func (g *cgroup) supportsProtocols(self *gmember, protocols []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range protocols {
		all := true
		for _, m := range g.members {
			if m != self && !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

// checkMember validates a request's member and instance ids against the
// group: FENCED_INSTANCE_ID if the instance id belongs to another member,
// UNKNOWN_MEMBER_ID if the member does not exist.
func (g *cgroup) checkMember(memberID string, instanceID *string) (*gmember, int16) {
	if instanceID != nil {
		if id, ok := g.static[*instanceID]; ok && id != memberID {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	return m, 0
}

// newMemberID returns a fresh member id: the instance id (static members)
// or client id, a dash and a random UUID, as Kafka does.
func newMemberID(clientID string, instanceID *string) string {
	var u [16]byte
	rand.Read(u[:])
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	return prefix + "-" + hex.EncodeToString(u[0:4]) + "-" + hex.EncodeToString(u[4:6]) + "-" +
		hex.EncodeToString(u[6:8]) + "-" + hex.EncodeToString(u[8:10]) + "-" + hex.EncodeToString(u[10:16])
}

// ValidID reports whether a group id can name a Spool subscription
// (Kafka group ids that cannot are INVALID_GROUP_ID).
func ValidID(id string) bool {
	return catalog.ValidateName("subscription", id) == nil
}
