package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/bench"
)

func newBenchOverloadCmd() *cobra.Command {
	var (
		cfg       bench.OverloadConfig
		memLimit  string
		dir       string
		debugAddr string
		short     bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "overload",
		Short: "Offer many times the sustainable publish rate and check that memory stays within its budget",
		Long: "Starts `spool serve --memory-limit SIZE` as its own process (in a memory cgroup of twice\n" +
			"the limit where the cgroup v1 memory controller is writable), measures the sustainable\n" +
			"publish rate (closed loop), then offers --factor times it for --duration over --conns\n" +
			"connections (publishing, Kafka producing and idle ones) with a slow stream consumer and a\n" +
			"slow queue consumer, while sampling the server's RSS and /metrics and probing it with a\n" +
			"small publish and a describe. Fails when the peak RSS exceeds the memory limit, the server\n" +
			"died, or no probe succeeded.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if short {
				if !f.Changed("duration") {
					cfg.Duration = 20 * time.Second
				}
				if !f.Changed("calibrate") {
					cfg.Calibrate = 5 * time.Second
				}
				if !f.Changed("memory-limit") {
					memLimit = "256MiB"
				}
			}
			lim, err := bytesize.Parse(memLimit)
			if err != nil {
				return usageErrorf(cmd, "--memory-limit %q: %v", memLimit, err)
			}
			cfg.MemoryLimit = int64(lim)
			if dir == "" {
				if dir, err = os.MkdirTemp("", "spool-overload-"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			cfg.Dir = dir
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this executable to start the server: %w", err)
			}
			extra := []string{"--memory-limit", memLimit}
			if debugAddr != "" {
				extra = append(extra, "--debug-addr", debugAddr)
			}
			cfg.Start = bench.ProcessServer(exe, extra...)
			cfg.Progress = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.RunOverload(ctx, cfg)
			if rep != nil {
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if jerr := enc.Encode(rep); jerr != nil && err == nil {
						err = jerr
					}
				} else {
					printOverloadReport(cmd.OutOrStdout(), rep)
				}
			}
			if err != nil {
				return err
			}
			switch {
			case rep.ServerExitedDuringLoad:
				return fmt.Errorf("the server died during the overload")
			case !rep.WithinBudget():
				return fmt.Errorf("peak RSS %s exceeds the memory limit %s", bytesize.Size(max(rep.PeakRSS, rep.HWM)), bytesize.Size(rep.MemoryLimit))
			case rep.ProbeOK == 0:
				return fmt.Errorf("no probe succeeded during the overload")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the server's data (default: a temporary directory, removed at the end)")
	f.StringVar(&memLimit, "memory-limit", "512MiB", "the server's memory.limit: the budget its peak RSS must stay within")
	f.BoolVar(&cfg.Cgroup, "cgroup", true, "run the server in a cgroup v1 memory cgroup of twice the limit, where one can be made (root)")
	f.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "how long the overload lasts")
	f.DurationVar(&cfg.Calibrate, "calibrate", 10*time.Second, "how long the sustainable rate is measured first")
	f.Float64Var(&cfg.Factor, "factor", 10, "offered load in multiples of the sustainable rate")
	f.IntVar(&cfg.Conns, "conns", 300, "client connections during the overload (publishing, Kafka producers' and idle ones)")
	f.IntVar(&cfg.Publishers, "publishers", 64, "native connections that publish")
	f.IntVar(&cfg.KafkaProducers, "kafka-producers", 4, "Kafka producers (franz-go clients) that produce")
	f.IntVar(&cfg.MaxOutstanding, "max-outstanding", 8, "unanswered publish requests per publishing connection; more offered are held back at the client")
	f.IntVar(&cfg.Batch, "batch", 256, "messages per publish request")
	f.IntVar(&cfg.Size, "size", 1024, "value bytes per message")
	f.DurationVar(&cfg.ConsumerDelay, "consumer-delay", 5*time.Millisecond, "time the slow consumers spend on each message")
	f.StringVar(&debugAddr, "debug-addr", "", "start the server with --debug-addr ADDR, to take heap profiles during the run")
	f.BoolVar(&short, "short", false, "short mode: 20 s of overload after 5 s of calibration, a 256MiB limit (unless given)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printOverloadReport(w io.Writer, r *bench.OverloadReport) {
	peak := max(r.PeakRSS, r.HWM)
	fmt.Fprintf(w, "Overload: %s at %.0f× the sustainable rate\n\n", r.DurationRun.Round(time.Second), r.OfferedRate/max(r.SustainableRate, 1))
	fmt.Fprintf(w, "| measure | value |\n|---|---:|\n")
	fmt.Fprintf(w, "| memory limit (budget) | %s |\n", bytesize.Size(r.MemoryLimit))
	fmt.Fprintf(w, "| peak RSS (VmHWM; largest 100 ms sample) | %s (%s); %.0f%% of the budget |\n", bytesize.Size(r.HWM), bytesize.Size(r.PeakRSS), 100*float64(peak)/float64(r.MemoryLimit))
	fmt.Fprintf(w, "| peak Go heap in use | %s |\n", bytesize.Size(r.PeakHeapInuse))
	if r.Cgroup != "" {
		fmt.Fprintf(w, "| cgroup limit / max usage (page cache included) | %s / %s |\n", bytesize.Size(r.CgroupLimit), bytesize.Size(r.CgroupMaxUsage))
		fmt.Fprintf(w, "| cgroup failcnt / OOM kills / under OOM | %d / %d / %v |\n", r.CgroupFailcnt, r.CgroupOOMKills, r.CgroupUnderOOM)
	} else {
		fmt.Fprintf(w, "| cgroup | none (RSS from /proc only) |\n")
	}
	fmt.Fprintf(w, "| server alive at the end | %v |\n", !r.ServerExitedDuringLoad)
	fmt.Fprintf(w, "| sustainable publish rate (calibrated %s) | %.0f msg/s |\n", r.Calibrated.Round(time.Second), r.SustainableRate)
	fmt.Fprintf(w, "| offered | %.0f msg/s |\n", r.OfferedRate)
	fmt.Fprintf(w, "| accepted (acknowledged) | %.0f msg/s (Kafka %.0f) |\n", r.AcceptedRate, r.AcceptedKafkaRate)
	fmt.Fprintf(w, "| requests held back at the client (connection at its outstanding limit) | %d |\n", r.HeldBack)
	fmt.Fprintf(w, "| consumed by the slow stream / queue consumers | %d / %d |\n", r.StreamConsumed, r.QueueConsumed)
	fmt.Fprintf(w, "| connections open (peak, spool_connections) | %d |\n", r.ConnsOpen)
	fmt.Fprintf(w, "| probe (publish + describe), idle baseline p50 / p99 / max | %s / %s / %s (n=%d) |\n", ms(r.Baseline.P50), ms(r.Baseline.P99), ms(r.Baseline.Max), r.Baseline.N)
	fmt.Fprintf(w, "| probe under overload p50 / p99 / max | %s / %s / %s (ok %d, failed %d) |\n", ms(r.Probe.P50), ms(r.Probe.P99), ms(r.Probe.Max), r.ProbeOK, r.ProbeFailed)
	printCounts(w, "publish errors", r.Errors)
	printCounts(w, "probe errors", r.ProbeErrors)
	keys := make([]string, 0, len(r.BackpressureCounters)+len(r.BudgetPeakInUse))
	for k := range r.BackpressureCounters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "| `%s` (increase) | %.6g |\n", k, r.BackpressureCounters[k])
	}
	keys = keys[:0]
	for k := range r.BudgetPeakInUse {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "| `%s` (peak) | %s |\n", k, bytesize.Size(int64(r.BudgetPeakInUse[k])))
	}
}

func printCounts(w io.Writer, what string, m map[string]int64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		fmt.Fprintf(w, "| %s | none |\n", what)
	}
	for _, k := range keys {
		fmt.Fprintf(w, "| %s: %s | %d |\n", what, k, m[k])
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
