package group

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Assignment is what one member may do now.
type Assignment struct {
	Member     string
	Generation int64   // the generation the member must send with heartbeats and commits
	Owned      []int32 // partitions the member may deliver, ascending; excludes Revoking
	Revoking   []int32 // partitions it must stop delivering at once; commits are still accepted
}

// Effects is what a call changed; the broker must act on it even when the call returned an
// error, because time advanced (members may have been evicted, revocations may have timed out).
type Effects struct {
	// Generation is the current generation after the call.
	Generation int64
	// Changes lists what happened, in order: removals and joins first, then the generation
	// bump, revocation requests and grants they caused.
	Changes []Change
	// Assignments holds the new assignment of every remaining member whose owned set, revoking
	// set or generation changed, and of a member that joined, rejoined or replaced another;
	// sorted by member id. Removed members are absent: close their streams (see Changes).
	Assignments []Assignment
}

// Empty reports whether the call changed nothing.
func (e Effects) Empty() bool { return len(e.Changes) == 0 && len(e.Assignments) == 0 }

// ChangeKind says what a Change reports.
type ChangeKind uint8

// The kinds of Change.
const (
	// MemberJoined: a new member (Change.Member) joined.
	MemberJoined ChangeKind = iota + 1
	// MemberRejoined: a member joined again with its own id; its session was refreshed.
	MemberRejoined
	// MemberReplaced: a static member's instance joined again; Change.Member took over the
	// slot and partitions of Change.Previous, which is no longer a member (close its stream).
	MemberReplaced
	// MemberLeft: the member left.
	MemberLeft
	// MemberEvicted: the member's session deadline passed.
	MemberEvicted
	// GenerationBumped: the target assignment changed; Change.Generation is the new generation.
	GenerationBumped
	// PartitionsAdded: the partition count grew; Change.Partitions are the new partitions.
	PartitionsAdded
	// RevokeRequested: Change.Member must stop delivering Change.Partitions and confirm.
	RevokeRequested
	// RevokeCancelled: the target of Change.Partitions moved back to their owner, which may
	// deliver them again.
	RevokeCancelled
	// RevokeCompleted: Change.Member confirmed the revocation of Change.Partitions.
	RevokeCompleted
	// RevokeTimedOut: Change.Member did not confirm in time and lost Change.Partitions.
	RevokeTimedOut
	// PartitionsGranted: Change.Member now owns Change.Partitions and may deliver them.
	PartitionsGranted
)

var kindNames = [...]string{
	MemberJoined:      "joined",
	MemberRejoined:    "rejoined",
	MemberReplaced:    "replaced",
	MemberLeft:        "left",
	MemberEvicted:     "evicted",
	GenerationBumped:  "generation",
	PartitionsAdded:   "partitions-added",
	RevokeRequested:   "revoke-requested",
	RevokeCancelled:   "revoke-cancelled",
	RevokeCompleted:   "revoke-completed",
	RevokeTimedOut:    "revoke-timed-out",
	PartitionsGranted: "granted",
}

func (k ChangeKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one event, for notifying members and for the log.
type Change struct {
	Kind       ChangeKind
	Member     string  // empty for GenerationBumped and PartitionsAdded
	Previous   string  // MemberReplaced only: the member id that was replaced
	Partitions []int32 // ascending; for the partition kinds only
	Generation int64   // GenerationBumped only
}

// String renders the change for logs, e.g. "granted b 3-5".
func (c Change) String() string {
	var b strings.Builder
	b.WriteString(c.Kind.String())
	if c.Member != "" {
		b.WriteString(" " + c.Member)
	}
	if c.Kind == MemberReplaced {
		b.WriteString(" (was " + c.Previous + ")")
	}
	if c.Kind == GenerationBumped {
		b.WriteString(" " + strconv.FormatInt(c.Generation, 10))
	}
	if len(c.Partitions) > 0 {
		b.WriteString(" " + FormatPartitions(c.Partitions))
	}
	return b.String()
}

// FormatPartitions renders an ascending list compactly, e.g. "0-2,5"; "-" when empty.
func FormatPartitions(ps []int32) string {
	if len(ps) == 0 {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ps[i])))
		if j > i {
			b.WriteString("-" + strconv.Itoa(int(ps[j])))
		}
		i = j + 1
	}
	return b.String()
}

// Description is a snapshot of the whole group, for `spool sub describe`.
type Description struct {
	Generation int64
	Partitions int
	Now        time.Time    // the latest time the coordinator has been given
	Members    []MemberInfo // sorted by id
	Unassigned []int32      // partitions nobody owns or targets: only when there are no members
}

// MemberInfo describes one member.
type MemberInfo struct {
	ID, ClientID, InstanceID string
	SessionTimeout           time.Duration
	SessionDeadline          time.Time    // evicted once the coordinator's time reaches it
	Owned                    []int32      // owned and not being revoked
	Revoking                 []Revocation // owned, being handed over
	Pending                  []int32      // targeted here, waiting for another member's revocation
}

// Revocation is a partition on its way from the describing member to another.
type Revocation struct {
	Partition int32
	To        string    // the target member
	Deadline  time.Time // granted to To at this time if not confirmed earlier
}

// byMember collects partitions per member while a call runs.
type byMember map[*member][]int32

func (b *byMember) add(m *member, p int) {
	if *b == nil {
		*b = byMember{}
	}
	(*b)[m] = append((*b)[m], int32(p))
}

// recorder gathers a call's effects.
type recorder struct {
	changes []Change
	dirty   []*member
}

func (r *recorder) touch(m *member) {
	if !m.dirty {
		m.dirty = true
		r.dirty = append(r.dirty, m)
	}
}

func (r *recorder) add(c Change) { r.changes = append(r.changes, c) }

// emit records one change of kind k per member of b, in member id order, and marks the members
// as changed.
func (r *recorder) emit(k ChangeKind, b byMember) {
	ms := make([]*member, 0, len(b))
	for m := range b {
		ms = append(ms, m)
	}
	sortMembers(ms)
	for _, m := range ms {
		ps := b[m]
		slices.Sort(ps)
		r.add(Change{Kind: k, Member: m.id, Partitions: ps})
		r.touch(m)
	}
}

func sortMembers(ms []*member) {
	slices.SortFunc(ms, func(a, b *member) int { return strings.Compare(a.id, b.id) })
}
