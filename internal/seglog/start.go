package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"path/filepath"
	"time"

	"github.com/spoolmq/spool/internal/vfs"
)

// The log start file. Retention moves a log's start to a segment base, which
// the segment list itself records; DeleteRecordsBefore (Kafka's
// DeleteRecords) moves it to any offset, possibly inside a segment, so that
// offset is persisted in <dir>/start before the start moves in memory:
//
//	0  magic    [4]byte "SPST"
//	4  version  uint8 (1)
//	5  reserved [3]byte zero
//	8  start    int64  the log start offset
//	16 crc      uint32 CRC-32C of bytes 0–15
//
// Big-endian. It is written atomically (temporary file, fsync, rename,
// directory fsync; a leftover "start.tmp" is removed by recovery like every
// *.tmp file). At Open the log start is the larger of the first segment's
// base and the recorded offset, capped at the end of the log (a lazy
// durability policy may lose the tail the offset pointed into). A start file
// that fails its checks is ignored with a warning: the records it hid become
// readable again, which loses nothing. The file is never removed; once
// retention passes it, it no longer matters.
const (
	startFileName    = "start"
	startFileMagic   = "SPST"
	startFileVersion = 1
	startFileSize    = 20
)

func encodeStart(off int64) []byte {
	b := make([]byte, startFileSize)
	copy(b, startFileMagic)
	b[4] = startFileVersion
	binary.BigEndian.PutUint64(b[8:], uint64(off))
	binary.BigEndian.PutUint32(b[16:], crc32c(b[:16]))
	return b
}

func decodeStart(b []byte) (int64, error) {
	switch {
	case len(b) != startFileSize:
		return 0, fmt.Errorf("start file has %d bytes, want %d", len(b), startFileSize)
	case string(b[:4]) != startFileMagic:
		return 0, errors.New("start file has a bad magic number")
	case b[4] != startFileVersion:
		return 0, fmt.Errorf("start file version %d is unknown", b[4])
	case b[5]|b[6]|b[7] != 0:
		return 0, errors.New("start file has non-zero reserved bytes")
	case binary.BigEndian.Uint32(b[16:]) != crc32c(b[:16]):
		return 0, errors.New("start file CRC mismatch")
	}
	off := int64(binary.BigEndian.Uint64(b[8:]))
	if off < 0 {
		return 0, fmt.Errorf("start file records negative offset %d", off)
	}
	return off, nil
}

// loadStart applies a recorded start offset at Open (before the writer
// starts).
func (l *Log) loadStart() {
	path := filepath.Join(l.dir, startFileName)
	f, err := l.fs.Open(path)
	if err != nil {
		if !errors.Is(err, iofs.ErrNotExist) {
			l.opts.Logger.Warn("ignoring unreadable log start file", "path", path, "err", err)
		}
		return
	}
	defer f.Close()
	buf := make([]byte, startFileSize+1)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		l.opts.Logger.Warn("ignoring unreadable log start file", "path", path, "err", err)
		return
	}
	off, err := decodeStart(buf[:n])
	if err != nil {
		l.opts.Logger.Warn("ignoring damaged log start file", "path", path, "err", err)
		return
	}
	l.raiseStart(min(off, l.next))
}

// raiseStart moves the start offset forward to off; it never moves back.
func (l *Log) raiseStart(off int64) {
	for {
		cur := l.start.Load()
		if off <= cur || l.start.CompareAndSwap(cur, off) {
			return
		}
	}
}

// DeleteRecordsBefore makes every record below offset unreadable at once
// and deletes the sealed segments that hold nothing at or above it (the
// active segment is never deleted). offset must not exceed EndOffset; one at
// or below StartOffset changes nothing. The new start is recorded durably
// before it takes effect, so it survives a restart. It returns the log
// start offset afterwards. A failure to record the start or to delete a
// segment is a sticky storage error, like any failed retention deletion.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.retentionMu.Lock()
	defer l.retentionMu.Unlock()
	if err := l.Err(); err != nil {
		return l.start.Load(), err
	}
	if l.isClosed() {
		return l.start.Load(), ErrClosed
	}
	start, end := l.start.Load(), l.readable()
	if offset > end || offset < 0 {
		return start, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
	}
	if offset <= start {
		return start, nil
	}
	if err := vfs.WriteFileAtomic(l.fs, l.dir, filepath.Join(l.dir, startFileName), encodeStart(offset)); err != nil {
		return start, l.fail("start", err)
	}
	l.raiseStart(offset)

	l.segMu.Lock()
	var victims []*segment
	for len(l.segs) > 1 && l.segs[0].next.Load() <= offset && l.canDropFirst() {
		victims = append(victims, l.segs[0])
		l.segs[0] = nil
		l.segs = l.segs[1:]
	}
	l.segMu.Unlock()
	if len(victims) > 0 {
		if err := l.removeSegments(victims); err != nil {
			return l.start.Load(), err
		}
	}
	return l.start.Load(), nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// retentionLimits are a log's retention settings: those of its Options
// until SetRetention replaces them.
type retentionLimits struct {
	age   time.Duration
	bytes int64
}

// SetRetention replaces the log's retention settings (Options.RetentionAge
// and RetentionBytes) while it is open; the next retention pass (after a
// roll, or EnforceRetention) applies them.
func (l *Log) SetRetention(age time.Duration, bytes int64) error {
	if age < 0 || bytes < 0 {
		return fmt.Errorf("seglog: negative retention")
	}
	l.retention.Store(&retentionLimits{age: age, bytes: bytes})
	return nil
}

// retentionSettings returns the retention settings in force.
func (l *Log) retentionSettings() (time.Duration, int64) {
	if r := l.retention.Load(); r != nil {
		return r.age, r.bytes
	}
	return l.opts.RetentionAge, l.opts.RetentionBytes
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
