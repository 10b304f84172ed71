package queue

import (
	"cmp"
	"slices"
	"time"
)

// Error texts recorded when a lease ends without a nack.
const (
	ErrTextLeaseExpired = "lease expired"
	ErrTextMemberLeft   = "member left"
)

func (p *partition) Poll(now time.Time, member string, limit int) ([]Lease, Effects) {
	p.clock(now)
	var eff Effects
	p.advance(&eff)
	n := min(limit, p.cfg.MaxInFlight-p.nLeased)
	if member == "" || n <= 0 || p.nReady == 0 {
		return nil, eff
	}
	out := make([]Lease, 0, min(n, p.nReady))
	for len(out) < n {
		t, ok := p.readyH.top()
		if !ok {
			break
		}
		s := t.slot
		e := &p.slab[s]
		switch {
		case e.expires > 0 && e.expires <= p.now:
			p.emitExpired(e.off, e.deliveries, e.lastErr, &eff)
			p.finish(s)
		case e.deliveries >= p.cfg.MaxDeliveries:
			// Restored with every delivery used: never delivered again.
			p.deadLetter(s, ReasonMaxDeliveries, e.lastErr, &eff)
		default:
			p.lease(s, member)
			out = append(out, p.leaseOf(s))
		}
	}
	return out, eff
}

// lease hands the ready entry s to member.
func (p *partition) lease(s int32, member string) {
	p.detach(s)
	p.ttlOff(s)
	e := &p.slab[s]
	e.deliveries++
	if e.first == 0 {
		e.first = p.now
	}
	e.member = member
	e.leasedNs = p.nowNs
	e.due = addMs(p.now, p.ackMs)
	if p.obs != nil {
		p.obs.Leased(e.avail, e.deliveries, p.nowNs)
	}
	p.attach(s, stLeased)
	if e.joined {
		p.keys[e.keyHash].leased = s
	}
}

func (p *partition) leaseOf(s int32) Lease {
	e := &p.slab[s]
	return Lease{Offset: e.off, Member: e.member, DeliveryCount: e.deliveries, FirstDeliveredAt: e.first, Deadline: e.due}
}

// leased returns the slot of off if member holds a live lease on it.
func (p *partition) leased(member string, off int64) (int32, bool) {
	s, ok := p.index[off]
	if !ok {
		return 0, false
	}
	e := &p.slab[s]
	if e.state != stLeased || e.member != member || e.due <= p.now {
		return 0, false
	}
	return s, true
}

func (p *partition) Ack(now time.Time, member string, offsets []int64) ([]int64, Effects) {
	p.clock(now)
	var stale []int64
	for _, off := range offsets {
		s, ok := p.leased(member, off)
		if !ok {
			stale = append(stale, off)
			continue
		}
		if p.obs != nil {
			p.obs.Acked(p.slab[s].avail, p.slab[s].leasedNs, p.nowNs)
		}
		p.finish(s)
	}
	return stale, Effects{}
}

func (p *partition) Missing(now time.Time, member string, offset int64) bool {
	p.clock(now)
	s, ok := p.leased(member, offset)
	if ok {
		p.finish(s)
	}
	return ok
}

func (p *partition) Nack(now time.Time, member string, offset int64, delay time.Duration, errText string) (bool, Effects) {
	p.clock(now)
	var eff Effects
	s, ok := p.leased(member, offset)
	if !ok {
		return false, eff
	}
	ms := int64(-1)
	if delay >= 0 {
		ms = ceilMs(delay)
	}
	p.endLease(s, errText, ms, &eff)
	return true, eff
}

func (p *partition) Extend(now time.Time, member string, offset int64, d time.Duration) (Lease, bool) {
	p.clock(now)
	s, ok := p.leased(member, offset)
	if !ok {
		return Lease{}, false
	}
	if d <= 0 {
		d = p.cfg.AckTimeout
	}
	p.detach(s)
	p.slab[s].due = addMs(p.now, ceilMs(min(d, max(MaxExtend, p.cfg.AckTimeout))))
	p.attach(s, stLeased)
	return p.leaseOf(s), true
}

