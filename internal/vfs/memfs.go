package vfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MemFS is a strict in-memory FS for tests. It models inodes and keeps, next
// to the current state, the state that would survive a power loss, so that
// CrashClone can produce the file system a restarted Spool would find.
//
// Durability model:
//
//   - A file's data is durable as of its last successful File.Sync: each
//     file keeps that synced snapshot plus the ordered write and truncate
//     operations issued since.
//   - A directory's entries (name → inode) are durable as of the last Sync
//     of a handle from OpenDir on it. Create (of a new name), Remove,
//     RemoveAll, Rename and MkdirAll change only the current entries of the
//     affected directories until each of them is synced. A directory made by
//     MkdirAll is an entry of its parent like a file and is lost in a crash
//     unless the parent was synced after it was made.
//   - The root always exists.
//
// Paths: relative and absolute names resolve the same way, from the root
// ("a/b" and "/a/b" are the same file); "." and ".." are cleaned with
// filepath.Clean and a ".." above the root stays at the root. The empty
// name does not exist.
//
// Errors mirror package os on Linux: *os.PathError or *os.LinkError
// wrapping a syscall.Errno (ENOENT, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY,
// EINVAL, EBADF, EBUSY) or os.ErrClosed, so errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, fs.ErrClosed) hold as for Default.
//
// A MemFS is safe for concurrent use. The zero value is not usable; call
// NewMemFS.
type MemFS struct {
	// mu guards the namespace: the current and synced entry sets of every
	// directory. It is taken before any inode's mu, never after.
	mu   sync.Mutex
	root *memNode

	fileSyncs    atomic.Int64
	dirSyncs     atomic.Int64
	writes       atomic.Int64
	bytesWritten atomic.Int64
}

// MemFSStats counts operations on a MemFS since it was made; a CrashClone
// starts again from zero. Failed operations are not counted.
type MemFSStats struct {
	FileSyncs    int64 // successful File.Sync calls on files
	DirSyncs     int64 // successful File.Sync calls on directories
	Writes       int64 // Write and WriteAt calls
	BytesWritten int64 // bytes passed to Write and WriteAt
}

var _ FS = (*MemFS)(nil)

// NewMemFS returns an empty MemFS holding only its root directory.
func NewMemFS() *MemFS {
	return &MemFS{root: newDirNode(0o755)}
}

// Stats returns the operation counters.
func (fs *MemFS) Stats() MemFSStats {
	return MemFSStats{
		FileSyncs:    fs.fileSyncs.Load(),
		DirSyncs:     fs.dirSyncs.Load(),
		Writes:       fs.writes.Load(),
		BytesWritten: fs.bytesWritten.Load(),
	}
}

// memNode is an inode: a directory or a regular file.
type memNode struct {
	isDir bool

	// Directory state, guarded by MemFS.mu. entries is the current entry
	// set; syncedEntries the set as of the directory's last sync.
	entries       map[string]*memNode
	syncedEntries map[string]*memNode

	// mu guards everything below.
	mu      sync.Mutex
	mode    os.FileMode
	modTime time.Time
	// data is the current content. synced is the content as of the last
	// Sync and is never modified in place: after a Sync it may share its
	// backing array with data (aliased), and any change to data within
	// synced's length copies data first.
	data    []byte
	synced  []byte
	aliased bool
	// pending lists the writes and truncates since the last Sync, in order.
	pending []memOp
}

// memOp is an unsynced change to a file: a write of data at off, or a
// truncate to size off.
type memOp struct {
	truncate bool
	off      int64
	data     []byte
}

func newDirNode(perm os.FileMode) *memNode {
	return &memNode{
		isDir:         true,
		entries:       make(map[string]*memNode),
		syncedEntries: make(map[string]*memNode),
		mode:          os.ModeDir | perm&os.ModePerm,
		modTime:       time.Now(),
	}
}

func newFileNode() *memNode {
	return &memNode{mode: 0o644, modTime: time.Now()}
}

// unshareLocked gives data its own backing array if it may share one with
// synced. n.mu must be held.
func (n *memNode) unshareLocked() {
	if n.aliased {
		n.data = slices.Clone(n.data)
		n.aliased = false
	}
}

// writeLocked writes p at off in the current content and records the
// operation. n.mu must be held.
func (n *memNode) writeLocked(p []byte, off int64) {
	if off < int64(len(n.synced)) {
		n.unshareLocked()
	}
	n.data = applyWrite(n.data, off, p)
	n.pending = append(n.pending, memOp{off: off, data: slices.Clone(p)})
	n.modTime = time.Now()
}

