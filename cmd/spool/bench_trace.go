package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
)

func newBenchTraceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "trace FILE",
		Short: "Measure each hand-off of the record path in an execution trace of the server",
		Long: "Reads a Go execution trace (of a server started with --debug-addr: curl -o FILE\n" +
			"'http://ADDR/debug/pprof/trace?seconds=5' while it is under load) and prints, for\n" +
			"each point where the record path blocks (appending, waiting for durability, the log\n" +
			"writer, fetches and sessions waiting for data, the connection loops), how long\n" +
			"goroutines stay blocked there and how long a woken goroutine waits for a CPU, the\n" +
			"system calls (write, fdatasync, socket reads and writes), and garbage-collector pauses.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := bench.TraceChain(f)
			if err != nil {
				return err
			}
			rep.Markdown(cmd.OutOrStdout())
			return nil
		},
	}
}
