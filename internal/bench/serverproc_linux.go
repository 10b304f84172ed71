package bench

import "syscall"

// childAttrs puts the server in its own process group and has the kernel
// kill it when the benchmark exits without stopping it.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
