// Command freeport prints n loopback addresses (127.0.0.1:PORT), one a
// line, whose ports the system has just handed out: it listens on port 0 n
// times at once, so the ports differ, then closes the listeners. The
// compatibility suite's cluster part gives them to `spool serve` as the
// nodes' cluster addresses, which every node must know before any starts
// (the listeners that can take port 0 do so); a port taken again in
// between makes that node fail to start, and the suite starts the cluster
// again with new ones.
//
//	freeport 3
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	n := 1
	if len(os.Args) > 1 {
		var err error
		if n, err = strconv.Atoi(os.Args[1]); err != nil || n < 1 || n > 100 {
			fmt.Fprintln(os.Stderr, "usage: freeport [N]  (1 to 100 addresses)")
			os.Exit(2)
		}
	}
	lns := make([]net.Listener, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "freeport:", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		fmt.Println(ln.Addr().String())
		ln.Close()
	}
}
