package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Spool on this machine, beside the machine's own limits",
	}
	cmd.AddCommand(newBenchLogCmd())
	return cmd
}

func newBenchLogCmd() *cobra.Command {
	var (
		dir       string
		duration  time.Duration
		appenders string
		sizes     string
		recovery  int64
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Partition-log append throughput and latency (policy always) against raw write+fdatasync",
		Long: "Runs, in one process and one directory, a loop of write + fdatasync for each size\n" +
			"(the machine's limit) and seglog appends with the durability policy 'always' for\n" +
			"each number of concurrent appenders and batch size, then prints a Markdown table.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseInts(appenders)
			if err != nil {
				return fmt.Errorf("--appenders: %w", err)
			}
			ss, err := parseInts(sizes)
			if err != nil {
				return fmt.Errorf("--sizes: %w", err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			tmp, err := os.MkdirTemp(dir, "spool-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			return runLogBench(cmd.OutOrStdout(), cmd.ErrOrStderr(), tmp, duration, ns, ss, recovery)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to benchmark in (the disk under test)")
	cmd.Flags().DurationVar(&duration, "duration", 2*time.Second, "time per measurement")
	cmd.Flags().StringVar(&appenders, "appenders", "1,4,16,64", "concurrent appenders, comma-separated")
	cmd.Flags().StringVar(&sizes, "sizes", "256,1024,16384", "batch sizes in bytes, comma-separated")
	cmd.Flags().Int64Var(&recovery, "recovery-bytes", 1<<30, "size of the log for the recovery measurement (0 skips it)")
	return cmd
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func runLogBench(out, progress io.Writer, dir string, d time.Duration, appenders, sizes []int, recoveryBytes int64) error {
	raw := map[int]bench.Result{}
	for _, size := range append(append([]int{}, sizes...), 1<<20) {
		fmt.Fprintf(progress, "raw write+fdatasync %d B...\n", size)
		r, err := bench.RawSync(dir, size, d)
		if err != nil {
			return err
		}
		raw[size] = r
	}
	var rows []bench.Result
	for _, size := range sizes {
		for _, n := range appenders {
			fmt.Fprintf(progress, "log append %d appenders × %d B...\n", n, size)
			r, err := bench.LogAppend(dir, n, size, d)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	mib := raw[1<<20]
	fmt.Fprintf(out, "| test | appenders | batch | MB/s | batches/s | p50 | p99 | MB/s ÷ raw same size | MB/s ÷ raw 1 MiB | p50 − raw p50 |\n")
	fmt.Fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, size := range append(append([]int{}, sizes...), 1<<20) {
		r := raw[size]
		fmt.Fprintf(out, "| raw write+fdatasync | 1 | %s | %.1f | %.0f | %s | %s | 1.00 | %.2f | 0 |\n",
			sizeName(size), r.MBps(), r.OpsPerSec(), us(r.P50), us(r.P99), r.MBps()/mib.MBps())
	}
	for _, r := range rows {
		base := raw[r.Size]
		fmt.Fprintf(out, "| log append (always) | %d | %s | %.1f | %.0f | %s | %s | %.2f | %.2f | %+.0f µs |\n",
			r.Appenders, sizeName(r.Size), r.MBps(), r.OpsPerSec(), us(r.P50), us(r.P99),
			r.MBps()/base.MBps(), r.MBps()/mib.MBps(), float64(r.P50-base.P50)/1e3)
	}
	if recoveryBytes > 0 {
		fmt.Fprintf(progress, "recovery of a %d-byte log...\n", recoveryBytes)
		r, err := bench.Recovery(dir, recoveryBytes)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n| recovery | log bytes | time | scan rate |\n|---|---:|---:|---:|\n")
		fmt.Fprintf(out, "| after clean shutdown | %d | %s | — |\n", r.Bytes, r.Clean.Round(time.Microsecond))
		fmt.Fprintf(out, "| after crash, full scan, page cache warm | %d | %s | %.0f MB/s |\n", r.Scanned, r.CrashWarm.Round(time.Microsecond),
			float64(r.Scanned)/r.CrashWarm.Seconds()/1e6)
		if r.CrashCold > 0 {
			fmt.Fprintf(out, "| after crash, full scan, page cache dropped | %d | %s | %.0f MB/s |\n", r.Scanned, r.CrashCold.Round(time.Microsecond),
				float64(r.Scanned)/r.CrashCold.Seconds()/1e6)
		} else {
			fmt.Fprintf(out, "| after crash, page cache dropped | — | not measured (needs root) | — |\n")
		}
	}
	return nil
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
