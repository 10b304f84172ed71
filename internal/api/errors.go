package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/errs"
)

// connectCodes maps Spool's error codes to Connect (gRPC) codes. This is
// the native API's column of the one error table; the Kafka front end maps
// the same errs codes to Kafka error codes.
var connectCodes = map[errs.Code]connect.Code{
	errs.InvalidArgument:     connect.CodeInvalidArgument,
	errs.MessageTooLarge:     connect.CodeInvalidArgument,
	errs.TopicNotFound:       connect.CodeNotFound,
	errs.SubNotFound:         connect.CodeNotFound,
	errs.TopicExists:         connect.CodeAlreadyExists,
	errs.SubExists:           connect.CodeAlreadyExists,
	errs.TopicFull:           connect.CodeResourceExhausted,
	errs.ResourceExhausted:   connect.CodeResourceExhausted,
	errs.GroupFull:           connect.CodeResourceExhausted,
	errs.StaleGeneration:     connect.CodeFailedPrecondition,
	errs.UnknownMember:       connect.CodeFailedPrecondition,
	errs.NotOwner:            connect.CodeFailedPrecondition,
	errs.FailedPrecondition:  connect.CodeFailedPrecondition,
	errs.StorageFailed:       connect.CodeInternal,
	errs.CorruptData:         connect.CodeDataLoss,
	errs.Internal:            connect.CodeInternal,
	errs.Unavailable:         connect.CodeUnavailable,
	errs.DuplicateInProgress: connect.CodeAborted,
	errs.Canceled:            connect.CodeCanceled,
	errs.DeadlineExceeded:    connect.CodeDeadlineExceeded,
	errs.OffsetOutOfRange:    connect.CodeOutOfRange,
	errs.UnsupportedFeature:  connect.CodeUnimplemented,
	errs.PermissionDenied:    connect.CodePermissionDenied,
	errs.Unauthenticated:     connect.CodeUnauthenticated,
	errs.OutOfOrderSequence:  connect.CodeAborted,
	errs.ProducerFenced:      connect.CodeFailedPrecondition,
	errs.SchemaInvalid:       connect.CodeInvalidArgument,
	errs.DiskFull:            connect.CodeResourceExhausted,
}

// toConnect converts any error to a *connect.Error carrying an ErrorInfo
// detail.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	info, msg := errorInfo(err)
	code, ok := connectCodes[errs.Code(info.Code)]
	if !ok {
		code = connect.CodeInternal
	}
	out := connect.NewError(code, errors.New(msg))
	if d, derr := connect.NewErrorDetail(info); derr == nil {
		out.AddDetail(d)
	}
	return out
}

// errorInfo returns the ErrorInfo and message for an error.
func errorInfo(err error) (*spoolv1.ErrorInfo, string) {
	var e *errs.Error
	switch {
	case errors.As(err, &e):
		info := &spoolv1.ErrorInfo{Code: string(e.Code), Retriable: e.Retriable()}
		if e.RetryAfter > 0 {
			info.RetryAfter = durationpb.New(e.RetryAfter)
		}
		if nl := errs.NotLeaderOf(err); nl != nil {
			info.NotLeader = &spoolv1.NotLeader{Topic: nl.Topic, Partition: nl.Partition, Leader: nl.Node, LeaderAddr: nl.Addr}
		}
		if nc := errs.NotCoordinatorOf(err); nc != nil {
			info.NotCoordinator = &spoolv1.NotCoordinator{Coordinator: nc.Node, CoordinatorAddr: nc.Addr}
		}
		return info, e.Error()
	case errors.Is(err, context.Canceled):
		return &spoolv1.ErrorInfo{Code: string(errs.Canceled)}, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return &spoolv1.ErrorInfo{Code: string(errs.DeadlineExceeded), Retriable: true}, err.Error()
	}
	return &spoolv1.ErrorInfo{Code: string(errs.Internal)}, err.Error()
}

// invalid returns an invalid_argument error.
func invalid(format string, args ...any) error {
	return toConnect(errs.New(errs.InvalidArgument, format, args...))
}
