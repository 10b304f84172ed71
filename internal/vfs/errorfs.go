package vfs

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// ErrInjected is the error every injected error wraps: check for it with
// errors.Is.
var ErrInjected = errors.New("vfs: injected error")

// OpKind is the kind of an operation seen by an Injector.
type OpKind int

// The operations of FS and File. Read and ReadAt are both OpFileRead;
// Write and WriteAt are both OpFileWrite.
const (
	OpCreate OpKind = iota
	OpOpen
	OpOpenReadWrite
	OpOpenDir
	OpRemove
	OpRemoveAll
	OpRename
	OpMkdirAll
	OpList
	OpStat
	OpFileRead
	OpFileWrite
	OpFileSync
	OpFileTruncate
	OpFileStat
	OpFileClose
	numOpKinds
)

var opKindNames = [numOpKinds]string{
	OpCreate:        "create",
	OpOpen:          "open",
	OpOpenReadWrite: "open-read-write",
	OpOpenDir:       "open-dir",
	OpRemove:        "remove",
	OpRemoveAll:     "remove-all",
	OpRename:        "rename",
	OpMkdirAll:      "mkdir-all",
	OpList:          "list",
	OpStat:          "stat",
	OpFileRead:      "file-read",
	OpFileWrite:     "file-write",
	OpFileSync:      "file-sync",
	OpFileTruncate:  "file-truncate",
	OpFileStat:      "file-stat",
	OpFileClose:     "file-close",
}

// String returns a short lower-case name such as "file-write"; an unknown
// kind prints as "OpKind(N)".
func (k OpKind) String() string {
	if k >= 0 && k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op is one operation on an ErrorFS. Path is the name passed to the FS
// method, or, for File methods, the name the file was opened with. For
// OpRename it is the old name.
type Op struct {
	Kind OpKind
	Path string
}

// String returns "kind path".
func (o Op) String() string { return o.Kind.String() + " " + o.Path }

// Injector decides whether an operation fails. MaybeError is called before
// every operation of an ErrorFS, possibly from several goroutines at once;
// a non-nil result is returned to the caller instead of performing the
// operation, and should wrap ErrInjected.
type Injector interface {
	MaybeError(op Op) error
}

// InjectedError is the error the injectors of this package return. It
// wraps ErrInjected.
type InjectedError struct {
	Op Op // the operation that failed
}

// Error returns "vfs: injected error: kind path".
func (e *InjectedError) Error() string { return ErrInjected.Error() + ": " + e.Op.String() }

// Unwrap returns ErrInjected.
func (e *InjectedError) Unwrap() error { return ErrInjected }

// ShortWriteError is an injected error that makes ErrorFS pass a prefix of
// the buffer to the inner file before failing a write, modelling a partial
// write: the caller sees n < len(p) and this error. On operations other
// than OpFileWrite it acts as a plain error. See ShortWrite.
type ShortWriteError struct {
	// Err is the underlying injected error.
	Err error
	// Frac is the fraction of the buffer written, in [0, 1). The prefix
	// length is floor(Frac*len(p)), always less than len(p).
	Frac float64
}

// Error returns the message of Err followed by " (short write)".
func (e *ShortWriteError) Error() string { return e.Err.Error() + " (short write)" }

// Unwrap returns Err.
func (e *ShortWriteError) Unwrap() error { return e.Err }

// prefixLen returns how many bytes of an n-byte write to pass through.
func (e *ShortWriteError) prefixLen(n int) int {
	k := int(e.Frac * float64(n))
	return max(0, min(k, n-1))
}

// ErrorFS wraps an FS and consults an Injector before every operation on it
// and on the files it opens. An injected error is returned as is, and the
// inner operation is not performed, with two exceptions: a ShortWriteError
// on a write first writes a prefix, and an injected error on Close still
// closes the inner file (so no descriptor leaks) before returning the
// injected error.
//
// An ErrorFS is safe for concurrent use if its inner FS and injector are.
type ErrorFS struct {
	fs       FS
	inj      atomic.Pointer[Injector]
	injected atomic.Int64
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns an ErrorFS over fs using inj. A nil inj injects
// nothing until SetInjector is called.
func NewErrorFS(fs FS, inj Injector) *ErrorFS {
	e := &ErrorFS{fs: fs}
	e.SetInjector(inj)
	return e
}

// SetInjector replaces the injector, for example to run a setup phase
// without errors; nil injects nothing. Operations already past their
// injection point are not affected.
func (e *ErrorFS) SetInjector(inj Injector) {
	if inj == nil {
		e.inj.Store(nil)
		return
	}
	e.inj.Store(&inj)
}

// Unwrap returns the inner FS.
func (e *ErrorFS) Unwrap() FS { return e.fs }

// Injected returns how many operations the injector has failed.
func (e *ErrorFS) Injected() int64 { return e.injected.Load() }

func (e *ErrorFS) maybe(kind OpKind, path string) error {
	p := e.inj.Load()
	if p == nil {
		return nil
	}
	err := (*p).MaybeError(Op{Kind: kind, Path: path})
	if err != nil {
		e.injected.Add(1)
	}
	return err
}

func (e *ErrorFS) wrap(f File, err error, name string) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{fs: e, f: f, name: name}, nil
}

// Create is OpCreate.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.maybe(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Create(name)
	return e.wrap(f, err, name)
}

