package client

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// Stable error codes Spool puts in ErrorInfo; Error.Code holds one of these
// or a Connect code name ("unavailable", "deadline_exceeded", …) when the
// server or the transport sent no ErrorInfo.
const (
	CodeTopicNotFound        = "topic_not_found"        // matches ErrTopicNotFound
	CodeSubscriptionNotFound = "subscription_not_found" // matches ErrSubscriptionNotFound
	CodeTopicExists          = "topic_exists"           // matches ErrTopicExists
	CodeSubscriptionExists   = "subscription_exists"    // matches ErrSubscriptionExists
	CodeTopicFull            = "topic_full"             // matches ErrTopicFull; retriable
	CodeInvalidArgument      = "invalid_argument"       // matches ErrInvalidArgument
	CodeMessageTooLarge      = "message_too_large"      // matches ErrMessageTooLarge
	CodeStaleGeneration      = "stale_generation"       // matches ErrStaleGeneration; retriable
	CodeUnavailable          = "unavailable"            // matches ErrUnavailable; retriable
	// CodeOutOfOrderSequence refuses a Producer's batch whose predecessor
	// is missing; the Producer resends its batches in order (never seen
	// by a Send's caller).
	CodeOutOfOrderSequence = "out_of_order_sequence"
	// CodeProducerFenced refuses a Producer's batch of an older epoch.
	CodeProducerFenced = "producer_fenced"
	// CodeSchemaInvalid refuses a message of a topic bound to a schema
	// subject that does not match one of the subject's schemas.
	CodeSchemaInvalid = "schema_invalid"
	// CodeDiskFull refuses a publish while the server's data directory is
	// below its free-space watermark; retriable, with a RetryAfter hint
	// (matches ErrDiskFull).
	CodeDiskFull = "disk_full"
)

// Sentinels for the common codes: errors.Is(err, ErrTopicNotFound) is true
// for any *Error whose Code is CodeTopicNotFound, wherever it was wrapped.
var (
	// ErrTopicNotFound: the topic does not exist.
	ErrTopicNotFound = errors.New("client: topic not found")
	// ErrSubscriptionNotFound: the subscription does not exist on the topic.
	ErrSubscriptionNotFound = errors.New("client: subscription not found")
	// ErrTopicExists: CreateTopic found a topic of that name.
	ErrTopicExists = errors.New("client: topic exists")
	// ErrSubscriptionExists: CreateSubscription found one of that name.
	ErrSubscriptionExists = errors.New("client: subscription exists")
	// ErrTopicFull: a bounded topic with DiscardNew rejected a publish;
	// retriable, with a RetryAfter hint.
	ErrTopicFull = errors.New("client: topic full")
	// ErrInvalidArgument: the request (or a message) was rejected as malformed,
	// by the server or by the client's own checks before sending.
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrMessageTooLarge: a message exceeds the topic's MaxMessageBytes.
	ErrMessageTooLarge = errors.New("client: message too large")
	// ErrStaleGeneration: a commit carried an old group generation (the
	// member's partitions were reassigned); the consumer handles it itself.
	ErrStaleGeneration = errors.New("client: stale generation")
	// ErrUnavailable: the server could not be reached or is not serving;
	// retriable.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrDiskFull: the server's disk is nearly full and it refuses
	// publishes until space returns; retriable, with a RetryAfter hint.
	ErrDiskFull = errors.New("client: disk full")
)

// Errors made by the client itself.
var (
	// ErrClosed: the Client was closed; every later call fails with it.
	ErrClosed = errors.New("client: closed")
	// ErrProducerClosed: Send after Close, or a message still unsent when
	// Close gave up because its context ended.
	ErrProducerClosed = errors.New("client: producer closed")
	// ErrDeliveryTimeout: a message was not acknowledged within the
	// producer's delivery timeout; the error also wraps the last attempt's
	// error, if there was one.
	ErrDeliveryTimeout = errors.New("client: delivery timeout")
	// ErrConsumerRunning: Run was called while the consumer was running.
	ErrConsumerRunning = errors.New("client: consumer already running")
	// ErrInvalidOption: an option was given an out-of-range value.
	ErrInvalidOption = errors.New("client: invalid option")
)

