package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
)

func newBenchLatencyCmd() *cobra.Command {
	var (
		dir        string
		srvURL     string
		kafkaAddr  string
		rates      string
		duration   time.Duration
		rounds     int
		size       int
		queue      bool
		oneAtATime time.Duration
		tputMsgs   int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "latency",
		Short: "End-to-end latency through the SDK and Kafka clients against a separate server process, beside kfake and raw fdatasync",
		Long: "Starts `spool serve` from this executable as a separate process (data in a new directory\n" +
			"under --dir, durability always, free loopback ports; stopped at the end), or measures the\n" +
			"running server at --server and/or --kafka. For each rate in --rates, in --rounds rounds,\n" +
			"it measures producer send → consumer receipt on a one-partition topic, with an open-loop\n" +
			"schedule: the Go SDK (Producer without linger; stream and queue consumers), franz-go\n" +
			"(producer without linger; consumer with a 100 ms fetch wait) against Spool, and the same\n" +
			"franz-go code against the in-memory kfake. Beside each measurement a probe writes and\n" +
			"fdatasyncs 4 KiB every 2 ms in the same directory. Each round also measures raw 4 KiB\n" +
			"write+fdatasync alone, one-at-a-time publish latency, and pipelined publish throughput\n" +
			"of the SDK Producer and franz-go. Prints Markdown tables of medians, with the targets\n" +
			"evaluated on same-round numbers; per-round numbers go to stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := parseInts(rates)
			if err != nil {
				return usageErrorf(cmd, "--rates: %v", err)
			}
			if rounds < 1 {
				return usageErrorf(cmd, "--rounds must be at least 1")
			}
			if duration <= 0 {
				return usageErrorf(cmd, "--duration must be positive")
			}
			if size < 24 {
				return usageErrorf(cmd, "--size must be at least 24 (the timestamps and sequence number)")
			}
			cfg := bench.E2EConfig{Dir: dir, Server: srvURL, Kafka: kafkaAddr, Rates: rs, Duration: duration,
				Rounds: rounds, Size: size, Queue: queue, OneAtATime: oneAtATime, ThroughputMessages: tputMsgs,
				Progress: cmd.ErrOrStderr()}
			if srvURL == "" && kafkaAddr == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("finding this executable to start the server: %w", err)
				}
				cfg.Start = bench.ProcessServer(exe)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.RunE2E(ctx, cfg)
			if rep != nil {
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if jerr := enc.Encode(rep); jerr != nil && err == nil {
						err = jerr
					}
				} else {
					printLatencyReport(cmd.OutOrStdout(), rep, rounds)
				}
			}
			if err == nil && rep.Lost() {
				err = fmt.Errorf("records were lost, duplicated or failed in some measurements (see the tables)")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory for the started server's data and the fdatasync probe (the disk under test)")
	f.StringVar(&srvURL, "server", "", "measure the native API of this running server instead of starting one")
	f.StringVar(&kafkaAddr, "kafka", "", "measure the Kafka listener at this address (host:port) of a running server")
	f.StringVar(&rates, "rates", "1000,5000,20000", "records per second of the end-to-end measurements, comma-separated")
	f.DurationVar(&duration, "duration", 10*time.Second, "time per end-to-end measurement")
	f.IntVar(&rounds, "rounds", 3, "rounds; the tables show medians")
	f.IntVar(&size, "size", 256, "value size in bytes (at least 24)")
	f.BoolVar(&queue, "queue", true, "also measure the SDK with a queue subscription end to end")
	f.DurationVar(&oneAtATime, "one-at-a-time", 3*time.Second, "time per one-at-a-time publish measurement (0 skips them)")
	f.IntVar(&tputMsgs, "throughput-messages", 1_000_000, "messages per pipelined throughput measurement (0 skips them)")
	f.BoolVar(&asJSON, "json", false, "print the per-round results as JSON instead of the tables")
	return cmd
}

