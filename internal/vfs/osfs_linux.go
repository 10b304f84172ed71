//go:build linux

package vfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirFlags makes the kernel refuse to open a non-directory in OpenDir.
const openDirFlags = unix.O_DIRECTORY

// syncData makes f's data and size durable with fdatasync(2), retrying on
// EINTR. It goes through SyscallConn so that a concurrent Close cannot
// recycle the descriptor underneath it.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		// Control fails only when the descriptor is closed or closing;
		// report that as os.ErrClosed, as the other File methods do.
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: os.ErrClosed}
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
