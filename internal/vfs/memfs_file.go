package vfs

import (
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// memFileInfo implements os.FileInfo for MemFS.
type memFileInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (i *memFileInfo) Name() string       { return i.name }
func (i *memFileInfo) Size() int64        { return i.size }
func (i *memFileInfo) Mode() os.FileMode  { return i.mode }
func (i *memFileInfo) ModTime() time.Time { return i.modTime }
func (i *memFileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *memFileInfo) Sys() any           { return nil }

// memFile is an open handle on a memNode. Its position is guarded by the
// node's mu.
type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	write  bool
	closed atomic.Bool
	pos    int64
}

func (f *memFile) check(op string) error {
	if f.closed.Load() {
		return &os.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	}
	return nil
}

// Close closes the handle; a second Close fails with os.ErrClosed.
func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	return nil
}

// Read reads from the current position; at the end it returns 0, io.EOF.
func (f *memFile) Read(p []byte) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if f.n.isDir {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

// ReadAt reads len(p) bytes at off; fewer bytes come with io.EOF.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if f.n.isDir {
		return 0, &os.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	if off < 0 {
		return 0, &os.PathError{Op: "readat", Path: f.name, Err: syscall.EINVAL}
	}
	if len(p) == 0 {
		return 0, nil
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) checkWrite(op string) error {
	if err := f.check(op); err != nil {
		return err
	}
	if f.n.isDir {
		return &os.PathError{Op: op, Path: f.name, Err: syscall.EISDIR}
	}
	if !f.write {
		return &os.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

// Write writes p at the current position and advances it. A read-only
// handle fails with EBADF.
func (f *memFile) Write(p []byte) (int, error) {
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	f.n.mu.Lock()
	f.n.writeLocked(p, f.pos)
	f.pos += int64(len(p))
	f.n.mu.Unlock()
	f.fs.writes.Add(1)
	f.fs.bytesWritten.Add(int64(len(p)))
	return len(p), nil
}

// WriteAt writes p at off without moving the position; a gap past the end
// reads as zeros.
func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.checkWrite("write"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &os.PathError{Op: "writeat", Path: f.name, Err: syscall.EINVAL}
	}
	f.n.mu.Lock()
	f.n.writeLocked(p, off)
	f.n.mu.Unlock()
	f.fs.writes.Add(1)
	f.fs.bytesWritten.Add(int64(len(p)))
	return len(p), nil
}

// Truncate sets the size; growing adds zeros. The position is unchanged. A
// read-only handle or a negative size fails with EINVAL.
func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate"); err != nil {
		return err
	}
	if !f.write || f.n.isDir || size < 0 {
		return &os.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	f.n.mu.Lock()
	f.n.truncateLocked(size)
	f.n.mu.Unlock()
	return nil
}

// Sync makes the file's current content durable, or, on a directory, its
// current entry set. It works on read-only handles too, as fsync does.
func (f *memFile) Sync() error {
	if err := f.check("sync"); err != nil {
		return err
	}
	if f.n.isDir {
		f.fs.mu.Lock()
		clear(f.n.syncedEntries)
		for k, c := range f.n.entries {
			f.n.syncedEntries[k] = c
		}
		f.fs.mu.Unlock()
		f.fs.dirSyncs.Add(1)
		return nil
	}
	f.n.mu.Lock()
	f.n.synced = f.n.data[:len(f.n.data):len(f.n.data)]
	f.n.aliased = true
	f.n.pending = nil
	f.n.mu.Unlock()
	f.fs.fileSyncs.Add(1)
	return nil
}

// Stat returns the file's current metadata under the base of the name it
// was opened with.
func (f *memFile) Stat() (os.FileInfo, error) {
	if err := f.check("stat"); err != nil {
		return nil, err
	}
	return f.n.info(filepath.Base(f.name)), nil
}
