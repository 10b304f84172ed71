package queue

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	want := Config{
		AckTimeout: 30 * time.Second, MaxDeliveries: 5, MaxInFlight: 1000, MaxTracked: 100_000,
		ParkHorizon: time.Minute, MaxErrorLen: 1024,
		Backoff: Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: JitterFull},
	}
	if c.AckTimeout != want.AckTimeout || c.MaxDeliveries != want.MaxDeliveries || c.MaxInFlight != want.MaxInFlight ||
		c.MaxTracked != want.MaxTracked || c.ParkHorizon != want.ParkHorizon || c.MaxErrorLen != want.MaxErrorLen ||
		c.Backoff.Initial != want.Backoff.Initial || c.Backoff.Max != want.Backoff.Max ||
		c.Backoff.Multiplier != want.Backoff.Multiplier || c.Backoff.Jitter != want.Backoff.Jitter {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	// A large Initial alone raises the default Max with it.
	if b := (Backoff{Initial: 10 * time.Minute}).WithDefaults(); b.Max != 10*time.Minute {
		t.Fatalf("Max %v for Initial 10m", b.Max)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]Config{
		"AckTimeout":      {AckTimeout: -time.Second},
		"MaxDeliveries":   {MaxDeliveries: -1},
		"MaxInFlight":     {MaxInFlight: -5},
		"MaxTracked":      {MaxTracked: -1},
		"ParkHorizon":     {ParkHorizon: -time.Minute},
		"MaxErrorLen":     {MaxErrorLen: -1},
		"Ordering":        {Ordering: 7},
		"OnExpired":       {OnExpired: -1},
		"Initial":         {Backoff: Backoff{Initial: -time.Second}},
		"below Initial":   {Backoff: Backoff{Initial: time.Minute, Max: time.Second}},
		"Multiplier":      {Backoff: Backoff{Multiplier: 0.5}},
		"NaN":             {Backoff: Backoff{Multiplier: math.NaN()}},
		"Multiplier +Inf": {Backoff: Backoff{Multiplier: math.Inf(1)}},
		"Jitter":          {Backoff: Backoff{Jitter: 9}},
		"Delays":          {Backoff: Backoff{Delays: []time.Duration{time.Second, -1}}},
	}
	for name, cfg := range bad {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) {
			t.Errorf("%s: error %v", name, err)
		}
		if p, err := New(cfg, Snapshot{}, nil); err == nil || p != nil {
			t.Errorf("%s: New gave %v, %v", name, p, err)
		}
	}
	if _, err := New(Config{}, Snapshot{Floor: -1}, nil); err == nil {
		t.Error("negative floor accepted")
	}
}

func TestBackoffBase(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2}
	for n, want := range map[int]time.Duration{-3: time.Second, 0: time.Second, 1: time.Second, 2: 2 * time.Second,
		3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 1000: 10 * time.Second, math.MaxInt: 10 * time.Second} {
		if got := b.Base(n); got != want {
			t.Errorf("Base(%d) = %v, want %v", n, got, want)
		}
	}
	d := Backoff{Delays: []time.Duration{0, 3 * time.Second}}
	for n, want := range map[int]time.Duration{1: 0, 2: 3 * time.Second, 9: 3 * time.Second} {
		if got := d.Base(n); got != want {
			t.Errorf("Delays Base(%d) = %v, want %v", n, got, want)
		}
	}
	huge := Backoff{Initial: time.Second, Max: time.Duration(math.MaxInt64), Multiplier: math.Inf(1)}
	if got := huge.Base(3); got != huge.Max {
		t.Errorf("infinite multiplier: %v", got)
	}
}

func TestBackoffJitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	floor := b.JitterFloor()
	if floor != 100*time.Millisecond {
		t.Fatalf("JitterFloor %v", floor)
	}
	var sum time.Duration
	const n = 20_000
	for range n {
		d := b.Delay(4, rng) // base 8 s
		if d < floor || d > 8*time.Second {
			t.Fatalf("full jitter %v outside [%v, 8s]", d, floor)
		}
		sum += d
	}
	if mean := sum / n; mean < 3800*time.Millisecond || mean > 4200*time.Millisecond {
		t.Errorf("full jitter mean %v, want about 4s", mean)
	}
	b.Jitter = JitterEqual
	for range 1000 {
		if d := b.Delay(4, rng); d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("equal jitter %v outside [4s, 8s]", d)
		}
	}
	b.Jitter = JitterNone
	if d := b.Delay(4, rng); d != 8*time.Second {
		t.Fatalf("no jitter %v", d)
	}
	// Never above the un-jittered delay, even when it is below the floor.
	small := Backoff{Initial: time.Second, Delays: []time.Duration{20 * time.Millisecond, 0}}
	for range 100 {
		if d := small.Delay(1, rng); d != 20*time.Millisecond {
			t.Fatalf("small delay jittered to %v", d)
		}
		if d := small.Delay(2, nil); d != 0 {
			t.Fatalf("zero delay jittered to %v", d)
		}
	}
	// The largest delays do not overflow.
	max := Backoff{Initial: time.Second, Max: time.Duration(math.MaxInt64), Multiplier: 1e30}
	for _, r := range []*rand.Rand{rng, nil} {
		if d := max.Delay(5, r); d < max.JitterFloor() {
			t.Fatalf("huge delay %v", d)
		}
	}
}

func TestTruncateText(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"hello", 10, "hello"}, {"hello", 3, "hel"}, {"héllo", 2, "h"}, {"héllo", 3, "hé"}, {"€", 2, ""}} {
		if got := truncateText(c.in, c.n); got != c.want {
			t.Errorf("truncateText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
