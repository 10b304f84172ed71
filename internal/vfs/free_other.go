//go:build !unix

package vfs

// FreeBytes is not measured here: the free-space watermark is not
// checked.
func FreeBytes(string) (uint64, bool) { return 0, false }
