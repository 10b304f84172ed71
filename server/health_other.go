//go:build !unix

package server

// diskFree is not measured here: the disk watermark is not checked.
func diskFree(string) (uint64, bool) { return 0, false }
