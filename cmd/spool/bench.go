package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
	"github.com/spoolmq/spool/server"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Spool on this machine, beside the machine's own limits",
	}
	cmd.AddCommand(newBenchLogCmd(), newBenchNativeCmd(), newBenchQueueCmd(), newBenchKafkaCmd(), newBenchLatencyCmd(), newBenchTraceCmd(), newBenchClusterCmd(), newBenchSchemaCmd(), newBenchOverloadCmd())
	return cmd
}

func newBenchNativeCmd() *cobra.Command {
	var (
		dir      string
		srvURL   string
		sizes    string
		messages int
		duration time.Duration
		rounds   int
		cpuprof  string
		traced   bool
		sampled  float64
		useTLS   bool
	)
	cmd := &cobra.Command{
		Use:   "native",
		Short: "Publish and consume through the Go SDK (durable), beside raw fdatasync",
		Long: "Starts a server in --dir (or uses --server), then for each message size measures\n" +
			"pipelined durable publishing with the SDK Producer, stream consuming with the SDK\n" +
			"Consumer, and one-at-a-time publish latency, with the raw write+fdatasync latency\n" +
			"of 4 KiB measured in the same directory in the same round. Prints medians of rounds.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := parseInts(sizes)
			if err != nil {
				return fmt.Errorf("--sizes: %w", err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Medians of %d rounds; %d messages per throughput measurement, %s of one-at-a-time publishes.\n\n", rounds, messages, duration)
			fmt.Fprintf(out, "| size | pipelined publish msg/s | stream consume msg/s | one-at-a-time p50 | p99 | raw fdatasync 4 KiB p50 | p50 − raw p50 |\n")
			fmt.Fprintf(out, "|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, size := range ss {
				var pub, con, p50, p99, raw, delta []float64
				for r := 1; r <= rounds; r++ {
					fmt.Fprintf(cmd.ErrOrStderr(), "size %d, round %d/%d\n", size, r, rounds)
					ncfg := bench.NativeConfig{Dir: dir, Server: srvURL, Size: size, Messages: messages,
						Duration: duration, Progress: cmd.ErrOrStderr(), Traced: traced, TraceSampled: sampled, TLS: useTLS}
					if strings.HasPrefix(srvURL, "https://") {
						if ncfg.ClientTLS, err = clientTLS(cmd); err != nil {
							return err
						}
					}
					var pf, cf *os.File
					if cpuprof != "" {
						if pf, err = os.Create(fmt.Sprintf("%s-%d-r%d-publish.pprof", cpuprof, size, r)); err != nil {
							return err
						}
						if cf, err = os.Create(fmt.Sprintf("%s-%d-r%d-consume.pprof", cpuprof, size, r)); err != nil {
							pf.Close()
							return err
						}
						ncfg.PublishProfile, ncfg.ConsumeProfile = pf, cf
					}
					res, err := bench.RunNative(ncfg)
					if pf != nil {
						pf.Close()
						cf.Close()
					}
					if err != nil {
						return err
					}
					pub = append(pub, res.PipelinedRate)
					con = append(con, res.ConsumeRate)
					p50 = append(p50, float64(res.SyncP50))
					p99 = append(p99, float64(res.SyncP99))
					raw = append(raw, float64(res.RawSyncP50))
					delta = append(delta, float64(res.SyncP50-res.RawSyncP50))
				}
				fmt.Fprintf(out, "| %s | %.0f | %.0f | %s | %s | %s | %+.0f µs |\n", sizeName(size), median(pub), median(con),
					usf(median(p50)), usf(median(p99)), usf(median(raw)), median(delta)/1e3)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory for the server's data and the raw fsync file (the disk under test)")
	cmd.Flags().StringVar(&srvURL, "server", "", "benchmark this running server instead of starting one")
	cmd.Flags().StringVar(&sizes, "sizes", "256,1024", "message sizes in bytes, comma-separated")
	cmd.Flags().IntVar(&messages, "messages", 1_000_000, "messages per throughput measurement")
	cmd.Flags().DurationVar(&duration, "duration", 3*time.Second, "time of the one-at-a-time latency measurement")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds; the table shows medians")
	cmd.Flags().StringVar(&cpuprof, "cpuprofile", "", "write CPU profiles of each pipelined publish and stream consume to PREFIX-SIZE-rROUND-{publish,consume}.pprof (client and server share the process unless --server)")
	cmd.Flags().BoolVar(&traced, "traced", false, "every message carries a traceparent, and the in-process server exports its spans over OTLP to an in-process receiver (tracing on)")
	cmd.Flags().Float64Var(&sampled, "trace-sampled", 1, "with --traced, the fraction of the traceparents whose sampled flag is set")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "the in-process server speaks TLS (development certificates in a temporary directory) and the SDK connects over it")
	return cmd
}

func newBenchLogCmd() *cobra.Command {
	var (
		dir       string
		duration  time.Duration
		appenders string
		sizes     string
		recovery  int64
		rounds    int
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Partition-log append throughput and latency (policy always) against raw write+fdatasync",
		Long: "Runs, in one process and one directory, a loop of write + fdatasync for each size\n" +
			"(the machine's limit) and seglog appends with the durability policy 'always' for\n" +
			"each number of concurrent appenders and batch size, in rounds, then prints a Markdown\n" +
			"table of medians with ratios taken within each round.",
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
			return runLogBench(cmd.OutOrStdout(), cmd.ErrOrStderr(), tmp, duration, rounds, ns, ss, recovery)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to benchmark in (the disk under test)")
	cmd.Flags().DurationVar(&duration, "duration", 2*time.Second, "time per measurement")
	cmd.Flags().StringVar(&appenders, "appenders", "1,4,16,64", "concurrent appenders, comma-separated")
	cmd.Flags().StringVar(&sizes, "sizes", "256,1024,16384", "batch sizes in bytes, comma-separated")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds; the table shows medians")
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

// runLogBench measures in rounds. In each round and for each batch size it
// measures raw write+fdatasync of that size and of 1 MiB, then the log with
// every appender count, so that every ratio compares measurements taken
// within seconds of each other; the table shows medians over rounds.
func runLogBench(out, progress io.Writer, dir string, d time.Duration, rounds int, appenders, sizes []int, recoveryBytes int64) error {
	type cell struct {
		mbps, ops, ratioSame, ratioMiB []float64
		p50, p99, p50Delta             []float64
	}
	raws := map[int]*cell{}
	logs := map[[2]int]*cell{}
	get := func(m map[int]*cell, k int) *cell {
		if m[k] == nil {
			m[k] = &cell{}
		}
		return m[k]
	}
	for round := 1; round <= rounds; round++ {
		for _, size := range sizes {
			fmt.Fprintf(progress, "round %d/%d: raw write+fdatasync %d B and 1 MiB...\n", round, rounds, size)
			raw, err := bench.RawSync(dir, size, d)
			if err != nil {
				return err
			}
			mib, err := bench.RawSync(dir, 1<<20, d)
			if err != nil {
				return err
			}
			for _, r := range []bench.Result{raw, mib} {
				c := get(raws, r.Size)
				c.mbps = append(c.mbps, r.MBps())
				c.ops = append(c.ops, r.OpsPerSec())
				c.p50 = append(c.p50, float64(r.P50))
				c.p99 = append(c.p99, float64(r.P99))
				c.ratioMiB = append(c.ratioMiB, r.MBps()/mib.MBps())
			}
			for _, n := range appenders {
				fmt.Fprintf(progress, "round %d/%d: log append %d appenders × %d B...\n", round, rounds, n, size)
				r, err := bench.LogAppend(dir, n, size, d)
				if err != nil {
					return err
				}
				c := logs[[2]int{n, size}]
				if c == nil {
					c = &cell{}
					logs[[2]int{n, size}] = c
				}
				c.mbps = append(c.mbps, r.MBps())
				c.ops = append(c.ops, r.OpsPerSec())
				c.p50 = append(c.p50, float64(r.P50))
				c.p99 = append(c.p99, float64(r.P99))
				c.ratioSame = append(c.ratioSame, r.MBps()/raw.MBps())
				c.ratioMiB = append(c.ratioMiB, r.MBps()/mib.MBps())
				c.p50Delta = append(c.p50Delta, float64(r.P50-raw.P50))
			}
		}
	}
	fmt.Fprintf(out, "Medians of %d rounds of %s per measurement; every ratio is taken within one round.\n\n", rounds, d)
	fmt.Fprintf(out, "| test | appenders | batch | MB/s | batches/s | p50 | p99 | MB/s ÷ raw same size | MB/s ÷ raw 1 MiB | p50 − raw p50 |\n")
	fmt.Fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, size := range append(append([]int{}, sizes...), 1<<20) {
		c := raws[size]
		fmt.Fprintf(out, "| raw write+fdatasync | 1 | %s | %.1f | %.0f | %s | %s | 1.00 | %.2f | 0 |\n",
			sizeName(size), median(c.mbps), median(c.ops), usf(median(c.p50)), usf(median(c.p99)), median(c.ratioMiB))
	}
	for _, size := range sizes {
		for _, n := range appenders {
			c := logs[[2]int{n, size}]
			fmt.Fprintf(out, "| log append (always) | %d | %s | %.1f | %.0f | %s | %s | %.2f | %.2f | %+.0f µs |\n",
				n, sizeName(size), median(c.mbps), median(c.ops), usf(median(c.p50)), usf(median(c.p99)),
				median(c.ratioSame), median(c.ratioMiB), median(c.p50Delta)/1e3)
		}
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

func usf(ns float64) string { return fmt.Sprintf("%.0f µs", ns/1e3) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func newBenchQueueCmd() *cobra.Command {
	var (
		dir      string
		srvURL   string
		messages int
		rounds   int
		rate     int
		latDur   time.Duration
		delayed  int
		procKey  string
	)
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Queue mode through the Go SDK: consume+ack, end-to-end latency, delayed messages' memory",
		Long: "Measures, with a server in --dir (or --server): consume + ack of a backlog of 256-byte\n" +
			"messages with one and four SDK consumers and 1 % nacks; publish → delivery latency at a\n" +
			"fixed rate; and the heap growth of 1,000,000 pending delayed messages.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			out, progress := cmd.OutOrStdout(), cmd.ErrOrStderr()
			fmt.Fprintf(out, "Medians of %d rounds; backlog of %d × 256 B; durability always.\n\n", rounds, messages)
			fmt.Fprintf(out, "| consumers | nacks | consume + ack msg/s |\n|---:|---:|---:|\n")
			for _, n := range []int{1, 4} {
				var rates []float64
				for r := 0; r < rounds; r++ {
					res, err := bench.RunQueue(bench.QueueConfig{Dir: dir, Server: srvURL, Size: 256, Messages: messages,
						Consumers: n, NackRatio: 0.01, ProcessedKey: procKey, Progress: progress})
					if err != nil {
						return err
					}
					rates = append(rates, res.ConsumeAckRate)
				}
				fmt.Fprintf(out, "| %d | 1%% | %.0f |\n", n, median(rates))
			}
			if rate > 0 {
				lr, err := bench.RunLatency(dir, srvURL, rate, latDur, progress)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n| rate | sent | received | p50 | p99 | p999 | max | raw fdatasync 4 KiB p50 |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
				fmt.Fprintf(out, "| %d/s | %d | %d | %s | %s | %s | %s | %s |\n", lr.Rate, lr.Sent, lr.Received,
					usf(float64(lr.P50)), usf(float64(lr.P99)), usf(float64(lr.P999)), usf(float64(lr.Max)), usf(float64(lr.RawSyncP50)))
			}
			if delayed > 0 {
				dr, err := bench.RunDelayed(dir, delayed, progress)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n| pending delayed messages | parked in the state store | live heap growth |\n|---:|---:|---:|\n")
				fmt.Fprintf(out, "| %d | %d | %.1f MiB |\n", dr.Messages, dr.Parked, float64(dr.HeapDelta)/(1<<20))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory for the server's data (the disk under test)")
	f.StringVar(&srvURL, "server", "", "benchmark this running server instead of starting one")
	f.IntVar(&messages, "messages", 1_000_000, "backlog size for consume+ack")
	f.IntVar(&rounds, "rounds", 3, "rounds of consume+ack; the table shows medians")
	f.IntVar(&rate, "rate", 5000, "publish rate of the latency measurement (0 skips it)")
	f.DurationVar(&latDur, "latency-duration", 10*time.Second, "duration of the latency measurement")
	f.IntVar(&delayed, "delayed", 1_000_000, "pending delayed messages for the memory measurement (0 skips it)")
	f.StringVar(&procKey, "processed-key", "", "consume + ack on a subscription with this processed-key ledger (`KEY`: id, key or header:NAME; docs/idempotent-consumer.md)")
	return cmd
}

func newBenchKafkaCmd() *cobra.Command {
	var (
		dir     string
		records int
		sizes   string
		rounds  int
		rate    int
		latDur  time.Duration
		share   bool
		profDir string
	)
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "franz-go clients against Spool's Kafka listener and, in the same run, against kfake",
		Long: "Runs the same franz-go client code against Spool (a server started in --dir, durability\n" +
			"always) and against franz-go's in-memory kfake cluster (no fsync: the client-bound\n" +
			"ceiling): idempotent produce with acks=all, group consume committing after every poll,\n" +
			"and share-group consume accepting every record; plus produce → consume latency at a\n" +
			"fixed rate against Spool, and the raw fdatasync latency.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ss, err := parseInts(sizes)
			if err != nil {
				return fmt.Errorf("--sizes: %w", err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			out, progress := cmd.OutOrStdout(), cmd.ErrOrStderr()
			tmp, err := os.MkdirTemp(dir, "kbench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			srv, err := server.New(server.Config{DataDir: filepath.Join(tmp, "data"), HTTPAddr: "127.0.0.1:0",
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				return err
			}
			defer srv.Shutdown(context.Background())
			kaddr, stopK, err := bench.StartKfake()
			if err != nil {
				return err
			}
			defer stopK()
			raw, err := bench.RawSync(tmp, 4096, time.Second)
			if err != nil {
				return err
			}
			rawBig, err := bench.RawSync(tmp, 1<<20, time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Medians of %d rounds, %d records each; raw fdatasync 4 KiB p50 %s; raw write+fdatasync of 1 MiB %.0f MB/s.\n\n",
				rounds, records, usf(float64(raw.P50)), rawBig.MBps())
			var diskNotes []string
			fmt.Fprintf(out, "| size | broker | produce rec/s | group consume rec/s | time to first records | group consume after them, rec/s | share consume rec/s |\n|---:|---|---:|---:|---:|---:|---:|\n")
			for _, size := range ss {
				type acc struct{ p, g, f, gs, s []float64 }
				var sp, kf acc
				for r := 1; r <= rounds; r++ {
					for _, target := range []struct {
						name string
						addr string
						a    *acc
					}{{"spool", srv.KafkaAddr(), &sp}, {"kfake", kaddr, &kf}} {
						fmt.Fprintf(progress, "%s, %d B, round %d/%d\n", target.name, size, r, rounds)
						var prof func(string) func()
						if profDir != "" && target.name == "spool" {
							prof = cpuProfiler(profDir, fmt.Sprintf("kafka-%d-r%d", size, r))
						}
						res, err := bench.RunKafka(target.addr, size, records, share, progress, prof)
						if err != nil {
							return fmt.Errorf("%s: %w", target.name, err)
						}
						if res.ShareErr != nil {
							fmt.Fprintf(progress, "  share consume failed: %v\n", res.ShareErr)
						}
						target.a.p = append(target.a.p, res.ProduceRate)
						target.a.g = append(target.a.g, res.GroupConsumeRate)
						target.a.f = append(target.a.f, float64(res.GroupFirst))
						target.a.gs = append(target.a.gs, res.GroupSteadyRate)
						target.a.s = append(target.a.s, res.ShareConsumeRate)
					}
				}
				for _, row := range []struct {
					name string
					a    acc
				}{{"Spool (fsync)", sp}, {"kfake (memory)", kf}} {
					fmt.Fprintf(out, "| %s | %s | %.0f | %.0f | %.1f ms | %.0f | %.0f |\n", sizeName(size), row.name, median(row.a.p), median(row.a.g), median(row.a.f)/1e6, median(row.a.gs), median(row.a.s))
				}
				fmt.Fprintf(out, "| %s | Spool ÷ kfake | %.2f | %.2f | | %.2f | %.2f |\n", sizeName(size),
					median(sp.p)/median(kf.p), median(sp.g)/median(kf.g), ratio(median(sp.gs), median(kf.gs)), ratio(median(sp.s), median(kf.s)))
				mb := median(sp.p) * float64(size) / 1e6
				diskNotes = append(diskNotes, fmt.Sprintf("%s records: Spool produced %.0f MB/s of values, %.2f of the raw 1 MiB write+fdatasync bandwidth", sizeName(size), mb, ratio(mb, rawBig.MBps())))
			}
			fmt.Fprintln(out)
			for _, n := range diskNotes {
				fmt.Fprintf(out, "- %s.\n", n)
			}
			if rate > 0 {
				lr, err := bench.RunKafkaLatency(srv.KafkaAddr(), rate, latDur)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "\n| rate | sent | received | p50 | p99 | p999 | max |\n|---:|---:|---:|---:|---:|---:|---:|\n")
				fmt.Fprintf(out, "| %d/s | %d | %d | %s | %s | %s | %s |\n", lr.Rate, lr.Sent, lr.Received,
					usf(float64(lr.P50)), usf(float64(lr.P99)), usf(float64(lr.P999)), usf(float64(lr.Max)))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory for Spool's data (the disk under test)")
	f.IntVar(&records, "records", 1_000_000, "records per measurement")
	f.StringVar(&sizes, "sizes", "256,1024", "record sizes in bytes")
	f.IntVar(&rounds, "rounds", 3, "rounds; the table shows medians")
	f.IntVar(&rate, "rate", 5000, "produce rate of the latency measurement (0 skips it)")
	f.DurationVar(&latDur, "latency-duration", 10*time.Second, "duration of the latency measurement")
	f.BoolVar(&share, "share", true, "also measure share-group consumption")
	f.StringVar(&profDir, "profile-dir", "", "write a CPU profile of each Spool phase here (client and server share the process)")
	return cmd
}

// cpuProfiler returns a profile hook writing DIR/PREFIX-PHASE.cpu.pprof.
func cpuProfiler(dir, prefix string) func(string) func() {
	return func(phase string) func() {
		f, err := os.Create(filepath.Join(dir, prefix+"-"+phase+".cpu.pprof"))
		if err != nil {
			return func() {}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return func() {}
		}
		return func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