// latencyIndex finds a report's results by round.
type latencyIndex struct {
	rep  *bench.E2EReport
	raw  map[int]bench.RawResult
	e2e  map[string]bench.E2EResult // round/path/rate
	one  map[string]bench.OneResult // round/path
	tput map[string]bench.ThroughputResult
}

func e2eKey(round int, path string, rate int) string {
	return fmt.Sprintf("%d/%s/%d", round, path, rate)
}
func oneKey(round int, path string) string { return fmt.Sprintf("%d/%s", round, path) }

func indexReport(rep *bench.E2EReport) *latencyIndex {
	ix := &latencyIndex{rep: rep, raw: map[int]bench.RawResult{}, e2e: map[string]bench.E2EResult{},
		one: map[string]bench.OneResult{}, tput: map[string]bench.ThroughputResult{}}
	for _, r := range rep.Raw {
		ix.raw[r.Round] = r
	}
	for _, e := range rep.E2E {
		ix.e2e[e2eKey(e.Round, e.Path, e.Rate)] = e
	}
	for _, o := range rep.OneAtATime {
		ix.one[oneKey(o.Round, o.Path)] = o
	}
	for _, t := range rep.Throughput {
		ix.tput[oneKey(t.Round, t.Client)] = t
	}
	return ix
}

// target is one of the targets, evaluated round by round: each
// round gives the measured value and its limit from the same round's
// numbers; the result is met when the median of (measured − limit) is at
// most 0 (at least 0 for atLeast).
type target struct {
	name              string
	rate              int // 0: not per rate
	measured, limit   []float64
	atLeast, isRatio  bool
	result, shortName string
}

func (t *target) add(measured, limit float64) {
	t.measured = append(t.measured, measured)
	t.limit = append(t.limit, limit)
}

func (t *target) evaluate() string {
	if len(t.measured) == 0 {
		return "not measured"
	}
	var diffs []float64
	for i := range t.measured {
		diffs = append(diffs, t.measured[i]-t.limit[i])
	}
	d := median(diffs)
	if t.atLeast && d >= 0 || !t.atLeast && d <= 0 {
		return "met"
	}
	return "missed"
}

func (t *target) value(x float64) string {
	if t.isRatio {
		return fmt.Sprintf("%.2f", x)
	}
	return usf(x)
}

