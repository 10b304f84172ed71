package handle

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spoolmq/spool/client"
)

// PanicError is a handler's panic, recovered.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// Recover turns a panic of the handlers it wraps into an error, so that a
// panicking handler does not crash the consumer: a *PanicError (retried
// like other errors, so the subscription's MaxDeliveries bounds a message
// that always panics) or, with reject, a PermanentError wrapping it (the
// message is dead-lettered at once). Timeout recovers panics of the
// handlers it runs the same way, since they run on a goroutine of their
// own.
func Recover(reject bool) Middleware {
	return func(next client.Handler) client.Handler {
		return func(ctx context.Context, m *client.Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = panicked(v, reject)
				}
			}()
			return next(ctx, m)
		}
	}
}

func panicked(v any, reject bool) error {
	var err error = &PanicError{Value: v, Stack: debug.Stack()}
	if reject {
		err = Permanent(err)
	}
	return err
}
