package group

import (
	"fmt"
	"strconv"
	"time"
)

// Coordinator is one subscription's group state. It is not safe for concurrent use: the broker
// serializes calls under its own mutex. Calls that take now never let the coordinator's time go
// backwards: an earlier now is treated as the latest time already seen.
type Coordinator struct {
	cfg       Config
	now       time.Time
	gen       int64
	parts     []partition
	members   map[string]*member
	instances map[string]*member // static members by instance id
	seq       uint64             // last number used in a generated member id
	epoch     uint64             // number of calls so far; dates grants, to keep the oldest

	// Lower bounds on the earliest session and revocation deadlines (zero: none). They may be
	// early, never late: reaching one triggers a scan that recomputes it exactly.
	sessionCheck time.Time
	revokeCheck  time.Time

	rec     recorder
	scratch []*member // targets before a rebalance
}

type member struct {
	id, clientID, instanceID string
	timeout                  time.Duration
	deadline                 time.Time

	slot    int // position during assignTargets and finish
	dirty   bool
	removed bool
}

// New returns a coordinator for a subscription to a topic with the given number of partitions,
// at generation 0 with no members.
func New(cfg Config, partitions int) (*Coordinator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if partitions < 0 || partitions > cfg.MaxPartitions {
		return nil, fmt.Errorf("%w: %d (max %d)", ErrInvalidPartitionCount, partitions, cfg.MaxPartitions)
	}
	return &Coordinator{
		cfg:       cfg,
		parts:     make([]partition, partitions),
		members:   map[string]*member{},
		instances: map[string]*member{},
	}, nil
}

// Config returns the configuration with defaults applied.
func (c *Coordinator) Config() Config { return c.cfg }

// Generation returns the current generation (0 until the first assignment).
func (c *Coordinator) Generation() int64 { return c.gen }

// Partitions returns the partition count.
func (c *Coordinator) Partitions() int { return len(c.parts) }

// Len returns the number of members.
func (c *Coordinator) Len() int { return len(c.members) }

// NextDeadline returns when Tick must next be called for evictions and revocation timeouts to
// happen on time; it may be early, never late. ok is false when nothing is pending.
func (c *Coordinator) NextDeadline() (t time.Time, ok bool) {
	switch {
	case c.sessionCheck.IsZero():
		t = c.revokeCheck
	case c.revokeCheck.IsZero() || c.sessionCheck.Before(c.revokeCheck):
		t = c.sessionCheck
	default:
		t = c.revokeCheck
	}
	return t, !t.IsZero()
}

// Join adds a member, or refreshes one, and returns its member id.
//
// An empty memberID asks for a generated id ("<client id or member>-[<nonce>-]<n>"). A known
// memberID rejoins: its session is refreshed and its client id and session timeout updated,
// with no rebalance; opts.InstanceID must equal the member's (ErrInstanceMismatch otherwise).
// An unknown non-empty memberID is taken as the new member's id (it must pass MaxIDLen). If
// opts.InstanceID names a live member, the caller replaces it without a rebalance (see
// MemberReplaced). A new member beyond Config.MaxMembers gets ErrGroupFull.
func (c *Coordinator) Join(now time.Time, memberID string, opts JoinOptions) (string, Effects, error) {
	timeout, err := c.checkJoinOptions(opts)
	if err != nil {
		return "", c.unchanged(), err
	}
	c.advance(now)
	id, err := c.join(memberID, opts, timeout)
	return id, c.finish(), err
}

func (c *Coordinator) join(id string, opts JoinOptions, timeout time.Duration) (string, error) {
	if m := c.members[id]; m != nil {
		if m.instanceID != opts.InstanceID {
			return "", fmt.Errorf("%w: member %q has instance id %q, not %q",
				ErrInstanceMismatch, id, m.instanceID, opts.InstanceID)
		}
		c.refresh(m, opts, timeout)
		c.rec.add(Change{Kind: MemberRejoined, Member: id})
		c.rec.touch(m)
		return id, nil
	}
	if !validID(id) {
		return "", fmt.Errorf("%w: member id %q", ErrInvalidID, id)
	}
	if old := c.instances[opts.InstanceID]; opts.InstanceID != "" && old != nil {
		if id == "" {
			id = c.newID(opts.ClientID)
		}
		prev := old.id
		delete(c.members, prev)
		old.id = id
		c.members[id] = old
		c.refresh(old, opts, timeout)
		c.rec.add(Change{Kind: MemberReplaced, Member: id, Previous: prev})
		c.rec.touch(old)
		return id, nil
	}
	if len(c.members) >= c.cfg.MaxMembers {
		return "", fmt.Errorf("%w: %d members", ErrGroupFull, len(c.members))
	}
	if id == "" {
		id = c.newID(opts.ClientID)
	}
	before := c.snapshot()
	m := &member{id: id, instanceID: opts.InstanceID}
	c.members[id] = m
	if m.instanceID != "" {
		c.instances[m.instanceID] = m
	}
	c.refresh(m, opts, timeout)
	c.rec.add(Change{Kind: MemberJoined, Member: id})
	c.rec.touch(m)
	c.rebalance(before)
	return id, nil
}