// latencyTargets evaluates the targets on the report's rounds.
func latencyTargets(ix *latencyIndex, rounds int, rates []int) []*target {
	var out []*target
	rawP50 := func(r int) (float64, bool) {
		raw, ok := ix.raw[r]
		return float64(raw.P50), ok
	}
	e2e := func(r int, path string, rate int) (bench.E2EResult, bool) {
		e, ok := ix.e2e[e2eKey(r, path, rate)]
		return e, ok && e.Err == ""
	}
	for _, rate := range rates {
		t50 := &target{name: "kafka p50 ≤ 1.5 × kfake p50 + raw fdatasync p50", shortName: "p50", rate: rate}
		t99 := &target{name: "kafka p99 ≤ 2 × kfake p99", shortName: "p99", rate: rate}
		for r := 1; r <= rounds; r++ {
			k, ok1 := e2e(r, bench.PathKafka, rate)
			f, ok2 := e2e(r, bench.PathKfake, rate)
			raw, ok3 := rawP50(r)
			if ok1 && ok2 && ok3 {
				t50.add(float64(k.Latency.P50), 1.5*float64(f.Latency.P50)+raw)
				t99.add(float64(k.Latency.P99), 2*float64(f.Latency.P99))
			}
		}
		out = append(out, t50, t99)
		for _, path := range []string{bench.PathNativeStream, bench.PathNativeQueue} {
			n50 := &target{name: path + " p50 ≤ raw fdatasync p50 + 0.5 ms", shortName: "p50", rate: rate}
			n99 := &target{name: path + " p99 ≤ 2 ms", shortName: "p99", rate: rate}
			for r := 1; r <= rounds; r++ {
				n, ok1 := e2e(r, path, rate)
				raw, ok2 := rawP50(r)
				if ok1 && ok2 {
					n50.add(float64(n.Latency.P50), raw+float64(500*time.Microsecond))
					n99.add(float64(n.Latency.P99), float64(2*time.Millisecond))
				}
			}
			out = append(out, n50, n99)
		}
	}
	for _, path := range []string{bench.OneNativePublish, bench.OneNativePublishSync, bench.OneKafka} {
		t := &target{name: "one-at-a-time " + path + " p50 ≤ raw fdatasync p50 + 0.1 ms", shortName: "p50"}
		for r := 1; r <= rounds; r++ {
			o, ok1 := ix.one[oneKey(r, path)]
			raw, ok2 := rawP50(r)
			if ok1 && ok2 {
				t.add(float64(o.Latency.P50), raw+float64(100*time.Microsecond))
			}
		}
		out = append(out, t)
	}
	tp := &target{name: "pipelined native ÷ franz-go ≥ 0.90", atLeast: true, isRatio: true}
	for r := 1; r <= rounds; r++ {
		n, ok1 := ix.tput[oneKey(r, bench.ThroughputNative)]
		f, ok2 := ix.tput[oneKey(r, bench.ThroughputFranz)]
		if ok1 && ok2 && f.Rate > 0 {
			tp.add(n.Rate/f.Rate, 0.9)
		}
	}
	out = append(out, tp)
	for _, t := range out {
		t.result = t.evaluate()
	}
	return out
}

