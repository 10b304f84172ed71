package queue

import (
	"math/rand/v2"
	"slices"
	"time"
)

// model is the reference for the property test: the same contract written
// as plainly as possible (maps and scans, states derived on demand).
type model struct {
	cfg          Config
	rng          *rand.Rand
	now          int64
	seen         bool
	msgs         map[int64]*mmsg
	cursor       int64
	ahead        map[int64]bool // done offsets at or above the cursor
	mainCounts   map[int64]Count
	parkedCounts map[int64]Count
	carryUntil   int64
}

type mmsg struct {
	off, ts, expires, due, first int64 // due: waiting until then (0: not waiting)
	key                          uint64
	hasKey, joined, outside      bool
	deliveries                   int
	lastErr, member              string
	leased                       bool
	deadline                     int64
}

func newModel(cfg Config, snap Snapshot, rng *rand.Rand) *model {
	m := &model{cfg: cfg.WithDefaults(), rng: rng, msgs: map[int64]*mmsg{}, cursor: snap.Floor,
		ahead: map[int64]bool{}, mainCounts: map[int64]Count{}, parkedCounts: map[int64]Count{}}
	for _, r := range snap.Done {
		for o := max(r[0], snap.Floor); o < r[1]; o++ {
			m.ahead[o] = true
		}
	}
	m.skipAhead()
	for o, c := range snap.Counts {
		switch {
		case c.Deliveries <= 0 || o < 0:
		case o < m.cursor || m.ahead[o]:
			m.parkedCounts[o] = c
		default:
			m.mainCounts[o] = c
		}
	}
	return m
}

func (m *model) skipAhead() {
	for m.ahead[m.cursor] {
		delete(m.ahead, m.cursor)
		m.cursor++
	}
	for o := range m.ahead {
		if o < m.cursor {
			delete(m.ahead, o)
		}
	}
}

func (m *model) clock(now time.Time) {
	if ms := now.UnixMilli(); !m.seen || ms > m.now {
		m.now = ms
	}
	if !m.seen && len(m.parkedCounts) > 0 {
		m.carryUntil = m.now + m.cfg.ParkHorizon.Milliseconds()
	}
	m.seen = true
}

// setConfig is SetConfig: every later decision reads m.cfg.
func (m *model) setConfig(cfg Config) { m.cfg = cfg.WithDefaults() }

func (m *model) ordered(x *mmsg) bool { return m.cfg.Ordering == OrderKey && x.hasKey }

func (m *model) floor() int64 {
	f := m.cursor
	for _, x := range m.msgs {
		if !x.outside && x.off < f {
			f = x.off
		}
	}
	return f
}

// ready derives whether x can be leased now.
func (m *model) ready(x *mmsg) bool {
	if x.leased || x.due != 0 {
		return false
	}
	if !m.ordered(x) {
		return true
	}
	for _, y := range m.msgs {
		if y.hasKey && y.key == x.key && y.joined && (y.leased || y.off < x.off) {
			return false
		}
	}
	return x.joined
}

func (m *model) sorted(pick func(x *mmsg) (int64, bool)) []*mmsg {
	var out []*mmsg
	for _, x := range m.msgs {
		if _, ok := pick(x); ok {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b *mmsg) int {
		ka, _ := pick(a)
		kb, _ := pick(b)
		if ka != kb {
			return cmpI(ka, kb)
		}
		return cmpI(a.off, b.off)
	})
	return out
}

func cmpI(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *model) expire(x *mmsg, eff *Effects) {
	if m.cfg.OnExpired == ExpireDrop {
		eff.Dropped = append(eff.Dropped, x.off)
	} else {
		eff.DeadLetters = append(eff.DeadLetters, DeadLetter{Offset: x.off, Reason: ReasonExpired, DeliveryCount: x.deliveries, LastError: x.lastErr})
	}
	delete(m.msgs, x.off)
}

