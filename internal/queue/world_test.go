package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// chooser drives a world: random (property test) or from bytes (fuzzing).
type chooser interface {
	intn(n int) int // in [0, n)
}

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

// byteChooser reads choices from fuzz input; zeros once it is used up.
type byteChooser struct {
	b []byte
	i int
}

func (c *byteChooser) intn(n int) int {
	if c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	if n > 256 && c.i < len(c.b) {
		v = v<<8 | int(c.b[c.i])
		c.i++
	}
	return v % n
}

func (c *byteChooser) done() bool { return c.i >= len(c.b) }

// stored is a schedule-store entry of the world's broker.
type stored struct {
	p      Parked
	handed bool // given back with Unpark, kept until finished or parked again
}

// world plays the broker around one Partition and its reference model,
// checking that they agree and that the contract's guarantees hold.
type world struct {
	t       testing.TB
	c       chooser
	cfg     Config
	seed    uint64
	restart uint64
	p       Partition
	m       *model
	t0, now time.Time

	log       []Msg // the partition log (offsets ascending, with gaps)
	logEnd    int64 // next offset the log assigns
	grow      bool  // the log may still grow
	keys      map[int64]Msg
	store     map[int64]*stored
	leases    map[int64]Lease
	finished  map[int64]string
	delivered map[int64]int
	floor     int64
	steps     int

	// crashes: restarts may go back to an older persisted snapshot, so
	// finished messages may come back (at-least-once); the checks that
	// need exactly-once are relaxed.
	crashes bool
	saved   Snapshot // the last persisted snapshot
	tally   map[string]int
	// maxDeliv is the largest MaxDeliveries configured so far: a message
	// leased before SetConfig lowered it keeps its count.
	maxDeliv int
}

func newWorld(t testing.TB, c chooser, cfg Config, seed uint64) *world {
	w := &world{t: t, c: c, cfg: cfg, seed: seed, grow: true,
		t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), keys: map[int64]Msg{},
		store: map[int64]*stored{}, tally: map[string]int{}, leases: map[int64]Lease{}, finished: map[int64]string{}, delivered: map[int64]int{}}
	w.now = w.t0
	w.maxDeliv = cfg.WithDefaults().MaxDeliveries
	p, err := New(cfg, Snapshot{}, rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.p, w.m = p, newModel(cfg, Snapshot{}, rand.New(rand.NewPCG(seed, 0)))
	return w
}

// randomConfig draws a configuration small enough that limits, backoff
// caps, parking and expiry all happen within a few thousand steps.
func randomConfig(c chooser) Config {
	cfg := Config{
		AckTimeout:    time.Duration(1+c.intn(20)) * time.Second,
		MaxDeliveries: 1 + c.intn(5),
		MaxInFlight:   1 + c.intn(12),
		MaxTracked:    3 + c.intn(60),
		ParkHorizon:   time.Duration(1+c.intn(30)) * time.Second,
		Ordering:      Ordering(c.intn(2)),
		OnExpired:     ExpiredAction(c.intn(2)),
		MaxErrorLen:   []int{0, 4, 10}[c.intn(3)],
		Backoff: Backoff{
			Initial:    time.Duration(1+c.intn(3000)) * time.Millisecond,
			Multiplier: []float64{0, 1, 1.5, 3}[c.intn(4)],
			Jitter:     Jitter(c.intn(3)),
		},
	}
	cfg.Backoff.Max = cfg.Backoff.Initial * time.Duration(1+c.intn(40))
	if c.intn(4) == 0 {
		for range 1 + c.intn(3) {
			cfg.Backoff.Delays = append(cfg.Backoff.Delays, time.Duration(c.intn(40_000))*time.Millisecond)
		}
	}
	return cfg
}

func (w *world) ms() int64 { return w.now.UnixMilli() }

func (w *world) fail(format string, v ...any) {
	w.t.Helper()
	w.t.Fatalf("step %d (seed %d): "+format, append([]any{w.steps, w.seed}, v...)...)
}

