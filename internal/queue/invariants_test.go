package queue

import (
	"testing"
)

// checkInvariants verifies the internal consistency of p: heaps and their
// recorded positions, state counters, the floor, and key order.
func checkInvariants(t testing.TB, p *partition) {
	t.Helper()
	checkInvariantsLeased(t, p, p.cfg.MaxDeliveries)
}

// checkInvariantsLeased is checkInvariants where a leased message may have
// up to maxDeliveries deliveries: after SetConfig lowered MaxDeliveries,
// leases taken before keep their counts.
func checkInvariantsLeased(t testing.TB, p *partition, maxDeliveries int) {
	t.Helper()
	fail := func(format string, v ...any) {
		t.Helper()
		t.Fatalf("invariant: "+format, v...)
	}
	checkHeap := func(name string, h *iheap, want func(e *entry) (int64, bool)) {
		t.Helper()
		for i, it := range h.items {
			e := &p.slab[it.slot]
			if int(e.pos[h.which]) != i {
				fail("%s[%d]: entry %d records position %d", name, i, e.off, e.pos[h.which])
			}
			if at, ok := want(e); !ok || at != it.at || e.off != it.off {
				fail("%s[%d]: entry %d (state %d) does not belong (at %d, want %d %v)", name, i, e.off, e.state, it.at, at, ok)
			}
			if i > 0 && it.less(h.items[(i-1)/2]) {
				fail("%s[%d]: heap order broken", name, i)
			}
		}
	}
	checkHeap("ready", &p.readyH, func(e *entry) (int64, bool) { return e.off, e.state == stReady })
	checkHeap("waiting", &p.waitH, func(e *entry) (int64, bool) { return e.due, e.state == stWaiting })
	checkHeap("leases", &p.leaseH, func(e *entry) (int64, bool) { return e.due, e.state == stLeased })
	checkHeap("ttl", &p.ttlH, func(e *entry) (int64, bool) { return e.expires, e.expires > 0 && e.state != stLeased })

	var n [stLeased + 1]int
	main, ttl := 0, 0
	minMain := int64(-1)
	for off, s := range p.index {
		e := &p.slab[s]
		if e.off != off || e.state == stFree || e.state == stNone {
			fail("index %d → slot %d holds %d in state %d", off, s, e.off, e.state)
		}
		n[e.state]++
		if e.expires > 0 && e.state != stLeased {
			ttl++
		}
		if !e.outside {
			main++
			if off < p.floor || off >= p.cursor {
				fail("main entry %d outside [%d, %d)", off, p.floor, p.cursor)
			}
			if minMain < 0 || off < minMain {
				minMain = off
			}
		}
		if e.deliveries > maxDeliveries && e.state == stLeased {
			fail("entry %d leased with %d deliveries", off, e.deliveries)
		}
		if e.joined != (p.ordered(e) && e.pos[posKey] >= 0) {
			fail("entry %d joined=%v key position %d", off, e.joined, e.pos[posKey])
		}
		if p.ordered(e) && !e.joined && e.state != stWaiting {
			fail("keyed entry %d in state %d is not in its key's order", off, e.state)
		}
	}
	if n[stReady] != p.nReady || n[stWaiting] != p.nWaiting || n[stBlocked] != p.nBlocked || n[stLeased] != p.nLeased {
		fail("counters %d/%d/%d/%d, entries %v", p.nReady, p.nWaiting, p.nBlocked, p.nLeased, n)
	}
	if ttl != len(p.ttlH.items) {
		fail("%d entries with a TTL, %d in the ttl heap", ttl, len(p.ttlH.items))
	}
	if main != p.mainCount {
		fail("mainCount %d, counted %d", p.mainCount, main)
	}
	if want := p.cursor; minMain < 0 && p.floor != want || minMain >= 0 && p.floor != minMain {
		fail("floor %d, lowest main entry %d, cursor %d", p.floor, minMain, p.cursor)
	}
	if len(p.ahead) > 0 && p.ahead[0][0] <= p.cursor {
		fail("done range %v not past the cursor %d", p.ahead[0], p.cursor)
	}
	if len(p.slab) != len(p.index)+len(p.free) {
		fail("slab %d, index %d, free %d", len(p.slab), len(p.index), len(p.free))
	}
	for k, q := range p.keys {
		if q.h.len() == 0 {
			fail("key %x kept empty", k)
		}
		active := 0
		for i, it := range q.h.items {
			e := &p.slab[it.slot]
			if e.keyHash != k || !e.joined || int(e.pos[posKey]) != i {
				fail("key %x holds entry %d of key %x (position %d, at %d)", k, e.off, e.keyHash, e.pos[posKey], i)
			}
			if i > 0 && it.less(q.h.items[(i-1)/2]) {
				fail("key %x: heap order broken", k)
			}
			switch e.state {
			case stReady:
				active++
				if i != 0 || q.leased >= 0 {
					fail("key %x: entry %d ready but not the free head", k, e.off)
				}
			case stLeased:
				active++
				if q.leased != it.slot {
					fail("key %x: entry %d leased, key records slot %d", k, e.off, q.leased)
				}
			case stBlocked:
				if i == 0 && q.leased < 0 {
					fail("key %x: head %d blocked with no lease", k, e.off)
				}
			}
		}
		if active > 1 {
			fail("key %x: %d entries ready or leased", k, active)
		}
	}
}