var sentinelByCode = map[string]error{
	CodeTopicNotFound:        ErrTopicNotFound,
	CodeSubscriptionNotFound: ErrSubscriptionNotFound,
	CodeTopicExists:          ErrTopicExists,
	CodeSubscriptionExists:   ErrSubscriptionExists,
	CodeTopicFull:            ErrTopicFull,
	CodeInvalidArgument:      ErrInvalidArgument,
	CodeMessageTooLarge:      ErrMessageTooLarge,
	CodeStaleGeneration:      ErrStaleGeneration,
	CodeUnavailable:          ErrUnavailable,
	CodeDiskFull:             ErrDiskFull,
}

// Error is an error reported by Spool (or, for transport failures, on its
// behalf); match it with errors.Is against the Err* sentinels or errors.As.
type Error struct {
	// Code is the stable machine-readable code (see the Code* constants).
	Code string
	// Message is the human-readable explanation; may be empty.
	Message string
	// Retriable reports whether sending the same request later can succeed.
	Retriable bool
	// RetryAfter is the server's hint for when to retry; 0 means no hint.
	RetryAfter time.Duration

	cause  error       // the Connect error this was built from, if any
	leader *leaderHint // a cluster node's refusal of a partition it does not lead
	coord  *coordHint  // a cluster node's refusal of a subscription operation it does not coordinate
}

// Error returns "client: <code>: <message>".
func (e *Error) Error() string {
	if e.Message == "" {
		return "client: " + e.Code
	}
	return "client: " + e.Code + ": " + e.Message
}

// Is reports whether target is the sentinel for e.Code.
func (e *Error) Is(target error) bool {
	s, ok := sentinelByCode[e.Code]
	return ok && s == target
}

// Unwrap returns the underlying transport error (a *connect.Error), or nil
// for errors the server answered in-stream or the client made itself.
func (e *Error) Unwrap() error { return e.cause }

// IsRetriable reports whether err (or an error it wraps) is an *Error marked
// retriable; false for nil and for errors not from Spool.
func IsRetriable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retriable
}

// invalidArgument is a client-side validation failure that matches
// ErrInvalidArgument.
func invalidArgument(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}

// errorFromInfo builds the *Error for an in-stream ErrorInfo.
func errorFromInfo(info *spoolv1.ErrorInfo, message string) *Error {
	return &Error{
		Code:       info.GetCode(),
		Message:    message,
		Retriable:  info.GetRetriable(),
		RetryAfter: info.GetRetryAfter().AsDuration(),
		leader:     leaderHintOf(info.GetNotLeader()),
		coord:      coordHintOf(info.GetNotCoordinator()),
	}
}

// convertError turns a Connect error into an *Error, using its ErrorInfo
// detail when present and the Connect code otherwise (only "unavailable" is
// then retriable). Errors that are not Connect errors pass unchanged.
func convertError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if info, ok := v.(*spoolv1.ErrorInfo); ok {
			e := errorFromInfo(info, ce.Message())
			e.cause = ce
			return e
		}
	}
	return &Error{
		Code:      ce.Code().String(),
		Message:   ce.Message(),
		Retriable: ce.Code() == connect.CodeUnavailable,
		cause:     ce,
	}
}

// streamRetriable reports whether a broken stream is worth reopening: yes
// for retriable errors and for failures with no ErrorInfo that are not
// plainly permanent (bad request, missing method, refused credentials).
func streamRetriable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return true // I/O errors, EOF in the middle of a stream
	}
	if e.Retriable {
		return true
	}
	var ce *connect.Error
	if errors.As(e.cause, &ce) && len(ce.Details()) == 0 {
		switch ce.Code() {
		case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeAlreadyExists,
			connect.CodePermissionDenied, connect.CodeFailedPrecondition, connect.CodeOutOfRange,
			connect.CodeUnimplemented, connect.CodeUnauthenticated:
			return false
		}
		return true
	}
	return false
}
