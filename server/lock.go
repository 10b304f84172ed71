package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/spoolmq/spool/internal/vfs"
)

// lockDir takes an exclusive lock on <dir>/LOCK so that two servers never
// share a data directory. With a non-OS file system (tests) there is nothing
// to lock across processes.
func lockDir(fsys vfs.FS, dir string) (io.Closer, error) {
	if fsys != vfs.Default {
		return io.NopCloser(nil), nil
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("server: data directory %s is in use by another spool process", dir)
		}
		return nil, fmt.Errorf("server: lock data directory: %w", err)
	}
	return f, nil
}
