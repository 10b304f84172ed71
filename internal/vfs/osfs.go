package vfs

import (
	"io"
	"os"
	"syscall"
)

// Default is the FS backed by the operating system through package os.
//
// Errors are the ones package os returns (*os.PathError, *os.LinkError), so
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, syscall.ENOTEMPTY) work
// as usual. Relative paths are resolved against the process's working
// directory.
//
// On Linux File.Sync on a regular file is fdatasync(2); elsewhere it is
// (*os.File).Sync. Sync on a handle returned by OpenDir is always a full
// fsync(2), which is what makes directory entries durable.
var Default FS = osFS{}

// osFS implements FS with package os.
type osFS struct{}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// OpenReadWrite opens name with O_RDWR (not O_APPEND, so WriteAt keeps
// working) and seeks to the end, so Write appends and Read returns io.EOF
// until something is written through another handle.
func (osFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return &osFile{f: f}, nil
}

// OpenDir opens name read-only. Opening something that is not a directory
// fails with syscall.ENOTDIR.
func (osFS) OpenDir(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|openDirFlags, 0)
	if err != nil {
		return nil, err
	}
	if openDirFlags == 0 {
		// No O_DIRECTORY on this platform: check by hand.
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if !fi.IsDir() {
			f.Close()
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOTDIR}
		}
	}
	return &osFile{f: f, dir: true}, nil
}

func (osFS) Remove(name string) error    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error { return os.RemoveAll(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// List returns the entry names of dir sorted by name (os.ReadDir sorts).
func (osFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// osFile is a File backed by an *os.File. It exists so that Sync can use
// fdatasync for regular files.
type osFile struct {
	f   *os.File
	dir bool // opened by OpenDir: Sync is a full fsync
}

func (f *osFile) Close() error                             { return f.f.Close() }
func (f *osFile) Read(p []byte) (int, error)               { return f.f.Read(p) }
func (f *osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f *osFile) Write(p []byte) (int, error)              { return f.f.Write(p) }
func (f *osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f *osFile) Truncate(size int64) error                { return f.f.Truncate(size) }
func (f *osFile) Stat() (os.FileInfo, error)               { return f.f.Stat() }

// Sync flushes the file. Directories get fsync; regular files get
// fdatasync where the platform has it (see syncData).
func (f *osFile) Sync() error {
	if f.dir {
		return f.f.Sync()
	}
	return syncData(f.f)
}

// Link makes newname a hard link to oldname (Linker).
func (osFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }
