//go:build !linux

package vfs

import "os"

// openDirFlags is 0 where O_DIRECTORY is not used; OpenDir then checks the
// file type with Stat.
const openDirFlags = 0

// syncData makes f's data durable with (*os.File).Sync, the strongest
// portable call (fsync, or F_FULLFSYNC on Darwin).
func syncData(f *os.File) error { return f.Sync() }
