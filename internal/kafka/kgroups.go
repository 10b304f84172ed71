package kafka

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
// the broker's stream subscriptions', see internal/broker/kafka_groups.go).
//
// Blocking: JoinGroup and SyncGroup wait in their connection's goroutine
// (Kafka answers a connection's requests in order too) on a channel the
// coordinator answers; every path that ends a wait answers it, and server
// Close cancels the rest. The coordinator never calls the broker while
// holding its lock.
//
// Time: one goroutine (run) handles every deadline — session timeouts,
// rebalance and sync timeouts, the initial delay, expiry of member ids
// handed out with MEMBER_ID_REQUIRED — sleeping until the next one (at most
// a second) or until an operation schedules an earlier one. tick does one
// pass at the clock's time, so tests with a fake clock call tick directly.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
)

// groupLimits bound the coordinator.
type groupLimits struct {
	minSession, maxSession time.Duration // session timeouts outside are INVALID_SESSION_TIMEOUT
	maxRebalance           time.Duration // rebalance timeouts are clamped to this
	initialDelay           time.Duration // wait of a group leaving Empty
	maxMembers             int           // per group, members and outstanding member ids
	maxTotalMembers        int           // all groups
	maxMemberMetadata      int           // bytes of one member's protocol metadata
	maxGroupMetadata       int           // bytes of all members' protocol metadata in a group
	maxProtocols           int           // protocols one member may offer
}

func defaultGroupLimits() groupLimits {
	return groupLimits{
		minSession:        6 * time.Second,  // Kafka's group.min.session.timeout.ms
		maxSession:        30 * time.Minute, // Kafka's group.max.session.timeout.ms
		maxRebalance:      30 * time.Minute,
		initialDelay:      DefaultGroupInitialRebalanceDelay,
		maxMembers:        1000,
		maxTotalMembers:   100_000,
		maxMemberMetadata: 1 << 20,
		maxGroupMetadata:  32 << 20,
		maxProtocols:      64,
	}
}

type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	switch s {
	case groupEmpty:
		return "Empty"
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	}
	return "Dead"
}

// groupCoordinator runs Kafka's classic consumer-group protocol for every
// group; committed offsets are the broker's stream subscriptions'.
type groupCoordinator struct {
	clock clock.Clock
	lim   groupLimits

	mu       sync.Mutex
	groups   map[string]*cgroup // guarded by mu
	total    int                // members and outstanding member ids of all groups; guarded by mu
	seq      uint64             // join order; guarded by mu
	nextWake time.Time          // when run will tick next; zero: not scheduled; guarded by mu

	wake      chan struct{} // capacity 1
	stop      chan struct{}
	done      chan struct{}
	started   bool
	closeOnce sync.Once
}

// cgroup is one classic group. Guarded by groupCoordinator.mu.
type cgroup struct {
	gc           *groupCoordinator
	id           string
	state        groupState
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
	joinCh           chan joinResult // waiting in JoinGroup
	syncCh           chan syncResult // waiting in SyncGroup
}

// joinResult answers a JoinGroup.
type joinResult struct {
	code           int16
	memberID       string
	generation     int32
	protocolType   string
	protocol       string
	leader         string
	members        []kmsg.JoinGroupResponseMember // the leader's
	skipAssignment bool
}

// syncResult answers a SyncGroup.
type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

func newGroupCoordinator(s *Server) *groupCoordinator {
	lim := defaultGroupLimits()
	lim.initialDelay = max(0, *s.cfg.GroupInitialRebalanceDelay)
	gc := newGroupCoordinatorWith(clock.Real, lim)
	gc.start()
	return gc
}

func newGroupCoordinatorWith(clk clock.Clock, lim groupLimits) *groupCoordinator {
	return &groupCoordinator{
		clock:  clk,
		lim:    lim,
		groups: map[string]*cgroup{},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

func (gc *groupCoordinator) start() {
	gc.started = true
	go gc.run()
}

// close stops the timer goroutine and answers every waiting JoinGroup and
// SyncGroup (their connections are closing anyway).
func (gc *groupCoordinator) close() {
	gc.closeOnce.Do(func() {
		close(gc.stop)
		if gc.started {
			<-gc.done
		}
		gc.mu.Lock()
		for _, g := range gc.groups {
			for _, m := range g.members {
				g.answer(m, kerr.CoordinatorNotAvailable.Code)
			}
		}
		gc.mu.Unlock()
	})
}

func (gc *groupCoordinator) run() {
	defer close(gc.done)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-gc.stop:
			return
		case <-gc.wake:
		case <-t.C:
		}
		next := gc.tick()
		d := time.Second
		if !next.IsZero() {
			d = min(max(next.Sub(gc.clock.Now()), time.Millisecond), time.Second)
		}
		t.Reset(d)
	}
}