// same fails unless the implementation and the model gave the same result.
func (w *world) same(what string, got, want any) {
	w.t.Helper()
	if g, m := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != m {
		w.fail("%s differs from the model:\n impl:  %s\n model: %s", what, g, m)
	}
}

// msgAt returns the log's messages from offset from on, growing the log.
func (w *world) read(from int64, n int) []Msg {
	for w.grow && (len(w.log) == 0 || w.log[len(w.log)-1].Offset < from+int64(n)) {
		w.logEnd += int64(w.c.intn(3)/2) * int64(1+w.c.intn(4)) // sometimes a gap
		m := Msg{Offset: w.logEnd, Timestamp: w.ms()}
		w.logEnd++
		if k := w.c.intn(6); k < 4 {
			m.HasKey, m.KeyHash = true, uint64(k)*0x9e3779b97f4a7c15
		}
		switch w.c.intn(8) {
		case 0:
			m.DeliverAt = w.ms() + int64(w.c.intn(90_000))
		case 1:
			m.DeliverAt = w.ms() - 1000
		}
		switch w.c.intn(6) {
		case 0:
			m.ExpiresAt = w.ms() + int64(w.c.intn(120_000))
		case 1:
			m.ExpiresAt = w.ms() - int64(w.c.intn(2))*1000
		}
		w.log = append(w.log, m)
		w.keys[m.Offset] = m
	}
	i, _ := slices.BinarySearchFunc(w.log, from, func(m Msg, o int64) int { return cmpI(m.Offset, o) })
	return w.log[i:min(i+n, len(w.log))]
}

// when returns the time passed to a call: usually now, sometimes earlier.
func (w *world) when() time.Time {
	if w.c.intn(20) == 0 {
		return w.now.Add(-3 * time.Second)
	}
	return w.now
}

func (w *world) step() {
	w.steps++
	op := w.c.intn(100)
	switch {
	case op < 18:
		w.offer()
	case op < 38:
		w.poll(fmt.Sprintf("m%d", w.c.intn(3)), 1+w.c.intn(6))
	case op < 55:
		w.ackSome()
	case op < 63:
		w.nackOne()
	case op < 66:
		w.extendOne()
	case op < 69:
		w.rejectOne()
	case op < 71:
		w.releaseOne()
	case op < 85:
		w.advance()
	case op < 93:
		w.unpark(w.c.intn(8) == 0)
	case op < 95:
		w.restore(w.crashes && w.c.intn(2) == 0)
	case op < 97 && w.crashes:
		w.saved = w.p.Snapshot()
	case op == 99:
		w.reconfigure()
	default:
		w.stats()
	}
	w.check()
}

func (w *world) offer() {
	n, cur := w.p.Want()
	mn, mc := w.m.want()
	w.same("Want", [2]int64{int64(n), cur}, [2]int64{int64(mn), mc})
	k := 1 + w.c.intn(8)
	if n == 0 && w.c.intn(3) > 0 {
		return
	}
	msgs := slices.Clone(w.read(cur, k))
	if w.c.intn(10) == 0 && cur > 2 { // stale re-reads are ignored
		msgs = append(slices.Clone(w.read(cur-2, 2)), msgs...)
	}
	now := w.when()
	w.effects("Offer", w.p.Offer(now, msgs), w.m.offer(now, msgs))
}

func (w *world) poll(member string, n int) {
	now := w.when()
	ls, eff := w.p.Poll(now, member, n)
	mls, meff := w.m.poll(now, member, n)
	w.same("Poll leases", ls, mls)
	w.effects("Poll", eff, meff)
	for _, l := range ls {
		w.leased(l)
	}
}

