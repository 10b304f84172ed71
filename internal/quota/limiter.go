package quota

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/clock"
)

// Kind is what a quota limits.
type Kind uint8

// The kinds, each with its Kafka quota key (Key).
const (
	// Produce: bytes published (a Kafka Produce request's size, a native
	// publish request's message size), against producer_byte_rate.
	Produce Kind = iota
	// Fetch: bytes delivered (a Kafka Fetch response's size, native
	// deliveries), against consumer_byte_rate.
	Fetch
	// Request: requests of any kind, against request_rate.
	Request
	numKinds
)

// Quota keys, as Kafka names the byte rates (request_rate is Spool's: see
// the package comment).
const (
	KeyProducerByteRate = "producer_byte_rate"
	KeyConsumerByteRate = "consumer_byte_rate"
	KeyRequestRate      = "request_rate"
)

var kindKeys = [numKinds]string{KeyProducerByteRate, KeyConsumerByteRate, KeyRequestRate}
var kindNames = [numKinds]string{"produce", "fetch", "request"}

// Key returns the quota key of k.
func (k Kind) Key() string { return kindKeys[k] }

// String returns the kind's name in metrics: produce, fetch, request.
func (k Kind) String() string { return kindNames[k] }

// Kinds returns every kind.
func Kinds() []Kind { return []Kind{Produce, Fetch, Request} }

// KindOfKey returns the kind a quota key limits.
func KindOfKey(key string) (Kind, bool) {
	for k, s := range kindKeys {
		if s == key {
			return Kind(k), true
		}
	}
	return 0, false
}

// Anonymous is the principal of connections that authenticated as nobody
// (authentication off, or a request without credentials where that is
// allowed): Kafka's name for it. All of them share its buckets; the
// default quota applies to it unless a quota for the user ANONYMOUS is set.
const Anonymous = "ANONYMOUS"

// Timing of the buckets.
const (
	// Burst is how much a bucket holds when full, in seconds of its
	// rate: an idle principal may send this much at once unthrottled.
	Burst = time.Second
	// MaxThrottle bounds one throttle (a Kafka response's
	// throttle_time_ms, a native retry-after), and a bucket's debt: what
	// a principal used beyond its quota is forgotten beyond this many
	// seconds of its rate, so that one huge request does not throttle it
	// for minutes.
	MaxThrottle = 5 * time.Second
	// idleExpiry is how long a principal's buckets are kept unused; by
	// then they are full again, the same as new ones.
	idleExpiry = time.Minute
)

// rates are the limits of one entity, by kind; 0: none.
type rates [numKinds]float64

// table is the quotas in force: per user, and the default.
type table struct {
	users map[string]rates
	def   rates
}

// limit returns the rate of kind k for user: its own quota of that key,
// else the default's (resolved per key, as Kafka does); 0 for none.
func (t *table) limit(user string, k Kind) float64 {
	if r, ok := t.users[user]; ok && r[k] > 0 {
		return r[k]
	}
	return t.def[k]
}

// Limiter enforces quotas with one token bucket per principal and kind,
// filled at the quota's rate up to Burst seconds of it. A request is
// charged when it is served; a bucket may go into debt (up to
// MaxThrottle seconds of its rate), and the throttle is the time that
// repays the debt: Kafka's rule of delaying a client until its rate is
// back under its quota. A nil Limiter, and one without quotas, limits
// nothing and costs one atomic load per call.
type Limiter struct {
	clock clock.Clock
	tab   atomic.Pointer[table] // nil: no quota at all

	mu        sync.Mutex
	entries   map[string]*entry // guarded by mu
	lastSweep time.Time         // guarded by mu

	throttled [numKinds]atomic.Uint64
	throttle  [numKinds]atomic.Int64 // nanoseconds
}

type entry struct {
	b    [numKinds]bucket
	used time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
	fresh  bool // set: not yet used (full)
}

// NewLimiter returns a limiter without quotas, reading time from c (nil:
// the wall clock).
func NewLimiter(c clock.Clock) *Limiter {
	if c == nil {
		c = clock.Real
	}
	return &Limiter{clock: c, entries: map[string]*entry{}}
}

// set installs the quotas in force (nil or empty: none).
func (l *Limiter) set(t *table) {
	if t != nil && len(t.users) == 0 && t.def == (rates{}) {
		t = nil
	}
	l.tab.Store(t)
}