// printLatencyReport prints the report's Markdown tables (medians over
// rounds).
func printLatencyReport(out io.Writer, rep *bench.E2EReport, rounds int) {
	ix := indexReport(rep)
	var rates []int
	var paths []string
	for _, e := range rep.E2E {
		if !slices.Contains(rates, e.Rate) {
			rates = append(rates, e.Rate)
		}
		if !slices.Contains(paths, e.Path) {
			paths = append(paths, e.Path)
		}
	}
	targets := latencyTargets(ix, rounds, rates)
	where := "a running server (" + strings.Trim(rep.Server+" "+rep.Kafka, " ") + ")"
	if rep.Started {
		where = "`spool serve` in a separate process, durability always"
	}
	var raw50, raw99 []float64
	for _, r := range rep.Raw {
		raw50 = append(raw50, float64(r.P50))
		raw99 = append(raw99, float64(r.P99))
	}
	fmt.Fprintf(out, "Medians of %d rounds; server: %s; one-partition topics; %d-byte values; %s per rate and path.\n",
		rounds, where, rep.Size, rep.Duration)
	fmt.Fprintf(out, "Raw 4 KiB write+fdatasync alone in the same directory: p50 %s, p99 %s.\n\n", usf(median(raw50)), usf(median(raw99)))

	if len(rep.E2E) > 0 {
		fmt.Fprintf(out, "End-to-end latency, producer send → consumer receipt (open-loop schedule; \"corrected\" counts from the scheduled send time; schedule lag is how late the producer sent):\n\n")
		fmt.Fprintf(out, "| path | rate | p50 | p99 | p999 | max | corrected p99 | schedule lag p99 | fdatasync during run p50 | targets |\n")
		fmt.Fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, rate := range rates {
			for _, path := range paths {
				var errs []string
				var p50, p99, p999, mx, corr, lag, sync []float64
				for r := 1; r <= rounds; r++ {
					e, ok := ix.e2e[e2eKey(r, path, rate)]
					if !ok {
						continue
					}
					if e.Err != "" {
						errs = append(errs, fmt.Sprintf("round %d: %s", r, e.Err))
						continue
					}
					p50 = append(p50, float64(e.Latency.P50))
					p99 = append(p99, float64(e.Latency.P99))
					p999 = append(p999, float64(e.Latency.P999))
					mx = append(mx, float64(e.Latency.Max))
					corr = append(corr, float64(e.Corrected.P99))
					lag = append(lag, float64(e.Lag.P99))
					sync = append(sync, float64(e.SyncDuring.P50))
				}
				if len(errs) > 0 {
					fmt.Fprintf(out, "| %s | %d/s | **ERROR** %s | | | | | | | |\n", path, rate, strings.Join(errs, "; "))
					continue
				}
				if len(p50) == 0 {
					continue
				}
				var short []string
				for _, t := range targets {
					if t.rate == rate && strings.HasPrefix(t.name, path+" ") && t.result != "not measured" {
						short = append(short, t.shortName+" "+t.result)
					}
				}
				if len(short) == 0 {
					short = []string{"—"}
				}
				fmt.Fprintf(out, "| %s | %d/s | %s | %s | %s | %s | %s | %s | %s | %s |\n", path, rate,
					usf(median(p50)), usf(median(p99)), usf(median(p999)), usf(median(mx)), usf(median(corr)),
					usf(median(lag)), usf(median(sync)), strings.Join(short, ", "))
			}
		}
		fmt.Fprintln(out)
	}

	if len(rep.OneAtATime) > 0 {
		fmt.Fprintf(out, "One-at-a-time publish latency (publish, wait for the acknowledgement, pause 2 ms, repeat):\n\n")
		fmt.Fprintf(out, "| path | publishes | p50 | p99 | p50 − raw fdatasync p50 |\n|---|---:|---:|---:|---:|\n")
		for _, path := range []string{bench.OneNativePublish, bench.OneNativePublishSync, bench.OneKafka, bench.OneKfake} {
			var n, p50, p99, delta []float64
			for r := 1; r <= rounds; r++ {
				o, ok := ix.one[oneKey(r, path)]
				if !ok {
					continue
				}
				n = append(n, float64(o.Latency.Count))
				p50 = append(p50, float64(o.Latency.P50))
				p99 = append(p99, float64(o.Latency.P99))
				delta = append(delta, float64(o.Latency.P50-ix.raw[r].P50))
			}
			if len(p50) == 0 {
				continue
			}
			fmt.Fprintf(out, "| %s | %.0f | %s | %s | %+.0f µs |\n", path, median(n), usf(median(p50)), usf(median(p99)), median(delta)/1e3)
		}
		fmt.Fprintln(out)
	}

	if len(rep.Throughput) > 0 {
		fmt.Fprintf(out, "Pipelined publish throughput from one producer, default options, one partition:\n\n")
		fmt.Fprintf(out, "| client | messages | msg/s |\n|---|---:|---:|\n")
		for _, name := range []string{bench.ThroughputNative, bench.ThroughputFranz} {
			var rate []float64
			msgs := 0
			for r := 1; r <= rounds; r++ {
				if t, ok := ix.tput[oneKey(r, name)]; ok {
					rate = append(rate, t.Rate)
					msgs = t.Messages
				}
			}
			if len(rate) > 0 {
				fmt.Fprintf(out, "| %s | %d | %.0f |\n", name, msgs, median(rate))
			}
		}
		fmt.Fprintln(out)
	}

	targets = slices.DeleteFunc(targets, func(t *target) bool { return t.result == "not measured" })
	if len(targets) == 0 {
		return
	}
	fmt.Fprintf(out, "Targets, each evaluated within every round (the median of measured − limit over rounds):\n\n")
	fmt.Fprintf(out, "| target | rate | measured | limit | result |\n|---|---:|---:|---:|---|\n")
	for _, t := range targets {
		rate := "—"
		if t.rate > 0 {
			rate = fmt.Sprintf("%d/s", t.rate)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", t.name, rate, t.value(median(t.measured)), t.value(median(t.limit)), t.result)
	}
}
