package seglog

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path/filepath"

	"github.com/spoolmq/spool/internal/vfs"
)

// BackupStats describes what Backup wrote.
type BackupStats struct {
	Segments    int   // segment files in the copy
	Linked      int   // of them, hard links to the log's sealed segments
	CopiedBytes int64 // bytes copied (segments that could not be linked, the active one)
	Start       int64 // the copy's start offset
}

// Backup writes a copy of the log into dir, which must not exist (its
// parent must), and makes it durable. The copy holds every record the log
// held when Backup was called, and possibly later ones: sealed segments
// whole (hard links when the file system can make them: sealed segments
// are never written again), the active segment up to its last complete
// write (under the policy always: its last fsync), the start file, and the
// seals of sealed segments. It is a log that Open recovers like any other
// (the active segment has no seal and is scanned).
//
// Retention waits while the segment files are opened (not while they are
// copied: an open file stays readable when retention removes it), so
// nothing is deleted from under the copy. Appends are not held back.
// A replicated log cannot be copied this way (ErrReplicated).
func (l *Log) Backup(dir string) (BackupStats, error) {
	if l.opts.Replicated {
		return BackupStats{}, ErrReplicated
	}
	type part struct {
		s      *segment
		size   int64
		f      vfs.File // the segment, opened while retention waited
		sealed bool
	}
	var parts []part
	var startFile []byte
	closeAll := func() {
		for _, p := range parts {
			p.f.Close()
		}
	}
	var st BackupStats
	err := func() error {
		l.retentionMu.Lock()
		defer l.retentionMu.Unlock()
		if l.isClosed() {
			return ErrClosed
		}
		l.segMu.RLock()
		segs := append([]*segment(nil), l.segs...)
		l.segMu.RUnlock()
		st.Start = l.start.Load()
		for i, s := range segs {
			// The size first: the file holds at least that much.
			size := s.size.Load()
			f, err := l.fs.Open(s.logPath)
			if err != nil {
				return fmt.Errorf("open segment %d: %w", s.base, err)
			}
			parts = append(parts, part{s: s, size: size, f: f, sealed: i < len(segs)-1})
		}
		b, err := readSmallFile(l, filepath.Join(l.dir, startFileName), 64)
		if err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("read start file: %w", err)
		}
		startFile = b
		return nil
	}()
	defer closeAll()
	if err != nil {
		return BackupStats{}, fmt.Errorf("seglog: backup %s: %w", l.dir, err)
	}
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return BackupStats{}, fmt.Errorf("seglog: backup: %w", err)
	}
	linker, canLink := l.fs.(vfs.Linker)
	for _, p := range parts {
		dst := filepath.Join(dir, filepath.Base(p.s.logPath))
		st.Segments++
		if p.sealed && canLink && linker.Link(p.s.logPath, dst) == nil {
			st.Linked++
			// The seal too, if it is there; without it the copy's segment
			// is scanned at open and sealed again.
			_ = linker.Link(p.s.idxPath, filepath.Join(dir, filepath.Base(p.s.idxPath)))
			continue
		}
		canLink = canLink && !p.sealed // a sealed segment that did not link: the others will not either
		if err := copyPrefix(l.fs, p.f, dst, p.size); err != nil {
			return BackupStats{}, fmt.Errorf("seglog: backup segment %d of %s: %w", p.s.base, l.dir, err)
		}
		st.CopiedBytes += p.size
	}
	if startFile != nil {
		if err := vfs.WriteFileAtomic(l.fs, dir, filepath.Join(dir, startFileName), startFile); err != nil {
			return BackupStats{}, fmt.Errorf("seglog: backup start file of %s: %w", l.dir, err)
		}
	}
	if err := vfs.SyncDir(l.fs, dir); err != nil {
		return BackupStats{}, fmt.Errorf("seglog: backup: %w", err)
	}
	return st, nil
}

// copyPrefix writes the first n bytes of src to a new file dst and syncs it.
func copyPrefix(fs vfs.FS, src vfs.File, dst string, n int64) error {
	f, err := fs.Create(dst)
	if err != nil {
		return err
	}
	if c, err := io.Copy(f, io.NewSectionReader(src, 0, n)); err != nil || c != n {
		f.Close()
		if err == nil {
			err = fmt.Errorf("copied %d bytes of %d", c, n)
		}
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
