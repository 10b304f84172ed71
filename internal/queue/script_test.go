package queue

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// Scenario files (testdata/*.txt, datadriven scripts) drive one Partition
// with a fake clock. Each block is a command line, a "----" line, and the
// expected output up to a blank line; lines starting with # are comments;
// -rewrite regenerates the expected blocks. Commands:
//
//	config [ack=D] [max=N] [backoff=D,D…] [initial=D] [maxbackoff=D] [mult=F]
//	       [jitter=full|equal|none] [seed=N] [ordering=key] [expired=drop]
//	       [inflight=N] [tracked=N] [horizon=D] [errlen=N] [floor=N]
//	set [the options of config but seed and floor]   (SetConfig)
//	offer OFF… [k=KEY] [deliver-at=+D] [ttl=+D]     (OFF may be A..B)
//	poll MEMBER N | ack MEMBER OFF… | nack MEMBER OFF [delay=D] [err=TEXT]
//	extend MEMBER OFF [d=D] | reject MEMBER OFF [err=TEXT] | release MEMBER
//	tick [+D] | at +D | unpark OFF…|due | snapshot | restore [saved] | stats | want | deadline
//	backoff N…   (sample delays of the n-th redeliveries)
//
// A text with spaces is written in parentheses (err=(bad payload)); the
// member "" is the empty member id.
//
// restore starts a new Partition from the current state's snapshot, or with
// "saved" from the last one printed (a crash that lost later changes).
//
// Times print relative to the start of the scenario. Parked effects are kept
// by the script as the broker's schedule store; unpark hands them back.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			env := &scenario{t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), keys: map[uint64]string{}, store: map[int64]Parked{}}
			env.now = env.t0
			datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
				got, err := env.exec(td)
				if err != nil {
					td.Fatalf(t, "%v", err)
				}
				if env.p != nil {
					checkInvariantsLeased(t, env.p.(*partition), env.maxDeliv)
				}
				if got = strings.TrimRight(got, "\n"); got == "" {
					got = "ok"
				}
				return got
			})
		})
	}
}

type scenario struct {
	t0, now time.Time
	cfg     Config
	seed    uint64
	p       Partition
	keys    map[uint64]string
	store   map[int64]Parked // the schedule store
	saved   Snapshot         // the last snapshot printed
	// maxDeliv is the largest MaxDeliveries configured since config: leases
	// taken before set lowered it keep their counts.
	maxDeliv int
}

// args holds a command's positional and key=value arguments.
type args struct {
	pos []string
	kv  map[string]string
	err error
}

func (a *args) fail(format string, v ...any) {
	if a.err == nil {
		a.err = fmt.Errorf(format, v...)
	}
}

func (a *args) dur(k string, def time.Duration) time.Duration {
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(strings.TrimPrefix(v, "+"))
	if err != nil {
		a.fail("%s: %v", k, err)
	}
	return d
}

func (a *args) num(k string, def int64) int64 {
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		a.fail("%s: %v", k, err)
	}
	return n
}

func (a *args) at(i int) string {
	if i >= len(a.pos) {
		a.fail("missing argument %d", i+1)
		return ""
	}
	return a.pos[i]
}

// offsets parses positional arguments from i on: numbers or A..B ranges.
func (a *args) offsets(i int) []int64 {
	var out []int64
	for _, s := range a.pos[min(i, len(a.pos)):] {
		from, to, isRange := strings.Cut(s, "..")
		x, err1 := strconv.ParseInt(from, 10, 64)
		y := x
		var err2 error
		if isRange {
			y, err2 = strconv.ParseInt(to, 10, 64)
		}
		if err1 != nil || err2 != nil {
			a.fail("bad offset %q", s)
			return nil
		}
		for o := x; o <= y; o++ {
			out = append(out, o)
		}
	}
	return out
}

func count(s []int64, v int64) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func keyHash(k string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()
}

func (e *scenario) ms() int64 { return e.now.UnixMilli() }