// truncateLocked sets the current size and records the operation. n.mu
// must be held.
func (n *memNode) truncateLocked(size int64) {
	if size < int64(len(n.synced)) {
		n.unshareLocked()
	}
	n.data = applyTruncate(n.data, size)
	n.pending = append(n.pending, memOp{truncate: true, off: size})
	n.modTime = time.Now()
}

// applyWrite writes p at off into buf, growing it with zeros as needed, and
// returns the result. A zero-length write changes nothing, even past the end.
func applyWrite(buf []byte, off int64, p []byte) []byte {
	if len(p) == 0 {
		return buf
	}
	end := int(off) + len(p)
	if end > len(buf) {
		buf = applyTruncate(buf, int64(end))
	}
	copy(buf[off:], p)
	return buf
}

// applyTruncate resizes buf to size; new bytes are zero.
func applyTruncate(buf []byte, size int64) []byte {
	n := int(size)
	if n <= len(buf) {
		return buf[:n]
	}
	old := len(buf)
	buf = slices.Grow(buf, n-old)[:n]
	// The capacity may hold bytes from before an earlier shrink.
	clear(buf[old:])
	return buf
}

// memPath splits a name into its components below the root.
func memPath(name string) ([]string, bool) {
	if name == "" {
		return nil, false
	}
	clean := filepath.Clean(name)
	var parts []string
	for _, p := range strings.Split(clean, string(filepath.Separator)) {
		if p == "" || p == "." || p == ".." {
			continue
		}
		parts = append(parts, p)
	}
	return parts, true
}

// walkLocked follows parts from the root and returns the node they name.
// fs.mu must be held.
func (fs *MemFS) walkLocked(parts []string) (*memNode, error) {
	n := fs.root
	for _, p := range parts {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		c, ok := n.entries[p]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = c
	}
	return n, nil
}

// lookupLocked resolves name. For a name other than the root it also
// returns the parent directory and the last component; the node is nil if
// only it is missing. fs.mu must be held.
func (fs *MemFS) lookupLocked(name string) (parent, n *memNode, base string, err error) {
	parts, ok := memPath(name)
	if !ok {
		return nil, nil, "", syscall.ENOENT
	}
	if len(parts) == 0 {
		return nil, fs.root, "", nil
	}
	parent, err = fs.walkLocked(parts[:len(parts)-1])
	if err != nil {
		return nil, nil, "", err
	}
	if !parent.isDir {
		return nil, nil, "", syscall.ENOTDIR
	}
	base = parts[len(parts)-1]
	return parent, parent.entries[base], base, nil
}

func touchDir(d *memNode) {
	d.mu.Lock()
	d.modTime = time.Now()
	d.mu.Unlock()
}

// Create creates or truncates the named file and opens it for reading and
// writing at position 0. Truncating an existing file is an unsynced
// operation on it; a new name is an unsynced entry of its directory.
// Creating over a directory fails with EISDIR; a missing parent with
// ENOENT.
func (fs *MemFS) Create(name string) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, n, base, err := fs.lookupLocked(name)
	if err == nil && n != nil && n.isDir {
		err = syscall.EISDIR
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if n == nil {
		n = newFileNode()
		parent.entries[base] = n
		touchDir(parent)
	} else {
		n.mu.Lock()
		if len(n.data) != 0 {
			n.truncateLocked(0)
		}
		n.mu.Unlock()
	}
	return &memFile{fs: fs, n: n, name: name, write: true}, nil
}

// Open opens the named file or directory read-only, at position 0.
func (fs *MemFS) Open(name string) (File, error) {
	return fs.open(name, false, false)
}

// OpenReadWrite opens an existing file for reading and writing with the
// position at its end. A directory fails with EISDIR.
func (fs *MemFS) OpenReadWrite(name string) (File, error) {
	return fs.open(name, true, false)
}

// OpenDir opens a directory so that it can be synced; syncing it makes its
// current entry set durable. A file fails with ENOTDIR.
func (fs *MemFS) OpenDir(name string) (File, error) {
	return fs.open(name, false, true)
}

func (fs *MemFS) open(name string, write, wantDir bool) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, n, _, err := fs.lookupLocked(name)
	switch {
	case err != nil:
	case n == nil:
		err = syscall.ENOENT
	case wantDir && !n.isDir:
		err = syscall.ENOTDIR
	case write && n.isDir:
		err = syscall.EISDIR
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := &memFile{fs: fs, n: n, name: name, write: write}
	if write {
		n.mu.Lock()
		f.pos = int64(len(n.data))
		n.mu.Unlock()
	}
	return f, nil
}

