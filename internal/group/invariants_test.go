package group

import "slices"

// targets maps each partition to its target member ("" for none), from a Description.
func (h *harness) targets(d Description) []string {
	t := make([]string, d.Partitions)
	for _, m := range d.Members {
		for _, p := range m.Owned {
			t[p] = m.ID
		}
		for _, r := range m.Revoking {
			t[r.Partition] = r.To
		}
	}
	return t
}

// check verifies every invariant after a step.
func (h *harness) check(step int, op string) {
	h.t.Helper()
	d := h.c.Describe()
	n, k := d.Partitions, len(d.Members)

	// Membership matches the reference exactly, deadlines included.
	if k != len(h.ref) {
		h.fatalf(step, op, "%d members, reference has %d", k, len(h.ref))
	}
	for _, m := range d.Members {
		r := h.ref[m.ID]
		if r == nil || !r.deadline.Equal(m.SessionDeadline) || r.instance != m.InstanceID {
			h.fatalf(step, op, "member %s deadline %v instance %q, reference %+v", m.ID, m.SessionDeadline, m.InstanceID, r)
		}
		if !m.SessionDeadline.After(d.Now) {
			h.fatalf(step, op, "member %s outlived its deadline", m.ID)
		}
	}

	// The view equals the coordinator's state, at the current generation.
	if len(h.view) != k {
		h.fatalf(step, op, "view has %d members, coordinator %d", len(h.view), k)
	}
	for _, m := range d.Members {
		a := h.view[m.ID]
		var rev []int32
		for _, r := range m.Revoking {
			rev = append(rev, r.Partition)
			if !r.Deadline.After(d.Now) || r.Deadline.After(d.Now.Add(h.cfg.RevokeTimeout)) {
				h.fatalf(step, op, "revocation of %d deadline %v at %v", r.Partition, r.Deadline, d.Now)
			}
		}
		if a.Generation != d.Generation || !slices.Equal(a.Owned, m.Owned) || !slices.Equal(a.Revoking, rev) {
			h.fatalf(step, op, "view of %s is %+v, coordinator has owned %v revoking %v gen %d", m.ID, a, m.Owned, rev, d.Generation)
		}
	}

	// Every partition is in exactly one place: unassigned (only without members), or owned or
	// revoking by one member; pending exactly where revocations point.
	seen := make([]int, n)
	pending := map[int32]string{}
	for _, p := range d.Unassigned {
		seen[p]++
	}
	for _, m := range d.Members {
		for _, p := range m.Owned {
			seen[p]++
		}
		for _, r := range m.Revoking {
			seen[r.Partition]++
			pending[r.Partition] = r.To
		}
	}
	for p, c := range seen {
		if c != 1 {
			h.fatalf(step, op, "partition %d appears %d times", p, c)
		}
	}
	if k > 0 && len(d.Unassigned) > 0 {
		h.fatalf(step, op, "unassigned %v with %d members", d.Unassigned, k)
	}
	for _, m := range d.Members {
		for _, p := range m.Pending {
			if pending[p] != m.ID {
				h.fatalf(step, op, "%s pending %d, revocation points to %q", m.ID, p, pending[p])
			}
			delete(pending, p)
		}
	}
	if len(pending) > 0 {
		h.fatalf(step, op, "revocations without a pending target: %v", pending)
	}

	// Targets are balanced.
	targets := h.targets(d)
	if k > 0 {
		count := map[string]int{}
		for _, t := range targets {
			count[t]++
		}
		for _, m := range d.Members {
			if c := count[m.ID]; c < n/k || c > (n+k-1)/k {
				h.fatalf(step, op, "%s targeted with %d of %d partitions over %d members", m.ID, c, n, k)
			}
		}
	}

	// The generation moves by one for each rebalance that changed the targets. It moves exactly
	// when the targets change, except that two rebalances in one step (an eviction and a join)
	// may bring them back to where they were. A replaced member's targets pass to its successor.
	for i, t := range h.prevTargets {
		if to, ok := h.replaced[t]; ok {
			h.prevTargets[i] = to
		} else if _, gone := h.gone[t]; gone {
			h.prevTargets[i] = "gone " + t // not the member that may have joined with its id since
		}
	}
	for from, to := range h.replaced {
		if held, ok := h.prevOwned[from]; ok {
			delete(h.prevOwned, from)
			h.prevOwned[to] = held
		}
	}
	changed := !slices.Equal(targets[:len(h.prevTargets)], h.prevTargets) ||
		slices.ContainsFunc(targets[len(h.prevTargets):], func(s string) bool { return s != "" })
	switch {
	case d.Generation != h.lastGen+int64(h.bumps):
		h.fatalf(step, op, "generation went from %d to %d with %d bumps", h.lastGen, d.Generation, h.bumps)
	case changed && h.bumps == 0:
		h.fatalf(step, op, "targets changed without a generation bump")
	case !changed && h.bumps == 1:
		h.fatalf(step, op, "generation bumped to %d with the same targets", d.Generation)
	}

	// Stickiness: a member that stays keeps at least min(what it held, fair share) of what it
	// held, not counting what it handed over on a revocation meanwhile.
	if k > 0 {
		for _, m := range d.Members {
			old, ok := h.prevOwned[m.ID]
			if _, gone := h.gone[m.ID]; !ok || gone {
				continue
			}
			old = slices.DeleteFunc(old, func(p int32) bool { return slices.Contains(h.handed[m.ID], p) })
			kept := 0
			for _, p := range old {
				if targets[p] == m.ID {
					kept++
				}
			}
			if want := min(len(old), n/k); kept < want {
				h.fatalf(step, op, "%s kept %d of its %d partitions, fair share %d", m.ID, kept, len(old), n/k)
			}
		}
	}

	// Revocations are minimal: as many as the owned counts force.
	if k > 0 {
		owned := make([]int, 0, k)
		revoking := 0
		for _, m := range d.Members {
			owned = append(owned, len(m.Owned)+len(m.Revoking))
			revoking += len(m.Revoking)
		}
		if want := minRevocations(owned, n); revoking != want {
			h.fatalf(step, op, "%d revocations, owned counts %v over %d partitions need %d", revoking, owned, n, want)
		}
	}

	h.lastGen = d.Generation
	h.bumps = 0
	clear(h.replaced)
	clear(h.gone)
	clear(h.handed)
	h.prevTargets = targets
	clear(h.prevOwned)
	for _, m := range d.Members {
		held := slices.Clone(m.Owned)
		for _, r := range m.Revoking {
			held = append(held, r.Partition)
		}
		h.prevOwned[m.ID] = held
	}
}

