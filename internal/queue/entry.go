package queue

import (
	"strings"
	"unicode/utf8"
)

// state is where a tracked entry is; stFree marks an unused slab slot and
// stNone a tracked entry between two states (inside one call only).
type state uint8

const (
	stFree state = iota
	stNone
	stReady
	stWaiting
	stBlocked
	stLeased
)

// entry is one tracked offset. Entries live in a slab and are referred to by
// slot; heaps record their index in pos so that removal is O(log n).
type entry struct {
	off        int64
	ts         int64 // publish time, ms
	expires    int64 // ms; 0 = never
	due        int64 // waiting: due time; leased: lease deadline; else 0
	first      int64 // first delivery, ms; 0 = never delivered
	leasedNs   int64 // when the current lease began, ns (for the observer only)
	avail      int64 // when it became deliverable, ms: publish time or deliver-at, the later (for the observer only)
	keyHash    uint64
	member     string // the lease holder while leased
	lastErr    string
	deliveries int
	pos        [numPos]int32
	state      state
	hasKey     bool
	joined     bool // in its key's order (key heap)
	outside    bool // unparked: not part of [floor, cursor), does not hold the floor
}

// alloc returns a fresh slot for offset off, registered in the index.
func (p *partition) alloc(off int64) int32 {
	var s int32
	if n := len(p.free); n > 0 {
		s = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		p.slab = append(p.slab, entry{})
		s = int32(len(p.slab) - 1)
	}
	p.slab[s] = entry{off: off, state: stNone, pos: [numPos]int32{-1, -1, -1}}
	p.index[off] = s
	return s
}

// release forgets a detached entry and frees its slot.
func (p *partition) release(s int32) {
	delete(p.index, p.slab[s].off)
	p.slab[s] = entry{off: -1}
	p.free = append(p.free, s)
}

// stateHeap is the heap holding entries in state st, if any.
func (p *partition) stateHeap(st state) *iheap {
	switch st {
	case stReady:
		return &p.readyH
	case stWaiting:
		return &p.waitH
	case stLeased:
		return &p.leaseH
	}
	return nil
}

// counter is the statistics counter of state st, if any.
func (p *partition) counter(st state) *int {
	switch st {
	case stReady:
		return &p.nReady
	case stWaiting:
		return &p.nWaiting
	case stBlocked:
		return &p.nBlocked
	case stLeased:
		return &p.nLeased
	}
	return nil
}

// detach takes entry s out of its state (to stNone).
func (p *partition) detach(s int32) {
	e := &p.slab[s]
	if h := p.stateHeap(e.state); h != nil {
		h.remove(p.slab, int(e.pos[posState]))
	}
	if c := p.counter(e.state); c != nil {
		*c--
	}
	e.state = stNone
}

// attach puts a detached entry s into state st; waiting and leased entries
// are ordered by e.due.
func (p *partition) attach(s int32, st state) {
	e := &p.slab[s]
	e.state = st
	switch st {
	case stReady:
		p.readyH.push(p.slab, item{at: e.off, off: e.off, slot: s})
	case stWaiting, stLeased:
		p.stateHeap(st).push(p.slab, item{at: e.due, off: e.off, slot: s})
	}
	if c := p.counter(st); c != nil {
		*c++
	}
}

// ttlOn schedules the expiry of entry s (if it has a TTL and is not leased).
func (p *partition) ttlOn(s int32) {
	e := &p.slab[s]
	if e.expires > 0 && e.pos[posTTL] < 0 {
		p.ttlH.push(p.slab, item{at: e.expires, off: e.off, slot: s})
	}
}

// ttlOff cancels the scheduled expiry of entry s.
func (p *partition) ttlOff(s int32) {
	if i := p.slab[s].pos[posTTL]; i >= 0 {
		p.ttlH.remove(p.slab, int(i))
	}
}

// ordered reports whether entry e is subject to key order.
func (p *partition) ordered(e *entry) bool { return p.cfg.Ordering == OrderKey && e.hasKey }

// place puts a detached entry where its due time and key say: waiting if
// due later, else ready, or blocked behind its key.
func (p *partition) place(s int32) {
	e := &p.slab[s]
	ord := p.ordered(e)
	if e.due > p.now {
		// A redelivery wait keeps the key's order; a first deliver-at
		// delay joins the key only when due.
		if ord && !e.joined && e.deliveries > 0 {
			p.join(s)
		}
		p.attach(s, stWaiting)
		if e.joined {
			p.refreshKey(e.keyHash)
		}
		return
	}
	e.due = 0
	if !ord {
		p.attach(s, stReady)
		return
	}
	if !e.joined {
		p.join(s)
	}
	p.attach(s, stBlocked)
	p.refreshKey(e.keyHash)
}

// finish forgets entry s (acked, dead-lettered, dropped or parked) and
// advances the floor.
func (p *partition) finish(s int32) {
	p.detach(s)
	p.ttlOff(s)
	e := &p.slab[s]
	if e.joined {
		p.leave(s)
	}
	outside := e.outside
	p.release(s)
	if !outside {
		p.mainCount--
		p.advanceFloor()
	}
}

// truncateText cuts s to at most n bytes at a character boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i])
}