func (m *model) advance(eff *Effects) {
	for _, x := range m.sorted(func(x *mmsg) (int64, bool) { return x.deadline, x.leased && x.deadline <= m.now }) {
		eff.Expired = append(eff.Expired, m.lease(x))
		m.endLease(x, ErrTextLeaseExpired, -1, eff)
	}
	for _, x := range m.sorted(func(x *mmsg) (int64, bool) {
		return x.expires, !x.leased && x.expires > 0 && x.expires <= m.now
	}) {
		m.expire(x, eff)
	}
	for _, x := range m.msgs {
		if !x.leased && x.due != 0 && x.due <= m.now {
			x.due = 0
			x.joined = m.ordered(x)
		}
	}
	if m.carryUntil != 0 && m.now >= m.carryUntil {
		m.parkedCounts, m.carryUntil = map[int64]Count{}, 0
	}
}

func (m *model) lease(x *mmsg) Lease {
	return Lease{Offset: x.off, Member: x.member, DeliveryCount: x.deliveries, FirstDeliveredAt: x.first, Deadline: x.deadline}
}

func (m *model) parked(x *mmsg, due int64) Parked {
	if x.expires > 0 && x.expires < due {
		due = x.expires
	}
	return Parked{Offset: x.off, Due: due, DeliveryCount: x.deliveries, FirstDeliveredAt: x.first,
		LastError: x.lastErr, KeyHash: x.key, HasKey: x.hasKey, ExpiresAt: x.expires}
}

func (m *model) endLease(x *mmsg, errText string, delayMs int64, eff *Effects) {
	x.leased, x.member, x.deadline = false, "", 0
	x.lastErr = truncateText(errText, m.cfg.MaxErrorLen)
	switch {
	case x.deliveries >= m.cfg.MaxDeliveries:
		eff.DeadLetters = append(eff.DeadLetters, DeadLetter{Offset: x.off, Reason: ReasonMaxDeliveries, DeliveryCount: x.deliveries, LastError: x.lastErr})
		delete(m.msgs, x.off)
		return
	case x.expires > 0 && x.expires <= m.now:
		m.expire(x, eff)
		return
	}
	if delayMs < 0 {
		delayMs = ceilMs(m.cfg.Backoff.Delay(x.deliveries, m.rng))
	}
	due := m.now + delayMs
	if pk := m.parked(x, due); pk.Due > m.now+m.cfg.ParkHorizon.Milliseconds() && !m.ordered(x) {
		eff.Parked = append(eff.Parked, pk)
		delete(m.msgs, x.off)
		return
	}
	x.due = 0
	if due > m.now {
		x.due = due
	}
}

func (m *model) admit(x *mmsg, due int64, eff *Effects) {
	if x.expires < 0 {
		x.expires = 0
	}
	if !x.hasKey {
		x.key = 0
	}
	x.lastErr = truncateText(x.lastErr, m.cfg.MaxErrorLen)
	if x.expires > 0 && x.expires <= m.now {
		m.expire(x, eff)
		return
	}
	keep := m.ordered(x) && x.deliveries > 0
	if pk := m.parked(x, due); pk.Due > m.now+m.cfg.ParkHorizon.Milliseconds() && !keep {
		eff.Parked = append(eff.Parked, pk)
		return
	}
	m.msgs[x.off] = x
	if due > m.now {
		x.due = due
		x.joined = keep
	} else {
		x.joined = m.ordered(x)
	}
}

func (m *model) offer(now time.Time, msgs []Msg) Effects {
	m.clock(now)
	var eff Effects
	for _, g := range msgs {
		if g.Offset < m.cursor || g.Offset == maxOffset {
			continue
		}
		skip := m.ahead[g.Offset]
		m.cursor = g.Offset + 1
		m.skipAhead()
		c, claimed := m.mainCounts[g.Offset]
		for o := range m.mainCounts {
			if o <= g.Offset {
				delete(m.mainCounts, o)
			}
		}
		if _, tracked := m.msgs[g.Offset]; skip || tracked {
			continue
		}
		if !claimed {
			c = Count{}
		}
		x := &mmsg{off: g.Offset, ts: g.Timestamp, expires: g.ExpiresAt, key: g.KeyHash, hasKey: g.HasKey,
			deliveries: c.Deliveries, first: c.FirstDeliveredAt, lastErr: c.LastError}
		m.admit(x, max(g.DeliverAt, 0), &eff)
	}
	for o := range m.mainCounts {
		if o < m.cursor {
			delete(m.mainCounts, o)
		}
	}
	return eff
}

