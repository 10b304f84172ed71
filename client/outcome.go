package client

import (
	"time"
	"unicode/utf8"
)

// Bounds the server puts on lease requests.
const (
	maxAckOffsets = 1 << 16             // offsets (and ranges) one Ack or Extend may cover
	maxNackDelay  = 30 * 24 * time.Hour // the longest redelivery delay of a Nack
	maxErrorText  = 1024                // error text kept with a nacked or rejected message
)

// RejectError is a handler error that makes a queue-mode Consumer reject the
// message (dead-letter it at once) instead of nacking it; build it with
// Reject.
type RejectError struct {
	Err error // why; its text is kept with the dead-lettered message
}

// Reject wraps err so that, returned by a Handler (wrapped further or not),
// the queue-mode Consumer rejects the message: it is dead-lettered at once
// with reason ReasonRejected and err's text, whatever its delivery count.
// Use it for messages that can never succeed (malformed, unknown version).
// In stream mode it is an ordinary handler error. err may be nil.
func Reject(err error) error { return &RejectError{Err: err} }

// Error returns the wrapped error's text, or "rejected" without one.
func (e *RejectError) Error() string {
	if e.Err == nil {
		return "rejected"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *RejectError) Unwrap() error { return e.Err }

// RetryError is a handler error that makes a queue-mode Consumer nack the
// message with an explicit redelivery delay; build it with RetryAfter.
type RetryError struct {
	Err   error         // why; its text is kept with the message
	After time.Duration // redeliver after this long (0–30 days)
}

// RetryAfter wraps err so that, returned by a Handler (wrapped further or
// not), the queue-mode Consumer nacks the message asking for redelivery
// after d instead of after the subscription's Backoff (a rate-limited
// downstream's Retry-After, say); d is clamped to 0–30 days. The delivery
// still counts towards MaxDeliveries. In stream mode it is an ordinary
// handler error. err may be nil.
func RetryAfter(err error, d time.Duration) error {
	return &RetryError{Err: err, After: min(max(d, 0), maxNackDelay)}
}

// Error returns the wrapped error's text, or "retry" without one.
func (e *RetryError) Error() string {
	if e.Err == nil {
		return "retry"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *RetryError) Unwrap() error { return e.Err }

// errorText is err's text for a nack or reject, cut to what the server
// keeps (at a character boundary).
func errorText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
