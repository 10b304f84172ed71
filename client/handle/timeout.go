package handle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spoolmq/spool/client"
)

// ErrTimeout is the error Timeout returns for a handler that did not
// return in time; it wraps context.DeadlineExceeded and is transient.
var ErrTimeout = fmt.Errorf("handle: handler timed out: %w", context.DeadlineExceeded)

// Timeout gives every call of the handlers it wraps a deadline d after it
// starts (ctx's own deadline, if earlier, stays). A handler that has not
// returned when its context ends is abandoned: Timeout returns ErrTimeout
// (or, when the consumer cancelled ctx, ctx's error), so the message is
// nacked and redelivered, while the handler's goroutine goes on until it
// returns; its result is then discarded. Handlers must therefore honour
// their context, or abandoned calls pile up, and must tolerate running
// concurrently with a redelivery of the same message. A panic of the
// handler is recovered as Recover(false) does. d ≤ 0 returns the handler
// unchanged.
func Timeout(d time.Duration) Middleware {
	return func(next client.Handler) client.Handler {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, m *client.Message) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			done := make(chan error, 1)
			go func() {
				defer func() {
					if v := recover(); v != nil {
						done <- panicked(v, false)
					}
				}()
				done <- next(ctx, m)
			}()
			select {
			case err := <-done:
				cancel()
				return err
			case <-ctx.Done():
				cancel()
				select {
				case err := <-done: // it returned meanwhile
					return err
				default:
				}
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return ErrTimeout
				}
				return ctx.Err()
			}
		}
	}
}