func (c *Coordinator) newID(clientID string) string {
	prefix := clientID
	if prefix == "" {
		prefix = "member"
	}
	prefix += "-"
	if c.cfg.IDNonce != "" {
		prefix += c.cfg.IDNonce + "-"
	}
	for {
		c.seq++
		id := prefix + strconv.FormatUint(c.seq, 10)
		if c.members[id] == nil {
			return id
		}
	}
}

func (c *Coordinator) refresh(m *member, opts JoinOptions, timeout time.Duration) {
	m.clientID = opts.ClientID
	m.timeout = timeout
	c.extend(m)
}

func (c *Coordinator) extend(m *member) {
	m.deadline = c.now.Add(m.timeout)
	if c.sessionCheck.IsZero() || m.deadline.Before(c.sessionCheck) {
		c.sessionCheck = m.deadline
	}
}

// Heartbeat refreshes a member's session. A heartbeat with another generation still refreshes
// the session (the member is alive) and returns a *StaleGenerationError.
func (c *Coordinator) Heartbeat(now time.Time, memberID string, generation int64) (Effects, error) {
	c.advance(now)
	m := c.members[memberID]
	if m == nil {
		return c.finish(), unknownMember(memberID)
	}
	c.extend(m)
	if generation != c.gen {
		return c.finish(), &StaleGenerationError{Member: memberID, Got: generation, Current: c.gen}
	}
	return c.finish(), nil
}

// Leave removes a member at once; its partitions go straight to their new owners.
func (c *Coordinator) Leave(now time.Time, memberID string) (Effects, error) {
	c.advance(now)
	m := c.members[memberID]
	if m == nil {
		return c.finish(), unknownMember(memberID)
	}
	before := c.snapshot()
	c.remove([]*member{m})
	c.rec.add(Change{Kind: MemberLeft, Member: memberID})
	c.rebalance(before)
	return c.finish(), nil
}

// Revoked confirms that a member has stopped work on partitions it was asked to revoke; each is
// granted to its target. Partitions the member is not revoking are ignored (late or duplicate
// confirmations). Out-of-range partitions fail the whole call with ErrInvalidPartition before
// anything changes. It does not refresh the session.
func (c *Coordinator) Revoked(now time.Time, memberID string, partitions []int32) (Effects, error) {
	for _, p := range partitions {
		if p < 0 || int(p) >= len(c.parts) {
			return c.unchanged(), invalidPartition(p, len(c.parts))
		}
	}
	c.advance(now)
	m := c.members[memberID]
	if m == nil {
		return c.finish(), unknownMember(memberID)
	}
	var done, granted byMember
	for _, p := range partitions {
		if ps := &c.parts[p]; ps.owner == m && ps.revoking {
			done.add(m, int(p))
			granted.add(ps.target, int(p))
			ps.grant(c.epoch)
		}
	}
	c.rec.emit(RevokeCompleted, done)
	c.rec.emit(PartitionsGranted, granted)
	return c.finish(), nil
}

// Tick applies the passage of time: evicts members whose session deadline is reached and grants
// partitions whose revocation timed out. Every other state-changing call does the same first.
func (c *Coordinator) Tick(now time.Time) Effects {
	c.advance(now)
	return c.finish()
}

