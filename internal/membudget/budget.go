// Package membudget is a byte budget: memory that requests in flight may
// hold together, server-wide. A request that does not fit waits for room,
// which stops its connection or stream being read (backpressure); the
// waits are counted, for metrics.
package membudget

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Budget bounds bytes held at once. Its methods are safe for concurrent
// use.
type Budget struct {
	sem      *semaphore.Weighted
	limit    int64
	inUse    atomic.Int64
	waits    atomic.Uint64
	waitTime atomic.Int64 // nanoseconds
	refused  atomic.Uint64
}

// New returns a budget of limit bytes (at least 1).
func New(limit int64) *Budget {
	limit = max(limit, 1)
	return &Budget{sem: semaphore.NewWeighted(limit), limit: limit}
}

// Limit is the budget's size.
func (b *Budget) Limit() int64 { return b.limit }

// Acquire waits until n bytes fit (n above the limit is charged as the
// limit: such a request runs alone) and returns what it charged, which the
// caller gives back with Release; an error when ctx ends first.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.limit)
	if b.sem.TryAcquire(n) {
		b.inUse.Add(n)
		return n, nil
	}
	b.waits.Add(1)
	start := time.Now()
	err := b.sem.Acquire(ctx, n)
	b.waitTime.Add(int64(time.Since(start)))
	if err != nil {
		return 0, err
	}
	b.inUse.Add(n)
	return n, nil
}

// TryAcquire charges n bytes (at most the limit) if they fit now, and
// returns what it charged; 0 and false when they do not (counted as a
// refusal).
func (b *Budget) TryAcquire(n int64) (int64, bool) {
	n = min(max(n, 0), b.limit)
	if !b.sem.TryAcquire(n) {
		b.refused.Add(1)
		return 0, false
	}
	b.inUse.Add(n)
	return n, true
}

// Release gives back n bytes that Acquire charged.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.inUse.Add(-n)
	b.sem.Release(n)
}

// Stats are a budget's size, use and waits.
type Stats struct {
	Limit, InUse int64
	// Waits counts the acquisitions that did not fit at once;
	// WaitTime adds up how long they waited.
	Waits    uint64
	WaitTime time.Duration
	// Refused counts the TryAcquires that did not fit.
	Refused uint64
}

// Stats returns the budget's current numbers; a nil budget's are zero.
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	return Stats{Limit: b.limit, InUse: b.inUse.Load(), Waits: b.waits.Load(), WaitTime: time.Duration(b.waitTime.Load()), Refused: b.refused.Load()}
}
