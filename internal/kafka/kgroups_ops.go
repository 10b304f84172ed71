package kafka

// The classic group coordinator's operations, one per request kind: join,
// sync, heartbeat, leave, commit validation, describe, list and forget.
// The state machine they drive, its timer and its invariants are in
// kgroups.go.

import (
	"bytes"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinRequest is what the coordinator needs from a JoinGroup.
type joinRequest struct {
	version          int16
	group            string
	memberID         string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
}

// join handles a JoinGroup: it returns either the answer or a channel the
// answer will come on.
func (gc *groupCoordinator) join(r joinRequest) (joinResult, <-chan joinResult) {
	fail := func(code int16) (joinResult, <-chan joinResult) {
		return joinResult{code: code, memberID: r.memberID, generation: -1}, nil
	}
	if !validGroupID(r.group) {
		return fail(kerr.InvalidGroupID.Code)
	}
	if r.sessionTimeout < gc.lim.minSession || r.sessionTimeout > gc.lim.maxSession {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	if r.protocolType == "" || len(r.protocols) == 0 || len(r.protocols) > gc.lim.maxProtocols {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	metaBytes := 0
	for _, p := range r.protocols {
		metaBytes += len(p.Name) + len(p.Metadata)
	}
	if metaBytes > gc.lim.maxMemberMetadata {
		return fail(kerr.InvalidRequest.Code)
	}
	if r.rebalanceTimeout <= 0 {
		r.rebalanceTimeout = r.sessionTimeout
	}
	r.rebalanceTimeout = min(r.rebalanceTimeout, gc.lim.maxRebalance)
	protocols := make([]kmsg.JoinGroupRequestProtocol, len(r.protocols))
	for i, p := range r.protocols {
		protocols[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	r.protocols = protocols
	if r.instanceID != nil {
		id := *r.instanceID
		r.instanceID = &id
	}

	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(r.group, true)
	defer gc.dropIfEmpty(g)

	var self *gmember
	if r.memberID != "" {
		self = g.members[r.memberID]
	}
	if len(g.members) > 0 && (r.protocolType != g.protocolType || !g.supportsProtocols(self, r.protocols)) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}

	if r.memberID == "" {
		if r.instanceID != nil {
			if oldID, ok := g.static[*r.instanceID]; ok {
				if old := g.members[oldID]; old != nil {
					return g.replaceStatic(old, r, metaBytes, now)
				}
			}
		}
		if len(g.members)+len(g.pending) >= gc.lim.maxMembers || gc.total >= gc.lim.maxTotalMembers ||
			g.metaBytes+metaBytes > gc.lim.maxGroupMetadata {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		id := newMemberID(r.clientID, r.instanceID)
		if r.version >= 4 && r.instanceID == nil {
			// KIP-394: a new dynamic member first learns its id.
			exp := now.Add(r.sessionTimeout)
			g.pending[id] = exp
			gc.total++
			gc.schedule(exp)
			return joinResult{code: kerr.MemberIDRequired.Code, memberID: id, generation: -1}, nil
		}
		gc.total++
		return g.addMember(id, r, metaBytes, now)
	}

	if r.instanceID != nil {
		if id, ok := g.static[*r.instanceID]; ok && id != r.memberID {
			return fail(kerr.FencedInstanceID.Code)
		}
	}
	if _, ok := g.pending[r.memberID]; ok {
		delete(g.pending, r.memberID) // its slot in total carries over to the member
		if g.metaBytes+metaBytes > gc.lim.maxGroupMetadata {
			gc.total--
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		return g.addMember(r.memberID, r, metaBytes, now)
	}
	m := self
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	if r.instanceID != nil && (m.instanceID == nil || *m.instanceID != *r.instanceID) {
		return fail(kerr.FencedInstanceID.Code)
	}
	if g.metaBytes-m.metaBytes+metaBytes > gc.lim.maxGroupMetadata {
		return fail(kerr.GroupMaxSizeReached.Code)
	}
	switch g.state {
	case groupPreparingRebalance:
		return g.updateMember(m, r, metaBytes, now, false)
	case groupCompletingRebalance:
		if sameProtocols(m.protocols, r.protocols) {
			m.deadline = now.Add(m.sessionTimeout)
			return g.currentJoin(m), nil
		}
		return g.updateMember(m, r, metaBytes, now, true)
	case groupStable:
		if m.id != g.leader && sameProtocols(m.protocols, r.protocols) {
			m.deadline = now.Add(m.sessionTimeout)
			return g.currentJoin(m), nil
		}
		return g.updateMember(m, r, metaBytes, now, true)
	}
	return fail(kerr.UnknownMemberID.Code)
}

// currentJoin answers a JoinGroup with the current generation (the member
// list too if m leads).
func (g *cgroup) currentJoin(m *gmember) joinResult {
	res := g.joinResultFor(m)
	if m.id == g.leader {
		res.members = g.memberMetadata(g.sortedMembers())
	}
	return res
}

func (g *cgroup) setJoin(m *gmember, r joinRequest, metaBytes int) {
	g.metaBytes += metaBytes - m.metaBytes
	m.metaBytes = metaBytes
	m.protocols = r.protocols
	m.sessionTimeout, m.rebalanceTimeout = r.sessionTimeout, r.rebalanceTimeout
	m.clientID, m.clientHost = r.clientID, r.clientHost
	if m.joinCh != nil { // a second JoinGroup while the first waits: the first is answered
		m.joinCh <- joinResult{code: kerr.RebalanceInProgress.Code, memberID: m.id, generation: -1}
	}
	m.joinCh = make(chan joinResult, 1)
}

// addMember adds a member that waits in JoinGroup (its slot in total is
// already counted).
func (g *cgroup) addMember(id string, r joinRequest, metaBytes int, now time.Time) (joinResult, <-chan joinResult) {
	if len(g.members) == 0 {
		g.protocolType = r.protocolType
	}
	g.gc.seq++
	m := &gmember{id: id, instanceID: r.instanceID, seq: g.gc.seq}
	g.setJoin(m, r, metaBytes)
	g.members[id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = id
	}
	ch := m.joinCh
	g.joined(now)
	return joinResult{}, ch
}

// updateMember takes a known member's new JoinGroup; it waits for the
// rebalance (started if rebalance is set).
func (g *cgroup) updateMember(m *gmember, r joinRequest, metaBytes int, now time.Time, rebalance bool) (joinResult, <-chan joinResult) {
	g.setJoin(m, r, metaBytes)
	ch := m.joinCh
	if rebalance {
		g.prepareRebalance(now)
	} else {
		g.maybeCompleteJoin(now)
	}
	return joinResult{}, ch
}

// joined moves the group on after a member joined.
func (g *cgroup) joined(now time.Time) {
	switch g.state {
	case groupPreparingRebalance:
		if !g.delayUntil.IsZero() && now.Before(g.delayUntil) {
			// Still in the initial delay: wait a little more for others.
			g.delayUntil = now.Add(g.gc.lim.initialDelay)
			if g.delayUntil.After(g.rebalanceDeadline) {
				g.delayUntil = g.rebalanceDeadline
			}
		}
		g.maybeCompleteJoin(now)
	default:
		g.prepareRebalance(now)
	}
}

// replaceStatic replaces a static member's previous incarnation (KIP-345).
func (g *cgroup) replaceStatic(old *gmember, r joinRequest, metaBytes int, now time.Time) (joinResult, <-chan joinResult) {
	if g.metaBytes-old.metaBytes+metaBytes > g.gc.lim.maxGroupMetadata {
		return joinResult{code: kerr.GroupMaxSizeReached.Code, generation: -1}, nil
	}
	wasLeader := g.leader == old.id
	wasPendingSync := g.pendingSync[old.id]
	m := &gmember{id: newMemberID(r.clientID, r.instanceID), instanceID: r.instanceID, seq: old.seq, assignment: old.assignment}
	g.remove(old, kerr.FencedInstanceID.Code)
	g.gc.total++
	g.setJoin(m, r, metaBytes)
	g.members[m.id] = m
	g.static[*m.instanceID] = m.id
	if wasLeader {
		g.leader = m.id
	}
	if wasPendingSync {
		g.pendingSync[m.id] = true
	}
	m.deadline = now.Add(m.sessionTimeout)
	switch g.state {
	case groupStable:
		if g.selectProtocol() == g.protocol {
			// Same protocol: keep the assignment, no rebalance.
			m.joinCh = nil
			res := g.currentJoin(m)
			res.skipAssignment = m.id == g.leader
			return res, nil
		}
		ch := m.joinCh
		g.prepareRebalance(now)
		return joinResult{}, ch
	case groupCompletingRebalance:
		ch := m.joinCh
		g.prepareRebalance(now)
		return joinResult{}, ch
	default: // PreparingRebalance
		ch := m.joinCh
		g.maybeCompleteJoin(now)
		return joinResult{}, ch
	}
}

// syncRequest is what the coordinator needs from a SyncGroup.
type syncRequest struct {
	version      int16
	group        string
	generation   int32
	memberID     string
	instanceID   *string
	protocolType *string
	protocol     *string
	assignments  []kmsg.SyncGroupRequestGroupAssignment
}

// sync handles a SyncGroup: the answer, or a channel it will come on.
func (gc *groupCoordinator) sync(r syncRequest) (syncResult, <-chan syncResult) {
	fail := func(code int16) (syncResult, <-chan syncResult) { return syncResult{code: code}, nil }
	if r.group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(r.group, false)
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	m, code := g.checkMember(r.memberID, r.instanceID)
	if code != 0 {
		return fail(code)
	}
	if r.generation != g.generation {
		return fail(kerr.IllegalGeneration.Code)
	}
	if (r.protocolType != nil && *r.protocolType != g.protocolType) || (r.protocol != nil && *r.protocol != g.protocol) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	switch g.state {
	case groupPreparingRebalance:
		return fail(kerr.RebalanceInProgress.Code)
	case groupCompletingRebalance:
		delete(g.pendingSync, m.id)
		m.deadline = now.Add(m.sessionTimeout)
		if m.syncCh != nil {
			m.syncCh <- syncResult{code: kerr.RebalanceInProgress.Code}
		}
		m.syncCh = make(chan syncResult, 1)
		ch := m.syncCh
		if m.id == g.leader {
			for _, a := range r.assignments {
				if am := g.members[a.MemberID]; am != nil {
					am.assignment = bytes.Clone(a.MemberAssignment)
				}
			}
			g.state = groupStable
			for _, am := range g.members {
				if am.assignment == nil {
					am.assignment = []byte{}
				}
				if am.syncCh != nil {
					am.syncCh <- syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: am.assignment}
					am.syncCh = nil
					am.deadline = now.Add(am.sessionTimeout)
				}
			}
		}
		return syncResult{}, ch
	case groupStable:
		delete(g.pendingSync, m.id)
		m.deadline = now.Add(m.sessionTimeout)
		return syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment}, nil
	}
	return fail(kerr.UnknownMemberID.Code)
}

// heartbeat handles a Heartbeat.
func (gc *groupCoordinator) heartbeat(group, memberID string, instanceID *string, generation int32) int16 {
	if group == "" {
		return kerr.InvalidGroupID.Code
	}
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(group, false)
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	m, code := g.checkMember(memberID, instanceID)
	if code != 0 {
		return code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	m.deadline = now.Add(m.sessionTimeout)
	switch g.state {
	case groupPreparingRebalance:
		return kerr.RebalanceInProgress.Code
	case groupCompletingRebalance, groupStable:
		return 0
	}
	return kerr.UnknownMemberID.Code
}

// leaveMember is one member of a LeaveGroup.
type leaveMember struct {
	memberID   string
	instanceID *string
}

// leave handles a LeaveGroup: one error code per member.
func (gc *groupCoordinator) leave(group string, members []leaveMember) []int16 {
	codes := make([]int16, len(members))
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(group, false)
	if g == nil {
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
		return codes
	}
	changed := false
	for i, lm := range members {
		id := lm.memberID
		if lm.instanceID != nil {
			sid, ok := g.static[*lm.instanceID]
			switch {
			case !ok:
				codes[i] = kerr.UnknownMemberID.Code
				continue
			case id != "" && id != sid:
				codes[i] = kerr.FencedInstanceID.Code
				continue
			}
			id = sid
		}
		if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			gc.total--
			changed = true
			continue
		}
		m := g.members[id]
		if m == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		g.remove(m, kerr.UnknownMemberID.Code)
		changed = true
	}
	if changed {
		g.membersChanged(now)
	}
	gc.dropIfEmpty(g)
	return codes
}

// validateCommit checks an OffsetCommit's member and generation, as Kafka
// does: a commit naming no member and no generation (-1) is only allowed
// while the group has no members.
func (gc *groupCoordinator) validateCommit(group, memberID string, instanceID *string, generation int32) int16 {
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(group, false)
	anonymous := generation < 0 && memberID == "" && instanceID == nil
	if g == nil || len(g.members) == 0 {
		if anonymous {
			return 0
		}
		return kerr.UnknownMemberID.Code
	}
	if anonymous {
		return kerr.UnknownMemberID.Code
	}
	m, code := g.checkMember(memberID, instanceID)
	if code != 0 {
		return code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	if g.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	m.deadline = now.Add(m.sessionTimeout)
	return 0
}

// groupMemberInfo describes a member for DescribeGroups.
type groupMemberInfo struct {
	memberID, clientID, clientHost string
	instanceID                     *string
	metadata, assignment           []byte
}

// groupInfo describes a group for DescribeGroups and ListGroups.
type groupInfo struct {
	id           string
	state        groupState
	protocolType string
	protocol     string
	members      []groupMemberInfo
	topics       map[string]bool // consumer protocol: topics the members subscribe to
}

// describe returns a group's description; ok is false if the coordinator
// has no such group (it may still have offsets).
func (gc *groupCoordinator) describe(id string) (groupInfo, bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.groups[id]
	if g == nil || g.removable() {
		return groupInfo{}, false
	}
	gi := groupInfo{id: g.id, state: g.state, protocolType: g.protocolType}
	stable := g.state == groupStable
	if stable {
		gi.protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		mi := groupMemberInfo{memberID: m.id, clientID: m.clientID, clientHost: m.clientHost, instanceID: m.instanceID}
		if stable {
			mi.metadata, mi.assignment = m.metadataFor(g.protocol), m.assignment
		}
		gi.members = append(gi.members, mi)
	}
	if g.protocolType == "consumer" {
		gi.topics = map[string]bool{}
		for _, m := range g.members {
			for _, p := range m.protocols {
				var md kmsg.ConsumerMemberMetadata
				if md.ReadFrom(p.Metadata) == nil {
					for _, t := range md.Topics {
						gi.topics[t] = true
					}
				}
			}
		}
	}
	return gi, true
}

// list returns every group the coordinator has, sorted by id.
func (gc *groupCoordinator) list() []groupInfo {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make([]groupInfo, 0, len(gc.groups))
	for _, g := range gc.groups {
		if g.removable() {
			continue
		}
		out = append(out, groupInfo{id: g.id, state: g.state, protocolType: g.protocolType})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// forget removes a group without members (DeleteGroups): NON_EMPTY_GROUP
// if it has any. existed reports whether the coordinator knew it.
func (gc *groupCoordinator) forget(id string) (existed bool, code int16) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.groups[id]
	if g == nil {
		return false, 0
	}
	if len(g.members) > 0 {
		return true, kerr.NonEmptyGroup.Code
	}
	gc.total -= len(g.pending)
	delete(gc.groups, id)
	return true, 0
}