func (p *partition) Reject(now time.Time, member string, offset int64, errText string) (bool, Effects) {
	p.clock(now)
	var eff Effects
	s, ok := p.leased(member, offset)
	if !ok {
		return false, eff
	}
	if errText != "" {
		p.slab[s].lastErr = truncateText(errText, p.cfg.MaxErrorLen)
	}
	p.deadLetter(s, ReasonRejected, p.slab[s].lastErr, &eff)
	return true, eff
}

func (p *partition) Release(now time.Time, member string) Effects {
	p.clock(now)
	var eff Effects
	var slots []int32
	for _, it := range p.leaseH.items {
		if p.slab[it.slot].member == member {
			slots = append(slots, it.slot)
		}
	}
	slices.SortFunc(slots, func(a, b int32) int { return cmp.Compare(p.slab[a].off, p.slab[b].off) })
	for _, s := range slots {
		p.endLease(s, ErrTextMemberLeft, -1, &eff)
	}
	return eff
}

func (p *partition) Tick(now time.Time) Effects {
	p.clock(now)
	var eff Effects
	p.advance(&eff)
	return eff
}

// advance does what is due by now: lease expiries, then TTL expiries, then
// waiting messages becoming ready (each in (time, offset) order).
func (p *partition) advance(eff *Effects) {
	for {
		t, ok := p.leaseH.top()
		if !ok || t.at > p.now {
			break
		}
		eff.Expired = append(eff.Expired, p.leaseOf(t.slot))
		p.endLease(t.slot, ErrTextLeaseExpired, -1, eff)
	}
	for {
		t, ok := p.ttlH.top()
		if !ok || t.at > p.now {
			break
		}
		e := &p.slab[t.slot]
		p.emitExpired(e.off, e.deliveries, e.lastErr, eff)
		p.finish(t.slot)
	}
	for {
		t, ok := p.waitH.top()
		if !ok || t.at > p.now {
			break
		}
		p.detach(t.slot)
		p.place(t.slot)
	}
	if p.carryUntil != 0 && p.now >= p.carryUntil {
		p.parkedCounts, p.carryUntil = nil, 0
	}
}

// endLease ends the lease of s like a nack: dead-letter past MaxDeliveries,
// expire past the TTL, else redeliver after delayMs (< 0: the backoff),
// parking the message if that is beyond the horizon.
func (p *partition) endLease(s int32, errText string, delayMs int64, eff *Effects) {
	e := &p.slab[s]
	e.lastErr = truncateText(errText, p.cfg.MaxErrorLen)
	e.member = ""
	if e.deliveries >= p.cfg.MaxDeliveries {
		p.deadLetter(s, ReasonMaxDeliveries, e.lastErr, eff)
		return
	}
	if e.expires > 0 && e.expires <= p.now {
		p.emitExpired(e.off, e.deliveries, e.lastErr, eff)
		p.finish(s)
		return
	}
	if delayMs < 0 {
		delayMs = ceilMs(p.cfg.Backoff.Delay(e.deliveries, p.rng))
	}
	p.detach(s)
	if e.joined {
		p.keys[e.keyHash].leased = -1
	}
	due := addMs(p.now, delayMs)
	if back := parkDue(due, e.expires); back > addMs(p.now, p.horizonMs) && !p.ordered(e) {
		eff.Parked = append(eff.Parked, Parked{
			Offset: e.off, Due: back, DeliveryCount: e.deliveries,
			FirstDeliveredAt: e.first, LastError: e.lastErr,
			KeyHash: e.keyHash, HasKey: e.hasKey, ExpiresAt: e.expires,
		})
		p.finish(s)
		return
	}
	e.due = due
	p.ttlOn(s)
	p.place(s)
}

// deadLetter finishes s with a DeadLetter effect.
func (p *partition) deadLetter(s int32, r Reason, lastErr string, eff *Effects) {
	e := &p.slab[s]
	eff.DeadLetters = append(eff.DeadLetters, DeadLetter{Offset: e.off, Reason: r, DeliveryCount: e.deliveries, LastError: lastErr})
	p.finish(s)
}

func (p *partition) LeaseCounts() map[string]int {
	out := map[string]int{}
	for _, it := range p.leaseH.items {
		if e := &p.slab[it.slot]; e.state == stLeased {
			out[e.member]++
		}
	}
	return out
}
