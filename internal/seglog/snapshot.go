package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"path/filepath"
	"strings"

	"github.com/spoolmq/spool/internal/vfs"
)

// Snapshots of a replicated log. A follower whose next raft index is below
// the leader's first index (retention deleted what it needs) catches up
// from a snapshot: the leader's segments from its first up to the one
// holding the snapshot's index, that one cut after the entry. The files
// are copied whole (OpenSnapshot reads them back to back), received into a
// staging directory inside the follower's log directory (StageSnapshot:
// snap-<id>.tmp, every file synced, then checked as recovery checks a log,
// batch by batch), and installed (InstallSnapshot), which replaces the
// log's files by the staged ones:
//
//  1. the raft layer's opaque snapshot record (file "snapshot") and the
//     list of the snapshot's files ("files") are written into the staging
//     directory, which is synced and renamed to snapshot.ready: the commit
//     point;
//  2. every file of the log that the snapshot does not have is removed,
//     the staged files are renamed into the log directory, the directory is
//     synced, and snapshot.ready is removed.
//
// Open completes step 2 when it finds snapshot.ready (every step can be
// redone), and removes staging directories: a transfer cut before its
// install leaves nothing else. The log's files are never a mix of the old
// log and the snapshot once Open returns.
const (
	snapStagePrefix = "snap-"
	snapStageSuffix = ".tmp"
	snapReadyDir    = "snapshot.ready"
	snapMetaFile    = "snapshot"
	snapListFile    = "files"

	snapMetaMagic   = "SPSM"
	snapListMagic   = "SPSF"
	snapFileVersion = 1
	maxSnapMeta     = 64 << 10 // bounds the raft layer's record
	maxSnapSegments = 1 << 20  // bounds a manifest's segment count
)

// ErrUnknownSnapshot is returned by InstallSnapshot for a snapshot that was
// not staged and finished, or was staged for another index or term.
var ErrUnknownSnapshot = errors.New("seglog: no such staged snapshot")

// SnapshotManifest describes a snapshot of a replicated log: the files it
// holds and the entry it ends with.
type SnapshotManifest struct {
	Index, Term uint64            // the snapshot's last entry and its term
	Start       int64             // the log start offset (DeleteRecordsBefore)
	Segments    []SnapshotSegment // oldest first
}

// SnapshotSegment is one segment file of a snapshot.
type SnapshotSegment struct {
	Base int64 // the segment's base offset, its file name
	Size int64 // bytes of the file the snapshot holds
}

// Bytes returns the size of the snapshot's files together.
func (m *SnapshotManifest) Bytes() int64 {
	var n int64
	for _, s := range m.Segments {
		n += s.Size
	}
	return n
}

// Check validates a manifest that came off the wire: at least one
// segment, bases increasing, every size within a segment's bounds, the
// index, term and start in range.
func (m *SnapshotManifest) Check() error {
	switch {
	case len(m.Segments) == 0 || len(m.Segments) > maxSnapSegments:
		return fmt.Errorf("seglog: snapshot of %d segments", len(m.Segments))
	case m.Index == 0 || m.Index == math.MaxUint64:
		return fmt.Errorf("seglog: snapshot at index %d", m.Index)
	case m.Term == 0 || m.Term > math.MaxInt32:
		return fmt.Errorf("seglog: snapshot of term %d", m.Term)
	case m.Start < 0:
		return fmt.Errorf("seglog: snapshot starts at offset %d", m.Start)
	}
	for k, s := range m.Segments {
		if s.Base < 0 || s.Size <= 0 || s.Size > MaxSegmentBytes || (k > 0 && s.Base <= m.Segments[k-1].Base) {
			return fmt.Errorf("seglog: snapshot segment %d (base %d, %d bytes) out of order or bounds", k, s.Base, s.Size)
		}
	}
	return nil
}

// SnapshotSource reads a snapshot of the log: its files back to back, as
// its Manifest lists them. It holds its own handles on the files, so
// retention deleting them meanwhile changes nothing it reads (the bytes up
// to a committed index never change).
type SnapshotSource struct {
	Manifest SnapshotManifest
	files    []readerAt
	k        int   // the file being read
	pos      int64 // position in it
}

type readerAt interface {
	io.ReaderAt
	io.Closer
}

