package queue

// keyQ is the order of one key (OrderKey mode): its joined entries by offset
// and its lease. Only the lowest joined offset may be ready, and only while
// no entry of the key is leased.
type keyQ struct {
	h      iheap
	leased int32 // slot of the key's leased entry, or -1
}

// keyOf returns the queue of key k, creating it.
func (p *partition) keyOf(k uint64) *keyQ {
	if q := p.keys[k]; q != nil {
		return q
	}
	var q *keyQ
	if n := len(p.spareKeys); n > 0 {
		q = p.spareKeys[n-1]
		p.spareKeys = p.spareKeys[:n-1]
	} else {
		q = &keyQ{h: iheap{which: posKey}}
	}
	q.leased = -1
	p.keys[k] = q
	return q
}

// join enters entry s into its key's order; a ready head displaced by a
// lower offset goes back to blocked.
func (p *partition) join(s int32) {
	e := &p.slab[s]
	q := p.keyOf(e.keyHash)
	if t, ok := q.h.top(); ok && e.off < t.off && p.slab[t.slot].state == stReady {
		p.detach(t.slot)
		p.attach(t.slot, stBlocked)
	}
	q.h.push(p.slab, item{at: e.off, off: e.off, slot: s})
	e.joined = true
}

// leave takes entry s out of its key's order and lets the next one go.
func (p *partition) leave(s int32) {
	e := &p.slab[s]
	q := p.keys[e.keyHash]
	if q == nil {
		return
	}
	if i := e.pos[posKey]; i >= 0 {
		q.h.remove(p.slab, int(i))
	}
	e.joined = false
	if q.leased == s {
		q.leased = -1
	}
	p.refreshKey(e.keyHash)
}

// refreshKey makes key k's head ready when it is blocked and the key has no
// lease; an empty key is forgotten.
func (p *partition) refreshKey(k uint64) {
	q := p.keys[k]
	if q == nil || q.leased >= 0 {
		return
	}
	t, ok := q.h.top()
	if !ok {
		delete(p.keys, k)
		if cap(q.h.items) <= 64 {
			q.h.items = q.h.items[:0]
			p.spareKeys = append(p.spareKeys, q)
		}
		return
	}
	if p.slab[t.slot].state == stBlocked {
		p.detach(t.slot)
		p.attach(t.slot, stReady)
	}
}