// minRevocations is the fewest owned partitions that must move for a balanced assignment of n
// partitions over members owning the given counts: each member can keep ⌊n/k⌋, and n mod k of
// them one more.
func minRevocations(owned []int, n int) int {
	k := len(owned)
	base, extra := n/k, n%k
	over, moves := 0, 0
	for _, o := range owned {
		if o > base {
			moves += o - base
			over++
		}
	}
	return moves - min(extra, over)
}

// checkSettled verifies the state once every revocation is confirmed: every partition owned by
// exactly one member (when there are members) and owned counts balanced.
func (h *harness) checkSettled(step int) {
	h.t.Helper()
	d := h.c.Describe()
	k := len(d.Members)
	if k == 0 {
		if len(d.Unassigned) != d.Partitions {
			h.fatalf(step, "settle", "no members but %d of %d partitions unassigned", len(d.Unassigned), d.Partitions)
		}
		return
	}
	total := 0
	for _, m := range d.Members {
		if len(m.Revoking) > 0 || len(m.Pending) > 0 {
			h.fatalf(step, "settle", "%s still revoking %v pending %v", m.ID, m.Revoking, m.Pending)
		}
		if c := len(m.Owned); c < d.Partitions/k || c > (d.Partitions+k-1)/k {
			h.fatalf(step, "settle", "%s owns %d of %d partitions over %d members", m.ID, c, d.Partitions, k)
		}
		total += len(m.Owned)
	}
	if total != d.Partitions {
		h.fatalf(step, "settle", "%d of %d partitions owned", total, d.Partitions)
	}
}