func (m *model) unpark(now time.Time, pk Parked) Effects {
	m.clock(now)
	var eff Effects
	if _, tracked := m.msgs[pk.Offset]; tracked || pk.Offset < 0 || pk.Offset == maxOffset {
		return eff
	}
	c := Count{Deliveries: pk.DeliveryCount, FirstDeliveredAt: pk.FirstDeliveredAt, LastError: pk.LastError}
	for _, cs := range []map[int64]Count{m.parkedCounts, m.mainCounts} {
		if k, ok := cs[pk.Offset]; ok {
			delete(cs, pk.Offset)
			if k.Deliveries > c.Deliveries {
				c = k
			}
		}
	}
	if pk.Offset >= m.cursor {
		m.ahead[pk.Offset] = true
		m.skipAhead()
	}
	x := &mmsg{off: pk.Offset, ts: max(pk.Due, 0), expires: pk.ExpiresAt, key: pk.KeyHash, hasKey: pk.HasKey,
		deliveries: c.Deliveries, first: c.FirstDeliveredAt, lastErr: c.LastError, outside: true}
	m.admit(x, max(pk.Due, 0), &eff)
	return eff
}

func (m *model) poll(now time.Time, member string, limit int) ([]Lease, Effects) {
	m.clock(now)
	var eff Effects
	m.advance(&eff)
	var out []Lease
	for member != "" && len(out) < limit && m.count((*mmsg).isLeased) < m.cfg.MaxInFlight {
		cands := m.sorted(func(x *mmsg) (int64, bool) { return x.off, m.ready(x) })
		if len(cands) == 0 {
			break
		}
		x := cands[0]
		switch {
		case x.expires > 0 && x.expires <= m.now:
			m.expire(x, &eff)
		case x.deliveries >= m.cfg.MaxDeliveries:
			eff.DeadLetters = append(eff.DeadLetters, DeadLetter{Offset: x.off, Reason: ReasonMaxDeliveries, DeliveryCount: x.deliveries, LastError: x.lastErr})
			delete(m.msgs, x.off)
		default:
			x.leased, x.member, x.deadline = true, member, m.now+ceilMs(m.cfg.AckTimeout)
			x.deliveries++
			if x.first == 0 {
				x.first = m.now
			}
			out = append(out, m.lease(x))
		}
	}
	return out, eff
}

func (x *mmsg) isLeased() bool { return x.leased }

func (m *model) count(f func(*mmsg) bool) int {
	n := 0
	for _, x := range m.msgs {
		if f(x) {
			n++
		}
	}
	return n
}

func (m *model) held(member string, off int64) *mmsg {
	x := m.msgs[off]
	if x == nil || !x.leased || x.member != member || x.deadline <= m.now {
		return nil
	}
	return x
}

func (m *model) ack(now time.Time, member string, offs []int64) []int64 {
	m.clock(now)
	var stale []int64
	for _, o := range offs {
		if m.held(member, o) == nil {
			stale = append(stale, o)
			continue
		}
		delete(m.msgs, o)
	}
	return stale
}

func (m *model) nack(now time.Time, member string, off int64, delay time.Duration, errText string) (bool, Effects) {
	m.clock(now)
	var eff Effects
	x := m.held(member, off)
	if x == nil {
		return false, eff
	}
	ms := int64(-1)
	if delay >= 0 {
		ms = ceilMs(delay)
	}
	m.endLease(x, errText, ms, &eff)
	return true, eff
}

