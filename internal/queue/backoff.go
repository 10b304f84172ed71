package queue

import (
	"math"
	"math/rand/v2"
	"time"
)

// Base returns the un-jittered delay of the n-th redelivery (n < 1 counts as 1).
func (b Backoff) Base(n int) time.Duration {
	b = b.WithDefaults()
	n = max(n, 1)
	if len(b.Delays) > 0 {
		return max(b.Delays[min(n, len(b.Delays))-1], 0)
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(n-1))
	if math.IsNaN(d) || d >= float64(b.Max) {
		return b.Max
	}
	return time.Duration(d)
}

// JitterFloor is the least delay a jittered backoff gives: a tenth of Initial,
// at least 1 ms (never more than the un-jittered delay itself).
func (b Backoff) JitterFloor() time.Duration {
	return max(b.WithDefaults().Initial/10, time.Millisecond)
}

// Delay returns the delay of the n-th redelivery: Base(n) randomized by
// Jitter with draws from rng (the shared source if nil). Full and equal jitter
// never go below min(JitterFloor(), Base(n)), so a jittered redelivery is
// never immediate; JitterNone returns Base(n) exactly, even 0.
func (b Backoff) Delay(n int, rng *rand.Rand) time.Duration {
	d := b.Base(n)
	var lo time.Duration
	switch b.Jitter {
	case JitterFull:
		lo = 0
	case JitterEqual:
		lo = d / 2
	default:
		return d
	}
	span := int64(d - lo)
	return max(lo+time.Duration(draw(rng, span)), min(b.JitterFloor(), d))
}

// draw returns a uniform value in [0, span] (span >= 0).
func draw(rng *rand.Rand, span int64) int64 {
	switch {
	case span <= 0:
		return 0
	case span == math.MaxInt64 && rng != nil:
		return rng.Int64()
	case span == math.MaxInt64:
		return rand.Int64()
	case rng != nil:
		return rng.Int64N(span + 1)
	}
	return rand.Int64N(span + 1)
}
