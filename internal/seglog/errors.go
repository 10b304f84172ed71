package seglog

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("seglog: log closed")
	// ErrNotBatchBoundary is returned by TruncateAfter when the offset after
	// the cut is not the first offset of a batch.
	ErrNotBatchBoundary = errors.New("seglog: truncation point is not a batch boundary")
	// ErrReplicated is returned by the plain append and truncation methods
	// of a replicated log, whose batches are raft entries (SubmitEntries,
	// TruncateAfterIndex).
	ErrReplicated = errors.New("seglog: replicated log: use SubmitEntries and TruncateAfterIndex")
	// ErrNotReplicated is returned by the raft methods of a plain log.
	ErrNotReplicated = errors.New("seglog: not a replicated log")
	// ErrCorrupt is matched (errors.Is) by every *CorruptionError.
	ErrCorrupt = errors.New("seglog: corrupt log")
	// ErrOffsetOutOfRange is matched by every *OffsetOutOfRangeError.
	ErrOffsetOutOfRange = errors.New("seglog: offset out of range")
)

// CorruptionError reports damage to stored data that recovery must not
// silently repair: a bad batch in a sealed segment, or one in the active
// segment too far from its end to be a torn write, or offsets that do not
// follow on.
type CorruptionError struct {
	Segment  int64  // base offset of the damaged segment
	Path     string // segment file
	Position int64  // byte position of the first bad byte in the segment file
	Offset   int64  // offset the log expected at Position
	Reason   string // which check failed
	Err      error  // underlying validation error, if any
}

func (e *CorruptionError) Error() string {
	s := fmt.Sprintf("seglog: corrupt segment %d (%s) at byte %d, expected offset %d: %s", e.Segment, e.Path, e.Position, e.Offset, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying validation error.
func (e *CorruptionError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

// OffsetOutOfRangeError is returned when a read asks for an offset outside
// [Start, End].
type OffsetOutOfRangeError struct {
	Offset, Start, End int64
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("seglog: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// Is makes errors.Is(err, ErrOffsetOutOfRange) true.
func (e *OffsetOutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// StorageError is the sticky error a log keeps after a failed write, sync or
// file operation on its append path. Every later Append returns it; the log
// must be closed and reopened (which runs recovery) to write again.
type StorageError struct {
	Op  string // "write", "sync", "roll", "truncate"
	Err error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("seglog: %s failed, log refuses writes until reopened: %v", e.Op, e.Err)
}

// Unwrap returns the I/O error.
func (e *StorageError) Unwrap() error { return e.Err }