func (m *model) extend(now time.Time, member string, off int64, d time.Duration) (Lease, bool) {
	m.clock(now)
	x := m.held(member, off)
	if x == nil {
		return Lease{}, false
	}
	if d <= 0 {
		d = m.cfg.AckTimeout
	}
	x.deadline = m.now + ceilMs(min(d, max(MaxExtend, m.cfg.AckTimeout)))
	return m.lease(x), true
}

func (m *model) reject(now time.Time, member string, off int64, errText string) (bool, Effects) {
	m.clock(now)
	var eff Effects
	x := m.held(member, off)
	if x == nil {
		return false, eff
	}
	if errText != "" {
		x.lastErr = truncateText(errText, m.cfg.MaxErrorLen)
	}
	eff.DeadLetters = append(eff.DeadLetters, DeadLetter{Offset: off, Reason: ReasonRejected, DeliveryCount: x.deliveries, LastError: x.lastErr})
	delete(m.msgs, off)
	return true, eff
}

func (m *model) release(now time.Time, member string) Effects {
	m.clock(now)
	var eff Effects
	for _, x := range m.sorted(func(x *mmsg) (int64, bool) { return x.off, x.leased && x.member == member }) {
		m.endLease(x, ErrTextMemberLeft, -1, &eff)
	}
	return eff
}

func (m *model) tick(now time.Time) Effects {
	m.clock(now)
	var eff Effects
	m.advance(&eff)
	return eff
}

func (m *model) stats(now time.Time) Stats {
	m.clock(now)
	st := Stats{Floor: m.floor(), Cursor: m.cursor}
	main := 0
	for _, x := range m.msgs {
		if !x.outside {
			main++
		}
		switch {
		case x.leased:
			st.Leased++
		case x.due != 0:
			st.Waiting++
		case m.ready(x):
			st.Ready++
			if x.ts > 0 && (st.OldestReady == 0 || x.ts < st.OldestReady) {
				st.OldestReady = x.ts
			}
		default:
			st.Blocked++
		}
	}
	st.Done = int(st.Cursor-st.Floor) - main
	st.InFlightLimited = st.Leased >= m.cfg.MaxInFlight && st.Ready > 0
	st.TrackedLimited = main >= m.cfg.MaxTracked
	return st
}

func (m *model) want() (int, int64) {
	main := m.count(func(x *mmsg) bool { return !x.outside })
	return max(m.cfg.MaxTracked-main, 0), m.cursor
}

func (m *model) nextDeadline() (int64, bool) {
	at, ok := int64(0), false
	for _, x := range m.msgs {
		ts := []int64{x.deadline, x.due}
		if !x.leased {
			ts = append(ts, x.expires)
		}
		for _, t := range ts {
			if t > 0 && (!ok || t < at) {
				at, ok = t, true
			}
		}
	}
	return at, ok
}

func (m *model) snapshot() Snapshot {
	s := Snapshot{Floor: m.floor()}
	done := func(o int64) bool {
		if o >= m.cursor {
			return m.ahead[o]
		}
		x := m.msgs[o]
		return x == nil || x.outside
	}
	top := m.cursor
	for o := range m.ahead {
		top = max(top, o+1)
	}
	for o := s.Floor; o < top; o++ {
		if !done(o) {
			continue
		}
		if n := len(s.Done); n > 0 && s.Done[n-1][1] == o {
			s.Done[n-1][1]++
		} else {
			s.Done = append(s.Done, [2]int64{o, o + 1})
		}
	}
	add := func(o int64, c Count) {
		if s.Counts == nil {
			s.Counts = map[int64]Count{}
		}
		s.Counts[o] = c
	}
	for o, x := range m.msgs {
		if x.deliveries > 0 {
			add(o, Count{Deliveries: x.deliveries, FirstDeliveredAt: x.first, LastError: x.lastErr})
		}
	}
	for _, cs := range []map[int64]Count{m.mainCounts, m.parkedCounts} {
		for o, c := range cs {
			add(o, c)
		}
	}
	return s
}