// OpenSnapshot returns the snapshot of the log at index: its segments from
// the first up to the one holding index (at least the first), that one cut
// after entry index. index must be written and at least FirstIndex−1.
func (l *Log) OpenSnapshot(index uint64) (*SnapshotSource, error) {
	if !l.opts.Replicated {
		return nil, ErrNotReplicated
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return nil, ErrClosed
	}
	switch {
	case index == 0 || index+1 < l.segs[0].firstIndex:
		return nil, ErrIndexCompacted
	case index >= l.segs[len(l.segs)-1].nextIndex.Load():
		return nil, ErrIndexUnavailable
	}
	src := &SnapshotSource{Manifest: SnapshotManifest{Index: index, Start: l.start.Load()}}
	for k, s := range l.segs {
		size, next := s.size.Load(), s.nextIndex.Load()
		stop := index+1 <= next
		if index+1 < next {
			pos, _, err := l.locateIndex(s, index+1)
			if err != nil {
				src.Close()
				return nil, err
			}
			size = pos
		}
		if k == 0 {
			src.Manifest.Term = s.prevTerm
		}
		if index >= s.firstIndex && index < next {
			src.Manifest.Term = s.termOf(index)
		}
		f, err := l.fs.Open(s.logPath)
		if err != nil {
			src.Close()
			return nil, fmt.Errorf("seglog: snapshot: open segment %d: %w", s.base, err)
		}
		src.files = append(src.files, f)
		src.Manifest.Segments = append(src.Manifest.Segments, SnapshotSegment{Base: s.base, Size: size})
		if stop {
			break
		}
	}
	src.Manifest.Start = max(src.Manifest.Start, src.Manifest.Segments[0].Base)
	return src, nil
}

// Read reads the snapshot's bytes; io.EOF after the last file.
func (s *SnapshotSource) Read(p []byte) (int, error) {
	for s.k < len(s.files) {
		size := s.Manifest.Segments[s.k].Size
		if s.pos >= size {
			s.k++
			s.pos = 0
			continue
		}
		n := int(min(int64(len(p)), size-s.pos))
		m, err := s.files[s.k].ReadAt(p[:n], s.pos)
		s.pos += int64(m)
		if m == n {
			return m, nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("seglog: snapshot: segment %d is shorter than %d bytes", s.Manifest.Segments[s.k].Base, size)
		}
		return m, err
	}
	return 0, io.EOF
}

// Close releases the files.
func (s *SnapshotSource) Close() error {
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	return nil
}

// stageDir returns the staging directory of transfer id.
func (l *Log) stageDir(id uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s%016x%s", snapStagePrefix, id, snapStageSuffix))
}

// SnapshotStage receives a snapshot's files into a staging directory of
// the log. Write takes the bytes in order; Finish checks them; a stage
// that is not finished and installed is removed by Abort, by
// DiscardSnapshot, or at the next Open.
type SnapshotStage struct {
	l   *Log
	id  uint64
	dir string
	m   SnapshotManifest
	k   int   // the file being written
	off int64 // bytes written to it
	f   interface {
		io.WriterAt
		Sync() error
		Close() error
	}
}