// leased checks a new lease against everything the contract promises.
func (w *world) leased(l Lease) {
	if _, ok := w.leases[l.Offset]; ok {
		w.fail("offset %d leased twice at once", l.Offset)
	}
	if how, ok := w.finished[l.Offset]; ok && !w.crashes {
		w.fail("offset %d delivered again after it was %s", l.Offset, how)
	}
	if l.DeliveryCount > w.cfg.WithDefaults().MaxDeliveries || l.DeliveryCount != w.delivered[l.Offset]+1 && !w.crashes {
		w.fail("offset %d delivered with count %d after %d", l.Offset, l.DeliveryCount, w.delivered[l.Offset])
	}
	if w.cfg.Ordering == OrderKey {
		m := w.keys[l.Offset]
		_, cursor := w.p.Want()
		for o, other := range w.keys {
			if !m.HasKey || !other.HasKey || other.KeyHash != m.KeyHash || o == l.Offset {
				continue
			}
			if _, ok := w.leases[o]; ok {
				w.fail("offsets %d and %d of one key leased at once", o, l.Offset)
			}
			_, fin := w.finished[o]
			s, inStore := w.store[o]
			tracked := (o < cursor && !inStore) || inStore && s.handed
			if o < l.Offset && !fin && w.delivered[o] > 0 && tracked && !w.crashes {
				w.fail("offset %d leased before %d of its key", l.Offset, o)
			}
		}
	}
	w.delivered[l.Offset] = l.DeliveryCount
	w.leases[l.Offset] = l
	w.tally["lease"]++
	if l.DeliveryCount > 1 {
		w.tally["redelivery"]++
	}
}