// SetPartitions grows the partition count to n and distributes the new partitions (a generation
// bump when there are members). Equal n changes nothing; a smaller or negative n, or one above
// Config.MaxPartitions, is ErrInvalidPartitionCount.
func (c *Coordinator) SetPartitions(now time.Time, n int) (Effects, error) {
	if n < len(c.parts) || n > c.cfg.MaxPartitions {
		return c.unchanged(), fmt.Errorf("%w: %d (now %d, max %d; partitions only grow)",
			ErrInvalidPartitionCount, n, len(c.parts), c.cfg.MaxPartitions)
	}
	c.advance(now)
	if n == len(c.parts) {
		return c.finish(), nil
	}
	before := c.snapshot()
	added := make([]int32, 0, n-len(c.parts))
	for p := len(c.parts); p < n; p++ {
		added = append(added, int32(p))
	}
	c.parts = append(c.parts, make([]partition, n-len(c.parts))...)
	c.rec.add(Change{Kind: PartitionsAdded, Partitions: added})
	c.rebalance(before)
	return c.finish(), nil
}

// CheckCommit says whether a member may commit an offset for a partition: it must be a member,
// send the current generation, and own the partition or be revoking it. It reads the state as of
// the last call; call Tick first for evictions to be current.
func (c *Coordinator) CheckCommit(memberID string, generation int64, partition int32) error {
	m := c.members[memberID]
	switch {
	case m == nil:
		return unknownMember(memberID)
	case generation != c.gen:
		return &StaleGenerationError{Member: memberID, Got: generation, Current: c.gen}
	case partition < 0 || int(partition) >= len(c.parts):
		return invalidPartition(partition, len(c.parts))
	case c.parts[partition].owner != m:
		return fmt.Errorf("%w: partition %d, member %q", ErrNotOwner, partition, memberID)
	}
	return nil
}

// Assignment returns a member's current assignment.
func (c *Coordinator) Assignment(memberID string) (Assignment, error) {
	m := c.members[memberID]
	if m == nil {
		return Assignment{}, unknownMember(memberID)
	}
	a := Assignment{Member: m.id, Generation: c.gen}
	for i := range c.parts {
		if p := &c.parts[i]; p.owner == m {
			if p.revoking {
				a.Revoking = append(a.Revoking, int32(i))
			} else {
				a.Owned = append(a.Owned, int32(i))
			}
		}
	}
	return a, nil
}

// Describe returns a snapshot of the group; it shares no memory with the coordinator.
func (c *Coordinator) Describe() Description {
	d := Description{Generation: c.gen, Partitions: len(c.parts), Now: c.now}
	ms := c.sorted()
	d.Members = make([]MemberInfo, len(ms))
	for i, m := range ms {
		m.slot = i
		d.Members[i] = MemberInfo{
			ID: m.id, ClientID: m.clientID, InstanceID: m.instanceID,
			SessionTimeout: m.timeout, SessionDeadline: m.deadline,
		}
	}
	for i := range c.parts {
		p := &c.parts[i]
		switch {
		case p.owner == nil:
			d.Unassigned = append(d.Unassigned, int32(i))
		case p.revoking:
			from := &d.Members[p.owner.slot]
			from.Revoking = append(from.Revoking, Revocation{Partition: int32(i), To: p.target.id, Deadline: p.deadline})
			to := &d.Members[p.target.slot]
			to.Pending = append(to.Pending, int32(i))
		default:
			own := &d.Members[p.owner.slot]
			own.Owned = append(own.Owned, int32(i))
		}
	}
	return d
}

func (c *Coordinator) sorted() []*member {
	ms := make([]*member, 0, len(c.members))
	for _, m := range c.members {
		ms = append(ms, m)
	}
	sortMembers(ms)
	return ms
}

// unchanged is the Effects of a call refused before it changed anything.
func (c *Coordinator) unchanged() Effects { return Effects{Generation: c.gen} }

// advance moves the coordinator's time to now and applies evictions and revocation timeouts.
func (c *Coordinator) advance(now time.Time) {
	if now.After(c.now) {
		c.now = now
	}
	c.epoch++
	c.expireSessions()
	c.expireRevocations()
}

func (c *Coordinator) expireSessions() {
	if c.sessionCheck.IsZero() || c.now.Before(c.sessionCheck) {
		return
	}
	var expired []*member
	var next time.Time
	for _, m := range c.members {
		switch {
		case !c.now.Before(m.deadline):
			expired = append(expired, m)
		case next.IsZero() || m.deadline.Before(next):
			next = m.deadline
		}
	}
	c.sessionCheck = next
	if len(expired) == 0 {
		return
	}
	sortMembers(expired)
	before := c.snapshot()
	c.remove(expired)
	for _, m := range expired {
		c.rec.add(Change{Kind: MemberEvicted, Member: m.id})
	}
	c.rebalance(before)
}

