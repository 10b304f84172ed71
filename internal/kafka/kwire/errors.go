// Package kwire holds what the Kafka front end and its cores (kgroup,
// kshare, kfetch) share about the wire: the Kafka error code of a
// Spool error and the 16-byte form of topic ids.
package kwire

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
)

// kafkaCodes maps Spool's error codes to Kafka error codes: the Kafka
// column of the error table (internal/api holds the Connect column).
var kafkaCodes = map[errs.Code]int16{
	errs.InvalidArgument:     kerr.InvalidRequest.Code,
	errs.MessageTooLarge:     kerr.MessageTooLarge.Code,
	errs.TopicNotFound:       kerr.UnknownTopicOrPartition.Code,
	errs.SubNotFound:         kerr.GroupIDNotFound.Code,
	errs.TopicExists:         kerr.TopicAlreadyExists.Code,
	errs.TopicFull:           kerr.ThrottlingQuotaExceeded.Code,
	errs.ResourceExhausted:   kerr.ThrottlingQuotaExceeded.Code,
	errs.GroupFull:           kerr.GroupMaxSizeReached.Code,
	errs.StaleGeneration:     kerr.IllegalGeneration.Code,
	errs.UnknownMember:       kerr.UnknownMemberID.Code,
	errs.NotOwner:            kerr.IllegalGeneration.Code,
	errs.StorageFailed:       kerr.KafkaStorageError.Code,
	errs.CorruptData:         kerr.CorruptMessage.Code,
	errs.Unavailable:         kerr.LeaderNotAvailable.Code,
	errs.DuplicateInProgress: kerr.ConcurrentTransactions.Code,
	errs.OffsetOutOfRange:    kerr.OffsetOutOfRange.Code,
	errs.UnsupportedFeature:  kerr.UnsupportedVersion.Code,
	errs.PermissionDenied:    kerr.TopicAuthorizationFailed.Code,
	errs.Unauthenticated:     kerr.SaslAuthenticationFailed.Code,
	errs.OutOfOrderSequence:  kerr.OutOfOrderSequenceNumber.Code,
	errs.ProducerFenced:      kerr.InvalidProducerEpoch.Code,
	errs.SchemaInvalid:       kerr.InvalidRecord.Code,
	// Retriable in every Kafka client (the Java client also refreshes its
	// metadata), and what Kafka answers when a log directory fails; the
	// batch was not written.
	errs.DiskFull: kerr.KafkaStorageError.Code,
	// No Kafka counterpart: requests that can end so are answered with
	// their own codes where it matters (e.g. OffsetCommit).
	errs.SubExists:          kerr.UnknownServerError.Code,
	errs.FailedPrecondition: kerr.UnknownServerError.Code,
	errs.Internal:           kerr.UnknownServerError.Code,
	errs.Canceled:           kerr.UnknownServerError.Code,
	errs.DeadlineExceeded:   kerr.UnknownServerError.Code,
}

// ErrCode returns the Kafka error code for err (0 for nil).
func ErrCode(err error) int16 {
	if err == nil {
		return 0
	}
	if c, ok := kafkaCodes[errs.CodeOf(err)]; ok {
		return c
	}
	return kerr.UnknownServerError.Code
}

// AppendErrCode returns the Produce error code of an append error: a batch
// that does not validate is CORRUPT_MESSAGE, one the broker refuses
// (InvalidArgument: a control batch, no such partition) INVALID_RECORD.
func AppendErrCode(err error) int16 {
	var ve *batch.ValidationError
	switch {
	case errors.As(err, &ve), errors.Is(err, batch.ErrInvalidBatch), errors.Is(err, batch.ErrIncomplete):
		return kerr.CorruptMessage.Code
	case errs.Is(err, errs.InvalidArgument):
		return kerr.InvalidRecord.Code
	}
	return ErrCode(err)
}
