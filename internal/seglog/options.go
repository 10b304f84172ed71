package seglog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/clock"
)

// Policy says when appended data is made durable.
type Policy int

const (
	// SyncAlways (the default) returns from Append only after the appended
	// bytes are fsynced. Concurrent appends share one write and one fdatasync
	// (group commit).
	SyncAlways Policy = iota
	// SyncInterval returns from Append once the bytes are written to the
	// operating system and fsyncs every Options.SyncInterval. A power loss
	// can lose data that was acknowledged during the last interval.
	SyncInterval
	// SyncNone never fsyncs on the append path (only at segment roll and
	// Close). A power loss can lose any data acknowledged since the last roll.
	SyncNone
)

// String returns the policy's configuration name.
func (p Policy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses "always", "interval" or "none".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "always", "":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("seglog: unknown durability policy %q (want always, interval or none)", s)
}

// Limits on options.
const (
	// MaxSegmentBytes bounds Options.SegmentBytes: index positions are 32-bit.
	MaxSegmentBytes = 1 << 31
	// MinSegmentBytes is the smallest Options.SegmentBytes.
	MinSegmentBytes = 4 << 10
)

// Defaults of Options that the server's configuration names
// (storage.segment-bytes, storage.flush-bytes).
const (
	// DefaultSegmentBytes is the default of Options.SegmentBytes.
	DefaultSegmentBytes = 128 << 20
	// DefaultFlushBytes is the default of Options.FlushBytes.
	DefaultFlushBytes = 1 << 20
)

// Options configure a Log. The zero value of every field means its default.
type Options struct {
	// Sync is the durability policy; default SyncAlways.
	Sync Policy
	// SyncInterval is the fsync period under SyncInterval; default 50ms.
	SyncInterval time.Duration
	// SegmentBytes rolls the active segment before it would exceed this
	// many bytes; default DefaultSegmentBytes (128 MiB), at least
	// MinSegmentBytes and at most MaxSegmentBytes.
	SegmentBytes int64
	// SegmentAge rolls a non-empty active segment this long after it was
	// opened; default 7 days; negative disables rolling by age.
	SegmentAge time.Duration
	// RetentionAge deletes whole sealed segments whose newest timestamp is
	// older than this; 0 keeps data forever.
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest sealed segments while the log would
	// still hold at least this many bytes without them; 0 means unlimited.
	RetentionBytes int64
	// IndexInterval is the number of log bytes between sparse index
	// entries; default 4 KiB.
	IndexInterval int
	// FlushBytes caps the bytes one group commit writes; default
	// DefaultFlushBytes (1 MiB). A batch larger than this is written alone.
	// It also bounds the torn-tail window recovery accepts (see DESIGN.md).
	FlushBytes int
	// MaxPendingBytes bounds the bytes queued for the writer; Append blocks
	// while the queue is full. Default 32 MiB.
	MaxPendingBytes int
	// Limits are the checks every appended batch passes; default
	// batch.DefaultLimits().
	Limits batch.Limits
	// InitialOffset is the base offset of the first segment of a new log.
	InitialOffset int64
	// Clock is used for segment age and retention; default clock.Real.
	Clock clock.Clock
	// Logger receives recovery reports and storage errors; default
	// slog.Default().
	Logger *slog.Logger
	// Hooks receive events for metrics; default none.
	Hooks Hooks
	// Replicated makes the log a raft log (replicated.go): every batch is
	// a raft entry appended with SubmitEntries, internal batches carry
	// entries that take no offset, and each segment starts with a segment
	// header. A log's mode is fixed when it is created; false (the
	// default) writes and reads exactly as a plain log.
	Replicated bool
	// InitialIndex is the raft index of the first entry of a new
	// replicated log; default 1.
	InitialIndex uint64
	// OnAdvance, if set, is called by the goroutine that moved the log's
	// readable end (after the write, and under SyncAlways after the sync),
	// as Changed's channel is closed: a topic wakes its readers from here,
	// not from the appenders' goroutines, which may run later. It must not
	// call back into the log.
	OnAdvance func()
}

// WithDefaults returns o with every unset field set to its default, or an
// error if Open would refuse o.
func (o Options) WithDefaults() (Options, error) {
	if o.SyncInterval <= 0 {
		o.SyncInterval = 50 * time.Millisecond
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < MinSegmentBytes || o.SegmentBytes > MaxSegmentBytes {
		return o, fmt.Errorf("seglog: segment bytes %d out of range [%d, %d]", o.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = 7 * 24 * time.Hour
	}
	if o.RetentionAge < 0 || o.RetentionBytes < 0 {
		return o, fmt.Errorf("seglog: negative retention")
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = 4 << 10
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = DefaultFlushBytes
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = 32 << 20
	}
	if o.Limits == (batch.Limits{}) {
		o.Limits = batch.DefaultLimits()
	}
	o.Limits = o.Limits.WithDefaults()
	if int64(o.Limits.MaxBatchBytes) > o.SegmentBytes {
		return o, fmt.Errorf("seglog: max batch bytes %d exceeds segment bytes %d", o.Limits.MaxBatchBytes, o.SegmentBytes)
	}
	if o.InitialOffset < 0 {
		return o, fmt.Errorf("seglog: negative initial offset")
	}
	if o.InitialIndex == 0 {
		o.InitialIndex = 1
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hooks == nil {
		o.Hooks = nopHooks{}
	}
	switch o.Sync {
	case SyncAlways, SyncInterval, SyncNone:
	default:
		return o, fmt.Errorf("seglog: unknown durability policy %d", o.Sync)
	}
	return o, nil
}

// tornTailWindow is how far from the end of the active segment damage may
// start and still be treated as a torn write rather than corruption. Under
// SyncAlways at most one group write (FlushBytes, or one batch larger than
// that) is ever unsynced; under the lazy policies anything in the active
// segment may be unsynced, whatever the segment size was when it was
// written (a bounded topic's segment size follows its bound).
func (o Options) tornTailWindow() int64 {
	if o.Sync != SyncAlways {
		return MaxSegmentBytes + int64(o.Limits.MaxBatchBytes)
	}
	return int64(o.FlushBytes) + int64(o.Limits.MaxBatchBytes)
}

// Hooks receive storage events; telemetry implements them. Methods are
// called from the log's writer goroutine and must not block.
type Hooks interface {
	// OnFlush reports one group commit: bytes and batches written, the time
	// spent writing and syncing, and the error if it failed.
	OnFlush(bytes, batches int, write, sync time.Duration, err error)
	// OnRoll reports that a new segment with the given base offset was
	// started.
	OnRoll(base int64)
	// OnDelete reports that retention deleted a segment.
	OnDelete(base int64, bytes int64)
}

type nopHooks struct{}

func (nopHooks) OnFlush(int, int, time.Duration, time.Duration, error) {}
func (nopHooks) OnRoll(int64)                                          {}
func (nopHooks) OnDelete(int64, int64)                                 {}
