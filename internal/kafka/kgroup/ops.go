package kgroup

// The classic group coordinator's operations, one per request kind: join,
// sync, heartbeat, leave, commit validation, describe, list and forget.
// The state machine they drive, its timer and its invariants are in
// coordinator.go.

import (
	"bytes"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinRequest is what the coordinator needs from a JoinGroup.
type JoinRequest struct {
	Version          int16
	Group            string
	MemberID         string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []kmsg.JoinGroupRequestProtocol
}

// Join handles a JoinGroup: it returns either the answer or a channel the
// answer will come on.
func (gc *Coordinator) Join(r JoinRequest) (JoinResult, <-chan JoinResult) {
	fail := func(code int16) (JoinResult, <-chan JoinResult) {
		return JoinResult{Code: code, MemberID: r.MemberID, Generation: -1}, nil
	}
	if !ValidID(r.Group) {
		return fail(kerr.InvalidGroupID.Code)
	}
	if r.SessionTimeout < gc.lim.MinSession || r.SessionTimeout > gc.lim.MaxSession {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	if r.ProtocolType == "" || len(r.Protocols) == 0 || len(r.Protocols) > gc.lim.MaxProtocols {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	metaBytes := 0
	for _, p := range r.Protocols {
		metaBytes += len(p.Name) + len(p.Metadata)
	}
	if metaBytes > gc.lim.MaxMemberMetadata {
		return fail(kerr.InvalidRequest.Code)
	}
	if r.RebalanceTimeout <= 0 {
		r.RebalanceTimeout = r.SessionTimeout
	}
	r.RebalanceTimeout = min(r.RebalanceTimeout, gc.lim.MaxRebalance)
	protocols := make([]kmsg.JoinGroupRequestProtocol, len(r.Protocols))
	for i, p := range r.Protocols {
		protocols[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)}
	}
	r.Protocols = protocols
	if r.InstanceID != nil {
		id := *r.InstanceID
		r.InstanceID = &id
	}

	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(r.Group, true)
	defer gc.dropIfEmpty(g)

	var self *gmember
	if r.MemberID != "" {
		self = g.members[r.MemberID]
	}
	if len(g.members) > 0 && (r.ProtocolType != g.protocolType || !g.supportsProtocols(self, r.Protocols)) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}

	if r.MemberID == "" {
		if r.InstanceID != nil {
			if oldID, ok := g.static[*r.InstanceID]; ok {
				if old := g.members[oldID]; old != nil {
					return g.replaceStatic(old, r, metaBytes, now)
				}
			}
		}
		if len(g.members)+len(g.pending) >= gc.lim.MaxMembers || gc.total >= gc.lim.MaxTotalMembers ||
			g.metaBytes+metaBytes > gc.lim.MaxGroupMetadata {
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		id := newMemberID(r.ClientID, r.InstanceID)
		if r.Version >= 4 && r.InstanceID == nil {
			// KIP-394: a new dynamic member first learns its id.
			exp := now.Add(r.SessionTimeout)
			g.pending[id] = exp
			gc.total++
			gc.schedule(exp)
			return JoinResult{Code: kerr.MemberIDRequired.Code, MemberID: id, Generation: -1}, nil
		}
		gc.total++
		return g.addMember(id, r, metaBytes, now)
	}

	if r.InstanceID != nil {
		if id, ok := g.static[*r.InstanceID]; ok && id != r.MemberID {
			return fail(kerr.FencedInstanceID.Code)
		}
	}
	if _, ok := g.pending[r.MemberID]; ok {
		delete(g.pending, r.MemberID) // its slot in total carries over to the member
		if g.metaBytes+metaBytes > gc.lim.MaxGroupMetadata {
			gc.total--
			return fail(kerr.GroupMaxSizeReached.Code)
		}
		return g.addMember(r.MemberID, r, metaBytes, now)
	}
	m := self
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	if r.InstanceID != nil && (m.instanceID == nil || *m.instanceID != *r.InstanceID) {
		return fail(kerr.FencedInstanceID.Code)
	}
	if g.metaBytes-m.metaBytes+metaBytes > gc.lim.MaxGroupMetadata {
		return fail(kerr.GroupMaxSizeReached.Code)
	}
	switch g.state {
	case PreparingRebalance:
		return g.updateMember(m, r, metaBytes, now, false)
	case CompletingRebalance:
		if sameProtocols(m.protocols, r.Protocols) {
			m.deadline = now.Add(m.sessionTimeout)
			return g.currentJoin(m), nil
		}
		return g.updateMember(m, r, metaBytes, now, true)
	case Stable:
		if m.id != g.leader && sameProtocols(m.protocols, r.Protocols) {
			m.deadline = now.Add(m.sessionTimeout)
			return g.currentJoin(m), nil
		}
		return g.updateMember(m, r, metaBytes, now, true)
	}
	return fail(kerr.UnknownMemberID.Code)
}

// currentJoin answers a JoinGroup with the current generation (the member
// list too if m leads).
func (g *cgroup) currentJoin(m *gmember) JoinResult {
	res := g.joinResultFor(m)
	if m.id == g.leader {
		res.Members = g.memberMetadata(g.sortedMembers())
	}
	return res
}

func (g *cgroup) setJoin(m *gmember, r JoinRequest, metaBytes int) {
	g.metaBytes += metaBytes - m.metaBytes
	m.metaBytes = metaBytes
	m.protocols = r.Protocols
	m.sessionTimeout, m.rebalanceTimeout = r.SessionTimeout, r.RebalanceTimeout
	m.clientID, m.clientHost = r.ClientID, r.ClientHost
	if m.joinCh != nil { // a second JoinGroup while the first waits: the first is answered
		m.joinCh <- JoinResult{Code: kerr.RebalanceInProgress.Code, MemberID: m.id, Generation: -1}
	}
	m.joinCh = make(chan JoinResult, 1)
}

// addMember adds a member that waits in JoinGroup (its slot in total is
// already counted).
func (g *cgroup) addMember(id string, r JoinRequest, metaBytes int, now time.Time) (JoinResult, <-chan JoinResult) {
	if len(g.members) == 0 {
		g.protocolType = r.ProtocolType
	}
	g.gc.seq++
	m := &gmember{id: id, instanceID: r.InstanceID, seq: g.gc.seq}
	g.setJoin(m, r, metaBytes)
	g.members[id] = m
	if m.instanceID != nil {
		g.static[*m.instanceID] = id
	}
	ch := m.joinCh
	g.joined(now)
	return JoinResult{}, ch
}

// updateMember takes a known member's new JoinGroup; it waits for the
// rebalance (started if rebalance is set).
func (g *cgroup) updateMember(m *gmember, r JoinRequest, metaBytes int, now time.Time, rebalance bool) (JoinResult, <-chan JoinResult) {
	g.setJoin(m, r, metaBytes)
	ch := m.joinCh
	if rebalance {
		g.prepareRebalance(now)
	} else {
		g.maybeCompleteJoin(now)
	}
	return JoinResult{}, ch
}

// joined moves the group on after a member joined.
func (g *cgroup) joined(now time.Time) {
	switch g.state {
	case PreparingRebalance:
		if !g.delayUntil.IsZero() && now.Before(g.delayUntil) {
			// Still in the initial delay: wait a little more for others.
			g.delayUntil = now.Add(g.gc.lim.InitialDelay)
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
func (g *cgroup) replaceStatic(old *gmember, r JoinRequest, metaBytes int, now time.Time) (JoinResult, <-chan JoinResult) {
	if g.metaBytes-old.metaBytes+metaBytes > g.gc.lim.MaxGroupMetadata {
		return JoinResult{Code: kerr.GroupMaxSizeReached.Code, Generation: -1}, nil
	}
	wasLeader := g.leader == old.id
	wasPendingSync := g.pendingSync[old.id]
	m := &gmember{id: newMemberID(r.ClientID, r.InstanceID), instanceID: r.InstanceID, seq: old.seq, assignment: old.assignment}
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
	case Stable:
		if g.selectProtocol() == g.protocol {
			// Same protocol: keep the assignment, no rebalance.
			m.joinCh = nil
			res := g.currentJoin(m)
			res.SkipAssignment = m.id == g.leader
			return res, nil
		}
		ch := m.joinCh
		g.prepareRebalance(now)
		return JoinResult{}, ch
	case CompletingRebalance:
		ch := m.joinCh
		g.prepareRebalance(now)
		return JoinResult{}, ch
	default: // PreparingRebalance
		ch := m.joinCh
		g.maybeCompleteJoin(now)
		return JoinResult{}, ch
	}
}

// SyncRequest is what the coordinator needs from a SyncGroup.
type SyncRequest struct {
	Version      int16
	Group        string
	Generation   int32
	MemberID     string
	InstanceID   *string
	ProtocolType *string
	Protocol     *string
	Assignments  []kmsg.SyncGroupRequestGroupAssignment
}

// Sync handles a SyncGroup: the answer, or a channel it will come on.
func (gc *Coordinator) Sync(r SyncRequest) (SyncResult, <-chan SyncResult) {
	fail := func(code int16) (SyncResult, <-chan SyncResult) { return SyncResult{Code: code}, nil }
	if r.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(r.Group, false)
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	m, code := g.checkMember(r.MemberID, r.InstanceID)
	if code != 0 {
		return fail(code)
	}
	if r.Generation != g.generation {
		return fail(kerr.IllegalGeneration.Code)
	}
	if (r.ProtocolType != nil && *r.ProtocolType != g.protocolType) || (r.Protocol != nil && *r.Protocol != g.protocol) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	switch g.state {
	case PreparingRebalance:
		return fail(kerr.RebalanceInProgress.Code)
	case CompletingRebalance:
		delete(g.pendingSync, m.id)
		m.deadline = now.Add(m.sessionTimeout)
		if m.syncCh != nil {
			m.syncCh <- SyncResult{Code: kerr.RebalanceInProgress.Code}
		}
		m.syncCh = make(chan SyncResult, 1)
		ch := m.syncCh
		if m.id == g.leader {
			for _, a := range r.Assignments {
				if am := g.members[a.MemberID]; am != nil {
					am.assignment = bytes.Clone(a.MemberAssignment)
				}
			}
			g.noteOwners()
			g.state = Stable
			for _, am := range g.members {
				if am.assignment == nil {
					am.assignment = []byte{}
				}
				if am.syncCh != nil {
					am.syncCh <- SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: am.assignment}
					am.syncCh = nil
					am.deadline = now.Add(am.sessionTimeout)
				}
			}
		}
		return SyncResult{}, ch
	case Stable:
		delete(g.pendingSync, m.id)
		m.deadline = now.Add(m.sessionTimeout)
		return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}, nil
	}
	return fail(kerr.UnknownMemberID.Code)
}

// Heartbeat handles a Heartbeat.
func (gc *Coordinator) Heartbeat(group, memberID string, instanceID *string, generation int32) int16 {
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
	case PreparingRebalance:
		return kerr.RebalanceInProgress.Code
	case CompletingRebalance, Stable:
		return 0
	}
	return kerr.UnknownMemberID.Code
}

// LeaveMember is one member of a LeaveGroup.
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave handles a LeaveGroup: one error code per member.
func (gc *Coordinator) Leave(group string, members []LeaveMember) []int16 {
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
		id := lm.MemberID
		if lm.InstanceID != nil {
			sid, ok := g.static[*lm.InstanceID]
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

// ValidateCommit checks an OffsetCommit's member and generation, as Kafka
// does: a commit naming no member and no generation (-1) is only allowed
// while the group has no members — and, after Reset, once RejoinGrace
// has passed.
func (gc *Coordinator) ValidateCommit(group, memberID string, instanceID *string, generation int32) int16 {
	now := gc.clock.Now()
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(group, false)
	anonymous := generation < 0 && memberID == "" && instanceID == nil
	if g == nil || len(g.members) == 0 {
		if !anonymous {
			return kerr.UnknownMemberID.Code
		}
		if !gc.reset.IsZero() && now.Before(gc.reset.Add(gc.lim.RejoinGrace)) {
			return kerr.CoordinatorLoadInProgress.Code
		}
		return 0
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
	if g.state == CompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	m.deadline = now.Add(m.sessionTimeout)
	return 0
}

// MemberInfo describes a member for DescribeGroups.
type MemberInfo struct {
	MemberID, ClientID, ClientHost string
	InstanceID                     *string
	Metadata, Assignment           []byte
}

// Info describes a group for DescribeGroups and ListGroups.
type Info struct {
	ID           string
	State        State
	ProtocolType string
	Protocol     string
	Members      []MemberInfo
	Topics       map[string]bool // consumer protocol: topics the members subscribe to
}

// Describe returns a group's description; ok is false if the coordinator
// has no such group (it may still have offsets).
func (gc *Coordinator) Describe(id string) (Info, bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.groups[id]
	if g == nil || g.removable() {
		return Info{}, false
	}
	gi := Info{ID: g.id, State: g.state, ProtocolType: g.protocolType}
	stable := g.state == Stable
	if stable {
		gi.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		mi := MemberInfo{MemberID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, InstanceID: m.instanceID}
		if stable {
			mi.Metadata, mi.Assignment = m.metadataFor(g.protocol), m.assignment
		}
		gi.Members = append(gi.Members, mi)
	}
	if g.protocolType == "consumer" {
		gi.Topics = map[string]bool{}
		for _, m := range g.members {
			for _, p := range m.protocols {
				var md kmsg.ConsumerMemberMetadata
				if md.ReadFrom(p.Metadata) == nil {
					for _, t := range md.Topics {
						gi.Topics[t] = true
					}
				}
			}
		}
	}
	return gi, true
}

// List returns every group the coordinator has, sorted by id.
func (gc *Coordinator) List() []Info {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make([]Info, 0, len(gc.groups))
	for _, g := range gc.groups {
		if g.removable() {
			continue
		}
		out = append(out, Info{ID: g.id, State: g.state, ProtocolType: g.protocolType})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Forget removes a group without members (DeleteGroups): NON_EMPTY_GROUP
// if it has any. existed reports whether the coordinator knew it.
func (gc *Coordinator) Forget(id string) (existed bool, code int16) {
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

// noteOwners records, for a consumer group (protocol type "consumer"),
// which member the generation's assignments give each partition to.
// Assignments it cannot read are left out: they only lose the check.
func (g *cgroup) noteOwners() {
	g.owners = nil
	if g.protocolType != "consumer" {
		return
	}
	g.owners = map[string]map[int32]string{}
	for id, m := range g.members {
		var a kmsg.ConsumerMemberAssignment
		if len(m.assignment) == 0 || a.ReadFrom(m.assignment) != nil {
			continue
		}
		for _, t := range a.Topics {
			ps := g.owners[t.Topic]
			if ps == nil {
				ps = map[int32]string{}
				g.owners[t.Topic] = ps
			}
			for _, p := range t.Partitions {
				ps[p] = id
			}
		}
	}
}

// OwnedElsewhere reports whether the group's current generation assigns
// topic's partition to another member than memberID. A commit of such a
// partition comes from a member whose view of the group is stale: Kafka
// takes any commit of a member of the current generation, but after the
// coordinator moved (group state is the coordinator's memory, and a new
// coordinator forms the group anew) a member may still hold partitions
// the new generation gave to another, and its commit would move that
// partition's offset back. A partition assigned to nobody (one a
// cooperative member is revoking) may be committed by anyone.
func (gc *Coordinator) OwnedElsewhere(group, memberID string, instanceID *string, topic string, partition int32) bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	g := gc.group(group, false)
	if g == nil || g.owners == nil || g.state != Stable {
		return false
	}
	if instanceID != nil {
		if id, ok := g.static[*instanceID]; ok {
			memberID = id
		}
	}
	owner, ok := g.owners[topic][partition]
	return ok && owner != memberID
}
