package handle

import (
	"context"
	"fmt"
	"time"

	"github.com/spoolmq/spool/client"
)

// Limiter bounds how many handler calls run at once across every handler
// it wraps: several consumers calling one dependency can share one. The
// zero Limiter is not usable; make one with NewLimiter.
type Limiter struct {
	name    string
	sem     chan struct{}
	metrics Metrics
}

// NewLimiter returns a limiter of n calls at once (n < 1 is taken as 1),
// named name in metrics and span events; m may be nil.
func NewLimiter(name string, n int, m Metrics) *Limiter {
	return &Limiter{name: name, sem: make(chan struct{}, max(n, 1)), metrics: m}
}

// InUse returns how many calls hold the limiter now.
func (l *Limiter) InUse() int { return len(l.sem) }

// Middleware makes every call wait for a free slot before it runs. A
// call whose context ends while it waits returns the context's error
// (the message is nacked) without running.
func (l *Limiter) Middleware() Middleware {
	return func(next client.Handler) client.Handler {
		return func(ctx context.Context, m *client.Message) error {
			start := time.Now()
			select {
			case l.sem <- struct{}{}:
			default:
				select {
				case l.sem <- struct{}{}:
				case <-ctx.Done():
					return fmt.Errorf("handle: waiting for limiter %s: %w", l.name, ctx.Err())
				}
				waited := time.Since(start)
				if l.metrics != nil {
					l.metrics.Waited("limit", l.name, waited)
				}
				spanEvent(ctx, "spool.limit.wait", AttrWaited.Int64(waited.Milliseconds()))
			}
			defer func() { <-l.sem }()
			return next(ctx, m)
		}
	}
}
