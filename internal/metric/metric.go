// Package metric holds the lock-free histograms the broker and its cores
// keep beside the objects they measure (a topic's publish latency, a
// subscription's end-to-end latencies). It imports no metrics library:
// internal/telemetry reads snapshots at scrape time and exposes them.
//
// A Histogram has fixed bucket bounds chosen when it is made, counts in
// atomics, and a sum; Observe is a bucket search and two atomic adds, safe
// from any goroutine. Values are int64 in the unit of the bounds
// (nanoseconds for latencies, a count for sizes).
package metric

import (
	"slices"
	"sync/atomic"
	"time"
)

// Bounds are a histogram's upper bucket bounds, ascending; values above
// the last fall in the +Inf bucket.
type Bounds []int64

// LatencyBounds are the buckets of every latency histogram, in
// nanoseconds: 50 µs to one hour, roughly three per decade. End-to-end
// latencies of a lagging consumer reach minutes or hours; publish and
// fsync latencies sit in the first third.
var LatencyBounds = Bounds{
	int64(50 * time.Microsecond), int64(100 * time.Microsecond), int64(250 * time.Microsecond), int64(500 * time.Microsecond),
	int64(time.Millisecond), int64(2500 * time.Microsecond), int64(5 * time.Millisecond), int64(10 * time.Millisecond),
	int64(25 * time.Millisecond), int64(50 * time.Millisecond), int64(100 * time.Millisecond), int64(250 * time.Millisecond),
	int64(500 * time.Millisecond), int64(time.Second), int64(2500 * time.Millisecond), int64(5 * time.Second),
	int64(10 * time.Second), int64(30 * time.Second), int64(time.Minute), int64(5 * time.Minute),
	int64(15 * time.Minute), int64(time.Hour),
}

// SizeBounds are powers of two from 1 to 8192 (batches per group commit).
var SizeBounds = func() Bounds {
	var b Bounds
	for v := int64(1); v <= 8192; v *= 2 {
		b = append(b, v)
	}
	return b
}()

// Histogram counts observations into fixed buckets. The zero value is not
// usable: make one with New.
type Histogram struct {
	bounds Bounds
	counts []atomic.Uint64 // len(bounds)+1; the last is +Inf
	sum    atomic.Int64
}

// New returns an empty histogram over bounds (shared, never changed).
func New(bounds Bounds) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe adds one value. Negative values (clocks that stepped back) count
// as 0.
func (h *Histogram) Observe(v int64) {
	v = max(v, 0)
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// ObserveDuration adds a duration (histograms over LatencyBounds).
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(int64(d)) }

// Snapshot is a histogram's state at one moment: per-bucket counts (not
// cumulative; the last is +Inf), their total and the sum of the values.
type Snapshot struct {
	Bounds Bounds
	Counts []uint64
	Count  uint64
	Sum    int64
}

// Snapshot reads the histogram. Concurrent observations may be half in
// (counted, not yet summed); the next snapshot has them whole.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sum: h.sum.Load()}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
	return s
}

// Sub returns the observations made between before and s (two snapshots
// of one histogram, before taken first): what a window of time saw.
func (s Snapshot) Sub(before Snapshot) Snapshot {
	if len(before.Counts) != len(s.Counts) {
		return s
	}
	d := Snapshot{Bounds: s.Bounds, Counts: make([]uint64, len(s.Counts)), Sum: s.Sum - before.Sum}
	for i := range s.Counts {
		if s.Counts[i] >= before.Counts[i] {
			d.Counts[i] = s.Counts[i] - before.Counts[i]
		}
		d.Count += d.Counts[i]
	}
	return d
}

// Quantile estimates the q-quantile (0 < q < 1) by linear interpolation
// inside the bucket that holds it, as Prometheus's histogram_quantile
// does; values in the +Inf bucket are reported as the last bound. ok is
// false for an empty snapshot.
func (s Snapshot) Quantile(q float64) (v float64, ok bool) {
	if s.Count == 0 || len(s.Bounds) == 0 {
		return 0, false
	}
	rank := q * float64(s.Count)
	var seen float64
	for i, c := range s.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			if i == len(s.Bounds) {
				return float64(s.Bounds[len(s.Bounds)-1]), true
			}
			lo := 0.0
			if i > 0 {
				lo = float64(s.Bounds[i-1])
			}
			hi := float64(s.Bounds[i])
			return lo + (hi-lo)*(rank-seen)/float64(c), true
		}
		seen += float64(c)
	}
	return float64(s.Bounds[len(s.Bounds)-1]), true
}