// Remove removes a file or an empty directory from its parent's current
// entries. Open handles keep working. A non-empty directory fails with
// ENOTEMPTY and the root with EBUSY.
func (fs *MemFS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, n, base, err := fs.lookupLocked(name)
	switch {
	case err != nil:
	case n == nil:
		err = syscall.ENOENT
	case parent == nil:
		err = syscall.EBUSY
	case n.isDir && len(n.entries) > 0:
		err = syscall.ENOTEMPTY
	}
	if err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	delete(parent.entries, base)
	touchDir(parent)
	return nil
}

// RemoveAll removes name and, for a directory, everything below it: each
// removed entry leaves the current entries of its own directory, so only
// syncs (of the parent) decide what a crash brings back. A missing name is
// not an error; the root is refused with EBUSY and nothing is removed.
func (fs *MemFS) RemoveAll(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent, n, base, err := fs.lookupLocked(name)
	if err == syscall.ENOENT || (err == nil && n == nil) {
		return nil
	}
	if err == nil && parent == nil {
		err = syscall.EBUSY
	}
	if err != nil {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	var clearTree func(d *memNode)
	clearTree = func(d *memNode) {
		for k, c := range d.entries {
			if c.isDir {
				clearTree(c)
			}
			delete(d.entries, k)
		}
	}
	if n.isDir {
		clearTree(n)
	}
	delete(parent.entries, base)
	touchDir(parent)
	return nil
}

// Rename moves the entry oldname to newname, replacing a file there. Both
// directories change only in their current entries until synced. Renaming
// a file onto itself (the same inode) does nothing. As with os.Rename, an
// existing directory is never replaced. Errors: ENOENT for a missing source
// or target directory, EEXIST for an existing directory at newname
// (including oldname itself), ENOTDIR for a directory onto a file, EINVAL
// for a directory into its own subtree, EBUSY for the root.
func (fs *MemFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	oldParent, n, oldBase, err := fs.lookupLocked(oldname)
	if err == nil && n == nil {
		err = syscall.ENOENT
	}
	if err == nil && oldParent == nil {
		err = syscall.EBUSY
	}
	var newParent, target *memNode
	var newBase string
	if err == nil {
		newParent, target, newBase, err = fs.lookupLocked(newname)
		if err == nil && newParent == nil {
			err = syscall.EBUSY
		}
	}
	if err == nil && target != nil {
		switch {
		case target.isDir:
			err = syscall.EEXIST
		case target == n:
			return nil
		case n.isDir:
			err = syscall.ENOTDIR
		}
	}
	if err == nil && n.isDir {
		// Refuse to move a directory below itself.
		parts, _ := memPath(newname)
		d := fs.root
		for _, p := range parts[:len(parts)-1] {
			if d == n {
				break
			}
			d = d.entries[p]
		}
		if d == n {
			err = syscall.EINVAL
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	delete(oldParent.entries, oldBase)
	newParent.entries[newBase] = n
	touchDir(oldParent)
	if newParent != oldParent {
		touchDir(newParent)
	}
	return nil
}

// MkdirAll creates dir and any missing parents with permission bits perm
// (kept for Stat only). Each new directory is an unsynced entry of its
// parent. An existing directory is not an error; an existing file anywhere
// on the path fails with ENOTDIR.
func (fs *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	parts, ok := memPath(dir)
	if !ok {
		return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOENT}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d := fs.root
	for _, p := range parts {
		c, ok := d.entries[p]
		if !ok {
			c = newDirNode(perm)
			d.entries[p] = c
			touchDir(d)
		} else if !c.isDir {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		d = c
	}
	return nil
}

// List returns the sorted names in dir's current entry set. A file fails
// with ENOTDIR.
func (fs *MemFS) List(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, n, _, err := fs.lookupLocked(dir)
	if err == nil && n == nil {
		err = syscall.ENOENT
	}
	if err == nil && !n.isDir {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	names := make([]string, 0, len(n.entries))
	for k := range n.entries {
		names = append(names, k)
	}
	slices.Sort(names)
	return names, nil
}

// Stat returns metadata about the named file or directory. The size of a
// directory is 0; the name of the root is "/".
func (fs *MemFS) Stat(name string) (os.FileInfo, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, n, base, err := fs.lookupLocked(name)
	if err == nil && n == nil {
		err = syscall.ENOENT
	}
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if base == "" {
		base = string(filepath.Separator)
	}
	return n.info(base), nil
}

// info returns a snapshot of n's metadata under the given name.
func (n *memNode) info(name string) *memFileInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &memFileInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}