// Active reports whether any quota is set: callers skip measuring what
// they would charge when none is.
func (l *Limiter) Active() bool { return l != nil && l.tab.Load() != nil }

// Charge charges n units of kind k to principal now (a request being
// served) and returns the throttle that brings the principal back under
// its quota, 0 when it is not over. "" is Anonymous.
func (l *Limiter) Charge(principal string, k Kind, n int64) time.Duration {
	return l.take(principal, k, n, charge)
}

// Admit is for front ends that refuse rather than delay: while principal
// is over its quota of kind k it returns how long until it is not, and
// charges nothing; else it charges n and returns 0.
func (l *Limiter) Admit(principal string, k Kind, n int64) time.Duration {
	return l.take(principal, k, n, admit)
}

// Record charges n units of kind k to principal, as Charge, for what was
// already served (delivered bytes): a debt it makes delays or refuses the
// principal's next request, which counts the throttle.
func (l *Limiter) Record(principal string, k Kind, n int64) {
	l.take(principal, k, n, record)
}

// How take charges.
const (
	charge = iota // always, noting a throttle
	admit         // unless in debt, which it notes
	record        // always, noting nothing
)

func (l *Limiter) take(principal string, k Kind, n int64, mode int) time.Duration {
	if l == nil {
		return 0
	}
	t := l.tab.Load()
	if t == nil {
		return 0
	}
	if principal == "" {
		principal = Anonymous
	}
	rate := t.limit(principal, k)
	if rate <= 0 {
		return 0
	}
	now := l.clock.Now()
	l.mu.Lock()
	e := l.entry(principal, now)
	b := &e.b[k]
	b.refill(now, rate)
	if mode == admit && b.tokens < 0 {
		d := b.delay(rate)
		l.mu.Unlock()
		l.note(k, d)
		return d
	}
	b.tokens = max(b.tokens-float64(n), -rate*MaxThrottle.Seconds())
	if mode != charge {
		l.mu.Unlock()
		return 0 // admitted: a debt it made refuses the next request
	}
	d := b.delay(rate)
	l.mu.Unlock()
	l.note(k, d)
	return d
}

func (l *Limiter) note(k Kind, d time.Duration) {
	if d > 0 {
		l.throttled[k].Add(1)
		l.throttle[k].Add(int64(d))
	}
}

// entry returns principal's buckets, making them (full) if needed, and
// now and then forgets those unused for idleExpiry. l.mu is held.
func (l *Limiter) entry(principal string, now time.Time) *entry {
	if now.Sub(l.lastSweep) >= idleExpiry {
		for p, e := range l.entries {
			if now.Sub(e.used) >= idleExpiry {
				delete(l.entries, p)
			}
		}
		l.lastSweep = now
	}
	e := l.entries[principal]
	if e == nil {
		e = &entry{}
		for i := range e.b {
			e.b[i].fresh = true
		}
		l.entries[principal] = e
	}
	e.used = now
	return e
}

// refill adds what rate earned since the bucket's last use, up to Burst.
func (b *bucket) refill(now time.Time, rate float64) {
	full := rate * Burst.Seconds()
	if b.fresh {
		b.tokens, b.last, b.fresh = full, now, false
		return
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens += dt * rate
		b.last = now
	}
	b.tokens = min(b.tokens, full) // a lowered quota lowers the burst at once
	b.tokens = max(b.tokens, -rate*MaxThrottle.Seconds())
}

// delay is how long the bucket takes to repay its debt at rate, rounded
// up to the millisecond (Kafka's throttle unit).
func (b *bucket) delay(rate float64) time.Duration {
	if b.tokens >= 0 {
		return 0
	}
	ms := math.Ceil(-b.tokens / rate * 1000)
	return min(time.Duration(ms)*time.Millisecond, MaxThrottle)
}

// Principals returns how many principals have buckets (for tests).
func (l *Limiter) Principals() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Stats are a kind's throttles since the limiter was made.
type Stats struct {
	Throttled uint64        // requests throttled (Kafka) or refused (native)
	Time      time.Duration // their throttles added up
}

// Stats returns the throttles of kind k.
func (l *Limiter) Stats(k Kind) Stats {
	if l == nil {
		return Stats{}
	}
	return Stats{Throttled: l.throttled[k].Load(), Time: time.Duration(l.throttle[k].Load())}
}
