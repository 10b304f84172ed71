package group

import (
	"cmp"
	"slices"
	"time"
)

// partition is one partition's hand-over state. owner may deliver it; target should. Invariants
// between calls: owner and target are live members or nil; target is nil only when the group has
// no members, and then owner is nil too; revoking == (owner != nil && owner != target).
type partition struct {
	owner    *member
	target   *member
	revoking bool
	deadline time.Time // revocation deadline while revoking
	since    uint64    // Coordinator.epoch when owner got it
}

// grant makes the target the owner.
func (p *partition) grant(epoch uint64) {
	p.owner, p.revoking, p.since = p.target, false, epoch
}

// assignTargets recomputes every partition's target over ms (sorted by id, all live), given the
// current owners and targets (nil, or members of ms).
//
// Stickiness follows ownership, because moving an owned partition costs a revocation and moving a
// partition that is still waiting for its target costs nothing. Each member gets a quota of
// ⌊n/k⌋ or ⌈n/k⌉ partitions; the ⌈n/k⌉ quotas go to the members that own the most (ties: the
// most targeted, then the lower id), which minimizes revocations. Then, up to its quota, a
// member keeps the partitions it owns and is targeted with, then those it is revoking (the
// revocation is cancelled), then those waiting for it. Among owned partitions it keeps those it
// has owned longest (a partition granted in the same call has not been worked on yet), then the
// lowest. The rest go, lowest partition first, to the members still short of their quota, in id
// order.
func assignTargets(parts []partition, ms []*member) {
	k := len(ms)
	if k == 0 {
		for i := range parts {
			parts[i].target = nil
		}
		return
	}
	for i, m := range ms {
		m.slot = i
	}
	owned, targeted := make([]int, k), make([]int, k)
	for i := range parts {
		p := &parts[i]
		if p.owner != nil {
			owned[p.owner.slot]++
		}
		if p.target != nil {
			targeted[p.target.slot]++
		}
	}
	rank := make([]int, k)
	for i := range rank {
		rank[i] = i
	}
	slices.SortStableFunc(rank, func(a, b int) int {
		if owned[a] != owned[b] {
			return owned[b] - owned[a]
		}
		return targeted[b] - targeted[a]
	})
	n := len(parts)
	quota := make([]int, k)
	for r, i := range rank {
		quota[i] = n / k
		if r < n%k {
			quota[i]++
		}
	}

	byAge := make([]int32, n)
	for i := range byAge {
		byAge[i] = int32(i)
	}
	slices.SortStableFunc(byAge, func(a, b int32) int { return cmp.Compare(parts[a].since, parts[b].since) })

	kept := make([]int, k)
	room := func(m *member) bool { return kept[m.slot] < quota[m.slot] }
	for _, i := range byAge { // owned and targeted: keep, or free for someone else
		if p := &parts[i]; p.owner != nil && p.owner == p.target {
			if room(p.owner) {
				kept[p.owner.slot]++
			} else {
				p.target = nil
			}
		}
	}
	for _, i := range byAge { // being revoked, or its target left: back to the owner if it has room
		if p := &parts[i]; p.owner != nil && p.owner != p.target && room(p.owner) {
			p.target = p.owner
			kept[p.owner.slot]++
		}
	}
	for i := range parts { // waiting for its target: keep the target if it has room
		if p := &parts[i]; p.target != nil && p.owner != p.target {
			if room(p.target) {
				kept[p.target.slot]++
			} else {
				p.target = nil
			}
		}
	}
	s := 0
	for i := range parts {
		if p := &parts[i]; p.target == nil {
			for kept[s] >= quota[s] {
				s++
			}
			p.target = ms[s]
			kept[s]++
		}
	}
}
