package batch

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidBatch matches every *ValidationError.
	ErrInvalidBatch = errors.New("batch: invalid record batch")
	// ErrIncomplete matches the *IncompleteError Next returns for a short buffer.
	ErrIncomplete = errors.New("batch: incomplete batch")
	// ErrDecompressedTooLarge matches a *DecompressError for output past the limit.
	ErrDecompressedTooLarge = errors.New("batch: decompressed size exceeds limit")
	// ErrCorruptCompressed matches a *DecompressError for malformed compressed input.
	ErrCorruptCompressed = errors.New("batch: corrupt compressed data")
	// ErrUnknownCodec is returned for a codec number other than 0–4.
	ErrUnknownCodec = errors.New("batch: unknown compression codec")
)

// Check names carried by ValidationError.Check.
const (
	checkLength          = "length"            // shorter than HeaderSize
	checkBatchLength     = "batch-length"      // batchLength disagrees with the bytes present
	checkBatchSize       = "batch-size"        // batch larger than Limits.MaxBatchBytes
	checkMagic           = "magic"             // magic is not 2
	checkCRC             = "crc"               // CRC-32C mismatch
	checkCodec           = "codec"             // codec bits above 4
	checkRecordCount     = "record-count"      // recordsCount out of range or not matching the records
	checkLastOffsetDelta = "last-offset-delta" // lastOffsetDelta ≠ recordsCount−1
	checkProducerID      = "producer-id"       // transactional batch without a producer id
	checkDecompress      = "decompress"        // records section failed to decompress
	checkVarint          = "varint"            // truncated or over-long varint
	checkRecords         = "records"           // record structure: lengths, nulls, trailing bytes
	checkOffsetDelta     = "offset-delta"      // record offsetDelta out of sequence
	checkTimestamp       = "timestamp"         // record timestamp overflows or exceeds maxTimestamp
)

// ValidationError reports the first check a batch failed. Check is one of
// "length", "batch-length", "batch-size", "magic", "crc", "codec",
// "record-count", "last-offset-delta", "producer-id", "decompress",
// "varint", "records", "offset-delta" or "timestamp". It matches
// ErrInvalidBatch, and also Err (a *DecompressError for "decompress") when set.
type ValidationError struct {
	Check  string
	Detail string
	Err    error // underlying cause, nil for most checks
}

// Error returns "batch: invalid record batch: <check>: <detail>".
func (e *ValidationError) Error() string {
	return ErrInvalidBatch.Error() + ": " + e.Check + ": " + e.Detail
}

// Unwrap returns ErrInvalidBatch and, when set, the underlying cause.
func (e *ValidationError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidBatch, e.Err}
	}
	return []error{ErrInvalidBatch}
}

func invalid(check, format string, args ...any) *ValidationError {
	return &ValidationError{Check: check, Detail: fmt.Sprintf(format, args...)}
}

// DecompressError reports a failed decompression. Kind is
// ErrDecompressedTooLarge, ErrCorruptCompressed or ErrUnknownCodec; Cause is
// the codec library's error, if any.
type DecompressError struct {
	Codec Codec
	Limit int // the output cap in force
	Kind  error
	Cause error
}

// Error describes the codec, the failure kind and, when known, its cause.
func (e *DecompressError) Error() string {
	msg := "batch: " + e.Codec.String() + ": "
	switch {
	case e.Kind == ErrDecompressedTooLarge:
		msg += fmt.Sprintf("decompressed size exceeds limit of %d bytes", e.Limit)
	case e.Kind != nil:
		msg += trimPrefix(e.Kind.Error())
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns Kind and, when set, Cause.
func (e *DecompressError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

func trimPrefix(s string) string {
	const p = "batch: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// IncompleteError is returned by Next when the buffer ends before the batch
// does. Need is the number of bytes required to make progress: 12 while the
// length prefix itself is incomplete, else the whole batch size. It matches
// ErrIncomplete and io.ErrUnexpectedEOF.
type IncompleteError struct {
	Have int
	Need int64
}

// Error returns "batch: incomplete batch: have N bytes, need M".
func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%s: have %d bytes, need %d", ErrIncomplete.Error(), e.Have, e.Need)
}

// Unwrap returns ErrIncomplete and io.ErrUnexpectedEOF.
func (e *IncompleteError) Unwrap() []error {
	return []error{ErrIncomplete, io.ErrUnexpectedEOF}
}
