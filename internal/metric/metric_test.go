package metric

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	h := New(Bounds{10, 100, 1000})
	for _, v := range []int64{-5, 0, 10, 11, 100, 500, 1000, 1001, 1 << 40} {
		h.Observe(v)
	}
	s := h.Snapshot()
	want := []uint64{3, 2, 2, 2} // ≤10 (−5→0, 0, 10), ≤100, ≤1000, +Inf
	for i, c := range want {
		if s.Counts[i] != c {
			t.Fatalf("bucket %d: %d, want %d (all %v)", i, s.Counts[i], c, s.Counts)
		}
	}
	if s.Count != 9 {
		t.Fatalf("count %d", s.Count)
	}
	if wantSum := int64(0 + 0 + 10 + 11 + 100 + 500 + 1000 + 1001 + 1<<40); s.Sum != wantSum {
		t.Fatalf("sum %d, want %d", s.Sum, wantSum)
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := New(LatencyBounds)
	if _, ok := h.Snapshot().Quantile(0.5); ok {
		t.Fatal("an empty histogram has no quantile")
	}
	// 90 observations at 3 ms, 10 at 400 ms: p50 in (2.5 ms, 5 ms], p99 in (250 ms, 500 ms].
	for range 90 {
		h.ObserveDuration(3 * time.Millisecond)
	}
	for range 10 {
		h.ObserveDuration(400 * time.Millisecond)
	}
	s := h.Snapshot()
	p50, _ := s.Quantile(0.5)
	if p50 <= float64(2500*time.Microsecond) || p50 > float64(5*time.Millisecond) {
		t.Fatalf("p50 %v", time.Duration(p50))
	}
	p99, _ := s.Quantile(0.99)
	if p99 <= float64(250*time.Millisecond) || p99 > float64(500*time.Millisecond) {
		t.Fatalf("p99 %v", time.Duration(p99))
	}
	h.ObserveDuration(100 * time.Hour)
	if top, _ := h.Snapshot().Quantile(1); top != float64(time.Hour) {
		t.Fatalf("the +Inf bucket reports the last bound, got %v", time.Duration(top))
	}
}

func TestSnapshotSub(t *testing.T) {
	h := New(SizeBounds)
	h.Observe(3)
	before := h.Snapshot()
	h.Observe(3)
	h.Observe(5000)
	d := h.Snapshot().Sub(before)
	if d.Count != 2 || d.Sum != 5003 {
		t.Fatalf("window: count %d sum %d", d.Count, d.Sum)
	}
	if v, _ := d.Quantile(0.25); math.IsNaN(v) || v <= 2 || v > 4 {
		t.Fatalf("p25 of the window %v", v)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	h := New(LatencyBounds)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(int64(g*1000 + i))
			}
		}()
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 4000 {
		t.Fatalf("count %d", s.Count)
	}
}

func BenchmarkObserve(b *testing.B) {
	h := New(LatencyBounds)
	b.RunParallel(func(pb *testing.PB) {
		v := int64(0)
		for pb.Next() {
			v += 7919
			h.Observe(v % int64(time.Second))
		}
	})
}
