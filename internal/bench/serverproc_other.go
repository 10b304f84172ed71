//go:build !linux

package bench

import "syscall"

// childAttrs puts the server in its own process group.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
