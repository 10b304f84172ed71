// Package vfs is the file-system interface that all of Spool's storage code
// uses. Going through it, rather than the os package, lets tests substitute a
// strict in-memory file system that can simulate a crash (MemFS) and a wrapper
// that injects errors and short writes (ErrorFS).
//
// Semantics every implementation follows, because storage code relies on them:
//
//   - File data written with Write or WriteAt is durable only after File.Sync
//     returns nil on that file.
//   - Creating, renaming or removing a file changes its parent directory; the
//     change is durable only after the directory itself is opened with OpenDir
//     and synced.
//   - A file that is removed while open stays readable through the open handle.
//   - Paths use the host separator; implementations accept both relative and
//     absolute paths but callers in Spool always pass clean absolute or
//     data-directory-relative paths built with path/filepath.
package vfs

import (
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
)

// File is an open file. It is safe to call ReadAt concurrently with Write
// and with other ReadAt calls; everything else needs external coordination.
type File interface {
	io.Closer
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt

	// Sync makes the file's data (and its size) durable, as fdatasync does.
	Sync() error
	// Truncate changes the size of the file. The change is durable after Sync.
	Truncate(size int64) error
	// Stat returns the file's metadata; Size is the current (not necessarily
	// durable) size.
	Stat() (os.FileInfo, error)
}

// FS is a file system.
type FS interface {
	// Create creates or truncates the named file and opens it for reading
	// and writing. Writes through Write append at the current position,
	// which starts at 0.
	Create(name string) (File, error)
	// Open opens the named file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing, with the
	// write position at the end of the file.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so that it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes the named file or empty directory.
	Remove(name string) error
	// RemoveAll removes a directory tree; a missing path is not an error.
	RemoveAll(name string) error
	// Rename atomically renames a file, replacing any existing target.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of a directory,
	// sorted.
	List(dir string) ([]string, error)
	// Stat returns metadata about the named file or directory.
	Stat(name string) (os.FileInfo, error)
}

// SyncDir opens dir, syncs it and closes it: the step that makes creates,
// renames and removes inside dir durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// WriteFileAtomic writes data to name so that after a crash the file holds
// either its old contents or all of data: it writes a temporary file, syncs
// it, renames it over name and syncs the directory.
func WriteFileAtomic(fs FS, dir, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp)
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
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(fs, dir)
}

// MkdirAllSync creates dir and any missing parents, like MkdirAll, and then
// syncs the parent of every directory it created, so that the whole new path
// survives a crash.
func MkdirAllSync(fs FS, dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, iofs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := SyncDir(fs, filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// Linker is an FS that can make hard links (the operating system's can;
// MemFS cannot). Callers use it as an optimization and copy when the FS is
// not one or the link fails (another file system, no support).
type Linker interface {
	// Link makes newname a second name of the file oldname.
	Link(oldname, newname string) error
}
