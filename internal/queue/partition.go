package queue

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

const maxOffset = math.MaxInt64

// partition implements Partition.
//
// Every tracked offset is an entry in a slab (slots reused through a free
// list, no allocation per message in the steady state) found by offset in
// index. Entries that are ready, waiting or leased sit in an indexed binary
// heap each (ready by offset, waiting by due time, leased by deadline), and
// entries with a TTL in a fourth, by expiry; each entry records its heap
// positions, so every transition is O(log n) and nothing is deleted lazily.
// In key order each key has a heap of its entries by offset. The floor is
// the head of q, the main range's offsets in arrival order, from which
// finished ones are dropped lazily (amortized O(1), compacted to O(tracked)).
type partition struct {
	cfg       Config
	rng       *rand.Rand
	ackMs     int64 // AckTimeout in ms
	horizonMs int64 // ParkHorizon in ms
	now       int64 // latest time seen, ms
	nowNs     int64 // the time of the current call, ns (for the observer only)
	obs       Observer
	seen      bool // now was set

	slab  []entry
	free  []int32
	index map[int64]int32 // offset → slot of every tracked entry

	// The main range [floor, cursor): its tracked offsets in order (finished
	// ones leave lazily); everything else in it is done.
	q         []qitem
	qhead     int
	mainCount int
	floor     int64
	cursor    int64
	ahead     [][2]int64 // done ranges at or above the cursor (restored, or unparked there)

	readyH, waitH, leaseH, ttlH iheap
	keys                        map[uint64]*keyQ
	spareKeys                   []*keyQ

	nReady, nWaiting, nBlocked, nLeased int

	// Restored delivery counts not yet claimed: mainCounts by Offer (sorted
	// offsets in mainOffs, dropped when the cursor passes them), parkedCounts
	// by Unpark (dropped at carryUntil, a park horizon after the first call).
	mainCounts   map[int64]Count
	mainOffs     []int64
	parkedCounts map[int64]Count
	carryUntil   int64
}

var _ Partition = (*partition)(nil)

func newPartition(cfg Config, snap Snapshot, rng *rand.Rand) (Partition, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if snap.Floor < 0 {
		return nil, fmt.Errorf("queue: snapshot floor %d is negative", snap.Floor)
	}
	cfg = cfg.WithDefaults()
	p := &partition{
		cfg:       cfg,
		rng:       rng,
		ackMs:     ceilMs(cfg.AckTimeout),
		horizonMs: ceilMs(cfg.ParkHorizon),
		index:     make(map[int64]int32),
		keys:      make(map[uint64]*keyQ),
		readyH:    iheap{which: posState},
		waitH:     iheap{which: posState},
		leaseH:    iheap{which: posState},
		ttlH:      iheap{which: posTTL},
		cursor:    snap.Floor,
	}
	p.ahead = normalizeRanges(snap.Done, snap.Floor)
	p.skipAhead()
	p.floor = p.cursor
	for off, c := range snap.Counts {
		if c.Deliveries <= 0 || off < 0 {
			continue
		}
		if off < p.floor || p.inAhead(off) {
			if p.parkedCounts == nil {
				p.parkedCounts = make(map[int64]Count)
			}
			p.parkedCounts[off] = c
			continue
		}
		if p.mainCounts == nil {
			p.mainCounts = make(map[int64]Count)
		}
		p.mainCounts[off] = c
		p.mainOffs = append(p.mainOffs, off)
	}
	slices.Sort(p.mainOffs)
	return p, nil
}

// ceilMs converts d to whole milliseconds, rounding up.
func ceilMs(d time.Duration) int64 {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond > 0 {
		ms++
	}
	return ms
}