// heldOffsets lists the offsets the world holds leases on, in order.
func (w *world) heldOffsets() []int64 {
	offs := make([]int64, 0, len(w.leases))
	for o := range w.leases {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	return offs
}

// pick returns a lease held by some member (or a made-up one).
func (w *world) pick() (member string, off int64) {
	if len(w.leases) == 0 || w.c.intn(12) == 0 {
		return fmt.Sprintf("m%d", w.c.intn(3)), int64(w.c.intn(int(w.logEnd) + 2))
	}
	offs := w.heldOffsets()
	l := w.leases[offs[w.c.intn(len(offs))]]
	return l.Member, l.Offset
}

func (w *world) ackSome() {
	member, _ := w.pick()
	var offs []int64
	for _, o := range w.heldOffsets() {
		if w.leases[o].Member == member && w.c.intn(3) > 0 {
			offs = append(offs, o)
		}
	}
	if w.c.intn(5) == 0 && len(offs) > 0 {
		offs = append(offs, offs[0], w.logEnd+5, -1) // double, unknown, negative
	}
	now := w.when()
	if w.c.intn(8) == 0 {
		// The broker found them gone from the log: Missing finishes a
		// lease as an ack does.
		w.missing(now, member, offs)
		return
	}
	stale, eff := w.p.Ack(now, member, offs)
	w.same("Ack stale", stale, w.m.ack(now, member, offs))
	w.same("Ack effects", eff, Effects{})
	left := map[int64]int{}
	for _, o := range offs {
		left[o]++
	}
	for _, o := range stale {
		left[o]--
	}
	for _, o := range offs {
		if left[o] > 0 {
			left[o] = 0
			w.finish(o, "acked")
			delete(w.leases, o)
		}
	}
}

func (w *world) nackOne() {
	member, off := w.pick()
	delay := []time.Duration{-1, -1, 0, 500 * time.Millisecond, 10 * time.Second, 2 * time.Minute}[w.c.intn(6)]
	text := []string{"", "boom", "a long error text éé"}[w.c.intn(3)]
	now := w.when()
	ok, eff := w.p.Nack(now, member, off, delay, text)
	mok, meff := w.m.nack(now, member, off, delay, text)
	w.same("Nack", ok, mok)
	if ok {
		delete(w.leases, off)
	}
	w.effects("Nack", eff, meff)
}

func (w *world) extendOne() {
	member, off := w.pick()
	d := []time.Duration{0, -time.Second, 3 * time.Second, 100 * time.Hour}[w.c.intn(4)]
	now := w.when()
	l, ok := w.p.Extend(now, member, off, d)
	ml, mok := w.m.extend(now, member, off, d)
	w.same("Extend", l, ml)
	w.same("Extend ok", ok, mok)
	if ok {
		w.leases[off] = l
	}
}

func (w *world) rejectOne() {
	member, off := w.pick()
	now := w.when()
	ok, eff := w.p.Reject(now, member, off, "bad")
	mok, meff := w.m.reject(now, member, off, "bad")
	w.same("Reject", ok, mok)
	if ok {
		delete(w.leases, off)
	}
	w.effects("Reject", eff, meff)
}

func (w *world) releaseOne() {
	member := fmt.Sprintf("m%d", w.c.intn(3))
	now := w.when()
	eff, meff := w.p.Release(now, member), w.m.release(now, member)
	for o, l := range w.leases {
		if l.Member == member {
			delete(w.leases, o)
		}
	}
	w.effects("Release", eff, meff)
}

func (w *world) advance() {
	switch w.c.intn(4) {
	case 0:
		w.now = w.now.Add(time.Duration(w.c.intn(2000)) * time.Millisecond)
	case 1:
		w.now = w.now.Add(time.Duration(w.c.intn(30_000)) * time.Millisecond)
	case 2:
		if d, ok := w.p.NextDeadline(); ok && d.After(w.now) {
			w.now = d
		}
	default:
		w.now = w.now.Add(time.Duration(w.c.intn(120)) * time.Second)
	}
	now := w.when()
	w.effects("Tick", w.p.Tick(now), w.m.tick(now))
}

// unpark hands back due parked messages (early ones too if early).
func (w *world) unpark(early bool) {
	offs := make([]int64, 0, len(w.store))
	for o, s := range w.store {
		if !s.handed && (early || s.p.Due <= w.ms()) {
			offs = append(offs, o)
		}
	}
	slices.Sort(offs)
	for _, o := range offs {
		w.unparkOne(o)
	}
}

func (w *world) unparkOne(o int64) {
	s := w.store[o]
	s.handed = true
	now := w.when()
	w.effects("Unpark", w.p.Unpark(now, s.p), w.m.unpark(now, s.p))
}

// restore restarts the partition from its snapshot, as after a clean
// shutdown (or from the last persisted one, as after a crash): leases are
// lost, messages handed back from the schedule store are handed back again.
func (w *world) restore(crash bool) {
	snap := w.p.Snapshot()
	w.same("Snapshot", snap, w.m.snapshot())
	w.tally["restart"]++
	if crash {
		w.tally["crash"]++
		snap = w.saved
		w.floor = snap.Floor // a crash goes back to the persisted floor
	}
	w.restart++
	p, err := New(w.cfg, snap, rand.New(rand.NewPCG(w.seed, w.restart)))
	if err != nil {
		w.fail("New from snapshot: %v", err)
	}
	w.same("restored Snapshot", p.Snapshot(), snap)
	w.p, w.m = p, newModel(w.cfg, snap, rand.New(rand.NewPCG(w.seed, w.restart)))
	w.leases = map[int64]Lease{}
	offs := make([]int64, 0, len(w.store))
	for o, s := range w.store {
		if s.handed {
			offs = append(offs, o)
		}
	}
	slices.Sort(offs)
	for _, o := range offs {
		w.unparkOne(o)
	}
}

// reconfigure changes the partition's config (SetConfig) as a subscription
// change would: everything but Ordering and ParkHorizon may change.
func (w *world) reconfigure() {
	cfg := randomConfig(w.c)
	cfg.Ordering, cfg.ParkHorizon = w.cfg.Ordering, w.cfg.ParkHorizon
	if err := w.p.SetConfig(cfg); err != nil {
		w.fail("SetConfig(%+v): %v", cfg, err)
	}
	w.m.setConfig(cfg)
	w.cfg = cfg
	w.maxDeliv = max(w.maxDeliv, cfg.WithDefaults().MaxDeliveries)
	w.tally["reconfigure"]++
}

func (w *world) stats() {
	now := w.when()
	w.same("Stats", w.p.Stats(now), w.m.stats(now))
}

// effects compares effects and applies them as the broker would.
func (w *world) effects(what string, eff, meff Effects) {
	w.t.Helper()
	w.same(what+" effects", eff, meff)
	w.tally["dead-letter"] += len(eff.DeadLetters)
	w.tally["dropped"] += len(eff.Dropped)
	w.tally["parked"] += len(eff.Parked)
	w.tally["lease-expired"] += len(eff.Expired)
	for _, l := range eff.Expired {
		if got, ok := w.leases[l.Offset]; !ok || got != l {
			w.fail("expired lease %+v was not held (%+v)", l, got)
		}
		delete(w.leases, l.Offset)
	}
	for _, d := range eff.DeadLetters {
		if d.DeliveryCount > w.maxDeliv {
			w.fail("dead-letter %+v past MaxDeliveries", d)
		}
		w.finish(d.Offset, "dead-lettered "+string(d.Reason))
	}
	for _, o := range eff.Dropped {
		w.finish(o, "dropped")
	}
	for _, pk := range eff.Parked {
		if _, leased := w.leases[pk.Offset]; leased {
			w.fail("offset %d parked while leased", pk.Offset)
		}
		w.store[pk.Offset] = &stored{p: pk}
	}
}

// missing reports offs as gone from the log, one call each.
func (w *world) missing(now time.Time, member string, offs []int64) {
	for _, o := range offs {
		ok := w.p.Missing(now, member, o)
		w.same("Missing", ok, len(w.m.ack(now, member, []int64{o})) == 0)
		if ok {
			w.finish(o, "missing")
			delete(w.leases, o)
		}
	}
}

func (w *world) finish(off int64, how string) {
	if prev, ok := w.finished[off]; ok && !w.crashes {
		w.fail("offset %d %s after it was %s", off, how, prev)
	}
	w.finished[off] = how
	delete(w.store, off)
}

// check runs after every step.
func (w *world) check() {
	w.t.Helper()
	checkInvariantsLeased(w.t, w.p.(*partition), w.maxDeliv)
	st := w.p.Stats(w.now)
	w.same("Stats", st, w.m.stats(w.now))
	if st.Floor < w.floor {
		w.fail("floor went back from %d to %d", w.floor, st.Floor)
	}
	w.floor = st.Floor
	d, ok := w.p.NextDeadline()
	md, mok := w.m.nextDeadline()
	if !ok {
		d = time.UnixMilli(0)
	}
	w.same("NextDeadline", [2]any{d.UnixMilli(), ok}, [2]any{md, mok})
	if w.steps%50 == 0 {
		w.same("Snapshot", w.p.Snapshot(), w.m.snapshot())
	}
}

// drain stops the log growing and consumes everything, acking each
// delivery, then checks that every message was finished exactly once.
func (w *world) drain() {
	w.grow = false
	for i := 0; ; i++ {
		if i > 100_000 {
			w.fail("not drained: %+v, %d parked", w.p.Stats(w.now), len(w.store))
		}
		w.steps++
		if n, cur := w.p.Want(); n > 0 && cur < w.logEnd {
			w.offer()
		}
		w.unpark(false)
		w.poll("drain", 100)
		for o, l := range w.leases {
			if l.Member != "drain" {
				continue
			}
			if stale, _ := w.p.Ack(w.now, "drain", []int64{o}); len(stale) > 0 {
				w.fail("drain ack of %d stale", o)
			}
			w.m.ack(w.now, "drain", []int64{o})
			w.finish(o, "acked")
			delete(w.leases, o)
		}
		w.check()
		st := w.p.Stats(w.now)
		_, cur := w.p.Want()
		if st.Ready+st.Waiting+st.Blocked+st.Leased == 0 && len(w.store) == 0 && cur >= w.logEnd {
			break
		}
		next := w.now.Add(time.Minute)
		if d, ok := w.p.NextDeadline(); ok && d.Before(next) {
			next = d
		}
		for _, s := range w.store {
			if due := time.UnixMilli(s.p.Due); !s.handed && due.Before(next) {
				next = due
			}
		}
		if next.After(w.now) {
			w.now = next
		}
		w.effects("Tick", w.p.Tick(w.now), w.m.tick(w.now))
	}
	for _, m := range w.log {
		if _, ok := w.finished[m.Offset]; !ok {
			w.fail("offset %d never finished", m.Offset)
		}
	}
	if len(w.finished) != len(w.log) && !w.crashes {
		w.fail("%d finished, log has %d", len(w.finished), len(w.log))
	}
}