// StageSnapshot starts receiving transfer id, whose manifest is m, into a
// new staging directory (replacing a leftover one of the same id).
func (l *Log) StageSnapshot(id uint64, m SnapshotManifest) (*SnapshotStage, error) {
	if !l.opts.Replicated {
		return nil, ErrNotReplicated
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	if l.isClosed() {
		return nil, ErrClosed
	}
	st := &SnapshotStage{l: l, id: id, dir: l.stageDir(id), m: m}
	if err := l.fs.RemoveAll(st.dir); err != nil {
		return nil, err
	}
	if err := l.fs.MkdirAll(st.dir, 0o755); err != nil {
		return nil, err
	}
	return st, nil
}

// Write appends p to the snapshot's bytes: more than the manifest lists is
// an error. Each file is synced when complete.
func (st *SnapshotStage) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if st.k >= len(st.m.Segments) {
			return done, fmt.Errorf("seglog: snapshot %016x: %d bytes beyond its %d", st.id, len(p), st.m.Bytes())
		}
		seg := st.m.Segments[st.k]
		if st.f == nil {
			f, err := st.l.fs.Create(filepath.Join(st.dir, segmentName(seg.Base)+logSuffix))
			if err != nil {
				return done, err
			}
			st.f, st.off = f, 0
		}
		n := int(min(int64(len(p)), seg.Size-st.off))
		if _, err := st.f.WriteAt(p[:n], st.off); err != nil {
			return done, err
		}
		st.off += int64(n)
		done += n
		p = p[n:]
		if st.off == seg.Size {
			err := st.f.Sync()
			if cerr := st.f.Close(); err == nil {
				err = cerr
			}
			st.f = nil
			st.k++
			if err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// Finish checks a completely written snapshot: recovery's checks of every
// batch (lengths, CRCs, offsets following on, raft indexes and terms,
// segment headers), with no torn tail accepted, and that it ends with the
// manifest's entry. It seals every segment and syncs the directory; the
// stage is then ready for InstallSnapshot.
func (st *SnapshotStage) Finish() error {
	l := st.l
	if st.k != len(st.m.Segments) {
		return fmt.Errorf("seglog: snapshot %016x is incomplete: %d of %d segments", st.id, st.k, len(st.m.Segments))
	}
	if st.m.Start > st.m.Segments[0].Base {
		if err := writeFileSynced(l, st.dir, startFileName, encodeStart(st.m.Start)); err != nil {
			return err
		}
	}
	v := &Log{dir: st.dir, fs: l.fs, opts: l.opts, strict: true}
	defer v.closeSegs()
	if err := v.recover(&RecoveryReport{}); err != nil {
		return fmt.Errorf("seglog: snapshot %016x: %w", st.id, err)
	}
	if len(v.segs) != len(st.m.Segments) {
		return fmt.Errorf("seglog: snapshot %016x holds %d segments, its manifest %d", st.id, len(v.segs), len(st.m.Segments))
	}
	last := v.segs[len(v.segs)-1]
	if got := last.nextIndex.Load() - 1; got != st.m.Index || last.lastTerm() != st.m.Term || !last.hasHeader.Load() {
		return fmt.Errorf("seglog: snapshot %016x ends at index %d of term %d, not %d of term %d",
			st.id, got, last.lastTerm(), st.m.Index, st.m.Term)
	}
	// Seal the last segment too, so that installing trusts every one.
	if err := writeFileSynced(l, st.dir, filepath.Base(last.idxPath), encodeIndex(last.indexData(true))); err != nil {
		return err
	}
	if err := syncDirOf(l, st.dir); err != nil {
		return err
	}
	l.snapMu.Lock()
	if l.staged == nil {
		l.staged = map[uint64]SnapshotManifest{}
	}
	l.staged[st.id] = st.m
	l.snapMu.Unlock()
	return nil
}

// Abort removes the stage.
func (st *SnapshotStage) Abort() {
	if st.f != nil {
		st.f.Close()
		st.f = nil
	}
	st.l.DiscardSnapshot(st.id)
}

// DiscardSnapshot removes staged snapshot id if it is still there (raft
// did not take it).
func (l *Log) DiscardSnapshot(id uint64) {
	l.snapMu.Lock()
	delete(l.staged, id)
	l.snapMu.Unlock()
	if err := l.fs.RemoveAll(l.stageDir(id)); err != nil {
		l.opts.Logger.Warn("removing a staged snapshot", "dir", l.stageDir(id), "err", err)
	}
}

// InstalledSnapshot returns the record the last InstallSnapshot stored with
// the log's files (nil if none).
func (l *Log) InstalledSnapshot() []byte {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	return l.snapMeta
}

// InstallSnapshot replaces the log's contents with staged snapshot id,
// which must be finished and end at index with term, and stores meta (the
// raft layer's record of the snapshot, at most 64 KiB) with it. It waits
// for the writes in flight and holds new ones back while it works. The
// retention floor becomes index (everything in the snapshot is applied).
// A failure once the snapshot is committed is sticky (the next Open
// completes the install).
func (l *Log) InstallSnapshot(id, index, term uint64, meta []byte) error {
	if !l.opts.Replicated {
		return ErrNotReplicated
	}
	if len(meta) > maxSnapMeta {
		return fmt.Errorf("seglog: snapshot record of %d bytes", len(meta))
	}
	l.snapMu.Lock()
	m, ok := l.staged[id]
	delete(l.staged, id)
	l.snapMu.Unlock()
	if !ok || m.Index != index || m.Term != term {
		return fmt.Errorf("%w: %016x at index %d, term %d", ErrUnknownSnapshot, id, index, term)
	}
	l.retentionMu.Lock()
	defer l.retentionMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.truncating = true
	l.waitIdleLocked()
	defer func() {
		l.truncating = false
		l.cond.Broadcast()
	}()
	if l.err != nil {
		return l.err
	}
	stage := l.stageDir(id)
	if err := l.commitStage(stage, meta); err != nil {
		l.fs.RemoveAll(stage)
		return fmt.Errorf("seglog: install snapshot %016x: %w", id, err)
	}
	if err := l.finishInstall(); err != nil {
		return l.failLocked("install snapshot", err)
	}
	fresh := &Log{dir: l.dir, fs: l.fs, opts: l.opts}
	if err := fresh.recover(&RecoveryReport{}); err != nil {
		fresh.closeSegs()
		return l.failLocked("install snapshot", err)
	}
	l.segMu.Lock()
	old := l.segs
	l.segs = fresh.segs
	act := l.segs[len(l.segs)-1]
	l.active = act
	act.created = l.opts.Clock.Now()
	l.dirty = false
	l.next = act.next.Load()
	l.segLogical = act.size.Load()
	l.segCreated = act.created
	l.segBase = act.base
	l.nextIndex, l.lastTerm = act.nextIndex.Load(), act.lastTerm()
	l.needHeader = !act.hasHeader.Load()
	l.start.Store(l.segs[0].base)
	l.loadStart()
	l.segMu.Unlock()
	for _, s := range old {
		s.f.Close()
	}
	l.snapMu.Lock()
	l.snapMeta = meta
	l.snapMu.Unlock()
	l.floor.Store(index)
	l.advance(l.next)
	return nil
}

// commitStage writes the record and the file list into a finished stage
// and renames it to snapshot.ready: from then on the install is decided.
func (l *Log) commitStage(stage string, meta []byte) error {
	if err := writeFileSynced(l, stage, snapMetaFile, encodeSnapMeta(meta)); err != nil {
		return err
	}
	names, err := l.fs.List(stage)
	if err != nil {
		return err
	}
	names = append(names, snapListFile)
	if err := writeFileSynced(l, stage, snapListFile, encodeFileList(names)); err != nil {
		return err
	}
	if err := syncDirOf(l, stage); err != nil {
		return err
	}
	if err := l.fs.Rename(stage, filepath.Join(l.dir, snapReadyDir)); err != nil {
		return err
	}
	return syncDirOf(l, l.dir)
}

// finishInstall moves a committed snapshot's files into the log directory:
// the log's files that the snapshot lacks are removed, the snapshot's are
// renamed in (replacing those of the same name), then snapshot.ready is
// removed. Every step can be repeated after a crash.
func (l *Log) finishInstall() error {
	ready := filepath.Join(l.dir, snapReadyDir)
	keep, err := readFileList(l, filepath.Join(ready, snapListFile))
	if err != nil {
		return err
	}
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if isLogFile(name) && !keep[name] {
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
	}
	have, err := l.fs.List(ready)
	if err != nil {
		return err
	}
	for _, name := range have {
		if name == snapListFile || !keep[name] {
			continue
		}
		if err := l.fs.Rename(filepath.Join(ready, name), filepath.Join(l.dir, name)); err != nil {
			return err
		}
	}
	if err := syncDirOf(l, l.dir); err != nil {
		return err
	}
	if err := l.fs.RemoveAll(ready); err != nil {
		return err
	}
	return syncDirOf(l, l.dir)
}

// recoverSnapshots runs at Open before the segments are read: it completes
// an install that was committed, removes staging directories, and loads
// the installed snapshot's record.
func (l *Log) recoverSnapshots(rep *RecoveryReport) error {
	if _, err := l.fs.Stat(filepath.Join(l.dir, snapReadyDir)); err == nil {
		if err := l.finishInstall(); err != nil {
			return fmt.Errorf("seglog: complete the install of a snapshot: %w", err)
		}
		rep.Removed = append(rep.Removed, snapReadyDir)
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, name := range names {
		if isStageName(name) {
			if err := l.fs.RemoveAll(filepath.Join(l.dir, name)); err != nil {
				return err
			}
			rep.Removed = append(rep.Removed, name)
			removed = true
		}
	}
	if removed {
		if err := syncDirOf(l, l.dir); err != nil {
			return err
		}
	}
	b, err := readSmallFile(l, filepath.Join(l.dir, snapMetaFile), maxSnapMeta+snapMetaOverhead)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	meta, err := decodeSnapMeta(b)
	if err != nil {
		return fmt.Errorf("seglog: %s: %w", filepath.Join(l.dir, snapMetaFile), err)
	}
	l.snapMeta = meta
	return nil
}

// isStageName reports whether name is a staging directory's.
func isStageName(name string) bool {
	return strings.HasPrefix(name, snapStagePrefix) && strings.HasSuffix(name, snapStageSuffix)
}

// isLogFile reports whether name is one of the files a log's contents are
// made of (what an installed snapshot replaces).
func isLogFile(name string) bool {
	if _, ok := parseSegmentName(name, logSuffix); ok {
		return true
	}
	if _, ok := parseSegmentName(name, indexSuffix); ok {
		return true
	}
	return name == startFileName || name == snapMetaFile
}

// The snapshot record file ("snapshot"):
//
//	0  magic   [4]byte "SPSM"
//	4  version uint8 (1)
//	5  length  uint32 of the record
//	9  record  (opaque: the raft layer's)
//	.. crc     uint32 CRC-32C of every preceding byte
//
// The file list ("files", in snapshot.ready only): magic "SPSF", version
// 1, count uint32, count × (length uint8, name), CRC-32C.
const snapMetaOverhead = 4 + 1 + 4 + 4

func encodeSnapMeta(meta []byte) []byte {
	b := append([]byte(snapMetaMagic), snapFileVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(meta)))
	b = append(b, meta...)
	return binary.BigEndian.AppendUint32(b, crc32c(b))
}

func decodeSnapMeta(b []byte) ([]byte, error) {
	if len(b) < snapMetaOverhead || string(b[:4]) != snapMetaMagic || b[4] != snapFileVersion {
		return nil, errors.New("not a snapshot record of a known version")
	}
	n := int64(binary.BigEndian.Uint32(b[5:]))
	if n != int64(len(b)-snapMetaOverhead) || binary.BigEndian.Uint32(b[len(b)-4:]) != crc32c(b[:len(b)-4]) {
		return nil, errors.New("snapshot record length or CRC mismatch")
	}
	return append([]byte(nil), b[9:len(b)-4]...), nil
}

func encodeFileList(names []string) []byte {
	b := append([]byte(snapListMagic), snapFileVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
	for _, n := range names {
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return binary.BigEndian.AppendUint32(b, crc32c(b))
}

// readFileList reads a file list; every name must be one of a log's files.
func readFileList(l *Log, path string) (map[string]bool, error) {
	b, err := readSmallFile(l, path, 64<<20)
	if err != nil {
		return nil, err
	}
	keep, err := decodeFileList(b)
	if err != nil {
		return nil, fmt.Errorf("seglog: %s: %w", path, err)
	}
	return keep, nil
}

// decodeFileList decodes a file list.
func decodeFileList(b []byte) (map[string]bool, error) {
	bad := errors.New("damaged file list")
	if len(b) < 13 || string(b[:4]) != snapListMagic || b[4] != snapFileVersion ||
		binary.BigEndian.Uint32(b[len(b)-4:]) != crc32c(b[:len(b)-4]) {
		return nil, bad
	}
	count := int(binary.BigEndian.Uint32(b[5:]))
	p := b[9 : len(b)-4]
	if count > len(p) {
		return nil, bad
	}
	keep := make(map[string]bool, count)
	for range count {
		if len(p) < 1 || int(p[0]) > len(p)-1 {
			return nil, bad
		}
		name := string(p[1 : 1+int(p[0])])
		p = p[1+int(p[0]):]
		if !isLogFile(name) && name != snapListFile {
			return nil, fmt.Errorf("the file list names %q", name)
		}
		keep[name] = true
	}
	if len(p) != 0 {
		return nil, bad
	}
	return keep, nil
}

// readSmallFile reads a whole file of at most limit bytes.
func readSmallFile(l *Log, path string, limit int64) ([]byte, error) {
	f, err := l.fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("seglog: %s has %d bytes, more than %d", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// writeFileSynced writes a file in dir and syncs it (the caller syncs dir).
func writeFileSynced(l *Log, dir, name string, data []byte) error {
	f, err := l.fs.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDirOf(l *Log, dir string) error { return vfs.SyncDir(l.fs, dir) }

// closeSegs closes the files of a log that was never started.
func (l *Log) closeSegs() {
	for _, s := range l.segs {
		if s.f != nil {
			s.f.Close()
		}
	}
	l.segs = nil
}
