package group

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestProperties drives coordinators with seeded random operations and, after every step,
// checks them against a deliberately dumb reference (membership as a map of session deadlines,
// the broker's view of assignments rebuilt only from Effects) and against the invariants of the
// protocol.
func TestProperties(t *testing.T) {
	steps := 4000
	if testing.Short() {
		steps = 500
	}
	for seed := range uint64(16) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			newHarness(t, seed).run(steps)
		})
	}
}

// FuzzCoordinator runs the same checks from fuzzer-chosen seeds and configurations.
func FuzzCoordinator(f *testing.F) {
	f.Add(uint64(1), uint8(4), uint8(3))
	f.Add(uint64(7), uint8(0), uint8(1))
	f.Add(uint64(99), uint8(40), uint8(12))
	f.Fuzz(func(t *testing.T, seed uint64, parts, maxMembers uint8) {
		h := newHarnessConfig(t, seed, int(parts%48), int(maxMembers%16)+1)
		h.run(300)
	})
}

type refMember struct {
	instance string
	timeout  time.Duration
	deadline time.Time
}

type harness struct {
	t   testing.TB
	rng *rand.Rand
	c   *Coordinator
	cfg Config
	now time.Time // the time of the next call; may lag behind the coordinator's

	// The reference: who is a member and until when, computed from the calls alone.
	ref     map[string]*refMember
	refNow  time.Time
	lastGen int64
	// The broker's view, built only from Effects.
	view map[string]Assignment
	// Targets after the previous step, for the generation and stickiness checks.
	prevTargets []string
	prevOwned   map[string][]int32
	// What the Effects applied since the last check said: generation bumps and replacements.
	bumps    int
	replaced map[string]string   // previous id → new id
	gone     map[string]struct{} // removed, whether or not the id came back
	handed   map[string][]int32  // partitions whose revocation completed or timed out
}

func newHarness(t testing.TB, seed uint64) *harness {
	r := rand.New(rand.NewPCG(seed, 0x5b001))
	return newHarnessConfig(t, seed, r.IntN(40), 2+r.IntN(12))
}

func newHarnessConfig(t testing.TB, seed uint64, parts, maxMembers int) *harness {
	cfg := Config{
		SessionTimeout:    5 * time.Second,
		MinSessionTimeout: time.Second,
		MaxSessionTimeout: 30 * time.Second,
		RevokeTimeout:     3 * time.Second,
		MaxMembers:        maxMembers,
		MaxPartitions:     64,
	}
	c, err := New(cfg, parts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, rng: rand.New(rand.NewPCG(seed, 0x5b002)), c: c, cfg: c.Config(),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		ref: map[string]*refMember{}, view: map[string]Assignment{}, prevOwned: map[string][]int32{},
		replaced: map[string]string{}, gone: map[string]struct{}{}, handed: map[string][]int32{},
	}
	h.prevTargets = h.targets(c.Describe())
	return h
}

func (h *harness) fatalf(step int, op string, format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d (%s): %s", step, op, fmt.Sprintf(format, args...))
}

func (h *harness) run(steps int) {
	for step := range steps {
		h.step(step)
	}
}

func (h *harness) randomMember() string {
	ids := h.memberIDs()
	if len(ids) == 0 || h.rng.IntN(10) == 0 {
		return "m" + strconv.Itoa(h.rng.IntN(16))
	}
	return ids[h.rng.IntN(len(ids))]
}

