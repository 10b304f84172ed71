// Package errs defines the errors Spool reports to clients: a stable code,
// whether retrying can help, and a retry-after hint. Every protocol front
// end (native API, Kafka, schema registry) maps codes through one table
// (internal/api for Connect codes; the Kafka and HTTP tables follow the same
// codes), so one condition is reported the same way everywhere.
package errs

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code (snake_case, part of the
// API).
type Code string

// The codes.
const (
	InvalidArgument     Code = "invalid_argument"
	TopicNotFound       Code = "topic_not_found"
	TopicExists         Code = "topic_exists"
	SubNotFound         Code = "subscription_not_found"
	SubExists           Code = "subscription_exists"
	TopicFull           Code = "topic_full"
	MessageTooLarge     Code = "message_too_large"
	StaleGeneration     Code = "stale_generation"
	UnknownMember       Code = "unknown_member"
	NotOwner            Code = "not_owner"
	GroupFull           Code = "group_full"
	StorageFailed       Code = "storage_failed"
	Unavailable         Code = "unavailable"
	ResourceExhausted   Code = "resource_exhausted"
	FailedPrecondition  Code = "failed_precondition"
	Internal            Code = "internal"
	Canceled            Code = "canceled"
	DeadlineExceeded    Code = "deadline_exceeded"
	OffsetOutOfRange    Code = "offset_out_of_range"
	CorruptData         Code = "corrupt_data"
	UnsupportedFeature  Code = "unsupported"
	PermissionDenied    Code = "permission_denied"
	Unauthenticated     Code = "unauthenticated"
	DuplicateInProgress Code = "duplicate_in_progress"
	// OutOfOrderSequence refuses an idempotent producer's batch whose first
	// sequence number is not the next the partition expects (an earlier
	// batch is missing: it failed, or is still to be resent). The producer
	// resends its batches of the partition in order, from the missing one.
	OutOfOrderSequence Code = "out_of_order_sequence"
	// ProducerFenced refuses a batch of a producer epoch older than one the
	// partition has seen: a newer instance of the producer took over.
	ProducerFenced Code = "producer_fenced"
	// SchemaInvalid refuses a message of a topic bound to a schema subject
	// whose value is not in the registry's wire format, names a schema of
	// another subject, or does not decode and validate against its schema.
	SchemaInvalid Code = "schema_invalid"
	// DiskFull refuses a publish while the data directory's file system
	// is below its free-space watermark (storage.min-free-bytes): nothing
	// of the request is stored; retry after RetryAfter. Writing resumes by
	// itself when space returns.
	DiskFull Code = "disk_full"
)

// Codes returns every code, in the order they are declared; each front
// end's table maps all of them (tests check it).
func Codes() []Code {
	return []Code{InvalidArgument, TopicNotFound, TopicExists, SubNotFound, SubExists, TopicFull, MessageTooLarge,
		StaleGeneration, UnknownMember, NotOwner, GroupFull, StorageFailed, Unavailable, ResourceExhausted,
		FailedPrecondition, Internal, Canceled, DeadlineExceeded, OffsetOutOfRange, CorruptData, UnsupportedFeature,
		PermissionDenied, Unauthenticated, DuplicateInProgress, OutOfOrderSequence, ProducerFenced, SchemaInvalid, DiskFull}
}

// retriable lists codes for which a later retry of the same request can
// succeed.
var retriable = map[Code]bool{
	TopicFull:           true,
	StaleGeneration:     true,
	Unavailable:         true,
	ResourceExhausted:   true,
	DeadlineExceeded:    true,
	DuplicateInProgress: true,
	DiskFull:            true,
}

// Error is an error with a code.
type Error struct {
	Code       Code
	Msg        string
	RetryAfter time.Duration // hint for retriable errors; 0 = none
	Err        error         // cause, if any
	// NotLeader, on an Unavailable error of a cluster node that does not
	// lead the partition a request named: who does, as far as this node
	// knows. Front ends pass it on so that clients route without parsing
	// the message.
	NotLeader *NotLeader
	// NotCoordinator, on an Unavailable error of a cluster node that does
	// not coordinate subscriptions: who does, as far as this node knows.
	NotCoordinator *NotCoordinator
}

// NotCoordinator names the cluster's subscription coordinator to a client
// that reached another node.
type NotCoordinator struct {
	Node uint64 // the coordinator's node id; 0: none right now (an election)
	Addr string // its native API address (host:port); "": unknown
}

// NotLeader names a partition's leader to a client that reached another
// node of a cluster.
type NotLeader struct {
	Topic     string
	Partition int32
	Node      uint64 // the leader's node id; 0: none right now (an election)
	Addr      string // its native API address (host:port); "": unknown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retriable reports whether retrying the same request later can succeed.
func (e *Error) Retriable() bool { return retriable[e.Code] }

// New returns an error with a code and a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code, a message and a cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// NotLeaderOf returns the NotLeader of the first *Error in err's chain
// that carries one, or nil.
func NotLeaderOf(err error) *NotLeader {
	for err != nil {
		if e, ok := err.(*Error); ok && e.NotLeader != nil {
			return e.NotLeader
		}
		err = errors.Unwrap(err)
	}
	return nil
}

// NotCoordinatorOf returns the NotCoordinator of the first *Error in
// err's chain that carries one, or nil.
func NotCoordinatorOf(err error) *NotCoordinator {
	for err != nil {
		if e, ok := err.(*Error); ok && e.NotCoordinator != nil {
			return e.NotCoordinator
		}
		err = errors.Unwrap(err)
	}
	return nil
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries code.
func Is(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