func (c *Coordinator) expireRevocations() {
	if c.revokeCheck.IsZero() || c.now.Before(c.revokeCheck) {
		return
	}
	var late, granted byMember
	var next time.Time
	for i := range c.parts {
		p := &c.parts[i]
		switch {
		case !p.revoking:
		case !c.now.Before(p.deadline):
			late.add(p.owner, i)
			granted.add(p.target, i)
			p.grant(c.epoch)
		case next.IsZero() || p.deadline.Before(next):
			next = p.deadline
		}
	}
	c.revokeCheck = next
	c.rec.emit(RevokeTimedOut, late)
	c.rec.emit(PartitionsGranted, granted)
}

// remove deletes members and forgets their ownership and targets.
func (c *Coordinator) remove(ms []*member) {
	for _, m := range ms {
		m.removed = true
		delete(c.members, m.id)
		if m.instanceID != "" {
			delete(c.instances, m.instanceID)
		}
	}
	for i := range c.parts {
		p := &c.parts[i]
		if p.owner != nil && p.owner.removed {
			p.owner, p.revoking = nil, false
		}
		if p.target != nil && p.target.removed {
			p.target = nil
		}
	}
}

// snapshot records the current targets for rebalance to compare against.
func (c *Coordinator) snapshot() []*member {
	c.scratch = c.scratch[:0]
	for i := range c.parts {
		c.scratch = append(c.scratch, c.parts[i].target)
	}
	return c.scratch
}

// rebalance recomputes the targets, bumps the generation if they differ from before (targets
// before the membership change; partitions past its end count as untargeted), and moves every
// partition one step towards its target: grants unowned ones, starts or cancels revocations.
func (c *Coordinator) rebalance(before []*member) {
	ms := c.sorted()
	assignTargets(c.parts, ms)
	changed := false
	for i := range c.parts {
		var was *member
		if i < len(before) {
			was = before[i]
		}
		if c.parts[i].target != was {
			changed = true
			break
		}
	}
	if changed {
		c.gen++
		c.rec.add(Change{Kind: GenerationBumped, Generation: c.gen})
		for _, m := range ms {
			c.rec.touch(m)
		}
	}
	var granted, requested, cancelled byMember
	for i := range c.parts {
		p := &c.parts[i]
		switch {
		case p.target == nil:
		case p.owner == nil:
			p.grant(c.epoch)
			granted.add(p.owner, i)
		case p.owner == p.target:
			if p.revoking {
				p.revoking = false
				cancelled.add(p.owner, i)
			}
		case !p.revoking:
			p.revoking = true
			p.deadline = c.now.Add(c.cfg.RevokeTimeout)
			if c.revokeCheck.IsZero() || p.deadline.Before(c.revokeCheck) {
				c.revokeCheck = p.deadline
			}
			requested.add(p.owner, i)
		}
	}
	c.rec.emit(RevokeRequested, requested)
	c.rec.emit(RevokeCancelled, cancelled)
	c.rec.emit(PartitionsGranted, granted)
}

// finish turns what the call recorded into Effects and resets the recorder.
func (c *Coordinator) finish() Effects {
	e := Effects{Generation: c.gen, Changes: c.rec.changes}
	var live []*member
	for _, m := range c.rec.dirty {
		if m.removed {
			m.dirty = false
		} else {
			live = append(live, m)
		}
	}
	if len(live) > 0 {
		sortMembers(live)
		e.Assignments = make([]Assignment, len(live))
		for i, m := range live {
			m.slot = i
			e.Assignments[i] = Assignment{Member: m.id, Generation: c.gen}
		}
		for i := range c.parts {
			p := &c.parts[i]
			if p.owner == nil || !p.owner.dirty {
				continue
			}
			a := &e.Assignments[p.owner.slot]
			if p.revoking {
				a.Revoking = append(a.Revoking, int32(i))
			} else {
				a.Owned = append(a.Owned, int32(i))
			}
		}
		for _, m := range live {
			m.dirty = false
		}
	}
	c.rec = recorder{}
	return e
}