// addMs returns t + d without overflowing.
func addMs(t, d int64) int64 {
	if d > 0 && t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

// clock records now; time never goes back.
func (p *partition) clock(now time.Time) {
	p.nowNs = now.UnixNano()
	ms := now.UnixMilli()
	if !p.seen || ms > p.now {
		p.now = ms
	}
	if !p.seen && len(p.parkedCounts) > 0 {
		p.carryUntil = addMs(p.now, p.horizonMs)
	}
	p.seen = true
}

func (p *partition) Observe(o Observer) { p.obs = o }

func (p *partition) Limited() (bool, int64) {
	return p.nLeased >= p.cfg.MaxInFlight && p.nReady > 0, p.floor
}

func (p *partition) Want() (int, int64) {
	return max(p.cfg.MaxTracked-p.mainCount, 0), p.cursor
}

func (p *partition) Offer(now time.Time, msgs []Msg) Effects {
	p.clock(now)
	var eff Effects
	for _, m := range msgs {
		if m.Offset < p.cursor || m.Offset == maxOffset {
			continue
		}
		skip := p.inAhead(m.Offset)
		p.cursor = m.Offset + 1
		p.skipAhead()
		c, claimed := p.claimMain(m.Offset)
		if skip {
			continue
		}
		if _, tracked := p.index[m.Offset]; tracked {
			continue
		}
		if !claimed {
			c = Count{}
		}
		p.admit(m.Offset, m.KeyHash, m.HasKey, m.Timestamp, max(m.DeliverAt, 0), m.ExpiresAt, c, false, &eff)
	}
	p.dropMainCounts(p.cursor)
	p.advanceFloor()
	return eff
}

// claimMain takes the restored count of off, dropping those below it.
func (p *partition) claimMain(off int64) (Count, bool) {
	p.dropMainCounts(off)
	if len(p.mainOffs) == 0 || p.mainOffs[0] != off {
		return Count{}, false
	}
	c := p.mainCounts[off]
	delete(p.mainCounts, off)
	p.mainOffs = p.mainOffs[1:]
	return c, true
}

// dropMainCounts forgets restored counts of offsets below off (gone from the log).
func (p *partition) dropMainCounts(off int64) {
	for len(p.mainOffs) > 0 && p.mainOffs[0] < off {
		delete(p.mainCounts, p.mainOffs[0])
		p.mainOffs = p.mainOffs[1:]
	}
}

// admit starts tracking a message (or finishes or parks it at once).
func (p *partition) admit(off int64, keyHash uint64, hasKey bool, ts, due, expires int64, c Count, outside bool, eff *Effects) {
	if expires < 0 {
		expires = 0
	}
	if !hasKey {
		keyHash = 0
	}
	lastErr := truncateText(c.LastError, p.cfg.MaxErrorLen)
	if expires > 0 && expires <= p.now {
		p.emitExpired(off, c.Deliveries, lastErr, eff)
		return
	}
	keepOrder := p.cfg.Ordering == OrderKey && hasKey && c.Deliveries > 0
	if back := parkDue(due, expires); back > addMs(p.now, p.horizonMs) && !keepOrder {
		eff.Parked = append(eff.Parked, Parked{
			Offset: off, Due: back, DeliveryCount: c.Deliveries,
			FirstDeliveredAt: c.FirstDeliveredAt, LastError: lastErr,
			KeyHash: keyHash, HasKey: hasKey, ExpiresAt: expires,
		})
		return
	}
	s := p.alloc(off)
	e := &p.slab[s]
	e.ts, e.expires, e.due = ts, expires, due
	e.avail = max(ts, due)
	e.keyHash, e.hasKey = keyHash, hasKey
	e.deliveries, e.first, e.lastErr = max(c.Deliveries, 0), c.FirstDeliveredAt, lastErr
	e.outside = outside
	if !outside {
		p.q = append(p.q, qitem{off: off, slot: s})
		p.mainCount++
	}
	p.ttlOn(s)
	p.place(s)
}

// parkDue is when a parked message must come back: when due, or when it
// expires if that is earlier (it is then expired on its return).
func parkDue(due, expires int64) int64 {
	if expires > 0 && expires < due {
		return expires
	}
	return due
}

// emitExpired reports an expired message per OnExpired.
func (p *partition) emitExpired(off int64, deliveries int, lastErr string, eff *Effects) {
	if p.cfg.OnExpired == ExpireDrop {
		eff.Dropped = append(eff.Dropped, off)
		return
	}
	eff.DeadLetters = append(eff.DeadLetters, DeadLetter{
		Offset: off, Reason: ReasonExpired, DeliveryCount: deliveries, LastError: lastErr,
	})
}

func (p *partition) Unpark(now time.Time, pk Parked) Effects {
	p.clock(now)
	var eff Effects
	if pk.Offset < 0 || pk.Offset == maxOffset {
		return eff
	}
	if _, tracked := p.index[pk.Offset]; tracked {
		return eff
	}
	c := Count{Deliveries: pk.DeliveryCount, FirstDeliveredAt: pk.FirstDeliveredAt, LastError: pk.LastError}
	for _, m := range []map[int64]Count{p.parkedCounts, p.mainCounts} {
		if k, ok := m[pk.Offset]; ok {
			delete(m, pk.Offset)
			if k.Deliveries > c.Deliveries {
				c = k
			}
		}
	}
	// At or above the cursor the offset is parked as far as the main
	// range goes: reading the log must not deliver it a second time.
	p.addAhead(pk.Offset)
	// Parked does not carry the publish time: Due stands in for it (Stats).
	p.admit(pk.Offset, pk.KeyHash, pk.HasKey, max(pk.Due, 0), max(pk.Due, 0), pk.ExpiresAt, c, true, &eff)
	return eff
}

func (p *partition) Snapshot() Snapshot {
	snap := Snapshot{Floor: p.floor, Done: p.doneRanges()}
	add := func(off int64, c Count) {
		if snap.Counts == nil {
			snap.Counts = make(map[int64]Count)
		}
		snap.Counts[off] = c
	}
	for off, s := range p.index {
		if e := &p.slab[s]; e.deliveries > 0 {
			add(off, Count{Deliveries: e.deliveries, FirstDeliveredAt: e.first, LastError: e.lastErr})
		}
	}
	for _, m := range []map[int64]Count{p.mainCounts, p.parkedCounts} {
		for off, c := range m {
			add(off, c)
		}
	}
	return snap
}

func (p *partition) Stats(now time.Time) Stats {
	p.clock(now)
	st := Stats{
		Floor: p.floor, Cursor: p.cursor,
		Ready: p.nReady, Waiting: p.nWaiting, Blocked: p.nBlocked, Leased: p.nLeased,
		Done:            int(p.cursor-p.floor) - p.mainCount,
		InFlightLimited: p.nLeased >= p.cfg.MaxInFlight && p.nReady > 0,
		TrackedLimited:  p.mainCount >= p.cfg.MaxTracked,
	}
	for _, it := range p.readyH.items {
		if ts := p.slab[it.slot].ts; ts > 0 && (st.OldestReady == 0 || ts < st.OldestReady) {
			st.OldestReady = ts
		}
	}
	return st
}

func (p *partition) NextDeadline() (time.Time, bool) {
	at, ok := int64(0), false
	for _, h := range []*iheap{&p.leaseH, &p.waitH, &p.ttlH} {
		if t, has := h.top(); has && (!ok || t.at < at) {
			at, ok = t.at, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(at), true
}

func (p *partition) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	switch {
	case cfg.Ordering != p.cfg.Ordering:
		return fmt.Errorf("queue: Ordering cannot change (from %d to %d)", p.cfg.Ordering, cfg.Ordering)
	case cfg.ParkHorizon != p.cfg.ParkHorizon:
		return fmt.Errorf("queue: ParkHorizon cannot change (from %v to %v)", p.cfg.ParkHorizon, cfg.ParkHorizon)
	}
	p.cfg = cfg
	p.ackMs = ceilMs(cfg.AckTimeout)
	return nil
}