func (h *harness) memberIDs() []string {
	ids := make([]string, 0, len(h.ref))
	for id := range h.ref {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// expectEvictions applies the passage of time to the reference and returns who must go.
func (h *harness) expectEvictions(at time.Time) []string {
	if at.After(h.refNow) {
		h.refNow = at
	}
	var gone []string
	for _, id := range h.memberIDs() {
		if !h.refNow.Before(h.ref[id].deadline) {
			gone = append(gone, id)
			delete(h.ref, id)
		}
	}
	return gone
}

func (h *harness) step(step int) {
	// Time mostly moves forward a little; sometimes a lot; sometimes the caller's clock lags.
	switch r := h.rng.IntN(100); {
	case r < 60:
		h.now = h.now.Add(time.Duration(h.rng.IntN(800)) * time.Millisecond)
	case r < 63:
		h.now = h.now.Add(time.Duration(4+h.rng.IntN(30)) * time.Second)
	case r < 65:
		h.now = h.now.Add(-time.Second)
	}
	var eff Effects
	var err error
	var op string
	var wantErr error
	advanced := true
	var evicted []string
	expect := func() { evicted = h.expectEvictions(h.now) }

	switch r := h.rng.IntN(100); {
	case r < 25: // join: new, rejoin, static
		id := ""
		if h.rng.IntN(3) > 0 {
			id = h.randomMember()
		}
		opts := JoinOptions{ClientID: "g"}
		if h.rng.IntN(4) == 0 {
			opts.InstanceID = "s" + strconv.Itoa(h.rng.IntN(3))
		} else if m := h.ref[id]; m != nil && h.rng.IntN(5) > 0 {
			opts.InstanceID = m.instance
		}
		timeouts := []time.Duration{0, 0, 0, 2 * time.Second, 10 * time.Second, 20 * time.Second, 0, 0, 0, 500 * time.Millisecond}
		opts.SessionTimeout = timeouts[h.rng.IntN(len(timeouts))]
		op = fmt.Sprintf("join %q %+v", id, opts)
		if opts.SessionTimeout != 0 && opts.SessionTimeout < h.cfg.MinSessionTimeout {
			wantErr, advanced = ErrInvalidSessionTimeout, false
		} else {
			expect()
		}
		var got string
		got, eff, err = h.c.Join(h.now, id, opts)
		if advanced {
			wantErr = h.refJoin(step, op, id, got, opts, eff)
		}
	case r < 31:
		id := h.randomMember()
		op = "leave " + id
		expect()
		eff, err = h.c.Leave(h.now, id)
		if h.ref[id] == nil {
			wantErr = ErrUnknownMember
		} else {
			delete(h.ref, id)
		}
	case r < 50:
		id := h.randomMember()
		gen := h.view[id].Generation
		if h.rng.IntN(10) == 0 {
			gen--
		}
		op = fmt.Sprintf("heartbeat %s gen=%d", id, gen)
		expect()
		eff, err = h.c.Heartbeat(h.now, id, gen)
		if m := h.ref[id]; m == nil {
			wantErr = ErrUnknownMember
		} else {
			m.deadline = h.refNow.Add(m.timeout)
			if gen != h.c.Generation() {
				wantErr = ErrStaleGeneration
			}
		}
	case r < 64: // everyone heartbeats: keeps groups alive long enough to matter
		op = "heartbeat all"
		expect()
		eff = h.c.Tick(h.now)
		h.checkEvictions(step, op, evicted, eff)
		h.apply(step, op, eff)
		evicted = nil
		for _, id := range h.memberIDs() {
			e, err := h.c.Heartbeat(h.now, id, h.c.Generation())
			if err != nil {
				h.fatalf(step, op, "heartbeat %s: %v", id, err)
			}
			h.ref[id].deadline = h.refNow.Add(h.ref[id].timeout)
			h.apply(step, op, e)
		}
		eff = Effects{Generation: h.c.Generation()}
	case r < 77:
		id := h.randomMember()
		var ps []int32
		for _, p := range h.view[id].Revoking {
			if h.rng.IntN(3) > 0 {
				ps = append(ps, p)
			}
		}
		if h.c.Partitions() > 0 && h.rng.IntN(3) == 0 {
			ps = append(ps, int32(h.rng.IntN(h.c.Partitions())))
		}
		op = fmt.Sprintf("revoked %s %v", id, ps)
		expect()
		eff, err = h.c.Revoked(h.now, id, ps)
		if h.ref[id] == nil {
			wantErr = ErrUnknownMember
		}
	case r < 81: // confirm every revocation, then check the settled state
		op = "settle"
		expect()
		eff = h.c.Tick(h.now)
		h.checkEvictions(step, op, evicted, eff)
		h.apply(step, op, eff)
		evicted = nil
		for _, id := range h.memberIDs() {
			e, err := h.c.Revoked(h.now, id, h.view[id].Revoking)
			if err != nil {
				h.fatalf(step, op, "revoked %s: %v", id, err)
			}
			h.apply(step, op, e)
		}
		eff = Effects{Generation: h.c.Generation()}
		h.checkSettled(step)
	case r < 83:
		n := min(h.c.Partitions()+h.rng.IntN(6), h.cfg.MaxPartitions)
		op = fmt.Sprintf("partitions %d", n)
		expect()
		eff, err = h.c.SetPartitions(h.now, n)
	case r < 95:
		id := h.randomMember()
		gen := h.c.Generation()
		if h.rng.IntN(8) == 0 {
			gen--
		}
		p := int32(h.rng.IntN(h.c.Partitions()+2) - 1)
		op = fmt.Sprintf("commit %s gen=%d p=%d", id, gen, p)
		err := h.c.CheckCommit(id, gen, p)
		a, known := h.view[id]
		switch {
		case h.ref[id] == nil:
			wantErr = ErrUnknownMember
		case gen != h.c.Generation():
			wantErr = ErrStaleGeneration
		case p < 0 || int(p) >= h.c.Partitions():
			wantErr = ErrInvalidPartition
		case !known || !slices.Contains(a.Owned, p) && !slices.Contains(a.Revoking, p):
			wantErr = ErrNotOwner
		}
		h.checkErr(step, op, err, wantErr)
		return
	default:
		op = "tick"
		expect()
		eff = h.c.Tick(h.now)
	}
	h.checkErr(step, op, err, wantErr)
	if !advanced && !eff.Empty() {
		h.fatalf(step, op, "refused call changed something: %+v", eff)
	}
	h.checkEvictions(step, op, evicted, eff)
	h.apply(step, op, eff)
	h.check(step, op)
}

// refJoin applies a successful-looking join to the reference and returns the error it expects.
func (h *harness) refJoin(step int, op, id, got string, opts JoinOptions, eff Effects) error {
	timeout := opts.SessionTimeout
	if timeout == 0 {
		timeout = h.cfg.SessionTimeout
	}
	if m := h.ref[id]; m != nil {
		if m.instance != opts.InstanceID {
			return ErrInstanceMismatch
		}
		m.timeout, m.deadline = timeout, h.refNow.Add(timeout)
		return nil
	}
	if opts.InstanceID != "" {
		for _, old := range h.memberIDs() {
			if h.ref[old].instance != opts.InstanceID {
				continue
			}
			delete(h.ref, old)
			if id != "" && got != id || got == "" || h.ref[got] != nil {
				h.fatalf(step, op, "replacement got id %q", got)
			}
			h.ref[got] = &refMember{instance: opts.InstanceID, timeout: timeout, deadline: h.refNow.Add(timeout)}
			if !slices.ContainsFunc(eff.Changes, func(c Change) bool {
				return c.Kind == MemberReplaced && c.Member == got && c.Previous == old
			}) {
				h.fatalf(step, op, "no replacement of %s by %s in %v", old, got, eff.Changes)
			}
			return nil
		}
	}
	if len(h.ref) >= h.cfg.MaxMembers {
		return ErrGroupFull
	}
	if id != "" && got != id || got == "" || h.ref[got] != nil {
		h.fatalf(step, op, "join got id %q", got)
	}
	h.ref[got] = &refMember{instance: opts.InstanceID, timeout: timeout, deadline: h.refNow.Add(timeout)}
	return nil
}

func (h *harness) checkErr(step int, op string, err, want error) {
	h.t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		h.fatalf(step, op, "error %v, want %v", err, want)
	}
}

func (h *harness) checkEvictions(step int, op string, want []string, eff Effects) {
	h.t.Helper()
	var got []string
	for _, c := range eff.Changes {
		if c.Kind == MemberEvicted {
			got = append(got, c.Member)
		}
	}
	if !slices.Equal(got, want) {
		h.fatalf(step, op, "evicted %v, want %v", got, want)
	}
}

// apply updates the broker's view from Effects, as the broker would.
func (h *harness) apply(step int, op string, eff Effects) {
	h.t.Helper()
	if eff.Generation != h.c.Generation() {
		h.fatalf(step, op, "effects generation %d, coordinator %d", eff.Generation, h.c.Generation())
	}
	for _, c := range eff.Changes {
		switch c.Kind {
		case MemberLeft, MemberEvicted:
			delete(h.view, c.Member)
			h.gone[c.Member] = struct{}{}
		case MemberReplaced:
			delete(h.view, c.Previous)
			h.gone[c.Previous] = struct{}{}
			h.replaced[c.Previous] = c.Member
		case GenerationBumped:
			h.bumps++
		case RevokeCompleted, RevokeTimedOut:
			h.handed[c.Member] = append(h.handed[c.Member], c.Partitions...)
		}
	}
	for _, a := range eff.Assignments {
		h.view[a.Member] = a
	}
	// No partition is ever in two members' hands, in the view the broker acts on.
	holder := map[int32]string{}
	for id, a := range h.view {
		for _, p := range slices.Concat(a.Owned, a.Revoking) {
			if other, dup := holder[p]; dup {
				h.fatalf(step, op, "partition %d held by %s and %s", p, other, id)
			}
			holder[p] = id
		}
	}
}
