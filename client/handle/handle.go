package handle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
)

// Middleware wraps a Handler in another.
type Middleware func(client.Handler) client.Handler

// Chain returns h wrapped in mws, the first outermost: Chain(h, a, b)
// calls a, which calls b, which calls h. nil middlewares are skipped.
func Chain(h client.Handler, mws ...Middleware) client.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h = mws[i](h)
		}
	}
	return h
}

// Class is what becomes of a message whose handler failed.
type Class uint8

const (
	// Retry nacks the message: redelivered after the subscription's
	// backoff (or the Decision's After), dead-lettered after MaxDeliveries.
	Retry Class = iota
	// Reject dead-letters the message at once (client.Reject) with the
	// error's text as the reason.
	Reject
	// Drop acknowledges the message as if it had been handled: it is
	// neither redelivered nor dead-lettered.
	Drop
)

// String names the class: "retry", "reject" or "drop".
func (c Class) String() string {
	switch c {
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	default:
		return "retry"
	}
}

// Decision is a Classifier's verdict on one handler error.
type Decision struct {
	Class Class
	// After is, for Retry, the redelivery delay asked of the server
	// (client.RetryAfter); 0 means the subscription's backoff.
	After time.Duration
}

// Classifier decides what becomes of a message whose handler returned
// err (never nil).
type Classifier func(err error) Decision

// PermanentError marks an error that retrying cannot fix; build it with
// Permanent.
type PermanentError struct{ Err error }

// Permanent wraps err so that the default classifier rejects the message
// (dead-letters it at once with err's text). err may be nil.
func Permanent(err error) error { return &PermanentError{Err: err} }

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent failure"
	}
	return e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// DropError marks an error after which the message is acknowledged and
// forgotten; build it with DropMessage.
type DropError struct{ Err error }

// DropMessage wraps err so that the default classifier acknowledges the
// message (a duplicate, an event for something long gone): the error is
// logged and reported, the message is not redelivered. err may be nil.
func DropMessage(err error) error { return &DropError{Err: err} }

func (e *DropError) Error() string {
	if e.Err == nil {
		return "dropped"
	}
	return e.Err.Error()
}

func (e *DropError) Unwrap() error { return e.Err }

// IsTransient reports whether err looks like a passing failure of a
// dependency: a deadline or timeout, a refused or reset connection, a
// network error, an unexpected EOF, a retriable Spool error, a breaker
// that is open, or a handler timeout.
func IsTransient(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, ErrTimeout), errors.Is(err, ErrOpen),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne):
		return true
	}
	var se *client.Error
	return errors.As(err, &se) && se.Retriable
}

// DefaultClassifier is the classifier Classify uses without one:
//   - an error wrapping a PermanentError or a client.RejectError rejects
//     the message (dead-letter with its text);
//   - an error wrapping a DropError drops it (acknowledged);
//   - an error wrapping a client.RetryError retries after its delay;
//   - everything else retries after the subscription's backoff: transient
//     errors (IsTransient) as well as unknown ones, which the
//     subscription's MaxDeliveries bounds.
//
// A PanicError is retried unless Recover was told to reject it (it then
// wraps it in a PermanentError).
func DefaultClassifier(err error) Decision {
	var (
		pe *PermanentError
		re *client.RejectError
		de *DropError
		ra *client.RetryError
	)
	switch {
	case errors.As(err, &pe), errors.As(err, &re):
		return Decision{Class: Reject}
	case errors.As(err, &de):
		return Decision{Class: Drop}
	case errors.As(err, &ra):
		return Decision{Class: Retry, After: ra.After}
	}
	return Decision{Class: Retry}
}

// Metrics receives what the middlewares observe; implement it over the
// metrics library of the service (the SDK imports none). Methods are
// called from handler goroutines, concurrently, and must not block.
type Metrics interface {
	// Outcome counts a handler call that Classify finished: "ack", or a
	// failed call's class ("retry", "reject", "drop"), with its duration.
	Outcome(topic, outcome string, elapsed time.Duration)
	// BreakerState reports a breaker's new state: "closed", "half-open"
	// or "open".
	BreakerState(breaker, state string)
	// Waited reports how long a handler call waited before it ran: kind
	// "breaker" or "limit", with the breaker's or limiter's name.
	Waited(kind, name string, d time.Duration)
}

// ClassifyOption configures Classify.
type ClassifyOption func(*classifyConfig)

type classifyConfig struct {
	classify Classifier
	log      *slog.Logger
	metrics  Metrics
}

// WithClassifier replaces DefaultClassifier; nil keeps it.
func WithClassifier(c Classifier) ClassifyOption {
	return func(cfg *classifyConfig) {
		if c != nil {
			cfg.classify = c
		}
	}
}

// WithLogger logs dropped messages to l (default slog.Default(); nil
// discards). Retried and rejected messages are logged by the Consumer.
func WithLogger(l *slog.Logger) ClassifyOption {
	return func(cfg *classifyConfig) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		cfg.log = l
	}
}

// WithMetrics reports every outcome to m.
func WithMetrics(m Metrics) ClassifyOption {
	return func(cfg *classifyConfig) { cfg.metrics = m }
}

// Attribute keys the middlewares set on the handler's span (the
// Consumer's "process <topic>" span with client.WithTracerProvider).
const (
	AttrClass   = attribute.Key("messaging.spool.handler.class")
	AttrBreaker = attribute.Key("messaging.spool.breaker.name")
	AttrState   = attribute.Key("messaging.spool.breaker.state")
	AttrWaited  = attribute.Key("messaging.spool.waited_ms")
)

// Classify turns the handler's errors into the Consumer's outcomes with
// a Classifier: Reject becomes client.Reject (dead-letter at once, the
// error's text as the reason), Drop an acknowledgement, and Retry a nack,
// with client.RetryAfter when the Decision has a delay (an error that
// wraps a client.RetryError keeps its own delay). The class is set
// on the handler's span (attribute messaging.spool.handler.class). Put it
// outermost, so that it sees the errors of every other middleware.
func Classify(opts ...ClassifyOption) Middleware {
	cfg := classifyConfig{classify: DefaultClassifier, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	return func(next client.Handler) client.Handler {
		return func(ctx context.Context, m *client.Message) error {
			start := time.Now()
			err := next(ctx, m)
			if err == nil {
				if cfg.metrics != nil {
					cfg.metrics.Outcome(m.Topic, "ack", time.Since(start))
				}
				return nil
			}
			d := cfg.classify(err)
			if cfg.metrics != nil {
				cfg.metrics.Outcome(m.Topic, d.Class.String(), time.Since(start))
			}
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				span.SetAttributes(AttrClass.String(d.Class.String()))
			}
			switch d.Class {
			case Reject:
				var re *client.RejectError
				if errors.As(err, &re) {
					return err
				}
				return client.Reject(err)
			case Drop:
				cfg.log.Warn("spool: handler failed; message dropped", "topic", m.Topic,
					"partition", m.Partition, "offset", m.Offset, "err", err)
				return nil
			}
			if d.After > 0 {
				return client.RetryAfter(err, d.After)
			}
			return err
		}
	}
}

// spanEvent adds an event to the handler's span, if it records one.
func spanEvent(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(name, trace.WithAttributes(attrs...))
	}
}
