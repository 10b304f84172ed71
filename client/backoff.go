package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter.
type backoff struct {
	min time.Duration // first wait (before jitter)
	max time.Duration // cap (before jitter)
}

// delay returns the wait before retry number attempt (1 = first retry): min
// doubled per attempt and capped at max, then jittered to between half and
// all of that ("equal jitter", so waits never collapse to zero). A server's
// retryAfter hint lengthens the wait (plus up to 10% jitter so that clients
// told the same hint do not return in lockstep), never shortens it.
func (b backoff) delay(attempt int, retryAfter time.Duration) time.Duration {
	d := b.min
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = retryAfter + rand.N(retryAfter/10+1)
	}
	return d
}

// sleep waits for d or until ctx ends, reporting whether the full wait
// elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
