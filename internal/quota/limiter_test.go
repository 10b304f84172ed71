package quota

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/clock"
)

func newTestLimiter(users map[string]rates, def rates) (*Limiter, *clock.Fake) {
	c := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	l := NewLimiter(c)
	l.set(&table{users: users, def: def})
	return l, c
}

// Without quotas nothing is throttled, a nil limiter included, and no
// principal gets buckets.
func TestLimiterInactive(t *testing.T) {
	var nl *Limiter
	if nl.Active() || nl.Charge("a", Produce, 1<<30) != 0 || nl.Admit("a", Fetch, 1<<30) != 0 {
		t.Fatal("a nil limiter limits")
	}
	l, _ := newTestLimiter(nil, rates{})
	if l.Active() {
		t.Fatal("an empty table is active")
	}
	for range 100 {
		if d := l.Charge("a", Produce, 1<<30); d != 0 {
			t.Fatalf("throttled %v without quotas", d)
		}
	}
	if l.Principals() != 0 {
		t.Fatal("buckets without quotas")
	}
}

// The throttle is the time that repays what was used beyond the burst, at
// the quota's rate: Kafka's delay that brings the rate back under quota.
func TestLimiterThrottleMath(t *testing.T) {
	l, c := newTestLimiter(map[string]rates{"alice": {Produce: 1000}}, rates{})
	// A full bucket holds one second of rate: 1000 bytes pass at once.
	if d := l.Charge("alice", Produce, 1000); d != 0 {
		t.Fatalf("within the burst: throttle %v", d)
	}
	// 2000 bytes more: a debt of 2000 at 1000/s is 2 s.
	if d := l.Charge("alice", Produce, 2000); d != 2*time.Second {
		t.Fatalf("throttle %v, want 2s", d)
	}
	// Half a second later, 1.5 s are left; Admit refuses and charges nothing.
	c.Advance(500 * time.Millisecond)
	if d := l.Admit("alice", Produce, 100); d != 1500*time.Millisecond {
		t.Fatalf("admit %v, want 1.5s", d)
	}
	if d := l.Admit("alice", Produce, 0); d != 1500*time.Millisecond {
		t.Fatalf("admit charged: %v", d)
	}
	// Once repaid, Admit charges and lets through (into debt again).
	c.Advance(1500 * time.Millisecond)
	if d := l.Admit("alice", Produce, 1500); d != 0 {
		t.Fatalf("admit after repaying: %v", d)
	}
	if d := l.Admit("alice", Produce, 0); d != 1500*time.Millisecond {
		t.Fatalf("admit after a charge into debt: %v", d)
	}
	// Kinds are independent; other users have no quota.
	if d := l.Charge("alice", Fetch, 1<<30); d != 0 {
		t.Fatalf("fetch without a quota: %v", d)
	}
	if d := l.Charge("bob", Produce, 1<<30); d != 0 {
		t.Fatalf("bob without a quota: %v", d)
	}
	// The throttle and the debt are bounded by MaxThrottle.
	if d := l.Charge("alice", Produce, 1<<30); d != MaxThrottle {
		t.Fatalf("huge charge: %v, want %v", d, MaxThrottle)
	}
	c.Advance(MaxThrottle)
	if d := l.Charge("alice", Produce, 0); d != 0 {
		t.Fatalf("after MaxThrottle the debt is repaid: %v", d)
	}
	// Milliseconds are rounded up (the bucket full again after a second).
	c.Advance(time.Second)
	if d := l.Charge("alice", Produce, 1001); d != time.Millisecond {
		t.Fatalf("1 byte over at 1000/s: %v, want 1ms", d)
	}
	if s := l.Stats(Produce); s.Throttled == 0 || s.Time <= 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Quotas resolve per key: a user's own value, else the default's; the
// anonymous principal is ANONYMOUS, under the default unless set.
func TestLimiterResolution(t *testing.T) {
	l, _ := newTestLimiter(map[string]rates{"alice": {Produce: 100}, Anonymous: {Request: 1}}, rates{Produce: 10, Fetch: 10})
	cases := []struct {
		who  string
		k    Kind
		rate float64
	}{
		{"alice", Produce, 100}, {"alice", Fetch, 10}, {"alice", Request, 0},
		{"bob", Produce, 10}, {"bob", Fetch, 10}, {"bob", Request, 0},
		{"", Produce, 10}, {"", Request, 1},
	}
	tab := l.tab.Load()
	for _, c := range cases {
		who := c.who
		if who == "" {
			who = Anonymous
		}
		if r := tab.limit(who, c.k); r != c.rate {
			t.Errorf("%q %v: rate %v, want %v", c.who, c.k, r, c.rate)
		}
	}
	// Anonymous requests share ANONYMOUS's bucket: one request a second.
	if l.Charge("", Request, 1) != 0 || l.Charge("", Request, 1) != time.Second {
		t.Fatal("the anonymous request rate is not enforced")
	}
	if l.Charge(Anonymous, Request, 1) != 2*time.Second {
		t.Fatal("ANONYMOUS and \"\" are not one principal")
	}
}

// A sustained stream of charges is held to the quota: with each throttle
// waited out, the rate achieved over a long run is the quota's.
func TestLimiterAchievedRate(t *testing.T) {
	const rate = 50_000
	l, c := newTestLimiter(nil, rates{Produce: rate})
	start := c.Now()
	var sent int64
	for c.Now().Sub(start) < time.Minute {
		sent += 7_000
		if d := l.Charge("p", Produce, 7_000); d > 0 {
			c.Advance(d)
		}
		c.Advance(time.Millisecond) // the request's own time
	}
	got := float64(sent) / c.Now().Sub(start).Seconds()
	if got > rate*1.03 || got < rate*0.9 {
		t.Fatalf("achieved %.0f B/s under a quota of %d", got, rate)
	}
}

// Buckets of idle principals are forgotten (bounded memory), and a lowered
// quota lowers the burst at once.
func TestLimiterExpiryAndChange(t *testing.T) {
	l, c := newTestLimiter(nil, rates{Request: 10})
	for i := range 1000 {
		l.Charge(string(rune('a'+i%26))+string(rune('a'+i/26)), Request, 1)
	}
	if n := l.Principals(); n != 1000 {
		t.Fatalf("%d principals", n)
	}
	c.Advance(idleExpiry)
	l.Charge("last", Request, 1)
	if n := l.Principals(); n != 1 {
		t.Fatalf("%d principals after the idle expiry, want 1", n)
	}
	l.set(&table{def: rates{Request: 1}})
	if d := l.Charge("last", Request, 1); d != 0 {
		t.Fatalf("within the new burst: %v", d)
	}
	if d := l.Charge("last", Request, 1); d != time.Second {
		t.Fatalf("lowered quota: throttle %v, want 1s", d)
	}
	l.set(&table{})
	if l.Active() || l.Charge("last", Request, 100) != 0 {
		t.Fatal("quotas removed: still limited")
	}
}

// Record charges in full, even in debt, and notes no throttle.
func TestLimiterRecord(t *testing.T) {
	l, _ := newTestLimiter(nil, rates{Fetch: 1000})
	l.Record("p", Fetch, 3000)
	l.Record("p", Fetch, 1000)
	if d := l.Admit("p", Fetch, 0); d != 3*time.Second {
		t.Fatalf("after recording 4000 at 1000/s: %v, want 3s", d)
	}
	if s := l.Stats(Fetch); s.Throttled != 1 || s.Time != 3*time.Second {
		t.Fatalf("stats %+v: only the refusal counts", s)
	}
}

// What a request pays with no quota set (a nil limiter, or one without
// quotas) and with one.
func BenchmarkLimiter(b *testing.B) {
	b.Run("nil", func(b *testing.B) {
		var l *Limiter
		for range b.N {
			if l.Active() {
				l.Charge("p", Request, 1)
			}
		}
	})
	b.Run("none", func(b *testing.B) {
		l := NewLimiter(nil)
		for range b.N {
			if l.Active() {
				l.Charge("p", Request, 1)
			}
		}
	})
	b.Run("charge", func(b *testing.B) {
		l := NewLimiter(nil)
		l.set(&table{def: rates{Request: 1e12}})
		for range b.N {
			l.Charge("p", Request, 1)
		}
	})
}
