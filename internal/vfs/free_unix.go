//go:build unix

package vfs

import "syscall"

// FreeBytes returns the bytes an unprivileged writer may still use on the
// (operating system's) file system holding dir, and false when it cannot
// be measured. The broker's free-space gate and the server's readiness
// check both read it.
func FreeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