// Open is OpOpen.
func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.maybe(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Open(name)
	return e.wrap(f, err, name)
}

// OpenReadWrite is OpOpenReadWrite.
func (e *ErrorFS) OpenReadWrite(name string) (File, error) {
	if err := e.maybe(OpOpenReadWrite, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenReadWrite(name)
	return e.wrap(f, err, name)
}

// OpenDir is OpOpenDir.
func (e *ErrorFS) OpenDir(name string) (File, error) {
	if err := e.maybe(OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenDir(name)
	return e.wrap(f, err, name)
}

// Remove is OpRemove.
func (e *ErrorFS) Remove(name string) error {
	if err := e.maybe(OpRemove, name); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

// RemoveAll is OpRemoveAll.
func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.maybe(OpRemoveAll, name); err != nil {
		return err
	}
	return e.fs.RemoveAll(name)
}

// Rename is OpRename, with Op.Path set to oldname.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.maybe(OpRename, oldname); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

// MkdirAll is OpMkdirAll.
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.maybe(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir, perm)
}

// List is OpList.
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.maybe(OpList, dir); err != nil {
		return nil, err
	}
	return e.fs.List(dir)
}

// Stat is OpStat.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.maybe(OpStat, name); err != nil {
		return nil, err
	}
	return e.fs.Stat(name)
}

// errorFile wraps a File of the inner FS.
type errorFile struct {
	fs   *ErrorFS
	f    File
	name string
}

// Close is OpFileClose. The inner file is closed even when an error is
// injected.
func (f *errorFile) Close() error {
	ierr := f.fs.maybe(OpFileClose, f.name)
	err := f.f.Close()
	if ierr != nil {
		return ierr
	}
	return err
}

// Read is OpFileRead.
func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.fs.maybe(OpFileRead, f.name); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

// ReadAt is OpFileRead.
func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.maybe(OpFileRead, f.name); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

// Write is OpFileWrite.
func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.maybe(OpFileWrite, f.name); err != nil {
		return shortWrite(err, p, f.f.Write)
	}
	return f.f.Write(p)
}

// WriteAt is OpFileWrite.
func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.maybe(OpFileWrite, f.name); err != nil {
		return shortWrite(err, p, func(q []byte) (int, error) { return f.f.WriteAt(q, off) })
	}
	return f.f.WriteAt(p, off)
}

// shortWrite handles an injected write error: for a ShortWriteError it
// writes the chosen prefix of p with write. It returns the bytes written and
// the injected error, or the inner error if the prefix write itself failed.
func shortWrite(err error, p []byte, write func([]byte) (int, error)) (int, error) {
	var sw *ShortWriteError
	if !errors.As(err, &sw) {
		return 0, err
	}
	k := sw.prefixLen(len(p))
	if k == 0 {
		return 0, err
	}
	n, werr := write(p[:k])
	if werr != nil {
		return n, werr
	}
	return n, err
}

// Sync is OpFileSync. An injected error leaves the inner file unsynced.
func (f *errorFile) Sync() error {
	if err := f.fs.maybe(OpFileSync, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

// Truncate is OpFileTruncate.
func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.maybe(OpFileTruncate, f.name); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

// Stat is OpFileStat.
func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.fs.maybe(OpFileStat, f.name); err != nil {
		return nil, err
	}
	return f.f.Stat()
}