// rel prints a time in ms relative to the start.
func (e *scenario) rel(ms int64) string {
	if ms == 0 {
		return "-"
	}
	d := time.Duration(ms-e.t0.UnixMilli()) * time.Millisecond
	if d < 0 {
		return "-" + (-d).String()
	}
	return "+" + d.String()
}

func (e *scenario) exec(td *datadriven.TestData) (string, error) {
	a := &args{kv: map[string]string{}}
	for _, arg := range td.CmdArgs {
		switch {
		case len(arg.Vals) > 0:
			a.kv[arg.Key] = strings.Join(arg.Vals, ",")
		case arg.Key == `""`:
			a.pos = append(a.pos, "")
		default:
			a.pos = append(a.pos, arg.Key)
		}
	}
	cmd := td.Cmd
	if cmd != "config" && e.p == nil {
		return "", fmt.Errorf("a scenario starts with config")
	}
	var out strings.Builder
	var eff Effects
	switch cmd {
	case "config":
		return e.config(a)
	case "set":
		cfg, err := parseConfig(a)
		if err != nil {
			return "", err
		}
		if err := e.p.SetConfig(cfg); err != nil {
			return "error: " + err.Error(), nil
		}
		e.cfg = cfg
		e.maxDeliv = max(e.maxDeliv, cfg.WithDefaults().MaxDeliveries)
		return "ok", nil
	case "offer":
		offs := a.offsets(0)
		var msgs []Msg
		for _, o := range offs {
			m := Msg{Offset: o, Timestamp: e.ms()}
			if k, ok := a.kv["k"]; ok {
				m.KeyHash, m.HasKey = keyHash(k), true
				e.keys[m.KeyHash] = k
			}
			if _, ok := a.kv["deliver-at"]; ok {
				m.DeliverAt = e.ms() + a.dur("deliver-at", 0).Milliseconds()
			}
			if _, ok := a.kv["ttl"]; ok {
				m.ExpiresAt = e.ms() + a.dur("ttl", 0).Milliseconds()
			}
			msgs = append(msgs, m)
		}
		if a.err != nil {
			return "", a.err
		}
		eff = e.p.Offer(e.now, msgs)
	case "poll":
		n, err := strconv.Atoi(a.at(1))
		if a.err != nil || err != nil {
			return "", fmt.Errorf("poll MEMBER N: %v %v", a.err, err)
		}
		var ls []Lease
		ls, eff = e.p.Poll(e.now, a.at(0), n)
		for _, l := range ls {
			fmt.Fprintf(&out, "lease %d %s n=%d first=%s deadline=%s\n", l.Offset, l.Member, l.DeliveryCount, e.rel(l.FirstDeliveredAt), e.rel(l.Deadline))
		}
		if len(ls) == 0 {
			out.WriteString("no leases\n")
		}
	case "ack":
		offs := a.offsets(1)
		if a.at(0); a.err != nil {
			return "", a.err
		}
		var stale []int64
		stale, eff = e.p.Ack(e.now, a.pos[0], offs)
		for _, o := range stale {
			fmt.Fprintf(&out, "stale %d\n", o)
		}
		for _, o := range offs {
			if count(offs, o) > count(stale, o) {
				delete(e.store, o) // an unparked message is finished
			}
		}
	case "nack", "reject":
		m, off := a.at(0), a.offsets(1)
		delay := a.dur("delay", -1)
		if a.err == nil && len(off) != 1 {
			a.fail("%s MEMBER OFF", cmd)
		}
		if a.err != nil {
			return "", a.err
		}
		var ok bool
		if cmd == "nack" {
			ok, eff = e.p.Nack(e.now, m, off[0], delay, a.kv["err"])
		} else {
			ok, eff = e.p.Reject(e.now, m, off[0], a.kv["err"])
		}
		fmt.Fprintf(&out, "%v\n", ok)
	case "extend":
		m, off := a.at(0), a.offsets(1)
		d := a.dur("d", 0)
		if a.err == nil && len(off) != 1 {
			a.fail("extend MEMBER OFF")
		}
		if a.err != nil {
			return "", a.err
		}
		l, ok := e.p.Extend(e.now, m, off[0], d)
		if !ok {
			out.WriteString("false\n")
		} else {
			fmt.Fprintf(&out, "lease %d %s n=%d first=%s deadline=%s\n", l.Offset, l.Member, l.DeliveryCount, e.rel(l.FirstDeliveredAt), e.rel(l.Deadline))
		}
	case "release":
		if a.at(0); a.err != nil {
			return "", a.err
		}
		eff = e.p.Release(e.now, a.pos[0])
	case "at", "tick":
		if len(a.pos) > 0 {
			d, err := time.ParseDuration(strings.TrimPrefix(a.pos[0], "+"))
			if err != nil {
				return "", err
			}
			e.now = e.now.Add(d)
		}
		if cmd == "at" {
			return "now " + e.rel(e.ms()), nil
		}
		eff = e.p.Tick(e.now)
	case "unpark":
		return e.unpark(a)
	case "snapshot":
		e.saved = e.p.Snapshot()
		return e.formatSnapshot(e.saved), nil
	case "restore":
		snap := e.p.Snapshot()
		if len(a.pos) > 0 && a.pos[0] == "saved" {
			snap = e.saved
		}
		p, err := New(e.cfg, snap, rand.New(rand.NewPCG(e.seed, 1)))
		if err != nil {
			return "", err
		}
		e.p = p
		return e.formatSnapshot(p.Snapshot()), nil
	case "stats":
		s := e.p.Stats(e.now)
		return fmt.Sprintf("floor=%d cursor=%d ready=%d waiting=%d blocked=%d leased=%d done=%d inflight-limited=%v tracked-limited=%v oldest-ready=%s",
			s.Floor, s.Cursor, s.Ready, s.Waiting, s.Blocked, s.Leased, s.Done, s.InFlightLimited, s.TrackedLimited, e.rel(s.OldestReady)), nil
	case "backoff":
		// Draws of the configured backoff from a fresh source seeded alike.
		rng := rand.New(rand.NewPCG(e.seed, 2))
		for _, n := range a.offsets(0) {
			fmt.Fprintf(&out, "redelivery %d: %v (base %v)\n", n, e.cfg.Backoff.Delay(int(n), rng), e.cfg.Backoff.Base(int(n)))
		}
		return out.String(), a.err
	case "want":
		n, c := e.p.Want()
		return fmt.Sprintf("want %d from %d", n, c), nil
	case "deadline":
		d, ok := e.p.NextDeadline()
		if !ok {
			return "none", nil
		}
		return "next " + e.rel(d.UnixMilli()), nil
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	out.WriteString(e.effects(eff))
	return out.String(), nil
}

func (e *scenario) config(a *args) (string, error) {
	cfg, err := parseConfig(a)
	if err != nil {
		return "", err
	}
	e.seed = uint64(a.num("seed", 1))
	floor := a.num("floor", 0)
	if a.err != nil {
		return "", a.err
	}
	p, err := New(cfg, Snapshot{Floor: floor}, rand.New(rand.NewPCG(e.seed, 1)))
	if err != nil {
		return "error: " + err.Error(), nil
	}
	e.cfg, e.p = cfg, p
	e.now, e.store = e.t0, map[int64]Parked{}
	e.maxDeliv = cfg.WithDefaults().MaxDeliveries
	return "ok", nil
}

// parseConfig reads the Config options of config and set.
func parseConfig(a *args) (Config, error) {
	cfg := Config{
		AckTimeout:    a.dur("ack", 0),
		MaxDeliveries: int(a.num("max", 0)),
		MaxInFlight:   int(a.num("inflight", 0)),
		MaxTracked:    int(a.num("tracked", 0)),
		ParkHorizon:   a.dur("horizon", 0),
		MaxErrorLen:   int(a.num("errlen", 0)),
		Backoff: Backoff{
			Initial: a.dur("initial", 0),
			Max:     a.dur("maxbackoff", 0),
			Jitter:  map[string]Jitter{"": JitterFull, "full": JitterFull, "equal": JitterEqual, "none": JitterNone}[a.kv["jitter"]],
		},
	}
	if v, ok := a.kv["mult"]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return cfg, err
		}
		cfg.Backoff.Multiplier = f
	}
	if v, ok := a.kv["backoff"]; ok {
		for _, s := range strings.Split(v, ",") {
			d, err := time.ParseDuration(s)
			if err != nil {
				return cfg, err
			}
			cfg.Backoff.Delays = append(cfg.Backoff.Delays, d)
		}
	}
	if a.kv["ordering"] == "key" {
		cfg.Ordering = OrderKey
	}
	if a.kv["expired"] == "drop" {
		cfg.OnExpired = ExpireDrop
	}
	return cfg, a.err
}

func (e *scenario) unpark(a *args) (string, error) {
	var offs []int64
	if a.at(0) == "due" {
		for o, pk := range e.store {
			if pk.Due <= e.ms() {
				offs = append(offs, o)
			}
		}
		slices.Sort(offs)
	} else {
		offs = a.offsets(0)
	}
	if a.err != nil {
		return "", a.err
	}
	var out strings.Builder
	for _, o := range offs {
		pk, ok := e.store[o]
		if !ok {
			return "", fmt.Errorf("offset %d is not parked", o)
		}
		fmt.Fprintf(&out, "unpark %d\n", o)
		// The store keeps the message until it is finished or parked again.
		out.WriteString(e.effects(e.p.Unpark(e.now, pk)))
	}
	if len(offs) == 0 {
		out.WriteString("nothing due\n")
	}
	return out.String(), nil
}

// effects prints eff, keeping parked messages in the schedule store and
// removing finished ones from it.
func (e *scenario) effects(eff Effects) string {
	var out strings.Builder
	for _, l := range eff.Expired {
		fmt.Fprintf(&out, "expired %d %s n=%d deadline=%s\n", l.Offset, l.Member, l.DeliveryCount, e.rel(l.Deadline))
	}
	for _, d := range eff.DeadLetters {
		fmt.Fprintf(&out, "dead-letter %d %s n=%d err=%q\n", d.Offset, d.Reason, d.DeliveryCount, d.LastError)
		delete(e.store, d.Offset)
	}
	for _, o := range eff.Dropped {
		fmt.Fprintf(&out, "dropped %d\n", o)
		delete(e.store, o)
	}
	for _, pk := range eff.Parked {
		key := ""
		if pk.HasKey {
			key = " k=" + e.keys[pk.KeyHash]
		}
		exp := ""
		if pk.ExpiresAt != 0 {
			exp = " expires=" + e.rel(pk.ExpiresAt)
		}
		fmt.Fprintf(&out, "parked %d due=%s n=%d first=%s err=%q%s%s\n", pk.Offset, e.rel(pk.Due), pk.DeliveryCount, e.rel(pk.FirstDeliveredAt), pk.LastError, key, exp)
		e.store[pk.Offset] = pk
	}
	return out.String()
}

func (e *scenario) formatSnapshot(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "floor=%d done=", s.Floor)
	if len(s.Done) == 0 {
		b.WriteString("-")
	}
	for i, r := range s.Done {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "[%d,%d)", r[0], r[1])
	}
	offs := make([]int64, 0, len(s.Counts))
	for o := range s.Counts {
		offs = append(offs, o)
	}
	slices.Sort(offs)
	for _, o := range offs {
		c := s.Counts[o]
		fmt.Fprintf(&b, "\ncount %d n=%d first=%s err=%q", o, c.Deliveries, e.rel(c.FirstDeliveredAt), c.LastError)
	}
	return b.String()
}
