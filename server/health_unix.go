//go:build unix

package server

import "syscall"

// diskFree returns the bytes an unprivileged writer may still use on the
// file system holding dir.
func diskFree(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}