// schedule makes run tick by at. Called with mu held.
func (gc *groupCoordinator) schedule(at time.Time) {
	if !gc.nextWake.IsZero() && !at.Before(gc.nextWake) {
		return
	}
	gc.nextWake = at
	select {
	case gc.wake <- struct{}{}:
	default:
	}
}

// tick handles every deadline that has passed and returns the next one
// (zero: none).
func (gc *groupCoordinator) tick() time.Time {
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
func (gc *groupCoordinator) group(id string, create bool) *cgroup {
	g := gc.groups[id]
	if g == nil && create {
		g = &cgroup{gc: gc, id: id, members: map[string]*gmember{}, pending: map[string]time.Time{}, static: map[string]string{}}
		gc.groups[id] = g
	}
	return g
}

// dropIfEmpty forgets an Empty group without members (its offsets, if any,
// are the broker's). Called with mu held.
func (gc *groupCoordinator) dropIfEmpty(g *cgroup) {
	if g.removable() && gc.groups[g.id] == g {
		delete(gc.groups, g.id)
	}
}

func (g *cgroup) removable() bool {
	return g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0
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
	if (g.state == groupCompletingRebalance || g.state == groupStable) && len(g.pendingSync) > 0 && !now.Before(g.syncDeadline) {
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
	if g.state == groupPreparingRebalance {
		add(g.rebalanceDeadline)
		add(g.delayUntil)
	}
	return next
}

// answer ends m's waits with code.
func (g *cgroup) answer(m *gmember, code int16) {
	if m.joinCh != nil {
		m.joinCh <- joinResult{code: code, memberID: m.id, generation: -1}
		m.joinCh = nil
	}
	if m.syncCh != nil {
		m.syncCh <- syncResult{code: code}
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
	case groupStable, groupCompletingRebalance:
		g.prepareRebalance(now)
	case groupPreparingRebalance:
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
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			if m.syncCh != nil {
				m.syncCh <- syncResult{code: kerr.RebalanceInProgress.Code}
				m.syncCh = nil
			}
		}
	}
	g.rebalanceDeadline = now.Add(g.maxRebalanceTimeout())
	g.delayUntil = time.Time{}
	if g.state == groupEmpty && g.gc.lim.initialDelay > 0 {
		g.delayUntil = now.Add(g.gc.lim.initialDelay)
		if g.delayUntil.After(g.rebalanceDeadline) {
			g.delayUntil = g.rebalanceDeadline
		}
		g.gc.schedule(g.delayUntil)
	}
	g.gc.schedule(g.rebalanceDeadline)
	g.state = groupPreparingRebalance
	g.pendingSync = nil
	g.syncDeadline = time.Time{}
	g.maybeCompleteJoin(now)
}

// maybeCompleteJoin completes the join phase if every member rejoined (and
// the initial delay passed) or the rebalance timeout passed.
func (g *cgroup) maybeCompleteJoin(now time.Time) {
	if g.state != groupPreparingRebalance {
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
	if g.generation <= 0 {
		g.generation = 1
	}
	g.rebalanceDeadline, g.delayUntil = time.Time{}, time.Time{}
	if len(g.members) == 0 {
		g.state = groupEmpty
		g.protocol, g.leader = "", ""
		return
	}
	ms := g.sortedMembers()
	if g.members[g.leader] == nil {
		g.leader = ms[0].id
	}
	g.protocol = g.selectProtocol()
	g.state = groupCompletingRebalance
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
			res.members = leaderMembers
		}
		m.joinCh <- res
		m.joinCh = nil
	}
}

// joinResultFor is a successful JoinGroup answer for m in the current
// generation (without the leader's member list).
func (g *cgroup) joinResultFor(m *gmember) joinResult {
	return joinResult{memberID: m.id, generation: g.generation, protocolType: g.protocolType, protocol: g.protocol, leader: g.leader}
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

// validGroupID reports whether a group id can name a Spool subscription
// (Kafka group ids that cannot are INVALID_GROUP_ID).
func validGroupID(id string) bool {
	return catalog.ValidateName("subscription", id) == nil
}

// groupClientHost is the client host Kafka reports: "/" and the IP.
func groupClientHost(c *conn) string {
	if c == nil || c.nc == nil {
		return ""
	}
	addr := c.nc.RemoteAddr()
	if addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "/" + addr.String()
	}
	return "/" + host
}
